"""What both cores and both interfaces share: constants, header helpers, errors.

Everything here is written once.  The cores (``_core_py`` and its compiled
twin ``_core_c``) import these public names; the compiled twin has fast paths
for the common ASCII cases and falls back to these functions for the rest, so
the two cannot disagree on a rare input.  Nothing here knows about WSGI.
"""

from __future__ import annotations

import operator
from typing import List, Optional, Tuple

__all__ = [
    "Header",
    "Request",
    "RawHeader",
    "RAW_REQUEST_NAMES",
    "STREAM_PASS",
    "STREAM_COMPRESS",
    "STREAM_EMPTY",
    "CODINGS",
    "COMPRESSIBLE_TYPES",
    "NOT_IN_304",
    "TCHARS",
    "OWS",
    "STAR",
    "request_fields",
    "bad_header",
    "not_bytes",
    "check_level",
    "header_pair",
    "status_code",
    "cache_control_has",
    "merge_vary",
    "normalize_etag",
]

Header = Tuple[str, str]

#: What the cores need to know of a request, as a plain tuple (building a named
#: tuple costs more than the rest of a small request's plumbing):
#: ``(method, origin, accept_encoding, if_none_match, if_modified_since)``, each
#: the header's value as the server gave it (a ``str``) or ``None`` when absent.
#: ``method`` is the client's, ``HEAD`` included.
Request = Tuple[Optional[str], Optional[str], Optional[str], Optional[str], Optional[str]]

#: A header as ASGI (and HTTP/2 libraries) carry it: ``(name, value)`` byte strings.
RawHeader = Tuple[bytes, bytes]

#: The request headers the cores read, by their lower-case byte names, in the
#: order of the tuple ``raw_request_fields()`` returns: the four of
#: :data:`Request` (less the method), then the two a CORS preflight adds.
RAW_REQUEST_NAMES = (
    b"origin",
    b"accept-encoding",
    b"if-none-match",
    b"if-modified-since",
    b"access-control-request-method",
    b"access-control-request-private-network",
)

# What respond_stream() tells the plumbing to do with a streamed body.
STREAM_PASS = 0  # send the app's chunks as they are
STREAM_COMPRESS = 1  # compress each chunk through the coding's stream compressor
STREAM_EMPTY = 2  # send no body (304, 204, 1xx): close the app's body unread

#: The content codings the middleware can send (RFC 9110 8.4.1), in the default
#: order of preference of ``COMPRESS_CODINGS``.  A compressed representation's
#: ETag is the body's digest with ``-<coding>`` inside the quotes.
CODINGS = ("zstd", "br", "gzip")

#: Media types compressed beside ``text/*`` (less ``text/event-stream``), the
#: ``+json`` / ``+xml`` suffixes (RFC 6839) and ``GZIP_TYPES``.
COMPRESSIBLE_TYPES = frozenset(
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

#: RFC 9110 sections 8.6 and 15.4.5: the representation metadata a 304 drops.
NOT_IN_304 = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-range",
        "content-md5",
    }
)

#: RFC 9110 section 5.6.2 ``tchar``.
TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Optional whitespace (RFC 9110 section 5.6.3).
OWS = " \t"
#: ``parse_if_none_match`` result for ``If-None-Match: *``.
STAR = "*"


def request_fields(request: Request) -> Request:
    """``request``'s five fields, unpacked as the pure core unpacks them (so a
    tuple of another length fails with Python's own message in both twins)."""
    method, origin, accept_encoding, if_none_match, if_modified_since = request
    return method, origin, accept_encoding, if_none_match, if_modified_since


# --- errors -----------------------------------------------------------------------------


def bad_header(header: object) -> TypeError:
    """PEP 3333: a header is a (name, value) pair of ``str``."""
    return TypeError(f"response header {header!r} is not a (name, value) pair of str (PEP 3333)")


def not_bytes(chunk: object) -> TypeError:
    """The error for a body chunk or ``write()`` argument that is not bytes."""
    return TypeError(
        f"the WSGI application yielded a {type(chunk).__name__}, not bytes "
        "(PEP 3333: a response body is made of byte strings)"
    )


def check_level(level: object) -> int:
    """A gzip level argument: an integer (``__index__``, so a float is refused
    on every Python) from 1 to 9; ``-1``, zlib's default, means 6.

    Level 0 is refused: stored blocks depend on output buffer sizes, so their
    bytes could differ between the twins.
    """
    value = operator.index(level)  # type: ignore[arg-type]
    if value == -1:
        return 6
    if 1 <= value <= 9:
        return value
    raise ValueError(f"invalid gzip compression level {value}: expected 1 to 9")


# --- response header helpers --------------------------------------------------------------


def header_pair(header: object) -> Header:
    """``header`` as (name, value), or the PEP 3333 TypeError."""
    if not isinstance(header, (tuple, list)) or len(header) != 2:
        raise bad_header(header)
    name, value = header
    if not isinstance(name, str) or not isinstance(value, str):
        raise bad_header(header)
    return name, value


def status_code(status: object) -> int:
    """The status line's code, 0 when the line is not one we can reason about."""
    if type(status) is not str:
        raise TypeError(f"status must be a str such as '200 OK' (PEP 3333), got {status!r}")
    code = status[:3]
    if len(status) < 3 or not code.isdigit() or not code.isascii() or (len(status) > 3 and status[3] != " "):
        return 0
    return int(code)


def cache_control_has(values: List[str], directive: str) -> bool:
    """Whether one of the ``Cache-Control`` values lists ``directive`` (lower-case)."""
    for value in values:
        for item in value.split(","):
            if item.partition("=")[0].strip(OWS).lower() == directive:
                return True
    return False


def merge_vary(values: List[str], tokens: List[str]) -> Optional[str]:
    """One ``Vary`` value: the app's tokens then ours, each once (case-insensitive).

    ``None`` when the app's ``Vary`` holds ``*`` (then it is left alone).
    """
    seen = set()
    merged = []
    for value in values:
        for token in value.split(","):
            token = token.strip(OWS)
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


def normalize_etag(value: str) -> str:
    """The app's ``ETag`` as an RFC 9110 entity-tag.

    Some apps (Asok's static files among them) send a bare ``abc123``; it is
    quoted, so that the tag we send is one a client can send back and match.
    A value beyond repair is left as it is (and simply never matches).
    """
    tag = value.strip(OWS)
    opaque = tag[2:] if tag.startswith("W/") else tag
    if len(opaque) >= 2 and opaque[0] == '"' and opaque[-1] == '"':
        return tag
    if tag and '"' not in tag and tag.isascii() and tag.isprintable() and " " not in tag:
        return f'"{tag}"'
    return value
