# Request and response header scanning.  Included by _core_c.pyx.
#
# Twin of the parsing half of _core_py: every function here gives the same
# result as the one of the same name there.  Header values are read as raw
# bytes: a str of ASCII characters only is one byte per character
# (PyUnicode_1BYTE_DATA), which is all the C code ever reads.  A request
# header that is not ASCII counts as absent or unmatched in both twins; an
# app's header that is not ASCII goes through the shared Python helpers
# (_shared), so no corner can diverge.

# RFC 9110 5.6.2 tchar and Python's str.isspace() over ASCII, as tables.
cdef unsigned char _TCHAR[256]
cdef unsigned char _SPACE[256]


cdef int _init_tables() except -1:
    cdef int c
    memset(_TCHAR, 0, sizeof(_TCHAR))
    memset(_SPACE, 0, sizeof(_SPACE))
    for c in TCHARS.encode("ascii"):
        _TCHAR[c] = 1
    for c in range(128):
        _SPACE[c] = chr(c).isspace()
    return 0


_init_tables()


cdef inline const unsigned char* _ascii(object s, Py_ssize_t* n):
    """The bytes of a str of ASCII characters only, or NULL (not a str, or
    not ASCII); its length into n."""
    if not isinstance(s, str) or PyUnicode_MAX_CHAR_VALUE(s) > 127:
        return NULL
    n[0] = PyUnicode_GET_LENGTH(s)
    return PyUnicode_1BYTE_DATA(s)


cdef inline unsigned char _lower(unsigned char c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint _is_ows(unsigned char c) noexcept nogil:
    return c == 32 or c == 9


cdef inline bint _ieq(const unsigned char* p, Py_ssize_t n, const char* lit, Py_ssize_t m) noexcept nogil:
    """Case-insensitive ASCII compare of p[:n] with a lower-case literal."""
    cdef Py_ssize_t i
    if n != m:
        return False
    for i in range(n):
        if _lower(p[i]) != <unsigned char>lit[i]:
            return False
    return True


cdef inline void _strip_ows(const unsigned char* p, Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    """Narrow [a, b) to exclude leading and trailing OWS."""
    while a[0] < b[0] and _is_ows(p[a[0]]):
        a[0] += 1
    while b[0] > a[0] and _is_ows(p[b[0] - 1]):
        b[0] -= 1


cdef bint _ieq_strip(object value, const char* lit, Py_ssize_t m) except -1:
    """``value.strip(OWS).lower() == lit`` for a str value."""
    cdef Py_ssize_t n = 0, a = 0, b
    cdef const unsigned char* p = _ascii(value, &n)
    if p == NULL:
        return value.strip(OWS).lower() == PyUnicode_DecodeASCII(lit, m, NULL)
    b = n
    _strip_ows(p, &a, &b)
    return _ieq(p + a, b - a, lit, m)


# Accept-Encoding ---------------------------------------------------------------


cdef int _qvalue(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """An RFC 9110 qvalue in thousandths, -1 when not one (parity: _core_py._qvalue)."""
    cdef Py_ssize_t i
    cdef int q = 0
    if n == 0 or n > 5 or (p[0] != 48 and p[0] != 49):
        return -1
    if n == 1:
        return 1000 if p[0] == 49 else 0
    if p[1] != 46:
        return -1
    for i in range(2, n):
        if not (48 <= p[i] <= 57):
            return -1
    if p[0] == 49:
        for i in range(2, n):
            if p[i] != 48:
                return -1
        return 1000
    for i in range(2, 5):
        q = q * 10 + ((p[i] - 48) if i < n else 0)
    return q


# Codings by a small id: 1 + their index in _shared.CODINGS; 0 is none.
cdef enum:
    _MAX_CODINGS = 3
cdef tuple _CODING_NAMES = CODINGS
cdef tuple _CODING_TOKENS = tuple(c.encode("ascii") for c in CODINGS)
cdef int _NCODINGS = len(CODINGS)
cdef int _GZIP = CODINGS.index("gzip") + 1
if _NCODINGS > _MAX_CODINGS:
    raise ImportError("_core_c holds at most 3 codings: raise _MAX_CODINGS")


cdef int _coding_id(const unsigned char* p, Py_ssize_t n) except -1:
    """The id of the coding token p[:n] (any case; ``x-gzip`` is gzip), 0 when
    it names none of CODINGS."""
    cdef int k
    cdef bytes token
    for k in range(_NCODINGS):
        token = <bytes>_CODING_TOKENS[k]
        if _ieq(p, n, token, PyBytes_GET_SIZE(token)):
            return k + 1
    if _ieq(p, n, "x-gzip", 6):
        return _GZIP
    return 0


cdef int _codings_ids(object codings, int* ids) except -1:
    """A tuple of coding names as ids into ids[]; returns how many."""
    cdef int count = 0
    for name in codings:
        if count == _MAX_CODINGS:
            break
        ids[count] = _CODING_NAMES.index(name) + 1
        count += 1
    return count


def negotiate(accept_encoding, codings):
    """The coding of ``codings`` to send for this ``Accept-Encoding``, or None
    (RFC 9110 12.5.3; parity: _core_py.negotiate)."""
    cdef int ids[_MAX_CODINGS]
    cdef int count = _codings_ids(codings, ids)
    cdef int chosen = _negotiate(accept_encoding, ids, count)
    return _CODING_NAMES[chosen - 1] if chosen else None


# The decisions call the cdef function: a call through a def function's
# Python entry costs more than the scan itself.
cdef int _negotiate(object accept_encoding, const int* codings, int ncodings) except -1:
    """The id of the coding to send (0: none) among codings[:ncodings], in
    the server's order of preference."""
    cdef Py_ssize_t n = 0, i, start, end, a, b, semi, eq
    cdef const unsigned char* p = _ascii(accept_encoding, &n)
    cdef int listed[_MAX_CODINGS + 1]  # best q by coding id, -1 when not listed
    cdef int star = -1, identity = -1, q, k, cid, best = 0, best_q = 0
    if p == NULL or n == 0:
        return 0
    for k in range(_MAX_CODINGS + 1):
        listed[k] = -1
    start = 0
    while start <= n:
        end = start
        while end < n and p[end] != 44:  # ','
            end += 1
        # coding = element[:';'] stripped
        semi = start
        while semi < end and p[semi] != 59:  # ';'
            semi += 1
        a = start
        b = semi
        _strip_ows(p, &a, &b)
        if a < b:
            i = a
            while i < b and _TCHAR[p[i]]:
                i += 1
            if i == b:
                q = 1000
                if semi < end:
                    # params.strip(OWS).partition("="): the name must be q/Q.
                    i = semi + 1
                    while i < end and _is_ows(p[i]):
                        i += 1
                    eq = i
                    while eq < end and p[eq] != 61:  # '='
                        eq += 1
                    if eq == end or eq - i != 1 or _lower(p[i]) != 113:  # 'q'
                        q = -2
                    else:
                        i = end
                        while i > eq + 1 and _is_ows(p[i - 1]):
                            i -= 1
                        q = _qvalue(p + eq + 1, i - eq - 1)
                        if q < 0:
                            q = -2
                if q >= 0:
                    if b - a == 1 and p[a] == 42:  # '*'
                        if q > star:
                            star = q
                    elif _ieq(p + a, b - a, "identity", 8):
                        if q > identity:
                            identity = q
                    else:
                        cid = _coding_id(p + a, b - a)
                        if cid and q > listed[cid]:
                            listed[cid] = q
        start = end + 1
    if star < 0:
        star = 0
    for k in range(ncodings):
        cid = codings[k]
        q = listed[cid] if listed[cid] >= 0 else star
        if q > best_q:
            best = cid
            best_q = q
    if best == 0 or identity > best_q:
        return 0
    return best


# Media types -------------------------------------------------------------------

# _shared.COMPRESSIBLE_TYPES as bytes, for comparing in place.
cdef tuple _COMPRESSIBLE = tuple(sorted(t.encode("ascii") for t in COMPRESSIBLE_TYPES))


def is_compressible(content_type, extra_types):
    """Whether a ``Content-Type`` names a media type worth compressing."""
    return _is_compressible(content_type, extra_types)


cdef bint _is_compressible(object content_type, object extra_types) except -1:
    cdef Py_ssize_t n = 0, a = 0, b = 0, i, slash = -1, kind_len, sub_len
    cdef const unsigned char* p = _ascii(content_type, &n)
    cdef const unsigned char* sub
    if p == NULL:
        return False
    while b < n and p[b] != 59:  # ';'
        b += 1
    _strip_ows(p, &a, &b)
    for i in range(a, b):
        if p[i] == 47:  # '/'
            slash = i
            break
        if not _TCHAR[p[i]]:
            return False
    if slash < 0:
        return False
    kind_len = slash - a
    sub_len = b - slash - 1
    if kind_len == 0 or sub_len == 0:
        return False
    sub = p + slash + 1
    for i in range(sub_len):
        if not _TCHAR[sub[i]]:
            return False
    if _ieq(p + a, kind_len, "text", 4):
        return not _ieq(sub, sub_len, "event-stream", 12)
    for known in _COMPRESSIBLE:
        if _ieq(p + a, b - a, known, len(<bytes>known)):
            return True
    if extra_types and PyUnicode_DecodeASCII(<const char*>p + a, b - a, NULL).lower() in extra_types:
        return True
    # Structured syntax suffixes (RFC 6839): application/problem+json, ...
    return ((sub_len > 5 and _ieq(sub + sub_len - 5, 5, "+json", 5))
            or (sub_len > 4 and _ieq(sub + sub_len - 4, 4, "+xml", 4)))


# If-None-Match -------------------------------------------------------------------

# What follows the digest in a compressed representation's tag, by coding id - 1.
cdef tuple _ETAG_SUFFIXES = tuple(f'-{c}"'.encode("ascii") for c in CODINGS)


cdef int _etag_suffix(const unsigned char* p, Py_ssize_t n) except -1:
    """The id of the coding whose tag suffix (``-<coding>"``) p[:n] is, or 0."""
    cdef int k
    cdef bytes suffix
    for k in range(_NCODINGS):
        suffix = <bytes>_ETAG_SUFFIXES[k]
        if n == PyBytes_GET_SIZE(suffix) and memcmp(p, PyBytes_AS_STRING(suffix), n) == 0:
            return k + 1
    return 0


cdef int _scan_inm(object value, list tags, tuple current, const char* hexdigest) except -2:
    """Scan an If-None-Match value (RFC 9110 13.1.2).

    Returns -1 when malformed, 2 for ``*``, else 1 when a listed opaque tag
    equals one in ``current`` (or, with ``hexdigest``, one of our tags
    ``"<hexdigest>"`` and ``"<hexdigest>-<coding>"`` for every coding,
    compared in place) and 0 when none does.  With ``tags`` not None, every opaque tag is appended to
    it (for parse_if_none_match).
    """
    cdef Py_ssize_t n = 0, i, a = 0, b, end, k, tn
    cdef const unsigned char* p = _ascii(value, &n)
    cdef const unsigned char* t
    cdef bint matched = False, any_tag = False
    cdef Py_ssize_t ncur
    if p == NULL:
        return -1
    b = n
    _strip_ows(p, &a, &b)
    if b - a == 1 and p[a] == 42:
        return 2
    ncur = PyTuple_GET_SIZE(current) if current is not None else 0
    i = 0
    while True:
        while i < n and (p[i] == 32 or p[i] == 9 or p[i] == 44):
            i += 1
        if i == n:
            break
        if i + 1 < n and p[i] == 87 and p[i + 1] == 47:  # "W/"
            i += 2
        if i == n or p[i] != 34:
            return -1
        end = i + 1
        while end < n and p[end] != 34:
            if p[end] <= 32 or p[end] == 127:
                return -1
            end += 1
        if end == n:
            return -1
        # opaque tag = p[i : end + 1], quotes included
        any_tag = True
        if tags is not None:
            tags.append(PyUnicode_DecodeASCII(<const char*>p + i, end + 1 - i, NULL))
        tn = end + 1 - i
        if not matched and hexdigest != NULL and tn >= 34 and memcmp(p + i + 1, hexdigest, 32) == 0:
            # '"' + 32 hex digits + '"', or + '-<coding>"' for any coding
            matched = tn == 34 or _etag_suffix(p + i + 33, tn - 33) != 0
        if not matched:
            for k in range(ncur):
                t = _ascii(current[k], &tn)
                if t != NULL and tn == end + 1 - i and memcmp(t, p + i, tn) == 0:
                    matched = True
                    break
        i = end + 1
        while i < n and _is_ows(p[i]):
            i += 1
        if i < n and p[i] != 44:
            return -1
    if not any_tag:
        return -1
    return 1 if matched else 0


def parse_if_none_match(value):
    """``"*"``, the tuple of opaque tags listed, or ``None`` when malformed."""
    cdef list tags = []
    cdef int r = _scan_inm(value, tags, None, NULL)
    if r == -1:
        return None
    if r == 2:
        return STAR
    return tuple(tags)


# Response headers ------------------------------------------------------------------

# Header names the decisions read, by a small integer.
cdef enum:
    H_OTHER = 0
    H_CONTENT_LENGTH
    H_VARY
    H_CONTENT_TYPE
    H_CONTENT_ENCODING
    H_CACHE_CONTROL
    H_ETAG
    H_LAST_MODIFIED
    H_CORS
    H_CONTENT_LANGUAGE
    H_CONTENT_RANGE
    H_CONTENT_MD5
    H_COUNT


cdef int _ascii_header_id(const unsigned char* p, Py_ssize_t n) noexcept:
    if n == 4:
        if _ieq(p, n, "vary", 4):
            return H_VARY
        if _ieq(p, n, "etag", 4):
            return H_ETAG
    elif n == 12:
        if _ieq(p, n, "content-type", 12):
            return H_CONTENT_TYPE
    elif n == 14:
        if _ieq(p, n, "content-length", 14):
            return H_CONTENT_LENGTH
    elif n == 16:
        if _ieq(p, n, "content-encoding", 16):
            return H_CONTENT_ENCODING
        if _ieq(p, n, "content-language", 16):
            return H_CONTENT_LANGUAGE
    elif n == 13:
        if _ieq(p, n, "cache-control", 13):
            return H_CACHE_CONTROL
        if _ieq(p, n, "last-modified", 13):
            return H_LAST_MODIFIED
        if _ieq(p, n, "content-range", 13):
            return H_CONTENT_RANGE
    elif n == 11:
        if _ieq(p, n, "content-md5", 11):
            return H_CONTENT_MD5
    if n >= 15 and _ieq(p, 15, "access-control-", 15):
        return H_CORS
    return H_OTHER


cdef int _header_id(object name) except -1:
    cdef Py_ssize_t n = 0
    cdef const unsigned char* p = _ascii(name, &n)
    if p != NULL:
        return _ascii_header_id(p, n)
    # Not ASCII: classify str.lower() of it as the pure twin does (a few
    # non-ASCII letters lower-case to ASCII ones, e.g. the Kelvin sign).
    lowered = name.lower()
    p = _ascii(lowered, &n)
    if p != NULL:
        return _ascii_header_id(p, n)
    # Still not ASCII: none of the names read here, but a CORS header's prefix.
    return H_CORS if lowered.startswith("access-control-") else H_OTHER


# The header ids of _shared.NOT_IN_304 (derived from it at import).
cdef bint _DROPPED_BY_304[H_COUNT]


cdef int _init_dropped_by_304() except -1:
    cdef int hid
    memset(_DROPPED_BY_304, 0, sizeof(_DROPPED_BY_304))
    for name in NOT_IN_304:
        hid = _header_id(name)
        if hid == H_OTHER:
            raise ImportError(f"asok_fast._core_c does not know the header {name!r}")
        _DROPPED_BY_304[hid] = True
    return 0


_init_dropped_by_304()


cdef bint _cache_control_has(list values, const char* directive, Py_ssize_t dlen) except -1:
    """Whether one of the ``Cache-Control`` values lists ``directive``;
    ``values`` is None when the app sent none."""
    cdef Py_ssize_t n = 0, start, end, a, b
    cdef const unsigned char* p
    if values is None:
        return False
    for value in values:
        p = _ascii(value, &n)
        if p == NULL:
            if cache_control_has([value], PyUnicode_DecodeASCII(directive, dlen, NULL)):
                return True
            continue
        start = 0
        while start <= n:
            end = start
            while end < n and p[end] != 44:
                end += 1
            b = start
            while b < end and p[b] != 61:  # '='
                b += 1
            a = start
            _strip_ows(p, &a, &b)
            if _ieq(p + a, b - a, directive, dlen):
                return True
            start = end + 1
    return False


cdef int _status_code(object status) except -1:
    cdef Py_ssize_t n = 0
    cdef const unsigned char* p = _ascii(status, &n)
    if p == NULL or type(status) is not str:
        return status_code(status)  # not ASCII, or not a str: the shared rule's error
    if n < 3 or not (48 <= p[0] <= 57 and 48 <= p[1] <= 57 and 48 <= p[2] <= 57):
        return 0
    if n > 3 and p[3] != 32:
        return 0
    return (p[0] - 48) * 100 + (p[1] - 48) * 10 + (p[2] - 48)


cdef inline object _pair(object header):
    """``header`` as a (name, value) tuple of str, or the PEP 3333 TypeError."""
    if type(header) is tuple and PyTuple_GET_SIZE(header) == 2:
        if isinstance((<tuple>header)[0], str) and isinstance((<tuple>header)[1], str):
            return header
        raise bad_header(header)
    return header_pair(header)  # lists, and the error


cdef Py_ssize_t _declared_length(object value) except -2:
    """``int(value.strip())`` for 1 to 18 ASCII digits, else -1."""
    cdef Py_ssize_t n = 0, a = 0, b, i, length = 0
    cdef const unsigned char* p = _ascii(value, &n)
    if p == NULL:
        stripped = value.strip()
        if stripped.isdigit() and stripped.isascii() and len(stripped) <= 18:
            return int(stripped)
        return -1
    b = n
    while a < b and _SPACE[p[a]]:
        a += 1
    while b > a and _SPACE[p[b - 1]]:
        b -= 1
    if b == a or b - a > 18:
        return -1
    for i in range(a, b):
        if not 48 <= p[i] <= 57:
            return -1
        length = length * 10 + (p[i] - 48)
    return length


cdef bint _is_event_stream(object value) except -1:
    cdef Py_ssize_t n = 0, a = 0, b = 0
    cdef const unsigned char* p = _ascii(value, &n)
    if p == NULL:
        return value.partition(";")[0].strip(OWS).lower() == "text/event-stream"
    while b < n and p[b] != 59:  # ';'
        b += 1
    _strip_ows(p, &a, &b)
    return _ieq(p + a, b - a, "text/event-stream", 17)


def buffer_length(headers, buffer_max):
    """The declared ``Content-Length`` of a body to hold whole, or -1 to stream it."""
    cdef Py_ssize_t length = -1
    cdef bint event_stream = False, seen_length = False, seen_type = False
    cdef int hid
    for header in headers:
        name, value = _pair(header)
        hid = _header_id(name)
        if hid == H_CONTENT_LENGTH and not seen_length:
            seen_length = True
            length = _declared_length(value)
        elif hid == H_CONTENT_TYPE and not seen_type:
            seen_type = True
            event_stream = _is_event_stream(value)
    return -1 if event_stream or length > buffer_max else length
