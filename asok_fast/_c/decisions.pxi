# The per-response decisions: preflight, respond, respond_stream and
# origin_allowed.  Included by _core_c.pyx.
#
# Twin of the decision half of _core_py: the same rules in the same order
# (parity: the function of the same name there), on the typed copy of the
# settings below and the header scanning of scan.pxi.

cdef int CORS_OFF = _CORS_OFF
cdef int CORS_ANY = _CORS_ANY
cdef int CORS_LIST = _CORS_LIST

# The Content-Encoding line of each coding, by id - 1.
cdef tuple _CONTENT_ENCODING = tuple(("Content-Encoding", c) for c in CODINGS)

# Vary lines for a response whose app set none.
cdef tuple _VARY_BOTH = ("Vary", "Accept-Encoding, Origin")
cdef tuple _VARY_ENCODING = ("Vary", "Accept-Encoding")
cdef tuple _VARY_ORIGIN = ("Vary", "Origin")


cdef class _Fast:
    """A typed copy of a ``_config.Settings``, made once per config change
    and kept on the Settings object itself (its ``compiled`` slot), so that
    the decisions read C fields instead of Python attributes."""

    cdef int cors
    cdef frozenset origins
    cdef object origin_regex
    cdef tuple cors_headers
    cdef tuple preflight_headers
    cdef bint private_network
    cdef bint gzip
    cdef Py_ssize_t gzip_min_size
    cdef int gzip_level
    cdef object gzip_types
    cdef int codings[_MAX_CODINGS]
    cdef int ncodings
    cdef bint padding
    cdef bint zlib_gzip  # gzip through this core's zlib, compressed in C
    cdef object cache_find  # the in-process BodyCache's find method, or None (cache off)
    cdef object shared_tier
    cdef tuple variants  # what makes each coding's bytes (Settings.variants), by id - 1
    cdef bint etag

    def __cinit__(self, settings):
        self.cors = settings.cors
        self.origins = settings.origins
        self.origin_regex = settings.origin_regex
        self.cors_headers = tuple(settings.cors_headers)
        self.preflight_headers = tuple(settings.preflight_headers)
        self.private_network = settings.private_network
        self.gzip = settings.gzip
        # A body never exceeds PY_SSIZE_T_MAX bytes: clamping keeps the comparison exact.
        self.gzip_min_size = min(settings.gzip_min_size, PY_SSIZE_T_MAX)
        self.gzip_level = settings.gzip_level
        self.gzip_types = settings.gzip_types
        self.ncodings = _codings_ids(settings.codings, self.codings)
        self.padding = settings.padding
        self.zlib_gzip = settings.gzip_engine == "zlib"
        self.cache_find = None if settings.cache is None else settings.cache.find
        self.shared_tier = settings.shared_tier
        self.variants = tuple([settings.variants.get(name) for name in _CODING_NAMES])
        self.etag = settings.etag


cdef inline _Fast _fast(object settings):
    cached = settings.compiled
    if type(cached) is _Fast:
        return <_Fast>cached
    cached = _Fast(settings)
    settings.compiled = cached
    return <_Fast>cached


# CORS ---------------------------------------------------------------------------------


cdef bint _origin_allowed(_Fast settings, object origin) except -1:
    cdef Py_ssize_t n = 0, i
    cdef const unsigned char* p = _ascii(origin, &n)
    if p == NULL or n == 0:
        return False
    # One visible-ASCII token: no space, comma or control character.
    for i in range(n):
        if p[i] <= 32 or p[i] >= 127 or p[i] == 44:
            return False
    if n == 1 and p[0] == 42:
        return False  # "*" is never a serialized origin (RFC 6454 7.1): never echoed
    if origin in settings.origins:
        return True
    regex = settings.origin_regex
    return regex is not None and regex.fullmatch(origin) is not None


def origin_allowed(settings, origin):
    """Whether a list/regex CORS config allows this ``Origin`` as sent."""
    return _origin_allowed(_fast(settings), origin)


cdef int _cors(_Fast settings, object origin, list out) except -1:
    """Append the CORS headers an actual (non-preflight) response gets."""
    if settings.cors == CORS_ANY:
        out.append(("Access-Control-Allow-Origin", "*"))
        out.extend(settings.cors_headers)
    elif settings.cors == CORS_LIST:
        if _origin_allowed(settings, origin):
            out.append(("Access-Control-Allow-Origin", origin))
            out.extend(settings.cors_headers)
    return 0


def preflight(settings, origin, private_network):
    """Headers of the ``204`` answering a preflight."""
    cdef _Fast fast = _fast(settings)
    cdef list out
    if fast.cors == CORS_ANY:
        out = [("Access-Control-Allow-Origin", "*")]
    else:
        out = [_VARY_ORIGIN]
        if not _origin_allowed(fast, origin):
            return out
        out.append(("Access-Control-Allow-Origin", origin))
    out.extend(fast.preflight_headers)
    if fast.private_network and isinstance(private_network, str) and _ieq_strip(private_network, "true", 4):
        out.append(("Access-Control-Allow-Private-Network", "true"))
    return out


# The app's headers -------------------------------------------------------------------


@cython.freelist(8)
@cython.no_gc  # holds only the app's header values: never part of a cycle
cdef class _AppHeaders:
    """The app's headers, read in one pass by _read_headers (parity:
    _core_py._AppHeaders).  ``cache_control`` and ``vary`` stay None until
    the app sends one."""

    cdef list kept
    cdef object content_type
    cdef bint encoded
    cdef list cache_control
    cdef object etag
    cdef object etag_raw
    cdef object last_modified
    cdef bint has_cors
    cdef list vary
    cdef object content_length


cdef _AppHeaders _read_headers(headers):
    cdef _AppHeaders app = _AppHeaders.__new__(_AppHeaders)
    cdef list kept = []
    cdef int hid
    for header in headers:
        name, value = _pair(header)
        hid = _header_id(name)
        if hid == H_CONTENT_LENGTH:
            if app.content_length is None:
                app.content_length = value
            continue  # recomputed, or kept by the caller where it stays right
        if hid == H_VARY:
            if app.vary is None:
                app.vary = [value]
            else:
                app.vary.append(value)
            continue  # re-added, merged, at the end
        if hid == H_CONTENT_TYPE:
            if app.content_type is None:
                app.content_type = value
        elif hid == H_CONTENT_ENCODING:
            if _ieq_strip(value, "identity", 8):
                continue  # says nothing; dropped so it cannot contradict gzip
            app.encoded = True
        elif hid == H_CACHE_CONTROL:
            if app.cache_control is None:
                app.cache_control = [value]
            else:
                app.cache_control.append(value)
        elif hid == H_ETAG:
            if app.etag_raw is None:
                app.etag_raw = value
                app.etag = normalize_etag(value)
        elif hid == H_LAST_MODIFIED:
            if app.last_modified is None:
                app.last_modified = value
        elif hid == H_CORS:
            app.has_cors = True
        kept.append(header)
    app.kept = kept
    return app


cdef int _finish_headers(_Fast settings, object origin, _AppHeaders app, list out, bint vary_encoding) except -1:
    """Append Vary (merged, one line) and the CORS headers to ``out``."""
    cdef bint by_origin = settings.cors == CORS_LIST
    cdef list tokens
    cdef Py_ssize_t nvary = 0 if app.vary is None else len(app.vary)
    if vary_encoding or by_origin or nvary > 1:
        if nvary == 0:
            if vary_encoding and by_origin:
                out.append(_VARY_BOTH)
            elif vary_encoding:
                out.append(_VARY_ENCODING)
            elif by_origin:
                out.append(_VARY_ORIGIN)
        else:
            tokens = []
            if vary_encoding:
                tokens.append("Accept-Encoding")
            if by_origin:
                tokens.append("Origin")
            merged = merge_vary(app.vary, tokens)
            if merged is None:
                for value in app.vary:
                    out.append(("Vary", value))
            elif merged:
                out.append(("Vary", merged))
    elif nvary:
        out.append(("Vary", app.vary[0]))
    if settings.cors != CORS_OFF and not app.has_cors:
        _cors(settings, origin, out)
    return 0


cdef inline object _weaken(object tag):
    return tag if tag.startswith("W/") else "W/" + tag


cdef inline object _opaque(object tag):
    return tag[2:] if tag.startswith("W/") else tag


cdef list _with_etag(list headers, object app_etag, object etag):
    """``headers`` with the app's ETag line carrying ``etag`` instead; the
    list itself when that changes nothing."""
    cdef list out
    if etag is app_etag or etag == app_etag:
        return headers
    out = []
    for h in headers:
        out.append(("ETag", etag) if _header_id(h[0]) == H_ETAG else h)
    return out


cdef list _no_body(_Fast settings, object origin, _AppHeaders app):
    """Headers of a response that cannot carry a body (1xx, 204, 304)."""
    cdef list out = list(app.kept)
    _finish_headers(settings, origin, app, out, False)
    return out


cdef list _not_modified(_Fast settings, object origin, _AppHeaders app, object app_etag,
                        object our_etag, bint vary_encoding):
    """The headers of the ``304 Not Modified``: the 200's less the
    representation metadata (_shared.NOT_IN_304)."""
    cdef list out = []
    for h in _with_etag(app.kept, app.etag_raw, app_etag):
        if not _DROPPED_BY_304[_header_id(h[0])]:
            out.append(h)
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, origin, app, out, vary_encoding)
    return out


cdef bint _conditional_match(object if_none_match, object if_modified_since, tuple tags,
                             const char* hexdigest, object last_modified) except -1:
    """RFC 9110 13.1.2 / 13.1.3; ``tags``: the current opaque tags;
    ``hexdigest`` (or NULL): the body's MD5, whose two tags count as current."""
    cdef int r
    if if_none_match is not None:
        r = _scan_inm(if_none_match, None, tags, hexdigest)
        return r == 1 or r == 2
    if last_modified is None or if_modified_since is None:
        return False  # nothing to compare
    since = parse_http_date(if_modified_since)
    if since is None:
        return False
    modified = parse_http_date(last_modified)
    return modified is not None and since >= modified


cdef inline tuple _request_fields(object request):
    """The request tuple's five fields; anything else through the shared
    helper, whose error is the pure twin's."""
    if type(request) is tuple and PyTuple_GET_SIZE(request) == 5:
        return <tuple>request
    return request_fields(request)


cdef inline bint _get_or_head(object method) except -1:
    return method == "GET" or method == "HEAD"


cdef inline bint _no_body_status(int code) noexcept:
    return code < 200 or code == 204 or code == 304


cdef Py_ssize_t _digest_tag(object body, char* tag, int coding) except -1:
    """Write our ETag for ``body`` into ``tag`` and return its length:
    ``"<md5>"`` (34 chars) or, compressed in ``coding``, ``"<md5>-<coding>"``
    (at most 39)."""
    cdef Py_buffer view
    cdef const unsigned char* ptr
    cdef size_t length
    cdef bytes suffix
    if _get_buffer(body, &view, &ptr, &length):
        try:
            _md5_hex(ptr, length, tag + 1)
        finally:
            PyBuffer_Release(&view)
    else:
        _md5_hex(ptr, length, tag + 1)
    tag[0] = 34  # '"'
    if coding == 0:
        tag[33] = 34
        return 34
    suffix = <bytes>_ETAG_SUFFIXES[coding - 1]
    memcpy(tag + 33, PyBytes_AS_STRING(suffix), PyBytes_GET_SIZE(suffix))
    return 33 + PyBytes_GET_SIZE(suffix)


cdef object _compress_body(_Fast fast, object settings, int coding, object body, const char* md5,
                           list cache_control):
    """``body`` in ``coding``, as _ENCODERS.compress gives it; ``md5``: its 32
    hex digits where the ETag computed them, else NULL.

    Without padding and without the shared tier for this body, the steps of
    Encoders.compress are done here (parity: _codecs.Encoders.compress, which
    stays the one place for the other cases): one call to the cache that looks
    the body up and counts its appearance, the compression on a miss (gzip
    through zlib in C, without leaving this core), a store where the cache
    asked for one.  A one-off body costs the cache one call.
    """
    cdef char digest[32]
    cdef Py_buffer view
    cdef const unsigned char* ptr
    cdef size_t length
    cdef object find = fast.cache_find
    cdef object found = None
    if fast.padding or (fast.shared_tier is not None and len(body) >= SHARED_MIN_SIZE):
        shareable = not (_cache_control_has(cache_control, "no-store", 8)
                         or _cache_control_has(cache_control, "private", 7))
        return _ENCODERS.compress(settings, _CODING_NAMES[coding - 1], body,
                                  PyUnicode_DecodeASCII(md5, 32, NULL) if md5 != NULL else None, shareable)
    if find is not None:
        if md5 == NULL:
            if _get_buffer(body, &view, &ptr, &length):
                try:
                    _md5_hex(ptr, length, digest)
                finally:
                    PyBuffer_Release(&view)
            else:
                _md5_hex(ptr, length, digest)
            md5 = digest
        found = find(fast.variants[coding - 1], PyUnicode_DecodeASCII(md5, 32, NULL), body)
        if type(found) is bytes:
            return found
    if coding == _GZIP and fast.zlib_gzip and type(body) is bytes:
        out = _gzip_compress_ptr(<const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body),
                                 fast.gzip_level)
        if _COMPRESSED_HOOK is not None:
            _COMPRESSED_HOOK("gzip")
    else:
        out = _ENCODERS.encode(settings, _CODING_NAMES[coding - 1], body)
    if found is not None:  # seen before: kept from now on
        settings.cache.store(found, body, out)
    return out


# The entry points ---------------------------------------------------------------------


def respond(settings, request, status, headers, body):
    """Process a buffered response; the returned body is what a ``GET`` sends."""
    cdef _Fast fast = _fast(settings)
    cdef int code = _status_code(status)
    cdef _AppHeaders app
    cdef list out
    cdef bint eligible, hashed = False
    cdef int coding = 0
    cdef Py_ssize_t tag_length
    cdef tuple current = ()
    cdef char tag[40]  # our ETag: '"' + 32 hex digits + '"' or '-<coding>"'
    method, origin, accept_encoding, if_none_match, if_modified_since = _request_fields(request)
    if code == 0:
        return status, headers, body  # not a status line we can reason about
    app = _read_headers(headers)
    if _no_body_status(code):
        return status, _no_body(fast, origin, app), b""

    eligible = (
        fast.gzip
        and code != 206
        and not app.encoded
        and len(body) > fast.gzip_min_size
        and _is_compressible(app.content_type, fast.gzip_types)
        and not _cache_control_has(app.cache_control, "no-transform", 12)
    )
    if eligible:
        coding = _negotiate(accept_encoding, fast.codings, fast.ncodings)

    app_etag = _weaken(app.etag) if coding and app.etag is not None else app.etag
    our_etag = None
    if fast.etag and code == 200 and _get_or_head(method):
        if app.etag is not None:
            current = (_opaque(app.etag),)
        elif not _cache_control_has(app.cache_control, "no-store", 8):
            # The digest names the content: every representation's tag
            # matches; only the one sent is made as a str.
            tag_length = _digest_tag(body, tag, coding)
            hashed = True
            our_etag = PyUnicode_DecodeASCII(tag, tag_length, NULL)
        # Decided before any compression work.
        if _conditional_match(if_none_match, if_modified_since, current, tag + 1 if hashed else NULL,
                              app.last_modified):
            return "304 Not Modified", _not_modified(fast, origin, app, app_etag, our_etag, eligible), b""

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if coding:
        body = _compress_body(fast, settings, coding, body, tag + 1 if hashed else NULL, app.cache_control)
        out.append(_CONTENT_ENCODING[coding - 1])
    out.append(("Content-Length", str(len(body))))
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(fast, origin, app, out, eligible)
    return status, out, body


def respond_stream(settings, request, status, headers, bint may_compress):
    """Headers for a streamed body and what to do with it (a ``STREAM_*``)."""
    cdef _Fast fast = _fast(settings)
    cdef int code = _status_code(status)
    cdef _AppHeaders app
    cdef list out
    cdef bint eligible
    cdef int coding = 0
    method, origin, accept_encoding, if_none_match, if_modified_since = _request_fields(request)
    if code == 0:
        return status, headers, STREAM_PASS, None
    app = _read_headers(headers)
    if _no_body_status(code):
        return status, _no_body(fast, origin, app), STREAM_EMPTY, None

    eligible = (
        may_compress
        and fast.gzip
        and code != 206
        and not app.encoded
        and _is_compressible(app.content_type, fast.gzip_types)
        and not _cache_control_has(app.cache_control, "no-transform", 12)
    )
    if eligible:
        coding = _negotiate(accept_encoding, fast.codings, fast.ncodings)
    app_etag = _weaken(app.etag) if coding and app.etag is not None else app.etag
    if (
        fast.etag
        and code == 200
        and (app.etag is not None or app.last_modified is not None)
        and _get_or_head(method)
    ):
        current = (_opaque(app.etag),) if app.etag is not None else ()
        if _conditional_match(if_none_match, if_modified_since, current, NULL, app.last_modified):
            return "304 Not Modified", _not_modified(fast, origin, app, app_etag, None, eligible), STREAM_EMPTY, None

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if coding:
        out.append(_CONTENT_ENCODING[coding - 1])
    elif app.content_length is not None:
        out.append(("Content-Length", app.content_length))
    _finish_headers(fast, origin, app, out, eligible)
    if coding == 0:
        return status, out, STREAM_PASS, None
    return status, out, STREAM_COMPRESS, _CODING_NAMES[coding - 1]
