"""The pure-Python core: every per-response decision and all the byte work.

This module is the reference.  ``_core_c.pyx`` is its compiled twin and must
give byte-identical results for the same arguments; places where the two must
agree on a detail are marked "parity".  The interface is data in, data out,
shared by every interface (the WSGI plumbing in ``middleware.py`` calls it): a
request is the tuple described by ``_shared.Request``, a response a status
line, a list of ``(name, value)`` headers and the body.

* :func:`preflight` - the headers of the ``204`` answering a CORS preflight;
* :func:`respond` - a buffered response: status, header list, whole body in,
  status, header list, body to send out;
* :func:`respond_stream` - the headers of a streamed response and what to do
  with its body (pass it on, compress it chunk by chunk, or send none);
* :func:`open_stream` - the per-response compressor of a compressed stream;
* :func:`buffer_length` - whether a body of declared length is held whole;
* the helpers they use, exported for tests: :func:`md5_hex`,
  :func:`gzip_compress`, :class:`GzipStream`, :func:`compress`,
  :func:`negotiate`, :func:`is_compressible`, :func:`parse_if_none_match`,
  :func:`origin_allowed`.

zstd and brotli are not twinned: both cores call them through
``_codecs.Encoders`` with their own gzip.

The core never sees a WSGI environ, a ``start_response`` or an app iterable.
Header parsing here is ASCII-only by design: a request header with a non-ASCII
character counts as absent or unmatched, which keeps both twins trivially in
step.
"""

from __future__ import annotations

import zlib
from hashlib import md5 as _md5
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from ._codecs import Encoders
from ._config import CORS_ANY, CORS_LIST, CORS_OFF, Settings
from ._httpdate import parse_http_date
from ._shared import (
    CODINGS,
    COMPRESSIBLE_TYPES,
    NOT_IN_304,
    OWS,
    STAR,
    STREAM_EMPTY,
    STREAM_COMPRESS,
    STREAM_PASS,
    TCHARS,
    RAW_REQUEST_NAMES,
    Header,
    RawHeader,
    Request,
    cache_control_has,
    check_level,
    header_pair,
    merge_vary,
    normalize_etag,
    status_code,
)

__all__ = [
    "GzipStream",
    "buffer_length",
    "compress",
    "decode_pairs",
    "encode_pairs",
    "gzip_compress",
    "is_compressible",
    "md5_hex",
    "negotiate",
    "open_stream",
    "origin_allowed",
    "parse_if_none_match",
    "preflight",
    "raw_request_fields",
    "respond",
    "respond_stream",
]

_TCHAR = frozenset(TCHARS)


# --- byte work ----------------------------------------------------------------


def md5_hex(data: bytes) -> str:
    """32 lower-case hex digits of the MD5 of ``data``."""
    return _md5(data).hexdigest()


def gzip_compress(data: bytes, level: int) -> bytes:
    """``data`` as one gzip member framed by zlib with window bits 31.

    Parity: ``_core_c`` runs deflate(Z_FINISH) on a state made with the same
    level, window bits 31 (a 32 KiB window and zlib's gzip wrapper) and
    memLevel 8, so the bytes are the same for the same zlib.
    """
    compressor = zlib.compressobj(check_level(level), zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


class GzipStream:
    """Gzip for a body of unknown length, one flushed block per chunk.

    Every :meth:`compress` ends with a sync flush so the client can decode what
    it has so far; :meth:`finish` ends the member.  Parity: ``_core_c`` does
    deflate(Z_NO_FLUSH) then deflate(Z_SYNC_FLUSH) per chunk and deflate(Z_FINISH)
    at the end, exactly what these zlib calls do.
    """

    __slots__ = ("_compressor",)

    def __init__(self, level: int) -> None:
        self._compressor: Optional["zlib._Compress"] = zlib.compressobj(check_level(level), zlib.DEFLATED, 31)

    def compress(self, chunk: bytes) -> bytes:
        """Compress and flush one chunk; ``b""`` in gives ``b""`` out."""
        if self._compressor is None:
            raise ValueError("GzipStream is finished or closed")
        if not chunk:
            return b""
        return self._compressor.compress(chunk) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The end of the gzip member (last block and trailer)."""
        if self._compressor is None:
            raise ValueError("GzipStream is finished or closed")
        tail = self._compressor.flush()
        self._compressor = None
        return tail

    def close(self) -> None:
        """Drop the compressor without finishing (idempotent)."""
        self._compressor = None


_ENCODERS = Encoders(gzip_compress, GzipStream)


def compress(settings: Settings, coding: str, data: bytes, md5: Optional[str] = None, shareable: bool = True) -> bytes:
    """A whole body in ``coding`` at the settings' engine and level, through the
    compressed-body caches (``md5``: the body's MD5 hex digest where known;
    ``shareable``: false keeps it out of the shared tier), padded where the
    settings say."""
    return _ENCODERS.compress(settings, coding, data, md5, shareable)


def open_stream(settings: Settings, coding: str) -> Any:
    """The compressor of a stream in ``coding``: ``compress(chunk)`` (each
    flushed), ``finish()`` and ``close()``."""
    return _ENCODERS.open_stream(settings, coding)


# --- request header parsing ------------------------------------------------------


def _qvalue(text: str) -> int:
    """An RFC 9110 qvalue in thousandths, or -1 when it is not one."""
    # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if not text or len(text) > 5 or text[0] not in "01":
        return -1
    if len(text) == 1:
        return 1000 if text == "1" else 0
    if text[1] != ".":
        return -1
    digits = text[2:]
    if not all("0" <= c <= "9" for c in digits):
        return -1
    if text[0] == "1":
        return 1000 if digits.strip("0") == "" else -1
    return int((digits + "000")[:3])


def negotiate(accept_encoding: Optional[str], codings: Tuple[str, ...]) -> Optional[str]:
    """The coding of ``codings`` to send for this ``Accept-Encoding``, or None.

    RFC 9110 12.5.3: tokens are case-insensitive and ``x-gzip`` is ``gzip``; a
    coding's weight is its own best ``q`` where it is listed, else that of
    ``*`` where ``*`` is listed, else 0 (``q=0`` refuses).  The best weight
    wins, ties going to the order of ``codings`` (the server's preference);
    none when ``identity`` is listed with a weight above the best.  An
    element that does not parse (bad token, junk or out-of-range q, extra
    parameters) is ignored, as if it were absent.
    """
    if not isinstance(accept_encoding, str) or not accept_encoding or not accept_encoding.isascii():
        return None
    listed: Dict[str, int] = {}  # best q of each coding named, "*" and "identity" included
    for element in accept_encoding.split(","):
        coding, sep, params = element.partition(";")
        coding = coding.strip(OWS).lower()
        if not coding or not _TCHAR.issuperset(coding):
            continue
        q = 1000
        if sep:
            name, eq, value = params.strip(OWS).partition("=")
            if not eq or name.lower() != "q":
                continue
            q = _qvalue(value)
            if q < 0:
                continue
        if coding == "x-gzip":
            coding = "gzip"
        if q > listed.get(coding, -1):
            listed[coding] = q
    star = listed.get("*", 0)
    best = None
    best_q = 0
    for coding in codings:
        q = listed.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    if best is None or listed.get("identity", -1) > best_q:
        return None
    return best


def is_compressible(content_type: Optional[str], extra_types: frozenset) -> bool:
    """Whether a ``Content-Type`` names a media type worth compressing."""
    if not isinstance(content_type, str) or not content_type or not content_type.isascii():
        return False
    media_type = content_type.partition(";")[0].strip(OWS).lower()
    kind, slash, subtype = media_type.partition("/")
    if not slash or not kind or not subtype or not _TCHAR.issuperset(kind) or not _TCHAR.issuperset(subtype):
        return False
    if kind == "text":
        return subtype != "event-stream"
    if media_type in COMPRESSIBLE_TYPES or media_type in extra_types:
        return True
    # Structured syntax suffixes (RFC 6839): application/problem+json, ...
    return (len(subtype) > 5 and subtype.endswith("+json")) or (len(subtype) > 4 and subtype.endswith("+xml"))


def parse_if_none_match(value: str) -> Union[str, Tuple[str, ...], None]:
    """``"*"``, the tuple of opaque tags listed (``W/`` dropped, quotes kept),
    or ``None`` when the value is malformed (RFC 9110 13.1.2)."""
    if not isinstance(value, str) or not value.isascii():
        return None
    stripped = value.strip(OWS)
    if stripped == "*":
        return STAR
    tags = []
    n = len(value)
    i = 0
    while True:
        # Skip OWS and empty list elements.
        while i < n and value[i] in " \t,":
            i += 1
        if i == n:
            break
        if value.startswith("W/", i):
            i += 2
        if i == n or value[i] != '"':
            return None
        end = value.find('"', i + 1)
        if end < 0:
            return None
        tag = value[i : end + 1]
        # etagc = %x21 / %x23-7E / obs-text (non-ASCII was refused above)
        for c in tag[1:-1]:
            if c <= " " or c == "\x7f":
                return None
        tags.append(tag)
        i = end + 1
        while i < n and value[i] in OWS:
            i += 1
        if i < n and value[i] != ",":
            return None
    return tuple(tags) if tags else None


def origin_allowed(settings: Settings, origin: Optional[str]) -> bool:
    """Whether a list/regex CORS config allows this ``Origin`` as sent.

    The origin must be one visible-ASCII token (no space, no comma, no control
    character): anything else is never echoed into a response header.
    """
    if not isinstance(origin, str) or not origin or not origin.isascii() or not origin.isprintable():
        return False
    if " " in origin or "," in origin or origin == "*":
        return False  # "*" is never a serialized origin (RFC 6454 7.1): never echoed
    if origin in settings.origins:
        return True
    regex = settings.origin_regex
    return regex is not None and regex.fullmatch(origin) is not None


def _cors(settings: Settings, origin: Optional[str], out: List[Header]) -> None:
    """Append the CORS headers an actual (non-preflight) response gets."""
    if settings.cors == CORS_ANY:
        out.append(("Access-Control-Allow-Origin", "*"))
        out.extend(settings.cors_headers)
    elif settings.cors == CORS_LIST:
        if origin_allowed(settings, origin):
            out.append(("Access-Control-Allow-Origin", origin))  # type: ignore[arg-type]
            out.extend(settings.cors_headers)


class _AppHeaders:
    """The app's headers, read in one pass: what the decisions need."""

    __slots__ = (
        "kept",
        "content_type",
        "encoded",
        "cache_control",
        "etag",
        "etag_raw",
        "last_modified",
        "has_cors",
        "vary",
        "content_length",
    )

    def __init__(self, headers: List[Header]) -> None:
        kept = []
        self.content_type: Optional[str] = None
        self.encoded = False  # a Content-Encoding other than identity
        self.cache_control: List[str] = []
        self.etag: Optional[str] = None  # the app's tag as an entity-tag
        self.etag_raw: Optional[str] = None  # the app's tag as it wrote it
        self.last_modified: Optional[str] = None
        self.has_cors = False  # the app set an Access-Control-* header itself
        self.vary: List[str] = []
        self.content_length: Optional[str] = None
        for header in headers:
            name, value = header_pair(header)
            lname = name.lower()
            if lname == "content-length":
                if self.content_length is None:
                    self.content_length = value
                continue  # recomputed, or kept by the caller where it stays right
            if lname == "vary":
                self.vary.append(value)
                continue  # re-added, merged, at the end
            if lname == "content-type":
                if self.content_type is None:
                    self.content_type = value
            elif lname == "content-encoding":
                if value.strip(OWS).lower() == "identity":
                    continue  # says nothing; dropped so it cannot contradict gzip
                self.encoded = True
            elif lname == "cache-control":
                self.cache_control.append(value)
            elif lname == "etag":
                if self.etag_raw is None:
                    self.etag_raw = value
                    self.etag = normalize_etag(value)
            elif lname == "last-modified":
                if self.last_modified is None:
                    self.last_modified = value
            elif lname.startswith("access-control-"):
                self.has_cors = True
            kept.append(header)
        self.kept = kept


def _finish_headers(
    settings: Settings, origin: Optional[str], app: _AppHeaders, out: List[Header], vary_encoding: bool
) -> None:
    """Append Vary (merged, one line) and the CORS headers to ``out``."""
    tokens = []
    if vary_encoding:
        tokens.append("Accept-Encoding")
    if settings.cors == CORS_LIST:
        tokens.append("Origin")
    if tokens or len(app.vary) > 1:
        merged = merge_vary(app.vary, tokens)
        if merged is None:
            out.extend(("Vary", value) for value in app.vary)
        elif merged:
            out.append(("Vary", merged))
    elif app.vary:
        out.append(("Vary", app.vary[0]))
    if settings.cors != CORS_OFF and not app.has_cors:
        _cors(settings, origin, out)


def _weaken(tag: str) -> str:
    return tag if tag.startswith("W/") else "W/" + tag


def _with_etag(headers: List[Header], app_etag: Optional[str], etag: Optional[str]) -> List[Header]:
    """``headers`` with the app's ``ETag`` line carrying ``etag`` (weakened) instead."""
    if etag == app_etag:
        return headers
    return [("ETag", etag) if h[0].lower() == "etag" else h for h in headers]  # type: ignore[misc]


def _not_modified(
    settings: Settings,
    origin: Optional[str],
    app: _AppHeaders,
    app_etag: Optional[str],
    our_etag: Optional[str],
    vary_encoding: bool,
) -> Tuple[str, List[Header]]:
    """The ``304``: the 200's headers less the representation metadata."""
    out = [h for h in _with_etag(app.kept, app.etag_raw, app_etag) if h[0].lower() not in NOT_IN_304]
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, origin, app, out, vary_encoding)
    return "304 Not Modified", out


def _conditional_match(
    if_none_match: Optional[str], if_modified_since: Optional[str], tags: Tuple[str, ...], last_modified: Optional[str]
) -> bool:
    """RFC 9110 13.1.2 / 13.1.3 for a GET or HEAD whose current tags are ``tags``."""
    if if_none_match is not None:
        listed = parse_if_none_match(if_none_match)
        if listed is None:
            return False
        if listed is STAR:
            return True
        return any(tag in tags for tag in listed)
    if last_modified is None or if_modified_since is None:
        return False  # nothing to compare
    since = parse_http_date(if_modified_since)
    if since is None:
        return False
    modified = parse_http_date(last_modified)
    return modified is not None and since >= modified


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _no_body(settings: Settings, origin: Optional[str], app: _AppHeaders) -> List[Header]:
    """Headers of a response that cannot carry a body (1xx, 204, 304)."""
    out = list(app.kept)
    _finish_headers(settings, origin, app, out, False)
    return out


# --- the entry points -------------------------------------------------------------------


def preflight(settings: Settings, origin: Optional[str], private_network: Optional[str]) -> List[Header]:
    """Headers of the ``204`` answering a preflight.

    The plumbing has checked that CORS is on and the request is ``OPTIONS``
    with ``Origin`` and ``Access-Control-Request-Method``; ``origin`` is the
    ``Origin`` value, ``private_network`` that of
    ``Access-Control-Request-Private-Network`` (or None).
    """
    out: List[Header] = []
    if settings.cors == CORS_ANY:
        out.append(("Access-Control-Allow-Origin", "*"))
    else:
        out.append(("Vary", "Origin"))
        if not origin_allowed(settings, origin):
            return out
        out.append(("Access-Control-Allow-Origin", origin))  # type: ignore[arg-type]
    out.extend(settings.preflight_headers)
    if settings.private_network:
        if isinstance(private_network, str) and private_network.strip(OWS).lower() == "true":
            out.append(("Access-Control-Allow-Private-Network", "true"))
    return out


def respond(
    settings: Settings, request: Request, status: str, headers: List[Header], body: bytes
) -> Tuple[str, List[Header], bytes]:
    """Process a buffered response; the returned body is what a ``GET`` sends.

    (The plumbing drops it for ``HEAD`` and keeps the headers.)
    """
    method, origin, accept_encoding, if_none_match, if_modified_since = request
    code = status_code(status)
    if code == 0:
        return status, headers, body  # not a status line we can reason about
    app = _AppHeaders(headers)
    if code < 200 or code == 204 or code == 304:
        return status, _no_body(settings, origin, app), b""

    # Would compression apply to this response for some client, and for this one?
    eligible = (
        settings.gzip
        and code != 206
        and not app.encoded
        and len(body) > settings.gzip_min_size
        and is_compressible(app.content_type, settings.gzip_types)
        and not cache_control_has(app.cache_control, "no-transform")
    )
    coding = negotiate(accept_encoding, settings.codings) if eligible else None

    # The app's own ETag is kept, weakened when we change the bytes.
    app_etag = _weaken(app.etag) if coding is not None and app.etag is not None else app.etag
    our_etag = digest = None
    if settings.etag and code == 200 and method in ("GET", "HEAD"):
        if app.etag is not None:
            current: Tuple[str, ...] = (_opaque(app.etag),)
        elif cache_control_has(app.cache_control, "no-store"):
            current = ()
        else:
            digest = md5_hex(body)
            our_etag = f'"{digest}"' if coding is None else f'"{digest}-{coding}"'
            # The digest names the content: every representation's tag matches.
            current = (f'"{digest}"',) + tuple(f'"{digest}-{c}"' for c in CODINGS)
        # Decided before any compression work.
        if _conditional_match(if_none_match, if_modified_since, current, app.last_modified):
            status, out = _not_modified(settings, origin, app, app_etag, our_etag, eligible)
            return status, out, b""

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if coding is not None:
        shareable = not (cache_control_has(app.cache_control, "no-store") or cache_control_has(app.cache_control, "private"))
        body = compress(settings, coding, body, digest, shareable)
        out.append(("Content-Encoding", coding))
    out.append(("Content-Length", str(len(body))))
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, origin, app, out, eligible)
    return status, out, body


def respond_stream(
    settings: Settings, request: Request, status: str, headers: List[Header], may_compress: bool
) -> Tuple[str, List[Header], int, Optional[str]]:
    """Headers for a streamed body, what to do with it (a ``STREAM_*``) and,
    for ``STREAM_COMPRESS``, the coding (:func:`open_stream` makes its
    compressor; else None).

    ``may_compress`` is false for bodies that must pass untouched (a server's
    file wrapper).  A stream gets no ETag of ours, but the app's ``ETag`` /
    ``Last-Modified`` are honoured with a ``304``.
    """
    method, origin, accept_encoding, if_none_match, if_modified_since = request
    code = status_code(status)
    if code == 0:
        return status, headers, STREAM_PASS, None
    app = _AppHeaders(headers)
    if code < 200 or code == 204 or code == 304:
        return status, _no_body(settings, origin, app), STREAM_EMPTY, None

    eligible = (
        may_compress
        and settings.gzip
        and code != 206
        and not app.encoded
        and is_compressible(app.content_type, settings.gzip_types)
        and not cache_control_has(app.cache_control, "no-transform")
    )
    coding = negotiate(accept_encoding, settings.codings) if eligible else None
    app_etag = _weaken(app.etag) if coding is not None and app.etag is not None else app.etag
    if (
        settings.etag
        and code == 200
        and (app.etag is not None or app.last_modified is not None)
        and method in ("GET", "HEAD")
    ):
        current = (_opaque(app.etag),) if app.etag is not None else ()
        if _conditional_match(if_none_match, if_modified_since, current, app.last_modified):
            status, out = _not_modified(settings, origin, app, app_etag, None, eligible)
            return status, out, STREAM_EMPTY, None

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if coding is not None:
        out.append(("Content-Encoding", coding))
    elif app.content_length is not None:
        out.append(("Content-Length", app.content_length))
    _finish_headers(settings, origin, app, out, eligible)
    if coding is None:
        return status, out, STREAM_PASS, None
    return status, out, STREAM_COMPRESS, coding


def buffer_length(headers: List[Header], buffer_max: int) -> int:
    """The declared ``Content-Length`` of a body to hold whole, or -1 to stream it.

    -1 when the first ``Content-Length`` is absent or unreadable, above
    ``buffer_max``, or when the first ``Content-Type`` is ``text/event-stream``
    (never held).  Header errors as in :func:`respond`.
    """
    length = -1
    event_stream = seen_length = seen_type = False
    for header in headers:
        name, value = header_pair(header)
        lname = name.lower()
        if lname == "content-length" and not seen_length:
            seen_length = True
            value = value.strip()
            # More digits than any body could have counts as unreadable (and
            # int() would refuse over sys.get_int_max_str_digits() digits).
            if value.isdigit() and value.isascii() and len(value) <= 18:
                length = int(value)
        elif lname == "content-type" and not seen_type:
            seen_type = True
            event_stream = value.partition(";")[0].strip(OWS).lower() == "text/event-stream"
    return -1 if event_stream or length > buffer_max else length


# --- byte-pair header lists (ASGI) ---------------------------------------------------
#
# An ASGI server gives and takes headers as (name, value) byte strings; the
# core reads and writes str, as a WSGI server gives them (PEP 3333: latin-1).
# These convert at the edge, so that the same rules decide both interfaces.

_RAW_NAMES = frozenset(RAW_REQUEST_NAMES)


def raw_request_fields(raw: Iterable[RawHeader]) -> Tuple[Optional[str], ...]:
    """The values of :data:`~asok_fast._shared.RAW_REQUEST_NAMES`, in that order,
    from a request's byte-pair header list whose names are lower case (ASGI
    requires it): each decoded as latin-1, one sent more than once joined with
    ``", "`` as a WSGI server joins them, ``None`` when absent."""
    found: Dict[bytes, str] = {}
    for name, value in raw:
        if name in _RAW_NAMES:
            text = value.decode("latin-1")
            found[name] = found[name] + ", " + text if name in found else text
    get = found.get
    origin, accept_encoding, if_none_match, if_modified_since, request_method, private_network = RAW_REQUEST_NAMES
    return (
        get(origin),
        get(accept_encoding),
        get(if_none_match),
        get(if_modified_since),
        get(request_method),
        get(private_network),
    )


def decode_pairs(raw: Iterable[RawHeader]) -> List[Header]:
    """A response's byte-pair header list as the core reads it: latin-1 str pairs."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


# Lower-cased byte names by the str the core wrote: a few dozen names recur on
# every response.  Bounded: an app writing ever new names only misses.
_LOWER_NAMES: Dict[str, bytes] = {}
_LOWER_NAMES_MAX = 512


def encode_pairs(headers: Iterable[Header]) -> List[RawHeader]:
    """The core's header list as ASGI sends it: names lower-cased, both encoded as latin-1."""
    names = _LOWER_NAMES
    out = []
    for name, value in headers:
        raw = names.get(name)
        if raw is None:
            raw = name.lower().encode("latin-1")
            if len(names) < _LOWER_NAMES_MAX and type(name) is str:
                names[name] = raw
        out.append((raw, value.encode("latin-1")))
    return out
