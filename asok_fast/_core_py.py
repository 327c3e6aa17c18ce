"""The pure-Python core: every per-response decision and all the byte work.

This module is the reference.  ``_core_c.pyx`` is its compiled twin and must
give byte-identical results for the same arguments; places where the two must
agree on a detail are marked "parity".  The interface is data in, data out:

* :func:`preflight` - the headers of the ``204`` answering a CORS preflight;
* :func:`respond` - a buffered response: status, header list, whole body in,
  status, header list, body to send out;
* :func:`respond_stream` - the headers of a streamed response and what to do
  with its body (pass it on, gzip it chunk by chunk, or send none);
* :class:`GzipStream` - the per-response compressor of a gzipped stream;
* the helpers they use, exported for tests: :func:`md5_hex`,
  :func:`gzip_compress`, :func:`accepts_gzip`, :func:`is_compressible`,
  :func:`parse_if_none_match`, :func:`origin_allowed`.

WSGI plumbing (calling the app, iterables, ``close()``, ``HEAD``) lives in
``middleware.py``; configuration in ``_config.py``.  Header parsing here is
ASCII-only by design: a request header with a non-ASCII character counts as
absent or unmatched, which keeps both twins trivially in step.
"""

from __future__ import annotations

import operator
import zlib
from hashlib import md5 as _md5
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from ._config import CORS_ANY, CORS_LIST, CORS_OFF, Settings
from ._httpdate import parse_http_date

__all__ = [
    "Capture",
    "MiddlewareBase",
    "handle",
    "STREAM_PASS",
    "STREAM_GZIP",
    "STREAM_EMPTY",
    "GzipStream",
    "accepts_gzip",
    "gzip_compress",
    "is_compressible",
    "md5_hex",
    "origin_allowed",
    "parse_if_none_match",
    "preflight",
    "respond",
    "respond_stream",
]

Header = Tuple[str, str]
Environ = Dict[str, object]

# What respond_stream() tells the middleware to do with a streamed body.
STREAM_PASS = 0  # send the app's chunks as they are
STREAM_GZIP = 1  # compress each chunk through a GzipStream
STREAM_EMPTY = 2  # send no body (304, 204, 1xx): close the app's iterable unread

_COMPRESSIBLE_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/x-ndjson",
        "application/wasm",
        "image/svg+xml",
    }
)
# RFC 9110 section 8.6 and 15.4.5: what a 304 must not carry.
_NOT_IN_304 = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-range",
        "content-md5",
    }
)
_OWS = " \t"


# --- byte work ----------------------------------------------------------------


def md5_hex(data: bytes) -> str:
    """32 lower-case hex digits of the MD5 of ``data``."""
    return _md5(data).hexdigest()


def _check_level(level: int) -> int:
    """1 to 9 (``-1``, zlib's default, means 6).  Parity: ``_core_c._check_level``.

    Level 0 is refused: stored blocks depend on output buffer sizes, so their
    bytes could differ between the twins.
    """
    level = operator.index(level)  # a float is refused, with the same message on every Python
    if level == -1:
        return 6
    if 1 <= level <= 9:
        return level
    raise ValueError(f"invalid gzip compression level {level}: expected 1 to 9")


def gzip_compress(data: bytes, level: int) -> bytes:
    """``data`` as one gzip member framed by zlib with window bits 31.

    Parity: ``_core_c`` runs one deflate(Z_FINISH) on a raw state made with
    the same level, 32 KiB window and memLevel 8 (window bits -15), and writes
    around it the header zlib writes for window bits 31 (learned from zlib at
    import) and the trailer (CRC-32 and length); a deflate stream does not
    depend on its wrapper, so the bytes are the same for the same zlib.
    """
    compressor = zlib.compressobj(_check_level(level), zlib.DEFLATED, 31)
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
        self._compressor: Optional["zlib._Compress"] = zlib.compressobj(_check_level(level), zlib.DEFLATED, 31)

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


# --- request header parsing ------------------------------------------------------

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


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


def accepts_gzip(accept_encoding: Optional[str]) -> bool:
    """Whether an ``Accept-Encoding`` value lets us send gzip (RFC 9110 12.5.3).

    ``gzip`` or ``x-gzip`` with q > 0, or ``*`` with q > 0 where neither is
    listed.  An element that does not parse (bad token, junk or out-of-range
    q, extra parameters) is ignored, as if it were absent.
    """
    if not isinstance(accept_encoding, str) or not accept_encoding or not accept_encoding.isascii():
        return False
    explicit = -1  # best q of gzip / x-gzip, -1: not listed
    star = -1
    for element in accept_encoding.split(","):
        coding, sep, params = element.partition(";")
        coding = coding.strip(_OWS).lower()
        if not coding or not _TCHAR.issuperset(coding):
            continue
        q = 1000
        if sep:
            name, eq, value = params.strip(_OWS).partition("=")
            if not eq or name.lower() != "q":
                continue
            q = _qvalue(value)
            if q < 0:
                continue
        if coding == "gzip" or coding == "x-gzip":
            explicit = max(explicit, q)
        elif coding == "*":
            star = max(star, q)
    if explicit >= 0:
        return explicit > 0
    return star > 0


def is_compressible(content_type: Optional[str], extra_types: frozenset) -> bool:
    """Whether a ``Content-Type`` names a media type worth compressing."""
    if not isinstance(content_type, str) or not content_type or not content_type.isascii():
        return False
    media_type = content_type.partition(";")[0].strip(_OWS).lower()
    kind, slash, subtype = media_type.partition("/")
    if not slash or not kind or not subtype or not _TCHAR.issuperset(kind) or not _TCHAR.issuperset(subtype):
        return False
    if kind == "text":
        return subtype != "event-stream"
    if media_type in _COMPRESSIBLE_TYPES or media_type in extra_types:
        return True
    # Structured syntax suffixes (RFC 6839): application/problem+json, ...
    return (len(subtype) > 5 and subtype.endswith("+json")) or (len(subtype) > 4 and subtype.endswith("+xml"))


STAR = "*"


def parse_if_none_match(value: str) -> Union[str, Tuple[str, ...], None]:
    """``"*"``, the tuple of opaque tags listed (``W/`` dropped, quotes kept),
    or ``None`` when the value is malformed (RFC 9110 13.1.2)."""
    if not isinstance(value, str) or not value.isascii():
        return None
    stripped = value.strip(_OWS)
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
        while i < n and value[i] in _OWS:
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


def _cache_control_has(values: List[str], directive: str) -> bool:
    for value in values:
        for item in value.split(","):
            if item.partition("=")[0].strip(_OWS).lower() == directive:
                return True
    return False


def _status_code(status: str) -> int:
    """The status line's code, 0 when the line is not one we can reason about."""
    if type(status) is not str:
        raise TypeError(f"status must be a str such as '200 OK' (PEP 3333), got {status!r}")
    code = status[:3]
    if len(status) < 3 or not code.isdigit() or not code.isascii() or (len(status) > 3 and status[3] != " "):
        return 0
    return int(code)


def _cors(settings: Settings, environ: Environ, out: List[Header]) -> None:
    """Append the CORS headers an actual (non-preflight) response gets."""
    if settings.cors == CORS_ANY:
        out.append(("Access-Control-Allow-Origin", "*"))
        out.extend(settings.cors_headers)
    elif settings.cors == CORS_LIST:
        origin = environ.get("HTTP_ORIGIN")
        if origin_allowed(settings, origin):  # type: ignore[arg-type]
            out.append(("Access-Control-Allow-Origin", origin))  # type: ignore[arg-type]
            out.extend(settings.cors_headers)


def _merge_vary(values: List[str], tokens: List[str]) -> Optional[str]:
    """One ``Vary`` value: the app's tokens then ours, each once (case-insensitive).

    ``None`` when the app's ``Vary`` holds ``*`` (then it is left alone).
    """
    seen = set()
    merged = []
    for value in values:
        for token in value.split(","):
            token = token.strip(_OWS)
            if not token:
                continue
            key = token.lower() if token.isascii() else token
            if key == "*":
                return None
            if key not in seen:
                seen.add(key)
                merged.append(token)
    for token in tokens:
        if token.lower() not in seen:
            seen.add(token.lower())
            merged.append(token)
    return ", ".join(merged)


def _bad_header(header: object) -> TypeError:
    """PEP 3333: a header is a (name, value) pair of ``str`` (shared by both twins)."""
    return TypeError(f"response header {header!r} is not a (name, value) pair of str (PEP 3333)")


def _header_pair(header: object) -> Tuple[str, str]:
    """``header`` as (name, value), or the PEP 3333 TypeError (shared by both twins)."""
    if not isinstance(header, (tuple, list)) or len(header) != 2:
        raise _bad_header(header)
    name, value = header
    if not isinstance(name, str) or not isinstance(value, str):
        raise _bad_header(header)
    return name, value


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
            name, value = _header_pair(header)
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
                if value.strip(_OWS).lower() == "identity":
                    continue  # says nothing; dropped so it cannot contradict gzip
                self.encoded = True
            elif lname == "cache-control":
                self.cache_control.append(value)
            elif lname == "etag":
                if self.etag_raw is None:
                    self.etag_raw = value
                    self.etag = _normalize_etag(value)
            elif lname == "last-modified":
                if self.last_modified is None:
                    self.last_modified = value
            elif lname.startswith("access-control-"):
                self.has_cors = True
            kept.append(header)
        self.kept = kept


def _finish_headers(
    settings: Settings, environ: Environ, app: _AppHeaders, out: List[Header], vary_encoding: bool
) -> None:
    """Append Vary (merged, one line) and the CORS headers to ``out``."""
    tokens = []
    if vary_encoding:
        tokens.append("Accept-Encoding")
    if settings.cors == CORS_LIST:
        tokens.append("Origin")
    if tokens or len(app.vary) > 1:
        merged = _merge_vary(app.vary, tokens)
        if merged is None:
            out.extend(("Vary", value) for value in app.vary)
        elif merged:
            out.append(("Vary", merged))
    elif app.vary:
        out.append(("Vary", app.vary[0]))
    if settings.cors != CORS_OFF and not app.has_cors:
        _cors(settings, environ, out)


def _normalize_etag(value: str) -> str:
    """The app's ``ETag`` as an RFC 9110 entity-tag.

    Some apps (Asok's static files among them) send a bare ``abc123``; it is
    quoted, so that the tag we send is one a client can send back and match.
    A value beyond repair is left as it is (and simply never matches).
    """
    tag = value.strip(_OWS)
    opaque = tag[2:] if tag.startswith("W/") else tag
    if len(opaque) >= 2 and opaque[0] == '"' and opaque[-1] == '"':
        return tag
    if tag and '"' not in tag and tag.isascii() and tag.isprintable() and " " not in tag:
        return f'"{tag}"'
    return value


def _weaken(tag: str) -> str:
    return tag if tag.startswith("W/") else "W/" + tag


def _with_etag(headers: List[Header], app_etag: Optional[str], etag: Optional[str]) -> List[Header]:
    """``headers`` with the app's ``ETag`` line carrying ``etag`` (weakened) instead."""
    if etag == app_etag:
        return headers
    return [("ETag", etag) if h[0].lower() == "etag" else h for h in headers]  # type: ignore[misc]


def _not_modified(
    settings: Settings,
    environ: Environ,
    app: _AppHeaders,
    app_etag: Optional[str],
    our_etag: Optional[str],
    vary_encoding: bool,
) -> Tuple[str, List[Header]]:
    """The ``304``: the 200's headers less the representation metadata."""
    out = [h for h in _with_etag(app.kept, app.etag_raw, app_etag) if h[0].lower() not in _NOT_IN_304]
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, environ, app, out, vary_encoding)
    return "304 Not Modified", out


def _conditional_match(environ: Environ, tags: Tuple[str, ...], last_modified: Optional[str]) -> bool:
    """RFC 9110 13.1.2 / 13.1.3 for a GET or HEAD whose current tags are ``tags``."""
    inm = environ.get("HTTP_IF_NONE_MATCH")
    if inm is not None:
        listed = parse_if_none_match(inm)  # type: ignore[arg-type]
        if listed is None:
            return False
        if listed is STAR:
            return True
        return any(tag in tags for tag in listed)
    if last_modified is None:
        return False  # nothing to compare If-Modified-Since with
    ims = environ.get("HTTP_IF_MODIFIED_SINCE")
    if ims is None:
        return False
    since = parse_http_date(ims)  # type: ignore[arg-type]
    if since is None:
        return False
    modified = parse_http_date(last_modified)
    return modified is not None and since >= modified


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


# --- the three entry points -----------------------------------------------------------


def preflight(settings: Settings, environ: Environ) -> List[Header]:
    """Headers of the ``204`` answering a preflight (the middleware has checked
    that CORS is on and the request is ``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``)."""
    out: List[Header] = []
    if settings.cors == CORS_ANY:
        out.append(("Access-Control-Allow-Origin", "*"))
    else:
        origin = environ.get("HTTP_ORIGIN")
        out.append(("Vary", "Origin"))
        if not origin_allowed(settings, origin):  # type: ignore[arg-type]
            return out
        out.append(("Access-Control-Allow-Origin", origin))  # type: ignore[arg-type]
    out.extend(settings.preflight_headers)
    if settings.private_network:
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK")
        if isinstance(asked, str) and asked.strip(_OWS).lower() == "true":
            out.append(("Access-Control-Allow-Private-Network", "true"))
    return out


def respond(
    settings: Settings, environ: Environ, status: str, headers: List[Header], body: bytes
) -> Tuple[str, List[Header], bytes]:
    """Process a buffered response; the returned body is what a ``GET`` sends.

    (The middleware drops it for ``HEAD`` and keeps the headers.)
    """
    code = _status_code(status)
    if code == 0:
        return status, headers, body  # not a status line we can reason about
    app = _AppHeaders(headers)
    if code < 200 or code == 204 or code == 304:
        out = list(app.kept)
        _finish_headers(settings, environ, app, out, False)
        return status, out, b""

    # Would gzip apply to this response for some client, and for this one?
    eligible = (
        settings.gzip
        and code != 206
        and not app.encoded
        and len(body) > settings.gzip_min_size
        and is_compressible(app.content_type, settings.gzip_types)
        and not _cache_control_has(app.cache_control, "no-transform")
    )
    compress = eligible and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))  # type: ignore[arg-type]

    # The app's own ETag is kept, weakened when we change the bytes.
    app_etag = _weaken(app.etag) if compress and app.etag is not None else app.etag
    our_etag = None
    if settings.etag and code == 200 and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        if app.etag is not None:
            current: Tuple[str, ...] = (_opaque(app.etag),)
        elif _cache_control_has(app.cache_control, "no-store"):
            current = ()
        else:
            digest = md5_hex(body)
            our_etag = f'"{digest}-gzip"' if compress else f'"{digest}"'
            # The digest names the content: either representation's tag matches.
            current = (f'"{digest}"', f'"{digest}-gzip"')
        # Decided before any compression work.
        if _conditional_match(environ, current, app.last_modified):
            status, out = _not_modified(settings, environ, app, app_etag, our_etag, eligible)
            return status, out, b""

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if compress:
        body = gzip_compress(body, settings.gzip_level)
        out.append(("Content-Encoding", "gzip"))
    out.append(("Content-Length", str(len(body))))
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, environ, app, out, eligible)
    return status, out, body


def respond_stream(
    settings: Settings, environ: Environ, status: str, headers: List[Header], may_compress: bool
) -> Tuple[str, List[Header], int]:
    """Headers for a streamed body and what to do with it (a ``STREAM_*``).

    ``may_compress`` is false for bodies that must pass untouched
    (``wsgi.file_wrapper``).  A stream gets no ETag of ours, but the app's
    ``ETag`` / ``Last-Modified`` are honoured with a ``304``.
    """
    code = _status_code(status)
    if code == 0:
        return status, headers, STREAM_PASS
    app = _AppHeaders(headers)
    if code < 200 or code == 204 or code == 304:
        out = list(app.kept)
        _finish_headers(settings, environ, app, out, False)
        return status, out, STREAM_EMPTY

    eligible = (
        may_compress
        and settings.gzip
        and code != 206
        and not app.encoded
        and is_compressible(app.content_type, settings.gzip_types)
        and not _cache_control_has(app.cache_control, "no-transform")
    )
    compress = eligible and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))  # type: ignore[arg-type]
    app_etag = _weaken(app.etag) if compress and app.etag is not None else app.etag
    if (
        settings.etag
        and code == 200
        and (app.etag is not None or app.last_modified is not None)
        and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
    ):
        current = (_opaque(app.etag),) if app.etag is not None else ()
        if _conditional_match(environ, current, app.last_modified):
            status, out = _not_modified(settings, environ, app, app_etag, None, eligible)
            return status, out, STREAM_EMPTY

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if compress:
        out.append(("Content-Encoding", "gzip"))
    elif app.content_length is not None:
        out.append(("Content-Length", app.content_length))
    _finish_headers(settings, environ, app, out, eligible)
    return status, out, STREAM_GZIP if compress else STREAM_PASS


# --- the WSGI entry -------------------------------------------------------------------
# ResponseMiddleware.__call__ is the chosen core's handle(): the per-request
# dispatch (preflight, the app call, the common one-chunk buffered response)
# runs in the core, so that the compiled twin keeps it in C; every other body
# goes to the shared plumbing in middleware.py (mw._finish).


def _not_bytes(chunk: object) -> TypeError:
    """The error for a body chunk or write() that is not bytes (both twins)."""
    return TypeError(
        f"the WSGI application yielded a {type(chunk).__name__}, not bytes "
        "(PEP 3333: a response body is made of byte strings)"
    )


class Capture:
    """The ``start_response`` handed to the app: it records, the middleware sends later.

    Parity: ``_core_c.Capture``.
    """

    __slots__ = ("status", "headers", "exc_info", "written", "sent", "_server")

    def __init__(self, server: Callable[..., object]) -> None:
        self.status: Optional[str] = None
        self.headers: Optional[List[Header]] = None  # set with status
        self.exc_info: object = None
        self.written: List[bytes] = []
        self.sent = False
        self._server = server

    def __call__(self, status: str, headers: List[Header], exc_info: object = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.sent:
                # Our headers (gzip or not) are committed to the server, even if
                # it has not written them yet: they cannot change now, so re-raise
                # as PEP 3333 says a server must once headers are sent.
                try:
                    raise exc_info[1].with_traceback(exc_info[2])  # type: ignore[index]
                finally:
                    exc_info = None
            try:
                self.status, self.headers, self.exc_info = status, headers, exc_info
            finally:
                exc_info = None  # no traceback cycle
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
        else:
            self.status, self.headers = status, headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()``: its bytes come first in the body."""
        if type(data) is not bytes:
            raise _not_bytes(data)
        self.written.append(data)

    def send(self, status: str, headers: List[Header]) -> None:
        """Hand the final status and headers to the server's ``start_response``."""
        self.sent = True
        if self.exc_info:
            self._server(status, headers, self.exc_info)
        else:
            self._server(status, headers)


def handle(mw: "Any", environ: Environ, start_response: Callable[..., object]) -> Iterable[bytes]:
    """One WSGI call through the middleware ``mw`` (its ``__call__``)."""
    version, settings = mw._state
    if mw._config.version != version:
        settings = mw._rebuild()
    if not settings.active:
        return mw.app(environ, start_response)  # type: ignore[no-any-return]
    method = environ.get("REQUEST_METHOD")
    if (
        method == "OPTIONS"
        and settings.cors
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        and "HTTP_ORIGIN" in environ
    ):
        start_response("204 No Content", preflight(settings, environ))
        return ()  # no body; a shared empty tuple costs no allocation
    app_environ = environ
    if method == "HEAD":
        # Run the app as for GET, so that HEAD gets exactly GET's headers
        # (Content-Length, ETag, Content-Encoding); the body is dropped.
        app_environ = environ.copy()
        app_environ["REQUEST_METHOD"] = "GET"
    capture = Capture(start_response)
    result = mw.app(app_environ, capture)
    return mw._finish(settings, environ, method == "HEAD", capture, result)  # type: ignore[no-any-return]


class MiddlewareBase:
    """``ResponseMiddleware``'s base class with the pure core: its ``__call__``
    is :func:`handle` (parity: ``_core_c.MiddlewareBase``, whose ``__call__``
    reads the same three attributes from C fields)."""

    __slots__ = ()

    __call__ = handle
