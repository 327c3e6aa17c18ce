"""Fuzz target: the compiled core against the pure one, on arbitrary input.

Every input (a byte string) is decoded into one case by :class:`Input`: which
entry point, a configuration (``COMPRESS_CODINGS`` in any order and form,
``ZSTD_LEVEL``, ``BROTLI_LEVEL``, ``COMPRESS_RANDOM_PADDING`` among the rest),
a request (method and the header values the middleware reads, among them
``Accept-Encoding`` lists of zstd, br, gzip, x-gzip, identity and ``*`` with
right and wrong q-values), an app response (status line, header list, body
and how the body is made) and a server that may stop reading early.  The case then
runs through ``asok_fast._core_py`` and ``asok_fast._core_c`` (loaded by
``asok_fast._core.load_compiled``; refused while ``ASOK_FAST_NO_EXTENSIONS`` is
set), called directly with the core's plain data (the request tuple of
``asok_fast._shared.Request``, a status line, a header list, a body) or through
``ResponseMiddleware(app, config, _core_module=...)``, and :func:`check` fails
(raises :class:`Finding`) when

* the two disagree on anything a server would see: the exact status, header
  list (order and types), body bytes, chunk sequence, exception (type and
  message), where it surfaced and the app iterable's ``close()`` calls.  With
  ``COMPRESS_RANDOM_PADDING`` on the bytes are random, so there the bodies
  are compared decoded, ``Content-Length`` masked, and everything else
  exactly (also against the same response with the padding off: the padding
  changes no ETag, no coding, no header);
* either raises an exception SPEC does not allow: only the app's own errors
  (:class:`AppError`), ``TypeError`` for a body chunk that is not ``bytes`` or
  a header/status that is not ``str`` (PEP 3333), and ``ValueError`` /
  ``TypeError`` naming the key for a bad configuration value;
* a response breaks a property SPEC promises whatever the input: no CR or LF
  in a header value the middleware wrote, ``Access-Control-Allow-Origin``
  only for an allowed origin (never ``*`` with credentials), ``Vary: Origin``
  whenever CORS depends on the origin, ``close()`` exactly once, the app's
  header list and the environ left untouched; and for the codings: the coding
  sent is the one :func:`reference_negotiate` (RFC 9110 12.5.3, written here
  apart from the cores) picks; ``negotiate`` equals it for every order of the
  offered codings; compressed bodies decode to the app's bytes with the
  libraries' own decoders (zstd within an 8 MiB window, RFC 9659); unpadded
  ``compress`` output equals the library called directly at the level; and
  each piece of a compressed stream decodes, as it arrives, to exactly the
  chunks sent so far.

Entry points exercised: the helpers (``negotiate``, ``parse_if_none_match``,
``is_compressible``, ``origin_allowed``, ``md5_hex``, ``gzip_compress``,
``compress`` in each configured coding), ``respond``, ``respond_stream``
(with ``open_stream`` and ``GzipStream`` over the chunks) and
``buffer_length``, ``preflight``, and whole ``ResponseMiddleware`` calls.

Run it with atheris (coverage guided; see ``fuzz/run.sh``)::

    python fuzz/fuzz_core.py fuzz/corpus -max_total_time=600

or without atheris (what CI does, see ``tests/test_fuzz_regressions.py``)::

    python fuzz/fuzz_core.py --replay fuzz/corpus        # every seed once
    python fuzz/fuzz_core.py --random 2000 --seed 1      # random structured inputs
    python fuzz/fuzz_core.py --make-corpus fuzz/corpus   # (re)write the seeds

(The ``codings-*`` seeds were picked from random inputs, one for each entry
point, coding and padding setting, and app body kind, so that a replay
reaches every coding.)

The decoding never fails: any byte string is a valid case (missing bytes read
as zeros), so libFuzzer's mutations all reach the cores.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import zlib
import random
import re
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# Set by load(): the two cores and what the checks need from the package.
py: Any = None
cc: Any = None
ResponseMiddleware: Any = None
ASGIMiddleware: Any = None
build_settings: Any = None
initial_values: Any = None
KEYS: frozenset = frozenset()
CORS_ANY = 1
CORS_LIST = 2
STREAM_COMPRESS = 1
CODINGS: Tuple[str, ...] = ("zstd", "br", "gzip")
_zstd: Any = None
_brotli: Any = None


def load() -> None:
    """Import the package (under atheris' instrumentation when fuzzing).

    ImportError when the compiled core cannot be loaded, or must not be
    (``ASOK_FAST_NO_EXTENSIONS`` set): there is then nothing to compare.
    """
    global py, cc, ResponseMiddleware, build_settings, initial_values, KEYS, CORS_ANY, CORS_LIST, STREAM_COMPRESS
    global CODINGS, _zstd, _brotli, ASGIMiddleware
    if py is not None:
        return
    import brotli

    try:  # Python 3.14
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]
    from asok_fast import _config, _core, _core_py, _shared
    from asok_fast.asgi import ASGIMiddleware as _AM
    from asok_fast.middleware import ResponseMiddleware as _RM

    cc, why = _core.find_compiled()
    if cc is None:
        raise ImportError(f"the fuzz target compares the compiled core with the pure one ({why})")
    py = _core_py
    STREAM_COMPRESS = _shared.STREAM_COMPRESS
    CODINGS = _shared.CODINGS
    _zstd, _brotli = zstd, brotli
    ResponseMiddleware = _RM
    ASGIMiddleware = _AM
    build_settings = _config.build_settings
    initial_values = _config.initial_values
    KEYS = _config.KEYS
    CORS_ANY = _config.CORS_ANY
    CORS_LIST = _config.CORS_LIST


class Finding(AssertionError):
    """A divergence between the twins, an exception SPEC does not allow, or a
    broken property: what the fuzzer reports as a crash."""


# Findings already reported and not fixed yet, skipped so that a campaign looks
# for new ones: ASOK_FUZZ_KNOWN=star-echo,header-shape (comma-separated names).
KNOWN = frozenset(filter(None, os.environ.get("ASOK_FUZZ_KNOWN", "").split(",")))


class Known(Exception):
    """A finding listed in ``ASOK_FUZZ_KNOWN``: the input is skipped, not reported."""


def finding(name: str, message: str) -> BaseException:
    """The exception for finding ``name``: :class:`Known` when it is listed in
    ``ASOK_FUZZ_KNOWN`` (already reported, so a campaign goes on looking for
    new ones), else :class:`Finding`."""
    if name in KNOWN:
        return Known(name)
    return Finding(f"[{name}] {message}")


class AppError(Exception):
    """What the fuzzed apps raise (the app's own error: allowed to propagate)."""


# --- decoding bytes into a case ------------------------------------------------------

ORIGINS = [
    "https://a.example",
    "https://b.example:8443",
    "http://localhost:3000",
    "null",
]
# Look-alikes of the listed origins, and other shapes an attacker may send.
ORIGIN_PIECES = ORIGINS + [
    "https://a.example.", "https://a.example/", "https://a.example/path", "http://a.example",
    "https://a.example:443", "https://a.example:444", "HTTPS://A.EXAMPLE", "https://a.examplex",
    "https://xa.example", "https://a.example.evil", "https://evil.a.example", "https://a\u0435xample",
    "https://a.example\r\nX: y", "https://a.example, https://evil", " https://a.example", "*", "",
    "https://a.example%00", "https://a.example\x00", "https://sub.regex.example", "https://a.regex.example.evil",
    "null ", "Null", "file://", "https://[::1]:8080", "http://127.0.0.1:3000",
]
AE_PIECES = [
    "gzip", "x-gzip", "GZIP", "X-Gzip", "*", "identity", "br", "deflate", "zstd", ";q=", ";Q=", "q=", "0", "1",
    "0.", "1.", "0.5", "0.000", "0.001", "1.000", "1.0001", "2", "-1", ",", ", ", " ", "\t", ";", "=", "gzip;q=0",
    "*;q=0", "gzip;level=1", "\x7f", "\u212a", "\xe9",
    "zstd", "ZSTD", "Br", "x-gzip;q=0.5", "identity;q=0", "identity;q=1", "zstd;q=0", "br;q=0.999", "*;q=0.1",
    "zstd;q=1.0", "br;Q=0.5", " ; q=0.8", ";q=1.001", ";q=0.0001", ";q=.5",
]
# Elements of a structured Accept-Encoding (codings, q-values right and wrong).
AE_CODINGS = [
    "gzip", "x-gzip", "GZIP", "X-Gzip", "br", "BR", "zstd", "ZStd", "identity", "IDENTITY", "*", "deflate",
    "compress", "gzipx", "z std", "", "zstd", "br", "gzip", "*",
]
AE_QS = [
    "", "", ";q=1", ";q=0", ";q=0.5", ";Q=0.500", ";q=1.000", ";q=0.001", ";q=0.999", " ; q=0.8", ";q=0.",
    ";q=1.", ";q=1.001", ";q=2", ";q= 0.5", ";q=0.5;x=1", ";level=1", ";q=-1", ";q=0.0001", ";q=.5", ";",
    ";q=0.5 ", "\t;\tq=0.25",
]
# COMPRESS_CODINGS: every order of every non-empty subset, and wrong values.
CODING_ORDERS = [
    order
    for n in (1, 2, 3)
    for order in itertools.permutations(("zstd", "br", "gzip"), n)
]
WILD_CODINGS: List[Any] = [
    ["deflate"], [], "", ["gzip", 1], None, 5, "gzip,,br", ["identity"], ["*"], "zstd br", [b"gzip"], ("x-gzip",),
]
ZSTD_LEVELS = [3, 1, 2, 6, 3, 1, 12, 19]
BROTLI_LEVELS = [4, 0, 1, 5, 4, 0, 9, 11]
WILD_LEVELS: List[Any] = [0, 20, 22, -1, 12, True, "3", 3.0, None]
INM_PIECES = [
    '"', "W/", "w/", ",", " ", "\t", "*", '"abc"', "-gzip", "@TAG", "@TAGGZ", "@DIGEST", '"app-v1"', "\x7f", "\x01", "\xe9", '""',
    "-br", "-zstd", "@TAGBR", "@TAGZS",
]
IMS_PIECES = [
    "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
    "Thu, 01 Jan 2099 00:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 31 Feb 2000 25:61:61 GMT", "GMT", ",", " ",
]
CT_PIECES = [
    "text/html", "text/plain", "application/json", "application/problem+json", "image/svg+xml", "image/png",
    "text/event-stream", "application/octet-stream", "application/x-ndjson", "a/b+xml", "+json", "+xml",
    ";", "; charset=utf-8", "/", " ", "\t", "TEXT/", "Application/", "x", "\xe9", "\u212a",
]
METHODS = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "get", "", "GET ", "OPTIONS\x00"]
STATUSES = [
    "200 OK", "200 OK", "200 OK", "201 Created", "204 No Content", "206 Partial Content", "304 Not Modified",
    "100 Continue", "404 Not Found", "500 Internal Server Error", "200", "2000 OK", "20 OK", "abc", "",
    "\u0662\u0660\u0660 OK", "200\tOK", "599 X", "199 Y",
]
HEADER_NAMES = [
    "Content-Type", "Content-Length", "Content-Encoding", "Vary", "ETag", "Cache-Control", "Last-Modified",
    "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Content-Language", "Content-Range",
    "Content-MD5", "Set-Cookie", "X-Other", "content-type", "VARY", "etag", "\u212aey", "Access-Control-\xe9",
    "Content-Lengt\u0127",
]
HEADER_VALUE_PIECES = {
    "Content-Type": CT_PIECES,
    "Content-Length": ["0", "1", "10", "100", "@LEN", " ", "-1", "1e3", "\u0661", "007", "99999999999999999999"],
    "Content-Encoding": ["gzip", "identity", " Identity ", "br", "", ",", "zstd", "ZSTD"],
    "Vary": ["Origin", "Accept-Encoding", "*", "Cookie", "origin", ",", " ", "accept-encoding", "\xe9", "\u212a"],
    "ETag": ['"app-v1"', 'W/"app-v1"', "app-v1", '"', "W/", " ", "\xe9", '"@DIGEST"'],
    "Cache-Control": ["no-transform", "no-store", "max-age=0", "NO-TRANSFORM", ",", "=", " ", "private"],
    "Last-Modified": IMS_PIECES,
}
GENERIC_PIECES = ["a", "b", " ", ",", ";", "=", '"', "\r", "\n", "\r\n", "\x00", "\x7f", "\xe9", "\u212a", "\udcff"]
CONFIG_TEXT_PIECES = ["GET", "POST", ", ", "X-Header", "Content-Type", "\r\n", "\n", "\r", "\x00", "\t", " ", "\xe9", ",", "*"]
REGEXES = [None, r"https://[a-z]+\.regex\.example", r"https?://localhost(:\d+)?", r".*", r"https://.*\.example", r"(", r"null"]
LEVELS = [1, 6, 9, 6, 1, 9, 0, 10, -1]
MIN_SIZES = [0, 1, 20, 500, 0, 1 << 40]
BUFFER_MAXES = [4 * 1024 * 1024, 0, 10, 100, 1 << 20]
# COMPRESS_CACHE_SIZE by the case's byte: 0 keeps the default (8 MiB), then off,
# 1 MiB, and 4 KiB (most compressed bodies do not fit: refused, or evicting).
CACHE_SIZES = [None, 0, 1 << 20, 4096]
BODY_PIECES = [b"a" * 64, b"<p>hello</p>", b"\x00" * 32, b"", b"\x1f\x8b", b"{\"k\": [1, 2, 3]}", bytes(range(256))]


class Input:
    """Reads decisions from a byte string; past its end every read is 0."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos < len(self.data):
            value = self.data[self.pos]
            self.pos += 1
            return value
        return 0

    def below(self, n: int) -> int:
        return self.byte() % n if n > 1 else 0

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.below(len(items))]

    def raw(self, limit: int) -> bytes:
        n = min(self.byte(), limit)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def raw_text(self) -> str:
        """A short run of arbitrary characters, decoded one of several ways."""
        mode = self.below(4)
        raw = self.raw(24)
        if mode == 0:  # PEP 3333: what a server hands over (latin-1)
            return raw.decode("latin-1")
        if mode == 1:  # ASCII only
            return bytes(b & 0x7F for b in raw).decode("ascii")
        if mode == 2:
            return raw.decode("utf-8", "surrogateescape")
        # code points from pairs of bytes: surrogates, Kelvin sign, digits of other scripts...
        return "".join(chr((raw[i] << 8 | raw[i + 1]) if i + 1 < len(raw) else raw[i]) for i in range(0, len(raw), 2))

    def text(self, pieces: Sequence[str], most: int = 6) -> str:
        """A value built from 0..most pieces: dictionary words or raw runs."""
        parts = []
        for _ in range(self.below(most + 1)):
            if self.below(6):
                parts.append(self.pick(pieces))
            else:
                parts.append(self.raw_text())
        return "".join(parts)

    def body(self) -> bytes:
        parts = []
        for _ in range(self.below(5)):
            choice = self.below(4)
            if choice == 0:
                parts.append(self.raw(255))
            else:
                piece = self.pick(BODY_PIECES)
                parts.append(piece * (1 + self.below(4) * self.byte()))  # up to ~200 KB
        return b"".join(parts)


def _maybe(inp: Input, value: Callable[[], Any], absent: int = 3) -> Any:
    """``value()`` or None (absent) one time in ``absent``."""
    return None if inp.below(absent) == 0 else value()


def decode_config(inp: Input) -> Dict[str, Any]:
    """A configuration: valid seven times in eight, anything at all otherwise
    (then construction must raise ValueError / TypeError naming the key, in
    both twins alike, or the values turn out valid after all)."""
    wild = inp.below(8) == 7  # a read past the end is 0: keep that the common case
    config: Dict[str, Any] = {}
    shape = inp.below(6)
    if shape == 0:
        config["CORS_ORIGINS"] = None
    elif shape == 1:
        config["CORS_ORIGINS"] = "*"
    elif shape in (2, 3):
        config["CORS_ORIGINS"] = [inp.pick(ORIGINS) for _ in range(1 + inp.below(3))]
    elif shape == 4:
        config["CORS_ORIGINS"] = ", ".join(inp.pick(ORIGINS) for _ in range(1 + inp.below(3)))
    else:
        config["CORS_ORIGINS"] = [inp.pick(ORIGINS), "HTTPS://A.Example:443/", "http://localhost:3000/"][: 1 + inp.below(3)]
    if wild and inp.flag():
        config["CORS_ORIGINS"] = [inp.text(ORIGIN_PIECES, 3) for _ in range(1 + inp.below(3))]
    config["CORS_ORIGIN_REGEX"] = inp.pick(REGEXES[: len(REGEXES) if wild else -2]) if inp.below(3) == 0 else None
    # "*" with credentials is refused (ValueError): only in wild configs.
    config["CORS_ALLOW_CREDENTIALS"] = inp.below(3) == 0 and (wild or config["CORS_ORIGINS"] != "*")
    config["CORS_ALLOW_PRIVATE_NETWORK"] = inp.flag()
    text_pieces = CONFIG_TEXT_PIECES if wild else [p for p in CONFIG_TEXT_PIECES if p not in ("\r\n", "\n", "\r", "\x00", "\xe9")]
    if inp.below(6) == 0:
        config["CORS_ALLOW_METHODS"] = inp.text(text_pieces, 4)
    if inp.below(6) == 0:
        config["CORS_ALLOW_HEADERS"] = [inp.text(text_pieces, 3) for _ in range(inp.below(3))]
    if inp.below(4) == 0:
        config["CORS_EXPOSE_HEADERS"] = inp.text(text_pieces, 3)
    config["CORS_MAX_AGE"] = inp.pick([86400, None, 0, 600])
    config["GZIP"] = inp.below(4) != 0
    config["GZIP_MIN_SIZE"] = inp.pick(MIN_SIZES)
    config["GZIP_LEVEL"] = inp.pick(LEVELS if wild else LEVELS[:6])
    config["ETAG"] = inp.below(5) != 0
    if inp.below(5) == 0:
        if wild:
            config["GZIP_TYPES"] = [inp.text(["image/png", "application/octet-stream", "text/x", "/", "a", "\r\n", " "], 2)]
        else:
            config["GZIP_TYPES"] = [inp.pick(["image/png", "application/octet-stream", "Image/PNG ", "text/event-stream"])]
    config["BUFFER_MAX_SIZE"] = inp.pick(BUFFER_MAXES)
    return config


def accept_encoding(inp: Input) -> str:
    """A structured ``Accept-Encoding``: elements of a coding and a (maybe broken) q."""
    elements = [inp.pick(AE_CODINGS) + inp.pick(AE_QS) for _ in range(inp.below(7))]
    return inp.pick([", ", ",", " , ", ",\t", ", ,"]).join(elements)


def decode_codings(inp: Input, config: Dict[str, Any]) -> None:
    """The compression keys: ``COMPRESS_CODINGS`` orders, zstd and brotli levels,
    padding.  Read after the rest of a case, so an input that ends earlier (every
    seed written before these keys existed) keeps the defaults."""
    wild = inp.below(8) == 7
    if inp.below(3):
        order = inp.pick(CODING_ORDERS)
        form = inp.below(5)
        if form == 0:
            config["COMPRESS_CODINGS"] = order
        elif form == 1:
            config["COMPRESS_CODINGS"] = list(order)
        elif form == 2:
            config["COMPRESS_CODINGS"] = ", ".join(order)
        elif form == 3:  # case and whitespace do not matter; repeats count once
            config["COMPRESS_CODINGS"] = [f" {c.upper()}\t" for c in order] + list(order[:1])
        else:
            config["COMPRESS_CODINGS"] = ",".join(order) + ","
    if wild and inp.flag():
        config["COMPRESS_CODINGS"] = inp.pick(WILD_CODINGS)
    if inp.below(2):
        config["ZSTD_LEVEL"] = inp.pick(WILD_LEVELS) if wild and inp.flag() else inp.pick(ZSTD_LEVELS)
    if inp.below(2):
        config["BROTLI_LEVEL"] = inp.pick(WILD_LEVELS) if wild and inp.flag() else inp.pick(BROTLI_LEVELS)
    if inp.below(4) == 1:
        config["COMPRESS_RANDOM_PADDING"] = True if not wild else inp.pick([True, 1, "yes", None])


def decode_environ(inp: Input, tags: Dict[str, str]) -> Dict[str, Any]:
    env: Dict[str, Any] = {
        "REQUEST_METHOD": inp.pick(METHODS),
        "SCRIPT_NAME": "",
        "PATH_INFO": "/fuzz",
        "QUERY_STRING": "",
        "SERVER_NAME": "fuzz",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    fields = [
        ("HTTP_ACCEPT_ENCODING", AE_PIECES),
        ("HTTP_IF_NONE_MATCH", INM_PIECES),
        ("HTTP_IF_MODIFIED_SINCE", IMS_PIECES),
        ("HTTP_ORIGIN", ORIGIN_PIECES),
        ("HTTP_ACCESS_CONTROL_REQUEST_METHOD", ["PUT", "GET", ""]),
        ("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK", ["true", " TRUE\t", "false", "true\r\n"]),
    ]
    for key, pieces in fields:
        if inp.below(3) == 0:
            continue
        if key == "HTTP_ORIGIN" and inp.below(2):
            value = inp.pick(ORIGIN_PIECES)  # often exactly a known (look-alike) origin
        elif key == "HTTP_ACCEPT_ENCODING" and inp.below(2):
            value = accept_encoding(inp)  # a list of codings with q-values
        else:
            value = inp.text(pieces)
        env[key] = _fill(value, tags)
    return env


def _fill(value: str, tags: Dict[str, str]) -> str:
    for token, tag in tags.items():
        value = value.replace(token, tag)
    return value


def decode_headers(inp: Input, tags: Dict[str, str]) -> List[Any]:
    headers: List[Any] = []
    if inp.below(5):
        headers.append(("Content-Type", inp.pick(["text/html; charset=utf-8", "application/json", "image/png", "text/event-stream"]) if inp.flag() else inp.text(CT_PIECES, 4)))
    for _ in range(inp.below(5)):
        name = inp.pick(HEADER_NAMES) if inp.below(6) else inp.raw_text()
        value = _fill(inp.text(HEADER_VALUE_PIECES.get(name, GENERIC_PIECES), 4), tags)
        if inp.below(60) == 0:  # PEP 3333 broken by the app: TypeError allowed
            header: Any = (name, value.encode("utf-8", "surrogatepass")) if inp.flag() else (name,)
        else:
            header = (name, value)
        headers.append(header)
    return headers


KINDS = [
    "list", "list", "tuple", "chunks", "gen", "gen", "gen-cl", "gen-lazy", "gen-lazy-empty", "write", "write-gen",
    "closing-list", "file",
]
FAULT_KINDS = [
    "err-before-start", "err-after-start", "err-gen-mid", "err-gen-cl-mid",
    "err-close-raises", "err-yield-str", "err-list-str", "err-exc-info", "err-exc-info-late",
]


class Case:
    """One decoded input."""

    def __init__(self, data: bytes) -> None:
        inp = Input(data)
        self.mode = inp.below(8)  # 0 parsers, 1 respond, 2 respond_stream, 3 preflight, 4-7 middleware
        self.config = decode_config(inp)
        self.body = inp.body()
        digest = hashlib.md5(self.body).hexdigest()
        self.tags = {"@TAGGZ": f'"{digest}-gzip"', "@TAGBR": f'"{digest}-br"', "@TAGZS": f'W/"{digest}-zstd"', "@TAG": f'"{digest}"', "@DIGEST": digest, "@LEN": str(len(self.body))}
        self.environ = decode_environ(inp, self.tags)
        self.status: Any = inp.pick(STATUSES) if inp.below(8) != 7 else (inp.raw_text() if inp.flag() else b"200 OK")
        self.headers = decode_headers(inp, self.tags)
        self.kind = inp.pick(FAULT_KINDS if inp.below(4) == 3 else KINDS)
        self.cut = inp.below(7)  # chunks of the body
        self.limit: Optional[int] = None if inp.below(3) else inp.below(4)  # server stops reading
        self.may_compress = inp.below(5) != 0
        self.parser_value = inp.text(inp.pick([AE_PIECES, INM_PIECES, CT_PIECES, ORIGIN_PIECES]))
        self.parser_value = _fill(self.parser_value, self.tags)
        decode_codings(inp, self.config)
        # Read last, so that every older seed keeps its case (a read past the
        # end is 0): the cache size, how often the same middleware answers the
        # request (3 times: the second admits the body, the third is a hit),
        # and the ASGI translation's form (see ``asgi_app``).
        cache = inp.below(4)
        if cache:
            self.config["COMPRESS_CACHE_SIZE"] = CACHE_SIZES[cache]
        self.repeat = 3 if inp.below(2) == 0 else 1
        self.asgi_form = inp.byte()

    @property
    def request(self) -> Tuple[Any, ...]:
        """What the middleware hands the core for this environ (``_shared.Request``)."""
        get = self.environ.get
        return (get("REQUEST_METHOD"), get("HTTP_ORIGIN"), get("HTTP_ACCEPT_ENCODING"), get("HTTP_IF_NONE_MATCH"), get("HTTP_IF_MODIFIED_SINCE"))

    def describe(self) -> str:
        lines = [f"mode={self.mode} kind={self.kind} cut={self.cut} limit={self.limit} may_compress={self.may_compress} repeat={self.repeat} asgi_form={self.asgi_form}"]
        lines.append(f"config={self.config!r}")
        lines.append("environ=" + repr({k: v for k, v in self.environ.items() if k.startswith("HTTP_") or k == "REQUEST_METHOD"}))
        lines.append(f"status={self.status!r}")
        lines.append(f"headers={self.headers!r}")
        lines.append(f"body={_short(self.body)}")
        lines.append(f"parser_value={self.parser_value!r}")
        return "\n".join(lines)


def _short(value: bytes) -> str:
    if len(value) <= 80:
        return repr(value)
    return f"<{len(value)} bytes, md5 {hashlib.md5(value).hexdigest()}: {value[:40]!r}...>"


# --- canonical outcomes ----------------------------------------------------------------


def canon(value: Any) -> Any:
    """``value`` with exact types made visible (str subclass != str, tuple != list)."""
    kind = type(value)
    if kind in (str, bytes, bool, int) or value is None:
        return (kind.__name__, value)
    if kind in (tuple, list):
        return (kind.__name__, tuple(canon(item) for item in value))
    if kind in (frozenset, set):
        return (kind.__name__, tuple(sorted(map(repr, value))))
    return (kind.__qualname__, "<object>")


def exc_key(exc: BaseException) -> Tuple[str, str]:
    return type(exc).__qualname__, str(exc)


_ALLOWED_TYPEERROR = re.compile(
    r"the WSGI application yielded a .*, not bytes|response header .* is not a \(name, value\) pair of str|status must be a str"
)


def allowed(exc: BaseException) -> bool:
    """SPEC's list: the app's own errors; TypeError for non-bytes chunks and
    non-str status/headers from the app."""
    if isinstance(exc, AppError):
        return True
    return type(exc) is TypeError and _ALLOWED_TYPEERROR.match(str(exc)) is not None


def outcome(function: Callable[..., Any], *args: Any) -> Tuple[Any, ...]:
    """Call on private copies of dict/list arguments; also note whether they changed."""
    return call(function, *args)[0]


def call(function: Callable[..., Any], *args: Any) -> Tuple[Tuple[Any, ...], Any]:
    """(canonical outcome, the value returned or None)."""
    fresh = [dict(a) if type(a) is dict else list(a) if type(a) is list else a for a in args]
    before = [canon(list(a.items())) if type(a) is dict else canon(a) if type(a) is list else None for a in fresh]
    value = None
    try:
        value = function(*fresh)
        result: Tuple[Any, ...] = ("returned", canon(value))
    except Exception as exc:
        if not allowed(exc):
            raise Finding(f"{getattr(function, '__module__', '?')}.{function.__name__} raised {exc!r}") from exc
        result = ("raised", *exc_key(exc))
    after = [canon(list(a.items())) if type(a) is dict else canon(a) if type(a) is list else None for a in fresh]
    if before != after:
        raise Finding(f"{function.__name__} changed its arguments")
    return result, value


def same(label: str, python: Any, compiled: Any, case: Optional[Case] = None) -> None:
    if python != compiled:
        where = f"\n{case.describe()}" if case is not None else ""
        raise Finding(f"twins differ in {label}{where}\n  python:   {python!r:.3000}\n  compiled: {compiled!r:.3000}")


# --- the app and the server -----------------------------------------------------------------


class FileWrapper:
    """The fake server's ``wsgi.file_wrapper``."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        self.closes = 0

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        self.closes += 1


class AppIterable:
    """A non-list body: chunks one at a time, optional lazy start_response, a
    failure at a given index, close() counted."""

    def __init__(self, chunks: Sequence[Any], start: Optional[Callable[[], Any]] = None, fail_at: int = -1, close_raises: bool = False, late: Optional[Callable[[], Any]] = None) -> None:
        self.chunks = list(chunks)
        self.start = start
        self.fail_at = fail_at
        self.close_raises = close_raises
        self.late = late
        self.index = 0
        self.closes = 0

    def __iter__(self) -> "AppIterable":
        return self

    def __next__(self) -> Any:
        if self.start is not None:
            start, self.start = self.start, None
            start()
        if self.index == 1 and self.late is not None:
            late, self.late = self.late, None
            late()
        if self.index == self.fail_at:
            raise AppError(f"app failed at chunk {self.index}")
        if self.index >= len(self.chunks):
            raise StopIteration
        chunk = self.chunks[self.index]
        self.index += 1
        return chunk

    def close(self) -> None:
        self.closes += 1
        if self.close_raises:
            raise AppError("close() failed")


class ClosingList(list):
    closes = 0

    def close(self) -> None:
        self.closes += 1


def parts(body: bytes, cut: int) -> List[bytes]:
    """``body`` in chunks: whole, halves, an empty chunk in between, 1 KiB pieces..."""
    if cut == 0:
        return [body]
    if cut == 1:
        return [body[: len(body) // 2], body[len(body) // 2:]]
    if cut == 2:
        return [body[:3], b"", body[3:]]
    if cut == 3:
        return [body[i:i + 1024] for i in range(0, len(body), 1024)] or [b""]
    if cut == 4:
        return []
    if cut == 5:
        return [body, b""]
    return [body[i:i + 7] for i in range(0, min(len(body), 140), 7)] + [body[140:]]


def make_app(case: Case, made: List[Any]) -> Callable[..., Any]:
    """The WSGI app for ``case``; every iterable it returns is appended to ``made``."""
    body = case.body
    kind = case.kind

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = list(case.headers)
        chunks = parts(body, case.cut)

        def start() -> Any:
            return start_response(case.status, headers)

        def keep(result: Any) -> Any:
            made.append(result)
            return result

        if kind == "list":
            start()
            return [body]
        if kind == "tuple":
            start()
            return tuple(chunks)
        if kind == "chunks":
            start()
            return chunks
        if kind == "gen":
            start()
            return keep(AppIterable(chunks))
        if kind == "gen-cl":
            headers.append(("Content-Length", str(len(body))))
            start()
            return keep(AppIterable(chunks))
        if kind == "gen-lazy":
            return keep(AppIterable(chunks, start=start))
        if kind == "gen-lazy-empty":
            return keep(AppIterable([], start=start))
        if kind == "write":
            write = start()
            write(body[: len(body) // 2])
            return [body[len(body) // 2:]]
        if kind == "write-gen":
            write = start()
            write(body[: len(body) // 3])
            return keep(AppIterable([b"", body[len(body) // 3:]]))
        if kind == "closing-list":
            start()
            return keep(ClosingList(chunks))
        if kind == "file":
            start()
            return keep(environ["wsgi.file_wrapper"](io.BytesIO(body), 4096))
        if kind == "err-before-start":
            raise AppError("failed before start_response")
        if kind == "err-after-start":
            start()
            raise AppError("failed after start_response")
        if kind == "err-gen-mid":
            start()
            return keep(AppIterable(chunks, fail_at=1))
        if kind == "err-gen-cl-mid":
            headers.append(("Content-Length", str(len(body))))
            start()
            return keep(AppIterable(chunks, fail_at=1))
        if kind == "err-close-raises":
            start()
            return keep(AppIterable(chunks, close_raises=True))
        if kind == "err-yield-str":
            start()
            return keep(AppIterable([b"ok", "not bytes"]))
        if kind == "err-list-str":
            start()
            return [b"ok", "not bytes"]
        if kind == "err-exc-info":
            start()
            try:
                raise AppError("handled failure")
            except AppError:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"error page " * 80]
        if kind == "err-exc-info-late":
            start()

            def late() -> None:
                try:
                    raise AppError("failure after the headers went out")
                except AppError:
                    start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())

            return keep(AppIterable(chunks + [b"tail"], late=late))
        raise AssertionError(kind)

    return app


class Server:
    """The server side of one request: logs what a server would see."""

    def __init__(self) -> None:
        self.log: List[Any] = []
        self.started = False
        self.responses: List[Tuple[Any, Any]] = []

    def start_response(self, status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        self.log.append(("start_response", canon(status), canon(headers), exc_info is not None))
        self.responses.append((status, headers))
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        self.started = True
        return lambda data: self.log.append(("server-write", canon(data)))

    def fail(self, where: str, exc: BaseException) -> None:
        if not allowed(exc):
            frames = []
            tb = exc.__traceback__
            while tb is not None:
                frames.append(tb.tb_frame.f_code.co_name)
                tb = tb.tb_next
            name = "header-shape" if frames and frames[-1] == "buffer_length" else "exception"
            raise finding(name, f"the middleware raised {exc!r} ({where}) in {' > '.join(frames[-4:])}") from exc
        self.log.append(("raised", where, *exc_key(exc)))


def run_middleware(core: Any, case: Case) -> Tuple[List[Any], Server, List[Any], List[bytes]]:
    """One request through a fresh middleware bound to ``core``: call, pull up to
    ``case.limit`` chunks, close.  Returns the log, the server, the app's iterables
    and the chunks."""
    server = Server()
    made: List[Any] = []
    chunks: List[bytes] = []
    try:
        mw = ResponseMiddleware(make_app(case, made), case.config, _core_module=core)
    except (ValueError, TypeError) as exc:
        if not any(key in str(exc) for key in KEYS):
            raise Finding(f"a bad config raised {exc!r}, which names no key") from exc
        server.log.append(("raised", "construction", *exc_key(exc)))
        return server.log, server, made, chunks
    environ = dict(case.environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    snapshot = {k: v for k, v in environ.items() if isinstance(v, str)}
    try:
        result = mw(environ, server.start_response)
    except Exception as exc:
        server.fail("call", exc)
        result = None
    if {k: v for k, v in environ.items() if isinstance(v, str)} != snapshot:
        raise Finding("the middleware changed the environ")
    if result is not None:
        server.log.append(("returned", type(result).__name__ if type(result) in (list, tuple) else "iterable"))
        iterator = iter(result)
        taken = 0
        while case.limit is None or taken < case.limit:
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                server.fail("iteration", exc)
                break
            server.log.append(("chunk", canon(chunk)))
            chunks.append(chunk)
            taken += 1
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                server.fail("close", exc)
    server.log.append(("closes", [getattr(m, "closes", None) for m in made]))
    return server.log, server, made, chunks


# --- properties ---------------------------------------------------------------------------------

_CRLF = re.compile(r"[\r\n]")



def parsed_status(status: Any) -> bool:
    """Whether the middleware reads this status line (else it passes it untouched)."""
    code = status[:3] if type(status) is str else ""
    # "000" reads as code 0, which the cores take as "no status to reason about".
    return len(code) == 3 and code.isdigit() and code.isascii() and code != "000" and (len(status) == 3 or status[3] == " ")


def check_headers(case: Case, settings: Any, status: Any, out: Any, app_headers: Sequence[Any], where: str) -> None:
    """SPEC's security properties on one final header list."""
    if type(status) is not str or type(out) is not list:
        return
    app_crlf = any(type(h) is tuple and len(h) == 2 and isinstance(h[1], str) and _CRLF.search(h[1]) for h in app_headers)
    app_cors = any(type(h) is tuple and len(h) >= 1 and isinstance(h[0], str) and h[0].lower().startswith("access-control-") for h in app_headers)
    app_vary_star = any(
        type(h) is tuple and len(h) == 2 and isinstance(h[0], str) and h[0].lower() == "vary" and isinstance(h[1], str)
        and any(t.strip(" \t") == "*" for t in h[1].split(","))
        for h in app_headers
    )
    for header in out:
        if type(header) is not tuple or len(header) != 2:
            continue
        name, value = header
        if isinstance(value, str) and _CRLF.search(value) and not app_crlf:
            raise Finding(f"{where}: header {name!r} carries CR/LF: {value!r}\n{case.describe()}")
    out = [h for h in out if type(h) is tuple and len(h) == 2]
    if settings is None or not settings.active or not parsed_status(status):
        return  # a status the middleware does not reason about: headers pass untouched
    acao = [v for n, v in out if type(n) is str and n.lower() == "access-control-allow-origin"]
    creds = [v for n, v in out if type(n) is str and n.lower() == "access-control-allow-credentials"]
    if not app_cors:
        origin = case.environ.get("HTTP_ORIGIN")
        if settings.cors == 0 and acao:
            raise Finding(f"{where}: CORS off yet {acao!r}\n{case.describe()}")
        if len(acao) > 1:
            raise Finding(f"{where}: two Access-Control-Allow-Origin {acao!r}\n{case.describe()}")
        if acao and acao[0] == "*":
            if settings.cors != CORS_ANY or creds:
                name = "star-echo" if settings.cors == CORS_LIST and origin == "*" else "star"
                raise finding(name, f"{where}: '*' with cors={settings.cors} credentials={creds}\n{case.describe()}")
        elif acao:
            ok = acao[0] == origin and (origin in settings.origins or (settings.origin_regex is not None and settings.origin_regex.fullmatch(origin)))
            if not ok or settings.cors != CORS_LIST:
                raise Finding(f"{where}: origin {origin!r} got {acao!r}\n{case.describe()}")
            if not (origin.isascii() and origin.isprintable() and " " not in origin and "," not in origin):
                raise Finding(f"{where}: malformed origin {origin!r} echoed\n{case.describe()}")
        if settings.cors == CORS_LIST and not app_vary_star:
            vary = [v for n, v in out if type(n) is str and n.lower() == "vary"]
            tokens = [t.strip(" \t").lower() for v in vary for t in v.split(",")]
            if "origin" not in tokens:
                raise Finding(f"{where}: no Vary: Origin with a list/regex CORS config: {out!r}\n{case.describe()}")
    if not app_vary_star:
        vary = [v for n, v in out if type(n) is str and n.lower() == "vary"]
        if len(vary) > 1:
            raise Finding(f"{where}: {len(vary)} Vary lines {vary!r}\n{case.describe()}")


def _settings_for(config: Dict[str, Any]) -> Any:
    try:
        return build_settings(initial_values(None, config))
    except (ValueError, TypeError) as exc:
        if not any(key in str(exc) for key in KEYS):
            raise Finding(f"a bad config raised {exc!r}, which names no key") from exc
        return None


def _header_value(headers: List[Any], name: str) -> Optional[str]:
    for header in headers:
        if type(header) is tuple and len(header) == 2 and type(header[0]) is str and header[0].lower() == name:
            return header[1]
    return None


# --- the codings: an independent negotiation reference and the decoders ---------------------------

_AE_ELEMENT = re.compile(
    r"[ \t]*(?P<coding>[!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*"
    r"(?:;[ \t]*[qQ]=(?P<q>0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)[ \t]*)?"
)


def reference_negotiate(value: Any, codings: Sequence[str]) -> Optional[str]:
    """RFC 9110 12.5.3 as SPEC reads it, written apart from the cores: codings
    case-insensitive, ``x-gzip`` is gzip, a coding's weight its own q (the best
    one where it is listed twice), else that of ``*``, else 0; the best
    non-zero weight wins, ties to the order of ``codings``; none when
    ``identity`` is listed above it.  A malformed element counts as absent, a
    non-ASCII header as no header."""
    if type(value) is not str or not value.isascii():
        return None
    weights: Dict[str, int] = {}
    for element in value.split(","):
        match = _AE_ELEMENT.fullmatch(element)
        if match is None:
            continue
        name = match.group("coding").lower()
        name = "gzip" if name == "x-gzip" else name
        q = match.group("q")
        weight = 1000 if q is None else int(round(float(q) * 1000))
        weights[name] = max(weight, weights.get(name, -1))
    chosen, chosen_weight = None, 0
    for coding in codings:
        weight = weights.get(coding, weights.get("*", 0))
        if weight > chosen_weight:
            chosen, chosen_weight = coding, weight
    if chosen is None or weights.get("identity", -1) > chosen_weight:
        return None
    return chosen


class Decoder:
    """An incremental decoder of one coding: ``feed(piece)`` gives what the
    piece makes decodable (several zstd frames in a row, skippable ones
    included, as RFC 8878 3.1 allows)."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.inner = self._new()

    def _new(self) -> Any:
        if self.coding == "gzip":
            return zlib.decompressobj(31)
        if self.coding == "zstd":
            return zstd_decoder()
        return _brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        if self.coding == "br":
            # brotli 1.2 hands out about 32 KiB a call, input or not (and
            # can_accept_more_data() says True meanwhile): drain the rest.
            out = bytes(self.inner.process(data))
            while not self.inner.is_finished():
                more = bytes(self.inner.process(b""))
                if not more:
                    break
                out += more
            return out
        out = b""
        while True:
            out += self.inner.decompress(data)
            if not self.inner.eof:
                return out
            data = self.inner.unused_data
            if self.coding == "gzip" and data:
                raise ValueError("bytes after the gzip member")
            if not data:
                return out
            self.inner = self._new()


def zstd_decoder() -> Any:
    """A zstd decoder that refuses a window over 8 MiB (RFC 9659), as Chrome does."""
    return _zstd.ZstdDecompressor(options={_zstd.DecompressionParameter.window_log_max: 23})


def decode(coding: str, data: bytes) -> bytes:
    """A whole body in ``coding``, decoded by the reference library (zstd:
    every frame, a padded body's skippable one first, within an 8 MiB window)."""
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "zstd":
        out = b""
        while data:
            decoder = zstd_decoder()
            out += decoder.decompress(data)
            if not decoder.eof:
                raise ValueError("a truncated zstd frame")
            data = decoder.unused_data
        return out
    return bytes(_brotli.decompress(data))


def library_bytes(settings: Any, coding: str, data: bytes) -> bytes:
    """SPEC: the bytes of each coding, from the library called directly at the level."""
    if coding == "gzip":
        compressor = zlib.compressobj(settings.gzip_level, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()
    if coding == "zstd":
        return bytes(_zstd.ZstdCompressor(level=settings.zstd_level).compress(data, _zstd.ZstdCompressor.FLUSH_FRAME))
    return bytes(_brotli.compress(data, quality=settings.brotli_level))


def _known_coding(value: Any) -> Optional[str]:
    return value if type(value) is str and value in CODINGS else None


def unpadded(value: Any) -> Any:
    """A ``respond`` result with its padding made invisible: a body the
    middleware compressed is decoded, ``Content-Length`` (checked first) masked."""
    if type(value) is not tuple or len(value) != 3 or type(value[1]) is not list:
        return canon(value)
    status, out, body = value
    coding = _known_coding(_header_value(out, "content-encoding"))
    if coding is not None and type(body) is bytes and body:
        # (Content-Length is checked against the bytes by check_respond.)
        try:
            body = ("decoded", decode(coding, body))
        except Exception:
            pass  # the app's own encoded bytes (or a status passed untouched): the same in both twins
    out = [("Content-Length", "<length>") if type(h) is tuple and len(h) == 2 and type(h[0]) is str and h[0].lower() == "content-length" else h for h in out]
    return canon((status, out, body))


def unpadded_log(log: List[Any]) -> List[Any]:
    """A middleware log with its padding made invisible: data entries keep
    their kind and whether they are empty; the data itself, decoded where the
    response's coding allows, ends the log; ``Content-Length`` is masked."""
    out: List[Any] = []
    data = b""
    coding = None
    for event in log:
        if event[0] == "start_response":
            headers = event[2]
            if headers[0] == "list":
                pairs = []
                for h in headers[1]:
                    if h[0] == "tuple" and len(h[1]) == 2 and h[1][0][0] == "str":
                        name = h[1][0][1].lower()
                        if name == "content-encoding":
                            coding = _known_coding(h[1][1][1])
                        if name == "content-length":
                            h = ("tuple", (h[1][0], ("str", "<length>")))
                    pairs.append(h)
                headers = ("list", tuple(pairs))
            out.append((event[0], event[1], headers, event[3]))
        elif event[0] in ("chunk", "server-write") and event[1][0] == "bytes":
            out.append((event[0], "bytes", bool(event[1][1])))
            data += event[1][1]
        else:
            out.append(event)
    if coding is not None and data:
        try:
            data = Decoder(coding).feed(data)
        except Exception:
            pass
    out.append(("data", data))
    return out


# --- the entry points -------------------------------------------------------------------------------


def check_parsers(case: Case, settings: Any) -> None:
    value = case.parser_value
    level = settings.gzip_level if settings is not None else 6
    for name, args in (
        ("parse_if_none_match", (value,)),
        ("is_compressible", (value, settings.gzip_types if settings is not None else frozenset())),
        ("md5_hex", (case.body,)),
        ("gzip_compress", (case.body, level)),
    ):
        same(name, outcome(getattr(py, name), *args), outcome(getattr(cc, name), *args), case)
    if gzip.decompress(py.gzip_compress(case.body, level)) != case.body:
        raise Finding("gzip_compress output does not decode to its input")
    # Negotiation: every order of the offered codings, twins and reference.
    ae = case.environ.get("HTTP_ACCEPT_ENCODING")
    for header in (value, ae):
        for codings in CODING_ORDERS:
            p = outcome(py.negotiate, header, codings)
            same("negotiate", p, outcome(cc.negotiate, header, codings), case)
            expected = reference_negotiate(header, codings)
            if p != ("returned", canon(expected)):
                raise Finding(f"negotiate({header!r}, {codings}) gave {p!r}, RFC 9110 says {expected!r}\n{case.describe()}")
    if settings is not None:
        for origin in (value, case.environ.get("HTTP_ORIGIN")):
            p = outcome(py.origin_allowed, settings, origin)
            same("origin_allowed", p, outcome(cc.origin_allowed, settings, origin), case)
            if p == ("returned", ("bool", True)) and (_CRLF.search(origin) or not origin.isascii()):
                raise Finding(f"origin_allowed accepted {origin!r}")
        # Whole bodies in each coding: equal to the library's bytes (padding off),
        # decoding to the input (padding on: the twins' bytes differ at random).
        for coding in settings.codings:
            p, p_out = call(py.compress, settings, coding, case.body)
            c, c_out = call(cc.compress, settings, coding, case.body)
            if settings.padding:
                if p[0] != "returned" or c[0] != "returned":
                    same("compress (padded)", p, c, case)
                    continue
                for out in (p_out, c_out):
                    if decode(coding, out) != case.body:
                        raise Finding(f"compress({coding}, padded) does not decode to its input\n{case.describe()}")
            else:
                same(f"compress({coding})", p, c, case)
                if p[0] == "returned" and p_out != library_bytes(settings, coding, case.body):
                    raise Finding(f"compress({coding}) differs from the library's bytes\n{case.describe()}")


def _compressing_response(case: Case, out: List[Any]) -> Optional[str]:
    """The coding the middleware added to ``out``, if it compressed."""
    coding = _known_coding(_header_value(out, "content-encoding"))
    if coding is None or _header_value(case.headers, "content-encoding") is not None:
        return None
    return coding


def _check_chosen(case: Case, settings: Any, coding: str, where: str) -> None:
    expected = reference_negotiate(case.environ.get("HTTP_ACCEPT_ENCODING"), settings.codings)
    if coding != expected:
        raise Finding(f"{where}: sent {coding!r}, RFC 9110 negotiation says {expected!r}\n{case.describe()}")


def check_respond(case: Case, settings: Any) -> None:
    args = (settings, case.request, case.status, case.headers, case.body)
    p, value = call(py.respond, *args)
    c, c_value = call(cc.respond, *args)
    if settings.padding and p[0] == "returned" and c[0] == "returned":
        same("respond (padded)", unpadded(value), unpadded(c_value), case)
        # The padding changes nothing else: not the ETag, not the coding.
        plain = _settings_for({**case.config, "COMPRESS_RANDOM_PADDING": False})
        same("respond (padded vs not)", unpadded(value), unpadded(call(py.respond, plain, *args[1:])[1]), case)
    else:
        same("respond", p, c, case)
    if p[0] != "returned":
        return
    check_headers(case, settings, value[0], value[1], case.headers, "respond")
    for status, out, body in (value, c_value) if settings.padding else (value,):
        _respond_properties(case, settings, status, out, body)


def _respond_properties(case: Case, settings: Any, status: Any, out: Any, body: Any) -> None:
    if type(out) is list and parsed_status(status):
        coding = _compressing_response(case, out)
        if coding is not None:
            _check_chosen(case, settings, coding, "respond")
            if decode(coding, body) != case.body:
                raise Finding(f"respond: {coding} body does not decode to the app's\n{case.describe()}")
        length = _header_value(out, "content-length")
        if length is not None and body and length != str(len(body)):
            raise Finding(f"respond: Content-Length {length} for {len(body)} bytes\n{case.describe()}")


def _run_stream(core: Any, settings: Any, coding: str, chunks: List[bytes], limit: Optional[int]) -> List[bytes]:
    stream = core.open_stream(settings, coding)
    pieces = [stream.compress(chunk) for chunk in chunks[:limit]]
    if limit is None:
        pieces.append(stream.finish())
    stream.close()
    stream.close()
    return pieces


def check_respond_stream(case: Case, settings: Any) -> None:
    args = (case.headers, settings.buffer_max)
    same("buffer_length", outcome(py.buffer_length, *args), outcome(cc.buffer_length, *args), case)
    args = (settings, case.request, case.status, case.headers, case.may_compress)
    p, value = call(py.respond_stream, *args)
    same("respond_stream", p, outcome(cc.respond_stream, *args), case)
    if p[0] != "returned":
        return
    status, out, mode, coding = value
    check_headers(case, settings, status, out, case.headers, "respond_stream")
    if mode != STREAM_COMPRESS:
        if coding is not None:
            raise Finding(f"respond_stream: coding {coding!r} with mode {mode}\n{case.describe()}")
        return
    if coding != _header_value(out, "content-encoding"):
        raise Finding(f"respond_stream: coding {coding!r} but headers {out!r}\n{case.describe()}")
    _check_chosen(case, settings, coding, "respond_stream")
    chunks = parts(case.body, case.cut)
    results = [_run_stream(core, settings, coding, chunks, case.limit) for core in (py, cc)]
    if not settings.padding:
        same(f"open_stream({coding})", canon(results[0]), canon(results[1]), case)
    if coding == "gzip" and not settings.padding:  # the gzip stream class itself
        direct = []
        for core in (py, cc):
            stream = core.GzipStream(settings.gzip_level)
            direct.append([stream.compress(chunk) for chunk in chunks[: case.limit]])
            stream.close()
        same("GzipStream", direct[0], direct[1], case)
    # Each piece decodes as it arrives to exactly the chunks sent so far.
    for pieces in results:
        decoder = Decoder(coding)
        got = b""
        for i, piece in enumerate(pieces):
            got += decoder.feed(piece)
            if got != b"".join(chunks[: i + 1]):
                raise Finding(f"open_stream({coding}): piece {i} leaves {len(got)} bytes decoded\n{case.describe()}")


def check_preflight(case: Case, settings: Any) -> None:
    origin = case.environ.get("HTTP_ORIGIN")
    if settings.cors == 0 or origin is None:
        return  # the middleware only calls preflight() with CORS on and an Origin
    args = (settings, origin, case.environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"))
    p, out = call(py.preflight, *args)
    same("preflight", p, outcome(cc.preflight, *args), case)
    check_headers(case, settings, "204 No Content", out, [], "preflight")
    pna = _header_value(out, "access-control-allow-private-network")
    if pna is not None and not settings.private_network:
        raise Finding(f"preflight: private network access without the setting\n{case.describe()}")


def check_middleware(case: Case, settings: Any) -> None:
    p_log, p_server, p_made, p_chunks = run_middleware(py, case)
    c_log, _, c_made, _ = run_middleware(cc, case)
    if settings is not None and settings.padding:
        same("middleware (padded)", unpadded_log(p_log), unpadded_log(c_log), case)
    else:
        same("middleware", p_log, c_log, case)
    # close() exactly once on whatever the app returned that has one.
    for made in p_made + c_made:
        if made.closes != 1:
            raise Finding(f"close() called {made.closes} times on {type(made).__name__}\n{case.describe()}")
    if settings is None or not p_server.responses:
        return
    status, out = p_server.responses[-1]
    check_headers(case, settings, status, out, case.headers, "middleware")
    raised = any(event[0] == "raised" for event in p_log)
    coding = _compressing_response(case, out) if type(out) is list else None
    if coding is not None and len(p_server.responses) == 1 and case.kind not in ("err-exc-info", "err-exc-info-late"):
        _check_chosen(case, settings, coding, "middleware")
    if (
        not raised
        and case.limit is None
        and coding is not None
        and case.environ.get("REQUEST_METHOD") != "HEAD"
        and case.kind in ("list", "tuple", "chunks", "gen", "gen-cl", "gen-lazy", "closing-list")
    ):
        sent = case.body if case.kind == "list" else b"".join(parts(case.body, case.cut))
        if decode(coding, b"".join(p_chunks)) != sent:
            raise Finding(f"middleware: {coding} body does not decode to the app's\n{case.describe()}")


# --- the ASGI plumbing: the same case through ASGIMiddleware ---------------------------------------
#
# Every middleware case (modes 4-7, and every bad config) also runs through
# ``ASGIMiddleware`` on both cores, translated as an ASGI server and app would
# carry it, and the ASGI answer must equal the WSGI answer of the same core:
# the status code, the header list (names compared case-insensitively, values
# and order exactly), the body bytes, whether the body was completed and, for
# a response left unfinished, the app's exception.  The same two middlewares
# answer ``case.repeat`` times (with the cache on, the third answer is a cache
# hit), and every answer must be the first one (padding masked).
#
# The translation: request headers as lower-case latin-1 byte names and values
# (with ``asgi_form`` bit 3, a value "a, b" arrives as two headers, which the
# ASGI plumbing joins as a WSGI server does); the app's status as its int code,
# its headers as latin-1 bytes (bit 2: names lower-cased); a body WSGI buffers
# (a list, tuple, ``write()`` + list) as one message (bit 0: ``more_body``
# absent, else false); a streamed one (generators, lazy ``start_response``,
# ``write()`` + generator) as one ``more_body`` message per chunk, ended by an
# empty message (bit 1: by the last chunk, where there are two or more; a
# single message that ends the body would make it finite, a different case),
# with the declared ``Content-Length`` kept; the app failing before or after
# its start or at its second chunk as the ASGI app raising there.
#
# Left out, because ASGI cannot carry them (or has no counterpart):
# * a request or response header, or a status line, that is not latin-1 text
#   (an ASGI message holds bytes: a server could not have decoded it so);
# * a status line the middleware does not parse (``"2000 OK"``, ``"200\tOK"``,
#   bytes...): ASGI carries an int code, which always parses;
# * a header entry that is not a (str, str) pair, a chunk that is not bytes
#   (``err-yield-str``, ``err-list-str``): PEP 3333 type errors of the WSGI app;
# * ``wsgi.file_wrapper`` (the ASGI counterpart, ``pathsend``, needs a file on
#   disk), ``close()`` failing, ``exc_info``: WSGI-only;
# * a server that stops reading early (``case.limit``): both are read to the end.

ASGI_BUFFERED = ("list", "tuple", "chunks", "closing-list", "write")
ASGI_STREAMED = ("gen", "gen-lazy", "gen-lazy-empty", "write-gen", "gen-cl", "err-gen-mid", "err-gen-cl-mid")
ASGI_KINDS = ASGI_BUFFERED + ASGI_STREAMED + ("err-before-start", "err-after-start")


def _latin1(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def asgi_carries(case: Case) -> bool:
    """Whether ASGI can carry this case (see the list above)."""
    if case.kind not in ASGI_KINDS or not parsed_status(case.status) or not _latin1(case.status):
        return False
    if not _latin1(case.environ.get("REQUEST_METHOD")):
        return False
    if not all(_latin1(v) for k, v in case.environ.items() if k.startswith("HTTP_")):
        return False
    return all(type(h) is tuple and len(h) == 2 and _latin1(h[0]) and _latin1(h[1]) for h in case.headers)


def asgi_scope(case: Case) -> Dict[str, Any]:
    split = bool(case.asgi_form & 8)
    raw: List[Tuple[bytes, bytes]] = []
    for key, value in case.environ.items():
        if not key.startswith("HTTP_"):
            continue
        name = key[5:].lower().replace("_", "-").encode("latin-1")
        if split and ", " in value:
            first, rest = value.split(", ", 1)
            raw.append((name, first.encode("latin-1")))
            raw.append((b"x-between", b"1"))  # another header in between: still joined
            raw.append((name, rest.encode("latin-1")))
        else:
            raw.append((name, value.encode("latin-1")))
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": case.environ["REQUEST_METHOD"], "scheme": "http", "path": "/fuzz", "raw_path": b"/fuzz",
        "query_string": b"", "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000), "server": ("fuzz", 80),
    }


def asgi_app(case: Case) -> Callable[..., Any]:
    """The ASGI app answering as ``make_app(case)`` does (the translation above)."""
    kind = case.kind
    form = case.asgi_form
    body = case.body
    names_lower = bool(form & 4)
    headers = list(case.headers)
    if kind in ("gen-cl", "err-gen-cl-mid"):
        headers.append(("Content-Length", str(len(body))))
    raw = [((n.lower() if names_lower else n).encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    code = int(case.status[:3])
    chunks = parts(body, case.cut)
    if kind in ("tuple", "chunks", "closing-list"):
        whole = b"".join(chunks)
    elif kind == "write":
        whole = body[: len(body) // 2] + body[len(body) // 2:]
    else:
        whole = body
    if kind == "gen-lazy-empty":
        chunks = []
    elif kind == "write-gen":
        chunks = [body[: len(body) // 3], b"", body[len(body) // 3:]]
    fail_at = 1 if kind in ("err-gen-mid", "err-gen-cl-mid") else -1

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if kind == "err-before-start":
            raise AppError("failed before start_response")
        await send({"type": "http.response.start", "status": code, "headers": list(raw)})
        if kind == "err-after-start":
            raise AppError("failed after start_response")
        if kind in ASGI_BUFFERED:
            message: Dict[str, Any] = {"type": "http.response.body", "body": whole}
            if form & 1:
                message["more_body"] = False
            await send(message)
            return
        last_ends = bool(form & 2) and len(chunks) >= 2 and fail_at < 0
        for index in range(len(chunks) + 1):
            if index == fail_at:  # AppIterable's order: the failure first, then the end
                raise AppError(f"app failed at chunk {index}")
            if index == len(chunks):
                break
            more = not (last_ends and index == len(chunks) - 1)
            await send({"type": "http.response.body", "body": chunks[index], "more_body": more})
        if not last_ends:
            if not chunks:  # an empty stream: it says more is coming, then ends
                await send({"type": "http.response.body", "body": b"", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


Answer = Tuple[Any, ...]


def _answer(case: Case, settings: Any, start: Optional[Tuple[int, List[Tuple[str, str]]]], body: bytes, complete: bool, exc: Any) -> Answer:
    """What a client sees, comparable across the interfaces: the code, the
    headers (lower-case names, in order), the body, whether it was completed,
    and the app's error when it was not.  With the padding on, a body the
    middleware compressed is decoded and ``Content-Length`` masked."""
    if start is None or (not complete and not body):
        # A start with no body byte before the app failed: a WSGI server sends
        # no header before the first body byte (PEP 3333), while an ASGI start
        # (passed on as is with every feature off) may be on its way: what the
        # client gets is the server's error either way.
        return (None, None, body, complete, None if complete else exc)
    code, headers = start
    headers = [(n.lower(), v) for n, v in headers]
    if settings is not None and settings.padding:
        coding = _known_coding(_header_value(headers, "content-encoding"))
        if coding is not None and body:  # (the app's own encoded bytes do not decode: compared as they are)
            try:
                body = decode(coding, body) if complete else Decoder(coding).feed(body)
            except Exception:
                pass  # the same bytes either way: compared as they are
        headers = [(n, "<padded>" if n == "content-length" else v) for n, v in headers]
    return (code, headers, body, complete, None if complete else exc)


def wsgi_answer(mw: Any, case: Case, settings: Any) -> Answer:
    """One request through the WSGI middleware ``mw``, read to the end and closed."""
    started: List[Any] = []
    chunks: List[bytes] = []

    def start_response(status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        started.append((status, headers))
        return chunks.append  # the server's write(): what an app passed through writes goes out first

    environ = dict(case.environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    complete, exc = False, None
    try:
        result = mw(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
            complete = True
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except AppError as error:
        exc = exc_key(error)
    start = None
    if started:
        status, headers = started[-1]
        start = (int(status[:3]), list(headers))
    return _answer(case, settings, start, b"".join(chunks), complete, exc)


def asgi_answer(mw: Any, case: Case, settings: Any) -> Answer:
    """One request through the ASGI middleware ``mw``; the ASGI protocol checked on the way."""
    messages: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        messages.append(dict(message))

    # Nothing here waits on anything (the app and the server's send never
    # suspend): the coroutine runs to its end in one step, no event loop needed.
    coroutine = mw(asgi_scope(case), receive, send)
    exc = None
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    except AppError as error:
        exc = exc_key(error)
    except Exception as error:
        raise Finding(f"ASGI: the middleware raised {error!r}\n{case.describe()}") from error
    else:
        coroutine.close()
        raise Finding(f"ASGI: the middleware suspended with nothing to wait for\n{case.describe()}")
    start = None
    body = b""
    complete = False
    head = case.environ["REQUEST_METHOD"] == "HEAD"
    for index, message in enumerate(messages):
        kind = message.get("type")
        if complete:
            raise Finding(f"ASGI: {kind} after the body's end: {messages!r:.2000}\n{case.describe()}")
        if kind == "http.response.start":
            if start is not None or index != 0:
                raise Finding(f"ASGI: http.response.start not first or twice: {messages!r:.2000}\n{case.describe()}")
            raw = message["headers"]
            if not all(type(n) is bytes and type(v) is bytes for n, v in raw) or type(message["status"]) is not int:
                raise Finding(f"ASGI: a start message of the wrong types: {message!r:.2000}\n{case.describe()}")
            if settings is not None and settings.active and any(n != n.lower() for n, _ in raw):
                raise Finding(f"ASGI: header names not lower-cased: {raw!r:.2000}\n{case.describe()}")
            start = (message["status"], [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw])
        elif kind == "http.response.body":
            if start is None:
                raise Finding(f"ASGI: a body before the start: {messages!r:.2000}\n{case.describe()}")
            chunk = message.get("body", b"")
            if type(chunk) is not bytes:
                raise Finding(f"ASGI: a body of type {type(chunk).__name__}\n{case.describe()}")
            if head and chunk:
                raise Finding(f"ASGI: {len(chunk)} body bytes for HEAD\n{case.describe()}")
            body += chunk
            complete = not message.get("more_body", False)
        else:
            raise Finding(f"ASGI: an unexpected message {message!r:.500}\n{case.describe()}")
    return _answer(case, settings, start, body, complete, exc)


def check_asgi(case: Case, settings: Any) -> None:
    """The ASGI answer equals the WSGI answer, on both cores, call after call."""
    for core in (py, cc):
        try:
            wsgi_mw = ResponseMiddleware(make_app(case, []), case.config, _core_module=core)
        except (ValueError, TypeError) as exc:
            try:
                ASGIMiddleware(asgi_app(case) if asgi_carries(case) else _no_app, case.config, _core_module=core)
            except (ValueError, TypeError) as asgi_exc:
                same("ASGI construction", exc_key(exc), exc_key(asgi_exc), case)
                continue
            raise Finding(f"ASGI: the config {case.config!r} is accepted, WSGI refused it ({exc!r})")
        if not asgi_carries(case):
            return
        asgi_mw = ASGIMiddleware(asgi_app(case), case.config, _core_module=core)
        first = None
        for turn in range(case.repeat):
            wsgi = wsgi_answer(wsgi_mw, case, settings)
            asgi = asgi_answer(asgi_mw, case, settings)
            if asgi != wsgi:
                raise Finding(
                    f"ASGI and WSGI answers differ ({'compiled' if core is cc else 'python'} core, call {turn + 1})\n"
                    f"{case.describe()}\n  wsgi: {wsgi!r:.3000}\n  asgi: {asgi!r:.3000}"
                )
            if first is None:
                first = wsgi
            elif wsgi != first:
                raise Finding(f"call {turn + 1} (cache {case.config.get('COMPRESS_CACHE_SIZE', 'default')}) differs from the first\n"
                              f"{case.describe()}\n  first: {first!r:.3000}\n  now:   {wsgi!r:.3000}")


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called: construction fails")


def check(data: bytes) -> None:
    """The fuzz target: one input through both twins; raises Finding on a bug."""
    load()
    try:
        _check(data)
    except Known:
        pass


def _check(data: bytes) -> None:
    case = Case(data)
    settings = _settings_for(case.config)
    if case.mode == 0:
        check_parsers(case, settings)
    elif settings is None:
        check_middleware(case, settings)  # construction must raise the same error
        check_asgi(case, settings)
    elif case.mode == 1:
        check_respond(case, settings)
    elif case.mode == 2:
        check_respond_stream(case, settings)
    elif case.mode == 3:
        check_preflight(case, settings)
    else:
        check_middleware(case, settings)
        check_asgi(case, settings)


TestOneInput = check


# --- without atheris ------------------------------------------------------------------------------


def random_input(rng: random.Random) -> bytes:
    n = rng.choice([16, 64, 128, 256, 512, 1024])
    return bytes(rng.getrandbits(8) for _ in range(n))


def signature(data: bytes) -> Tuple[Any, ...]:
    """A coarse summary of what an input exercises (to pick diverse seeds)."""
    case = Case(data)
    settings = _settings_for(case.config)
    sig: List[Any] = [case.mode, case.kind if case.mode >= 4 else None, settings is None]
    if settings is not None:
        sig.append(settings.cors)
        if case.mode >= 4:
            log = run_middleware(py, case)[0]
            starts = [e for e in log if e[0] == "start_response"]
            if starts:
                status = starts[-1][1][1]
                sig.append(status[:1] if isinstance(status, str) and status[:3].isdigit() else None)
                names = tuple(sorted({h[1][0][1] for h in starts[-1][2][1] if h[0] == "tuple"} & {"Content-Encoding", "ETag", "Access-Control-Allow-Origin", "Vary"}))
                sig.append(names)
            sig.append(tuple(e[1] for e in log if e[0] == "raised"))
        elif case.mode == 1:
            out = py.respond(settings, case.request, case.status, case.headers, case.body) if isinstance(case.status, str) else None
            sig.append(None if out is None else (out[0][:1], len(out[1]) > 2, len(out[2]) > 0))
    return tuple(sig)


def make_corpus(directory: str, count: int = 48, seed: int = 20240) -> None:
    """Write ``count`` diverse seeds (distinct signatures of random inputs)."""
    load()
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    seen = set()
    written = 0
    tries = 0
    while written < count and tries < 200000:
        tries += 1
        data = random_input(rng)
        try:
            sig = signature(data)
        except Exception:
            sig = ("error",)
        if sig in seen:
            continue
        seen.add(sig)
        check(data)
        with open(os.path.join(directory, f"seed-{written:03d}-{hashlib.sha1(data).hexdigest()[:12]}"), "wb") as f:
            f.write(data)
        written += 1
    print(f"wrote {written} seeds to {directory} ({tries} candidates)")


def replay(paths: Iterable[str]) -> int:
    load()
    count = 0
    for path in paths:
        files = [os.path.join(path, name) for name in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
        for name in files:
            with open(name, "rb") as f:
                check(f.read())
            count += 1
    return count


def run_random(count: int, seed: int) -> None:
    load()
    rng = random.Random(seed)
    for _ in range(count):
        data = random_input(rng)
        try:
            check(data)
        except Finding:
            print(f"failing input (hex): {data.hex()}", file=sys.stderr)
            raise


def main(argv: List[str]) -> None:
    if len(argv) > 1 and argv[1] == "--replay":
        print(f"replayed {replay(argv[2:])} inputs: no finding")
        return
    if len(argv) > 1 and argv[1] == "--random":
        count = int(argv[2])
        seed = int(argv[4]) if len(argv) > 4 and argv[3] == "--seed" else 0
        run_random(count, seed)
        print(f"{count} random inputs (seed {seed}): no finding")
        return
    if len(argv) > 1 and argv[1] == "--make-corpus":
        make_corpus(argv[2])
        return
    import atheris

    with atheris.instrument_imports(include=["asok_fast"]):
        load()
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
