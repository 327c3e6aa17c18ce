"""Parity of the two cores: the compiled twin answers exactly as the Python reference.

Every request of a broad, deterministic grid goes through two ``ResponseMiddleware``
instances wrapping the same app, one bound to ``asok_fast._core_py`` and one to the compiled
core (conftest's ``compiled_core``, through the private ``_core_module`` seam).  What the server
sees is recorded as one event log per run and the two logs must be equal: every
``start_response`` call (status, the exact header list with its order and types,
``exc_info``), every chunk in order (so the streamed chunk sequence, empty chunks included),
exceptions (type and message) and where they surfaced, and the app iterable's ``close()``
calls.

The grid is built from small axes: full ``itertools.product`` where it is small, a greedy
pairwise covering (every pair of values of every two axes in at least one case) or a seeded
sample where the full product is too big.  Each case has a readable id
(``family-index-axis_value-...``); a mismatch reports the case, the request, the app's
response and a diff of the two logs.  Then come direct parity checks of the helpers both
cores export, and a Hypothesis section (derandomized) of random hostile requests.

The grid's logs as they were before the WSGI plumbing moved out of the cores are kept in
``data/parity_grid_before.json.gz``: each core must still give them, but for the two
behaviour changes SPEC made since (``test_grid_matches_the_recording``).

The comparisons need the compiled core and are skipped, with the reason shown, without it;
the recorded grid runs on whichever cores there are.
"""

from __future__ import annotations

import dataclasses
import difflib
import gzip
import hashlib
import io
import itertools
import json
import pprint
import random
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import pytest

from asok_fast import _core_py
from asok_fast._shared import RAW_REQUEST_NAMES
from asok_fast._config import build_settings, initial_values
from asok_fast.middleware import ResponseMiddleware

RECORDING = Path(__file__).resolve().parent / "data" / "parity_grid_before.json.gz"

# --- recording what a server sees -------------------------------------------------------


def _norm(value: Any) -> Any:
    """``value`` with its exact type made visible (a str subclass is not a str)."""
    kind = type(value)
    if kind is str or kind is bytes:
        return value
    if kind is tuple or kind is list:
        return (kind.__name__, [_norm(item) for item in value])
    if value is None or kind is bool or kind is int:
        return (kind.__name__, value)
    if kind.__repr__ is object.__repr__:
        return (kind.__qualname__, "<object>")  # the twins' classes live in different modules
    return (kind.__qualname__, repr(value))


def _headers(headers: Any) -> Any:
    """A header list as (name, value) pairs; anything unusual keeps its type visible."""
    if type(headers) is not list:
        return _norm(headers)
    return [
        header if type(header) is tuple and len(header) == 2 and type(header[0]) is str and type(header[1]) is str else _norm(header)
        for header in headers
    ]


def _exc(exc: BaseException) -> Tuple[str, str]:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}", str(exc)


def _exc_info(exc_info: Any) -> Any:
    if exc_info is None:
        return None
    if type(exc_info) is tuple and len(exc_info) == 3:
        return (_norm(exc_info[0]), str(exc_info[1]), exc_info[2] is not None)
    return _norm(exc_info)


class AppError(Exception):
    """What the test apps raise."""


class FileWrapper:
    """The ``wsgi.file_wrapper`` of the fake server: blocks of a file, close() logged."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        self.log: List[Any] = []

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        self.log.append(("app-close", "FileWrapper"))
        self.filelike.close()


class AppIterable:
    """An app body that is not a list: chunks one by one, optional lazy
    ``start_response``, a failure at a given index, close() logged."""

    def __init__(self, chunks: Sequence[Any], log: List[Any], start: Optional[Callable[[], Any]] = None, fail_at: int = -1, close_raises: bool = False, late: Optional[Callable[[], Any]] = None) -> None:
        self.chunks = list(chunks)
        self.log = log
        self.start = start
        self.fail_at = fail_at
        self.close_raises = close_raises
        self.late = late  # called after the first chunk went out
        self.index = 0

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
        self.log.append(("app-close", "AppIterable"))
        if self.close_raises:
            raise AppError("close() failed")


class ClosingList(list):
    """A list subclass with a ``close()`` (the plumbing decides whether it is buffered)."""

    def close(self) -> None:
        self.log.append(("app-close", "ClosingList"))  # type: ignore[attr-defined]


class InMemoryBody:
    """An iterable over chunks already in memory (its iterator is a list or tuple
    iterator, as Django's ``HttpResponse``'s is), close() logged."""

    def __init__(self, chunks: Sequence[bytes], log: List[Any], kind: type) -> None:
        self.chunks = kind(chunks)
        self.log = log

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.log.append(("app-close", "InMemoryBody"))


# --- cases ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Case:
    id: str
    config: Dict[str, Any]
    method: str
    request: Tuple[Tuple[str, Optional[str]], ...]  # environ key, value (None: absent)
    status: Any
    headers: Tuple[Any, ...]  # the app's headers, Content-Type included
    body: bytes
    kind: str
    environ_type: type = dict  # PEP 3333 wants a dict itself; a subclass is a contract case

    def describe(self) -> str:
        lines = [f"case {self.id}", f"  config: {self.config!r}", f"  request: {self.method!r} (environ: {self.environ_type.__name__})"]
        lines += [f"    {key}: {_short(value)}" for key, value in self.request if value is not None]
        lines.append(f"  app: status={self.status!r} kind={self.kind} body={_short(self.body)}")
        lines += [f"    {header!r}" for header in self.headers]
        return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, (bytes, str)) and len(value) > 72:
        digest = hashlib.md5(value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"<{type(value).__name__} of {len(value)}, md5 {digest[:12]}: {value[:40]!r}...{value[-12:]!r}>"
    return repr(value)


def _escaped(text: str) -> str:
    """Failure text with every non-ASCII character escaped (a Kelvin sign is not a K)."""
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _shorten(value: Any) -> Any:
    """``value`` with long strings and bytes summarised, for display."""
    if isinstance(value, (str, bytes)) and len(value) > 72:
        return _Shown(_short(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_shorten(item) for item in value) if type(value) in (list, tuple) else value
    if type(value) is dict:
        return {key: _shorten(item) for key, item in value.items()}
    if type(value).__name__ == "Settings":
        return _Shown("<Settings>")
    return value


class _Shown(str):
    def __repr__(self) -> str:
        return str(self)


def _pretty(value: Any, indent: str = "") -> str:
    text = pprint.pformat(_shorten(value), width=110)
    return "\n".join(indent + line for line in text.splitlines())


def _parts(body: bytes) -> List[bytes]:
    """``body`` in several chunks, empty ones included."""
    n = len(body)
    a, b = n // 3, (2 * n) // 3
    return [b"", body[:a], b"", body[a:b], body[b:], b""]


def _fill_length(header: Any, length: int) -> Any:
    """``("Content-Length", "{len}")`` in an axis means the body's real length."""
    if type(header) is tuple and len(header) == 2 and type(header[1]) is str and "{len}" in header[1]:
        return (header[0], header[1].replace("{len}", str(length)))
    return header


# Iterables over chunks already in memory (list and tuple iterators): SPEC buffers them like lists.
IN_MEMORY_KINDS: Dict[str, type] = {"iter-list": list, "iter-tuple": tuple}


def _make_app(case: Case, log: List[Any]) -> Callable[..., Any]:
    body = case.body

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        log.append(("app-called", environ.get("REQUEST_METHOD")))
        headers = [_fill_length(header, len(body)) for header in case.headers]
        if case.kind == "headers-tuple":
            headers = tuple(headers)  # type: ignore[assignment]
        kind = case.kind
        status = case.status

        def start() -> Any:
            return start_response(status, headers)

        if kind in ("list", "headers-tuple"):
            start()
            return [body]
        if kind == "tuple":
            start()
            return (body,)
        if kind == "chunks":
            start()
            return _parts(body)
        if kind == "gen-cl":
            headers.append(("Content-Length", str(len(body))))
            start()
            return AppIterable(_parts(body), log)
        if kind == "gen":
            start()
            return AppIterable(_parts(body), log)
        if kind == "gen-lazy":
            return AppIterable(_parts(body), log, start=start)
        if kind == "gen-lazy-cl":
            headers.append(("Content-Length", str(len(body))))
            return AppIterable(_parts(body), log, start=start)
        if kind == "gen-lazy-empty":
            return AppIterable([], log, start=start)
        if kind == "write":
            write = start()
            write(body[: len(body) // 2])
            write(b"")
            return [body[len(body) // 2 :]]
        if kind == "write-gen":
            write = start()
            write(body[: len(body) // 2])
            return AppIterable([b"", body[len(body) // 2 :]], log)
        if kind == "write-all":
            write = start()
            write(body)
            return []
        if kind == "file":
            start()
            wrapper = environ["wsgi.file_wrapper"](io.BytesIO(body), 4096)
            wrapper.log = log
            return wrapper
        if kind == "closing-list":
            start()
            result = ClosingList([body[:7], body[7:]])
            result.log = log  # type: ignore[attr-defined]
            return result
        if kind in IN_MEMORY_KINDS:
            start()
            return InMemoryBody(_parts(body), log, IN_MEMORY_KINDS[kind])
        if kind == "closing-parts":
            start()
            result = ClosingList(_parts(body))
            result.log = log  # type: ignore[attr-defined]
            return result
        # Apps that fail, or break PEP 3333.
        if kind == "err-before-start":
            raise AppError("failed before start_response")
        if kind == "err-after-start":
            start()
            raise AppError("failed after start_response")
        if kind == "err-gen-mid":
            start()
            return AppIterable(_parts(body), log, fail_at=3)
        if kind == "err-gen-cl":
            headers.append(("Content-Length", str(len(body))))
            start()
            return AppIterable(_parts(body), log, fail_at=2)
        if kind == "err-yield-str":
            start()
            return AppIterable([b"ok", "not bytes"], log)
        if kind == "err-list-str":
            start()
            return [b"ok", "not bytes"]
        if kind == "err-write-str":
            write = start()
            write("not bytes")
            return [body]
        if kind == "err-no-start":
            return [body]
        if kind == "err-gen-no-start":
            return AppIterable([], log)
        if kind == "err-start-twice":
            start()
            start()
            return [body]
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

            return AppIterable(_parts(body) + [b"tail"], log, late=late)
        if kind == "err-close-raises":
            start()
            return AppIterable(_parts(body), log, close_raises=True)
        if kind == "err-close-raises-cl":
            headers.append(("Content-Length", str(len(body))))
            start()
            return AppIterable(_parts(body), log, close_raises=True)
        raise AssertionError(f"unknown body kind {kind}")

    return app


def _environ(case: Case) -> Dict[str, Any]:
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": case.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/parity",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
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
    for key, value in case.request:
        if value is not None:
            environ[key] = value
    return environ if case.environ_type is dict else case.environ_type(environ)


class _Server:
    """The fake server's side of one request: its ``start_response`` logs every call and
    re-raises ``exc_info`` once headers were sent (PEP 3333)."""

    def __init__(self, log: List[Any]) -> None:
        self.log = log
        self.started = False

    def start_response(self, status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        self.log.append(("start_response", _norm(status), _headers(headers), _exc_info(exc_info)))
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        self.started = True
        return lambda data: self.log.append(("server-write", _norm(data)))


def _start(middleware: Any, case: Case, log: List[Any]) -> Any:
    """Call the middleware for ``case``; the iterable it returns, or None if it raised."""
    try:
        result = middleware(_environ(case), _Server(log).start_response)
    except Exception as exc:
        log.append(("raised", "call", *_exc(exc)))
        return None
    log.append(("returned", type(result).__name__))
    return result


def _pull(result: Iterator[Any], log: List[Any], limit: Optional[int] = None) -> bool:
    """Take up to ``limit`` chunks (all when None) from an iterator; False once it is
    exhausted or failed."""
    taken = 0
    while limit is None or taken < limit:
        try:
            chunk = next(result)
        except StopIteration:
            return False
        except Exception as exc:
            log.append(("raised", "iteration", *_exc(exc)))
            return False
        log.append(("chunk", _norm(chunk)))
        taken += 1
    return True


def _close_result(result: Any, log: List[Any]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:
            log.append(("raised", "close", *_exc(exc)))


def run(core: Any, case: Case, limit: Optional[int] = None, repeat: int = 1) -> List[Any]:
    """One request through a fresh middleware bound to ``core``, as a server runs it:
    call, iterate (only ``limit`` chunks: a client that went away), close; ``repeat``
    times through the same middleware.  Returns the event log."""
    log: List[Any] = []
    try:
        middleware = ResponseMiddleware(_make_app(case, log), case.config, _core_module=core)
    except Exception as exc:
        log.append(("raised", "construction", *_exc(exc)))
        return log
    for _ in range(repeat):
        result = _start(middleware, case, log)
        if result is not None:
            _pull(iter(result), log, limit)
            _close_result(result, log)
    return log


def _log_lines(log: List[Any], body: bool = True) -> List[str]:
    """One line per event (a header per line), then the joined body (and its gunzip)
    when ``body``: what a diff of two logs is made of."""
    lines = []
    chunks = []
    for event in log:
        if event[0] == "start_response":
            lines.append(f"start_response status={event[1]!r} exc_info={event[3]!r}")
            headers = event[2]
            if type(headers) is list:
                lines += [f"    {header!r}" for header in headers]
            else:
                lines.append(f"    {headers!r}")
        elif event[0] == "chunk":
            chunk = event[1]
            if type(chunk) is bytes:
                chunks.append(chunk)
            lines.append(f"chunk {_short(chunk)}")
        else:
            lines.append(" ".join(repr(item) for item in event))
    joined = b"".join(chunks)
    if body:
        lines.append(f"body: {_short(joined)}")
        if joined[:2] == b"\x1f\x8b":
            try:
                lines.append(f"gunzipped body: {_short(gzip.decompress(joined))}")
            except Exception as exc:
                lines.append(f"gunzip fails: {exc!r}")
    return lines


def _diff(left: List[str], right: List[str]) -> str:
    return "\n".join(difflib.unified_diff(left, right, "python", "compiled", lineterm="", n=50))


def _mismatch(case: Case, python: List[Any], compiled: List[Any]) -> str:
    return f"parity mismatch\n{case.describe()}\n" + _diff(_log_lines(python), _log_lines(compiled))


# --- axes ----------------------------------------------------------------------------------

Axis = List[Tuple[str, Any]]

LM = "Sun, 06 Nov 1994 08:49:37 GMT"

METHODS: Axis = [
    ("GET", "GET"),
    ("GET", "GET"),
    ("HEAD", "HEAD"),
    ("POST", "POST"),
    ("PUT", "PUT"),
    ("OPTIONS", "OPTIONS"),
    ("get", "get"),
]

ACCEPT_ENCODINGS: Axis = [
    ("absent", None),
    ("gzip", "gzip"),
    ("GZIP", "GZIP"),
    ("x-gzip", "x-gzip"),
    ("gzip_q0", "gzip;q=0"),
    ("star", "*"),
    ("star_q0", "*;q=0"),
    ("gzip_q0+star", "gzip;q=0, *"),
    ("identity", "identity"),
    ("deflate_br_zstd", "deflate, br, zstd"),
    ("gzip_deflate_br_zstd", "gzip, deflate, br, zstd"),
    ("gzip_qjunk", "gzip;q=junk"),
    ("gzip_q0.001", "gzip;q=0.001"),
    ("gzip_q1.000", "gzip;q=1.000"),
    ("gzip_q1.001", "gzip;q=1.001"),
    ("gzip_q0.0000", "gzip;q=0.0000"),
    ("gzip_q0.", "gzip;q=0."),
    ("gzip_q.5", "gzip;q=.5"),
    ("gzip_sp_q", "gzip ; q=0.5"),
    ("gzip_Q", "gzip;Q=0.5"),
    ("gzip_q_space_eq", "gzip;q =0.5"),
    ("gzip_extra_param", "gzip;q=0.5;level=1"),
    ("gzip_q_empty", "gzip;q="),
    ("xgzip_q0+gzip", "x-gzip;q=0, gzip"),
    ("gzip_q0.5+gzip_q0", "gzip;q=0.5, gzip;q=0"),
    ("star_q0.5+gzip_q0", "*;q=0.5, gzip;q=0"),
    ("star_q0+gzip", "*;q=0, gzip"),
    ("only_params", ";q=1"),
    ("commas", ",,,"),
    ("empty", ""),
    ("spaces", " \t "),
    ("tabs", "\tgzip\t;\tq=0.5\t"),
    ("gzi_p", "gzi p"),
    ("crlf", "gzip\r\n"),
    ("nul", "gzip\x00"),
    ("latin1", "gz\u00efp, gzip"),
    ("snowman", "gzip, \u2603"),
    ("surrogate", "\udcffgzip"),
    ("kelvin", "gzip;q=0, \u212a"),
    ("huge_commas", "," * 100000 + "gzip"),
    ("huge_refusals", "gzip;q=0," * 5000 + "*"),
]

CONTENT_TYPES: Axis = [
    ("html", "text/html; charset=utf-8"),
    ("json", "application/json"),
    ("problem_json", "application/problem+json"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("sse", "text/event-stream"),
    ("none", None),
    ("TEXT_Plain", "TEXT/Plain"),
    ("json_ows", " application/json ; charset=utf-8"),
    ("js", "application/javascript"),
    ("ndjson", "application/x-ndjson"),
    ("wasm", "application/wasm"),
    ("octet", "application/octet-stream"),
    ("atom_xml", "application/atom+xml"),
    ("bare_plus_json", "application/+json"),
    ("bare_plus_xml", "application/+xml"),
    ("x_plus_json", "application/x+json"),
    ("sse_params", "Text/Event-Stream;charset=utf-8"),
    ("no_subtype", "text/"),
    ("no_slash", "text"),
    ("no_type", "/json"),
    ("star_star", "*/*"),
    ("space_in", "text/ html"),
    ("empty", ""),
    ("crlf", "text/html\r\nX-Injected: 1"),
    ("nul", "text/plain\x00"),
    ("latin1_param", "text/html; charset=\u00fc"),
    ("nonlatin", "text/htm\u0142"),
    ("surrogate", "\udcff/json"),
]

SIZES: Axis = [
    ("0", "0"),
    ("1", "1"),
    ("min-1", "min-1"),
    ("min", "min"),
    ("min+1", "min+1"),
    ("1400", "1400"),
    ("140000", "140000"),
]

FLAVORS: Axis = [("text", "text"), ("bytes", "bytes")]

KINDS: Axis = [
    (kind, kind)
    for kind in (
        "list",
        "tuple",
        "chunks",
        "gen-cl",
        "gen",
        "gen-lazy",
        "gen-lazy-cl",
        "write",
        "write-gen",
        "write-all",
        "file",
        "closing-list",
    )
]

GZIP_CONFIGS: Axis = [
    ("gz", {"GZIP": True}),
    ("gz_min0", {"GZIP": True, "GZIP_MIN_SIZE": 0}),
    ("gz_min1000_l1", {"GZIP": True, "GZIP_MIN_SIZE": 1000, "GZIP_LEVEL": 1}),
    ("gz_l9", {"GZIP": True, "GZIP_LEVEL": 9}),
    ("gz_types", {"GZIP": True, "GZIP_TYPES": ["image/png", "Application/Octet-Stream"]}),
    ("gz_types_sse", {"GZIP": True, "GZIP_TYPES": "text/event-stream, image/png"}),
    ("gz_noetag", {"GZIP": True, "ETAG": False}),
    ("gz_buf16", {"GZIP": True, "BUFFER_MAX_SIZE": 16}),
    ("etag_only", {}),
    ("all_off", {"ETAG": False}),
    ("gz_cors_star", {"GZIP": True, "CORS_ORIGINS": "*"}),
    ("gz_cors_list", {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}),
]

EXTRAS: Axis = [
    ("none", ()),
    ("none", ()),
    ("vary_cookie", (("Vary", "Cookie"),)),
    ("vary_star", (("Vary", "*"),)),
    ("vary_two", (("Vary", "Cookie"), ("vary", "accept-encoding, Origin"))),
    ("vary_dups", (("Vary", "cookie, Cookie,,  ACCEPT-ENCODING"),)),
    ("vary_empty", (("Vary", ""),)),
    ("vary_star_second", (("Vary", "Cookie"), ("Vary", "*"))),
    ("vary_nonascii", (("Vary", "C\u00f6okie, \u212aey, \u0130d"),)),
    ("etag_strong", (("ETag", '"app-v1"'),)),
    ("etag_weak", (("ETag", 'W/"app-v1"'),)),
    ("etag_two", (("ETag", '"first"'), ("etag", '"second"'))),
    ("etag_unquoted", (("ETag", "unquoted"),)),
    ("ce_br", (("Content-Encoding", "br"),)),
    ("ce_identity", (("Content-Encoding", "identity"),)),
    ("ce_identity_ows", (("content-encoding", " IDENTITY\t"),)),
    ("cc_no_transform", (("Cache-Control", "public, No-Transform"),)),
    ("cc_no_store", (("Cache-Control", "private, no-store"),)),
    ("cc_two", (("Cache-Control", "max-age=60"), ("cache-control", "no-transform=1"))),
    ("last_modified", (("Last-Modified", LM),)),
    ("acao", (("Access-Control-Allow-Origin", "https://app.example"),)),
    ("acao_lower_star", (("access-control-allow-origin", "*"),)),
    ("cl_right", (("Content-Length", "{len}"),)),
    ("cl_wrong", (("Content-Length", "3"),)),
    ("cl_junk", (("Content-Length", " 12x"),)),
    ("cl_two", (("Content-Length", "{len}"), ("content-length", "99"))),
    ("meta", (
        ("Content-Language", "en"),
        ("Content-Location", "/x"),
        ("Expires", "0"),
        ("Set-Cookie", "a=1"),
        ("Content-Security-Policy", "default-src 'none'"),
        ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
        ("Content-Range", "bytes 0-1/2"),
        ("Date", LM),
    )),
    ("hostile", (("X-Crlf", "a\r\nb"), ("X-Latin", "\u00e9"), ("X-Surrogate", "\udcff"), ("ETAG", '"\u00e9"'))),
    ("acah_app", (("Access-Control-Allow-Headers", "X-Mine"),)),
    ("acx_bare_prefix", (("access-control-", "x"),)),
    # Names are compared lower-cased: a non-ASCII suffix keeps the Access-Control- prefix.
    ("acx_nonascii_suffix", (("Access-Control-Allow-Origin\u00e9", "https://app.example"),)),
    ("acx_kelvin_suffix", (("Access-Control-Allow-\u212aey", "x"),)),
    ("names_nonascii", (("ETag\u00e9", '"x"'), ("Vary\u0130", "Cookie"), ("Content-Typ\u00e9", "text/html"), ("\u212aeep", "1"))),
]

STATUSES: Axis = [
    ("200", "200 OK"),
    ("200", "200 OK"),
    ("200", "200 OK"),
    ("201", "201 Created"),
    ("206", "206 Partial Content"),
    ("404", "404 Not Found"),
    ("500", "500 Internal Server Error"),
]

ODD_STATUSES: Axis = [
    ("200", "200 OK"),
    ("201", "201 Created"),
    ("204", "204 No Content"),
    ("206", "206 Partial Content"),
    ("304", "304 Not Modified"),
    ("404", "404 Not Found"),
    ("500", "500 Internal Server Error"),
    ("100", "100 Continue"),
    ("199", "199 Whatever"),
    ("099", "099 Low"),
    ("600", "600 High"),
    ("200_lower", "200 ok"),
    ("200_bare", "200"),
    ("200_trailing_space", "200 "),
    ("200_two_spaces", "200  OK"),
    ("200_tab", "200\tOK"),
    ("2000", "2000 OK"),
    ("20", "20"),
    ("abc", "abc OK"),
    ("empty", ""),
    ("fullwidth_digits", "\uff12\uff10\uff10 OK"),
    ("arabic_digits", "\u0662\u0660\u0660 OK"),
    ("200_latin1_reason", "200 \u00d6K"),
    ("304_bare", "304"),
    ("204_crlf", "204 No Content\r\n"),
]

ORIGINS: Axis = [
    ("absent", None),
    ("allowed", "https://a.example"),
    ("allowed_port", "https://b.example:8443"),
    ("c_normalised", "https://c.example"),
    ("c_as_listed", "HTTPS://C.Example:443/"),
    ("upper", "https://A.example"),
    ("slash", "https://a.example/"),
    ("lookalike_suffix", "https://a.example.evil.com"),
    ("lookalike_prefix", "https://evil-a.example"),
    ("http", "http://a.example"),
    ("null", "null"),
    ("empty", ""),
    ("regex_ok", "https://sub-1.regex.example"),
    ("regex_suffix", "https://sub.regex.example.evil"),
    ("regex_nl", "https://x.regex.example\n"),
    ("space_lead", " https://a.example"),
    ("comma", "https://a.example, https://evil.example"),
    ("crlf", "https://a.example\r\nSet-Cookie: x=1"),
    ("nul", "https://a.example\x00"),
    ("tab", "https://a.example\t"),
    ("latin1", "https://\u00e4.example"),
    ("snowman", "https://\u2603.example"),
    ("surrogate", "https://a.example\udcff"),
    ("star", "*"),
    ("long", "https://" + "a" * 8000 + ".example"),
]

_LIST = ["https://a.example", "https://b.example:8443", "HTTPS://C.Example:443/"]
_REGEX = r"https://[a-z0-9-]+\.regex\.example"

CORS_CONFIGS: Axis = [
    ("cors_off", {}),
    ("star", {"CORS_ORIGINS": "*"}),
    ("star_in_list", {"CORS_ORIGINS": ["https://a.example", "*"]}),
    ("list", {"CORS_ORIGINS": list(_LIST)}),
    ("comma_string", {"CORS_ORIGINS": "https://a.example, https://b.example:8443,"}),
    ("tuple_null", {"CORS_ORIGINS": ("null", "https://a.example")}),
    ("set", {"CORS_ORIGINS": {"https://a.example"}}),
    ("regex", {"CORS_ORIGIN_REGEX": _REGEX}),
    ("regex_compiled_list", {"CORS_ORIGIN_REGEX": re.compile(_REGEX), "CORS_ORIGINS": ["https://a.example"]}),
    ("cred_expose", {"CORS_ORIGINS": list(_LIST), "CORS_ALLOW_CREDENTIALS": True, "CORS_EXPOSE_HEADERS": "X-Total, X-Page"}),
    ("star_expose_age0", {"CORS_ORIGINS": "*", "CORS_EXPOSE_HEADERS": ["X-A", "X-B"], "CORS_MAX_AGE": 0}),
    ("age_none_methods", {
        "CORS_ORIGINS": list(_LIST),
        "CORS_MAX_AGE": None,
        "CORS_ALLOW_METHODS": ["GET", "POST"],
        "CORS_ALLOW_HEADERS": "",
    }),
    ("pna_list", {"CORS_ORIGINS": list(_LIST), "CORS_ALLOW_PRIVATE_NETWORK": True}),
    ("pna_star", {"CORS_ORIGINS": "*", "CORS_ALLOW_PRIVATE_NETWORK": True}),
    ("empty_list", {"CORS_ORIGINS": []}),
    ("empty_string", {"CORS_ORIGINS": ""}),
]

CORS_METHODS: Axis = [
    ("GET", ("GET", None)),
    ("HEAD", ("HEAD", None)),
    ("POST", ("POST", None)),
    ("OPTIONS", ("OPTIONS", None)),
    ("preflight", ("OPTIONS", "PUT")),
    ("preflight_empty_acrm", ("OPTIONS", "")),
    ("GET_with_acrm", ("GET", "PUT")),
]

PNA: Axis = [
    ("absent", None),
    ("true", "true"),
    ("TRUE_ows", " TRUE\t"),
    ("false", "false"),
    ("true_crlf", "true\r\n"),
    ("tr\u00fce", "tr\u00fce"),
]

INM: Axis = [
    ("absent", None),
    ("id", '"{d}"'),
    ("gz", '"{d}-gzip"'),
    ("W_id", 'W/"{d}"'),
    ("W_gz", 'W/"{d}-gzip"'),
    ("star", "*"),
    ("star_ows", " \t* "),
    ("list_ows", '"nope" ,\tW/"{d}" , "other"'),
    ("list_empty_elems", ',, ,"{d}-gzip",,'),
    ("other", '"nope"'),
    ("app", '"app-v1"'),
    ("W_app", 'W/"app-v1"'),
    ("unquoted", "{d}"),
    ("unterminated", '"{d}'),
    ("no_comma", '"nope" "{d}"'),
    ("W_space", 'W/ "{d}"'),
    ("w_lower", 'w/"{d}"'),
    ("star_in_list", '"{d}", *'),
    ("trailing_junk", '"{d}"x'),
    ("empty_tag", '""'),
    ("ctl_in_tag", '"a\x01b", "{d}"'),
    ("crlf", '"{d}"\r\n'),
    ("latin1", '"{d}", "\u00fc"'),
    ("nonlatin", '"{d}\u2603"'),
    ("surrogate", '"{d}", "\udcff"'),
    ("empty", ""),
    ("commas", ",,,"),
    ("huge", '"x", ' * 20000 + '"{d}"'),
]

IMS: Axis = [
    ("absent", None),
    ("later_imf", "Mon, 07 Nov 1994 08:49:37 GMT"),
    ("equal_imf", LM),
    ("earlier_imf", "Sat, 05 Nov 1994 08:49:37 GMT"),
    ("later_rfc850", "Monday, 07-Nov-94 08:49:37 GMT"),
    ("earlier_rfc850", "Saturday, 05-Nov-94 08:49:37 GMT"),
    ("later_asctime", "Mon Nov  7 08:49:37 1994"),
    ("earlier_asctime", "Sat Nov  5 08:49:37 1994"),
    ("ows", " Mon, 07 Nov 1994 08:49:37 GMT\t"),
    ("invalid", "yesterday"),
    ("feb30", "Sun, 30 Feb 1994 08:49:37 GMT"),
    ("utc", "Mon, 07 Nov 1994 08:49:37 UTC"),
    ("latin1", "Mon, 07 N\u00f6v 1994 08:49:37 GMT"),
    ("huge", "Mon, 07 Nov 1994 08:49:37 GMT" + " " * 100),
]

LAST_MODIFIED: Axis = [
    ("no_lm", None),
    ("lm", LM),
    ("lm_invalid", "garbage"),
]

APP_ETAGS: Axis = [
    ("no_app_etag", ()),
    ("etag_strong", (("ETag", '"app-v1"'),)),
    ("etag_weak", (("ETag", 'W/"app-v1"'),)),
    ("cc_no_store", (("Cache-Control", "no-store"),)),
]

ERROR_KINDS = [
    "err-before-start",
    "err-after-start",
    "err-gen-mid",
    "err-gen-cl",
    "err-yield-str",
    "err-list-str",
    "err-write-str",
    "err-no-start",
    "err-gen-no-start",
    "err-start-twice",
    "err-exc-info",
    "err-exc-info-late",
    "err-close-raises",
    "err-close-raises-cl",
    "gen-lazy-empty",
]

# Every key, one config at a time (the other keys at their defaults).
KEY_CONFIGS: Axis = [
    ("defaults", {}),
    ("GZIP_on", {"GZIP": True}),
    ("GZIP_off_ETAG_off", {"GZIP": False, "ETAG": False}),
    ("GZIP_MIN_SIZE_0", {"GZIP": True, "GZIP_MIN_SIZE": 0}),
    ("GZIP_MIN_SIZE_500", {"GZIP": True, "GZIP_MIN_SIZE": 500}),
    ("GZIP_MIN_SIZE_1000", {"GZIP": True, "GZIP_MIN_SIZE": 1000}),
    ("GZIP_LEVEL_1", {"GZIP": True, "GZIP_LEVEL": 1}),
    ("GZIP_LEVEL_6", {"GZIP": True, "GZIP_LEVEL": 6}),
    ("GZIP_LEVEL_9", {"GZIP": True, "GZIP_LEVEL": 9}),
    ("GZIP_TYPES_list", {"GZIP": True, "GZIP_TYPES": ["image/png", "application/octet-stream"]}),
    ("GZIP_TYPES_string", {"GZIP": True, "GZIP_TYPES": "Image/PNG, text/event-stream"}),
    ("ETAG_off", {"ETAG": False}),
    ("CORS_ORIGINS_None", {"CORS_ORIGINS": None}),
    ("CORS_ORIGINS_star", {"CORS_ORIGINS": "*"}),
    ("CORS_ORIGINS_list", {"CORS_ORIGINS": list(_LIST)}),
    ("CORS_ORIGINS_comma", {"CORS_ORIGINS": "https://a.example,https://b.example:8443"}),
    ("CORS_ORIGIN_REGEX", {"CORS_ORIGIN_REGEX": _REGEX}),
    ("CORS_ALLOW_CREDENTIALS", {"CORS_ORIGINS": list(_LIST), "CORS_ALLOW_CREDENTIALS": True}),
    ("CORS_EXPOSE_HEADERS", {"CORS_ORIGINS": list(_LIST), "CORS_EXPOSE_HEADERS": ["X-Total", "X-Page"]}),
    ("CORS_MAX_AGE_None", {"CORS_ORIGINS": list(_LIST), "CORS_MAX_AGE": None}),
    ("CORS_MAX_AGE_0", {"CORS_ORIGINS": "*", "CORS_MAX_AGE": 0}),
    ("CORS_ALLOW_METHODS_list", {"CORS_ORIGINS": "*", "CORS_ALLOW_METHODS": ["GET", "PATCH"]}),
    ("CORS_ALLOW_HEADERS_empty", {"CORS_ORIGINS": "*", "CORS_ALLOW_HEADERS": ""}),
    ("CORS_ALLOW_PRIVATE_NETWORK", {"CORS_ORIGINS": list(_LIST), "CORS_ALLOW_PRIVATE_NETWORK": True}),
    ("BUFFER_MAX_SIZE_small", {"GZIP": True, "BUFFER_MAX_SIZE": 100}),
    ("BUFFER_MAX_SIZE_0", {"GZIP": True, "BUFFER_MAX_SIZE": 0}),
    ("everything", {
        "GZIP": True,
        "GZIP_MIN_SIZE": 10,
        "GZIP_LEVEL": 2,
        "GZIP_TYPES": ["image/png"],
        "CORS_ORIGINS": list(_LIST),
        "CORS_ORIGIN_REGEX": _REGEX,
        "CORS_ALLOW_CREDENTIALS": True,
        "CORS_EXPOSE_HEADERS": "X-A",
        "CORS_MAX_AGE": 0,
        "CORS_ALLOW_PRIVATE_NETWORK": True,
        "BUFFER_MAX_SIZE": 1000,
    }),
    ("bad_GZIP_LEVEL", {"GZIP_LEVEL": 0}),
    ("bad_star_credentials", {"CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": True}),
]


# --- bodies and the grid builders -----------------------------------------------------------

_TEXT_UNIT = "".join(
    f'<li data-n="{i}">parity line {i} caf\u00e9 &amp; {(i * 7919) % 1000}</li>\n' for i in range(300)
).encode("utf-8")


@lru_cache(maxsize=None)
def make_body(flavor: str, size: int) -> bytes:
    """Deterministic bodies: repetitive text, or seeded random-looking bytes."""
    if flavor == "text":
        return (_TEXT_UNIT * (size // len(_TEXT_UNIT) + 1))[:size]
    return random.Random(size * 7919 + 17).randbytes(size)


@lru_cache(maxsize=None)
def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def _size(label: str, config: Dict[str, Any]) -> int:
    minimum = config.get("GZIP_MIN_SIZE", 500)
    if label.startswith("min"):
        return max(0, minimum + int(label[3:] or 0))
    return int(label)


def _tag(template: Optional[str], body: bytes) -> Optional[str]:
    return None if template is None else template.replace("{d}", _md5(body))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", text)


def pairwise(axes: Sequence[Sequence[Any]], seed: int, candidates: int = 16) -> List[Tuple[int, ...]]:
    """Rows of value indices covering every pair of values of every two axes.

    Greedy and deterministic: each row starts from the smallest pair not yet covered and
    fills the other axes with the best of a few seeded random draws.
    """
    rng = random.Random(seed)
    sizes = [len(axis) for axis in axes]
    k = len(axes)
    uncovered = {(i, a, j, b) for i in range(k) for j in range(i + 1, k) for a in range(sizes[i]) for b in range(sizes[j])}
    rows = []
    while uncovered:
        i, a, j, b = min(uncovered)
        best: List[int] = []
        best_score = -1
        for _ in range(candidates):
            row = [rng.randrange(n) for n in sizes]
            row[i], row[j] = a, b
            score = sum((p, row[p], q, row[q]) in uncovered for p in range(k) for q in range(p + 1, k))
            if score > best_score:
                best, best_score = row, score
        for p in range(k):
            for q in range(p + 1, k):
                uncovered.discard((p, best[p], q, best[q]))
        rows.append(tuple(best))
    return rows


def _request(
    method: str,
    accept_encoding: Optional[str] = None,
    origin: Optional[str] = None,
    inm: Optional[str] = None,
    ims: Optional[str] = None,
    acrm: Optional[str] = None,
    pna: Optional[str] = None,
) -> Tuple[Tuple[str, Optional[str]], ...]:
    return (
        ("HTTP_ACCEPT_ENCODING", accept_encoding),
        ("HTTP_ORIGIN", origin),
        ("HTTP_IF_NONE_MATCH", inm),
        ("HTTP_IF_MODIFIED_SINCE", ims),
        ("HTTP_ACCESS_CONTROL_REQUEST_METHOD", acrm),
        ("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK", pna),
    )


def _app_headers(content_type: Optional[str], extra: Iterable[Any]) -> Tuple[Any, ...]:
    head = (("Content-Type", content_type),) if content_type is not None else ()
    return head + tuple(extra)


def _negotiation_cases() -> List[Case]:
    """Pairwise over method, Accept-Encoding, media type, size, body, kind, config, app
    extras, status, Origin and If-None-Match."""
    origins = [ORIGINS[0], ORIGINS[1], ORIGINS[7], ORIGINS[17]]
    inms = [INM[0], INM[0], INM[0], INM[1], INM[2], INM[3], INM[5], INM[13]]
    axes: List[Axis] = [METHODS, ACCEPT_ENCODINGS, CONTENT_TYPES, SIZES, FLAVORS, KINDS, GZIP_CONFIGS, EXTRAS, STATUSES, origins, inms]
    cases = []
    for n, row in enumerate(pairwise(axes, seed=1)):
        (m, ae, ct, size, flavor, kind, cfg, extra, status, origin, inm) = (axis[index] for axis, index in zip(axes, row))
        body = make_body(flavor[1], _size(size[1], cfg[1]))
        labels = [m[0], "ae=" + ae[0], "ct=" + ct[0], "size=" + size[0], flavor[0], kind[0], cfg[0], "x=" + extra[0], status[0], "o=" + origin[0], "inm=" + inm[0]]
        cases.append(
            Case(
                id=f"neg-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=cfg[1],
                method=m[1],
                request=_request(m[1], ae[1], origin[1], _tag(inm[1], body)),
                status=status[1],
                headers=_app_headers(ct[1], extra[1]),
                body=body,
                kind=kind[1],
            )
        )
    return cases


def _cors_cases() -> List[Case]:
    """Every Origin x every CORS config for a GET and a preflight; then pairwise over
    Origin, CORS config, every method shape, Access-Control-Request-Private-Network, the
    app's extras, gzip and the body kind."""
    rng = random.Random(2)
    extras = [EXTRAS[0], EXTRAS[2], EXTRAS[3], EXTRAS[4], EXTRAS[20], EXTRAS[21], EXTRAS[9]]
    gzip_axis: Axis = [("gz", True), ("nogz", False)]
    kinds: Axis = [("list", "list"), ("gen", "gen"), ("gen-cl", "gen-cl")]
    rows = [
        (origin, cors, method, rng.choice(PNA), rng.choice(extras), rng.choice(gzip_axis), rng.choice(kinds))
        for origin, cors, method in itertools.product(ORIGINS, CORS_CONFIGS, [CORS_METHODS[0], CORS_METHODS[4]])
    ]
    axes: List[Axis] = [ORIGINS, CORS_CONFIGS, CORS_METHODS, PNA, extras, gzip_axis, kinds]
    rows += [tuple(axis[index] for axis, index in zip(axes, row)) for row in pairwise(axes, seed=2)]
    cases = []
    for n, (origin, cors, (mlabel, (method, acrm)), pna, extra, gzip_on, kind) in enumerate(rows):
        body = make_body("text", rng.choice([0, 600, 1400]))
        labels = ["o=" + origin[0], cors[0], mlabel, "pna=" + pna[0], "x=" + extra[0], gzip_on[0], kind[0]]
        cases.append(
            Case(
                id=f"cors-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=dict(cors[1], GZIP=gzip_on[1]),
                method=method,
                request=_request(method, "gzip", origin[1], None, None, acrm, pna[1]),
                status="200 OK",
                headers=_app_headers("application/json", extra[1]),
                body=body,
                kind=kind[1],
            )
        )
    return cases


def _conditional_cases() -> List[Case]:
    """If-None-Match forms x method x Accept-Encoding x the app's own ETag, buffered and
    streamed; then If-Modified-Since forms x Last-Modified x method x body kind."""
    rng = random.Random(3)
    cases = []
    methods = [("GET", "GET"), ("HEAD", "HEAD"), ("POST", "POST")]
    encodings = [ACCEPT_ENCODINGS[0], ACCEPT_ENCODINGS[1]]
    configs = [
        ("gz", {"GZIP": True}),
        ("gz_cors_list", {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}),
        ("gz_noetag", {"GZIP": True, "ETAG": False}),
        ("etag_only", {}),
    ]
    for n, (inm, method, ae, app_etag) in enumerate(itertools.product(INM, methods, encodings, APP_ETAGS)):
        cfg = configs[n % 4] if n % 3 else configs[0]
        kind = rng.choice(["list", "list", "gen", "gen-cl", "write"])
        body = make_body(rng.choice(["text", "bytes"]), rng.choice([0, 499, 501, 1400]))
        origin = rng.choice([None, "https://a.example"])
        labels = ["inm=" + inm[0], method[0], "ae=" + ae[0], app_etag[0], cfg[0], kind, f"size={len(body)}"]
        cases.append(
            Case(
                id=f"inm-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=cfg[1],
                method=method[1],
                request=_request(method[1], ae[1], origin, _tag(inm[1], body)),
                status="200 OK",
                headers=_app_headers("text/html; charset=utf-8", app_etag[1]),
                body=body,
                kind=kind,
            )
        )
    inm_sample = [INM[0], INM[0], INM[1], INM[9]]
    for n, (ims, lm, method, kind) in enumerate(itertools.product(IMS, LAST_MODIFIED, methods, ["list", "gen"])):
        inm = rng.choice(inm_sample)
        extra: Tuple[Any, ...] = (("Last-Modified", lm[1]),) if lm[1] is not None else ()
        if rng.random() < 0.3:
            extra += (("ETag", '"app-v1"'),)
        ae = rng.choice(encodings)
        body = make_body("text", rng.choice([10, 1400]))
        cfg = rng.choice(configs)
        labels = ["ims=" + ims[0], lm[0], method[0], kind, "inm=" + inm[0], "ae=" + ae[0], cfg[0], "etag" if len(extra) > 1 or (extra and lm[1] is None) else "noetag"]
        cases.append(
            Case(
                id=f"ims-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=cfg[1],
                method=method[1],
                request=_request(method[1], ae[1], None, _tag(inm[1], body), ims[1]),
                status="200 OK",
                headers=_app_headers("application/json", extra),
                body=body,
                kind=kind,
            )
        )
    return cases


def _body_cases() -> List[Case]:
    """Every body kind x size x GET/HEAD x gzip accepted or not; media type sampled."""
    rng = random.Random(4)
    cases = []
    types = [CONTENT_TYPES[0], CONTENT_TYPES[1], CONTENT_TYPES[4], CONTENT_TYPES[5], CONTENT_TYPES[6]]
    for n, (kind, size, method, ae) in enumerate(
        itertools.product(KINDS, SIZES, [("GET", "GET"), ("HEAD", "HEAD")], [ACCEPT_ENCODINGS[0], ACCEPT_ENCODINGS[1]])
    ):
        cfg = rng.choice(GZIP_CONFIGS[:8])
        flavor = rng.choice(FLAVORS)
        ct = rng.choice(types)
        body = make_body(flavor[1], _size(size[1], cfg[1]))
        labels = [kind[0], "size=" + size[0], method[0], "ae=" + ae[0], cfg[0], flavor[0], "ct=" + ct[0]]
        cases.append(
            Case(
                id=f"body-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=cfg[1],
                method=method[1],
                request=_request(method[1], ae[1]),
                status="200 OK",
                headers=_app_headers(ct[1], ()),
                body=body,
                kind=kind[1],
            )
        )
    return cases


def _status_cases() -> List[Case]:
    """Ordinary and odd status lines x buffered/streamed/declared x GET/HEAD."""
    rng = random.Random(5)
    cases = []
    for n, (status, kind, method) in enumerate(
        itertools.product(ODD_STATUSES, ["list", "gen", "gen-cl"], [("GET", "GET"), ("HEAD", "HEAD")])
    ):
        extra = rng.choice([EXTRAS[0], EXTRAS[2], EXTRAS[19], EXTRAS[22], EXTRAS[26]])
        inm = rng.choice([INM[0], INM[0], INM[1]])
        body = make_body("text", 1400)
        labels = [status[0], kind, method[0], "x=" + extra[0], "inm=" + inm[0]]
        cases.append(
            Case(
                id=f"status-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config={"GZIP": True, "CORS_ORIGINS": ["https://a.example"]},
                method=method[1],
                request=_request(method[1], "gzip", "https://a.example", _tag(inm[1], body)),
                status=status[1],
                headers=_app_headers("text/html", extra[1]),
                body=body,
                kind=kind,
            )
        )
    return cases


def _error_cases() -> List[Case]:
    """Apps that fail or break PEP 3333: the same exception, at the same point, with the
    same exc_info and close() calls."""
    cases = []
    configs = [("gz", {"GZIP": True}), ("etag_only", {}), ("gz_cors", {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]})]
    for n, (kind, method, cfg) in enumerate(itertools.product(ERROR_KINDS, ["GET", "HEAD"], configs)):
        body = make_body("text", 1400)
        cases.append(
            Case(
                id=f"error-{n:04d}-{kind}-{method}-{cfg[0]}",
                config=cfg[1],
                method=method,
                request=_request(method, "gzip", "https://a.example"),
                status="200 OK",
                headers=_app_headers("text/html", ()),
                body=body,
                kind=kind,
            )
        )
    return cases


def _config_cases() -> List[Case]:
    """Every config key x a handful of representative requests."""
    text = make_body("text", 1400)
    requests = [
        ("get_gzip", "GET", _request("GET", "gzip", "https://a.example"), "list", "text/html", text),
        ("get_png", "GET", _request("GET", "gzip", "https://sub.regex.example"), "list", "image/png", make_body("bytes", 1400)),
        ("get_small", "GET", _request("GET", "gzip"), "list", "application/json", make_body("text", 150)),
        ("head_stream", "HEAD", _request("HEAD", "gzip", "https://b.example:8443"), "gen", "text/html", text),
        ("get_stream", "GET", _request("GET", "gzip", "https://a.example"), "gen", "text/html", text),
        ("get_cl_stream", "GET", _request("GET", "gzip", "https://a.example"), "gen-cl", "text/html", text),
        ("get_sse", "GET", _request("GET", "gzip"), "gen", "text/event-stream", text),
        ("get_inm", "GET", _request("GET", "gzip", "https://a.example", '"%s"' % _md5(text)), "list", "text/html", text),
        ("get_inm_gz", "GET", _request("GET", "gzip", "https://a.example", '"%s-gzip"' % _md5(text)), "list", "text/html", text),
        ("preflight", "OPTIONS", _request("OPTIONS", None, "https://a.example", None, None, "PUT", "true"), "list", "text/html", text),
        ("preflight_regex", "OPTIONS", _request("OPTIONS", None, "https://x.regex.example", None, None, "PUT"), "list", "text/html", text),
        ("preflight_null", "OPTIONS", _request("OPTIONS", None, "null", None, None, "DELETE", "true"), "list", "text/html", text),
        ("options_plain", "OPTIONS", _request("OPTIONS", "gzip", "https://a.example"), "list", "text/html", text),
    ]
    cases = []
    for n, (cfg, (label, method, request, kind, content_type, body)) in enumerate(itertools.product(KEY_CONFIGS, requests)):
        cases.append(
            Case(
                id=f"config-{n:04d}-{cfg[0]}-{label}",
                config=cfg[1],
                method=method,
                request=request,
                status="200 OK",
                headers=_app_headers(content_type, ()),
                body=body,
                kind=kind,
            )
        )
    return cases


def _contract_cases() -> List[Case]:
    """Apps whose start_response arguments break PEP 3333 (non-str values, odd header
    shapes): whatever happens, it must happen the same way in both twins."""
    bad: Axis = [
        ("vary_None", (("Content-Type", "text/html"), ("Vary", None))),
        ("ct_bytes", (("Content-Type", b"text/html"),)),
        ("cl_int", (("Content-Type", "text/html"), ("Content-Length", 1400))),
        ("etag_None", (("Content-Type", "text/html"), ("ETag", None))),
        ("cc_int", (("Content-Type", "text/html"), ("Cache-Control", 5))),
        ("ce_None", (("Content-Type", "text/html"), ("Content-Encoding", None))),
        ("lm_bytes", (("Content-Type", "text/html"), ("Last-Modified", LM.encode()))),
        ("header_list", (["Content-Type", "text/html"],)),
        ("name_bytes", ((b"Content-Type", "text/html"),)),
        ("name_None", ((None, "x"), ("Content-Type", "text/html"))),
        ("str_subclass", (("Content-Type", type("Sub", (str,), {})("text/html")),)),
        ("header_3tuple", (("Content-Type", "text/html", "x"),)),
        ("header_1tuple", (("Content-Type",),)),
        ("header_str", ("Content-Type: text/html",)),
        ("header_2str", ("ab",)),
        ("header_None", (None,)),
        ("header_int", (5,)),
    ]
    statuses = [("ok", "200 OK"), ("status_bytes", b"200 OK"), ("status_None", None), ("status_int", 200)]
    cases = []
    n = 0
    for (label, headers), method, kind in itertools.product(bad, ["GET", "HEAD"], ["list", "gen"]):
        cases.append(
            Case(
                id=f"contract-{n:04d}-{label}-{method}-{kind}",
                config={"GZIP": True, "CORS_ORIGINS": ["https://a.example"]},
                method=method,
                request=_request(method, "gzip", "https://a.example"),
                status="200 OK",
                headers=headers,
                body=make_body("text", 1400),
                kind=kind,
            )
        )
        n += 1
    for (label, status), kind in itertools.product(statuses, ["list", "gen", "headers-tuple"]):
        cases.append(
            Case(
                id=f"contract-{n:04d}-{label}-{kind}",
                config={"GZIP": True},
                method="GET",
                request=_request("GET", "gzip"),
                status=status,
                headers=(("Content-Type", "text/html"),),
                body=make_body("text", 1400),
                kind=kind,
            )
        )
        n += 1
    # Request header values of a str subclass (PEP 3333 wants str itself).
    for label, value in [("ae", "gzip"), ("origin", "https://a.example"), ("inm", "*"), ("pna", "true")]:
        request = dict(_request("GET", "gzip", "https://a.example"))
        key = {"ae": "HTTP_ACCEPT_ENCODING", "origin": "HTTP_ORIGIN", "inm": "HTTP_IF_NONE_MATCH", "pna": "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"}[label]
        request[key] = _StrSubclass(value)
        method = "GET"
        if label == "pna":
            method = "OPTIONS"
            request["HTTP_ACCESS_CONTROL_REQUEST_METHOD"] = "PUT"
        cases.append(
            Case(
                id=f"contract-{n:04d}-environ_str_subclass_{label}",
                config={"GZIP": True, "CORS_ORIGINS": ["https://a.example"], "CORS_ALLOW_PRIVATE_NETWORK": True},
                method=method,
                request=tuple(request.items()),
                status="200 OK",
                headers=(("Content-Type", "text/html"),),
                body=make_body("text", 1400),
                kind="list",
            )
        )
        n += 1
    # Request header values that are not str at all.
    for label, key, value in [
        ("ae", "HTTP_ACCEPT_ENCODING", b"gzip"),
        ("origin", "HTTP_ORIGIN", b"https://a.example"),
        ("inm", "HTTP_IF_NONE_MATCH", b"*"),
        ("ims", "HTTP_IF_MODIFIED_SINCE", LM.encode()),
        ("method", "REQUEST_METHOD", b"GET"),
    ]:
        request = dict(_request("GET", "gzip", "https://a.example"))
        request[key] = value
        cases.append(
            Case(
                id=f"contract-{n:04d}-environ_bytes_{label}",
                config={"GZIP": True, "CORS_ORIGINS": ["https://a.example"]},
                method="GET",
                request=tuple(request.items()),
                status="200 OK",
                headers=(("Content-Type", "text/html"), ("Last-Modified", LM)),
                body=make_body("text", 1400),
                kind="list",
            )
        )
        n += 1
    for method, cfg in itertools.product(["GET", "HEAD", "OPTIONS"], [{"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}, {"ETAG": False, "CORS_ORIGINS": "*"}]):
        cases.append(
            Case(
                id=f"contract-{n:04d}-environ_dict_subclass-{method}-{'list' if 'GZIP' in cfg else 'star'}",
                config=cfg,
                method=method,
                request=_request(method, "gzip", "https://a.example", None, None, "PUT" if method == "OPTIONS" else None),
                status="200 OK",
                headers=(("Content-Type", "text/html"),),
                body=make_body("text", 1400),
                kind="list",
                environ_type=_EnvironSubclass,
            )
        )
        n += 1
    return cases


def _in_memory_cases() -> List[Case]:
    """Iterables over chunks already in memory (list and tuple iterators) x GET/HEAD x
    Accept-Encoding x config x size around the threshold x If-None-Match."""
    configs = [GZIP_CONFIGS[0], GZIP_CONFIGS[6], GZIP_CONFIGS[8], GZIP_CONFIGS[9], GZIP_CONFIGS[11]]
    sizes = [SIZES[0], SIZES[4], SIZES[5]]
    cases = []
    rows = itertools.product(IN_MEMORY_KINDS, ["GET", "HEAD"], ACCEPT_ENCODINGS[:2], configs, sizes, INM[:3])
    for n, (kind, method, ae, cfg, size, inm) in enumerate(rows):
        body = make_body("text", _size(size[1], cfg[1]))
        labels = [kind, method, "ae=" + ae[0], cfg[0], "size=" + size[0], "inm=" + inm[0]]
        cases.append(
            Case(
                id=f"memory-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=cfg[1],
                method=method,
                request=_request(method, ae[1], "https://a.example", _tag(inm[1], body)),
                status="200 OK",
                headers=_app_headers("text/html; charset=utf-8", ()),
                body=body,
                kind=kind,
            )
        )
    return cases


CODING_CONFIGS: Axis = [
    ("default", {"GZIP": True}),
    ("br_gzip", {"GZIP": True, "COMPRESS_CODINGS": ["br", "gzip"]}),
    ("gzip_zstd", {"GZIP": True, "COMPRESS_CODINGS": "gzip, zstd"}),
    ("zstd_l1", {"GZIP": True, "COMPRESS_CODINGS": ["zstd"], "ZSTD_LEVEL": 1}),
    ("zstd_l19", {"GZIP": True, "ZSTD_LEVEL": 19}),
    ("br_l0", {"GZIP": True, "COMPRESS_CODINGS": ["br"], "BROTLI_LEVEL": 0}),
    ("br_l11", {"GZIP": True, "COMPRESS_CODINGS": ["br", "zstd"], "BROTLI_LEVEL": 11}),
    ("gz_first_l1_min0", {"GZIP": True, "GZIP_LEVEL": 1, "GZIP_MIN_SIZE": 0, "COMPRESS_CODINGS": ["gzip", "br", "zstd"]}),
    ("gz_only_l9", {"GZIP": True, "GZIP_LEVEL": 9, "COMPRESS_CODINGS": ["gzip"]}),
    ("cors_list", {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}),
    ("etag_only", {}),
]

CODING_ACCEPT_ENCODINGS: Axis = [
    ("browser", "gzip, deflate, br, zstd"),
    ("no_zstd", "gzip, deflate, br"),
    ("weighted", "br;q=1.0, gzip;q=0.8, *;q=0.1"),
    ("ties", "zstd;q=0.5, br;q=0.5, gzip;q=0.5"),
    ("star", "*"),
    ("star_but_zstd", "*;q=0.5, zstd;q=0"),
    ("identity_above", "identity;q=1, zstd;q=0.9"),
    ("identity_below", "identity;q=0.5, br"),
    ("identity_tie", "identity, gzip"),
    ("upper", "ZSTD, BR"),
    ("xgzip_first", "x-gzip;q=0.9, br;q=0.8"),
    ("all_q0", "zstd;q=0, br;q=0, gzip;q=0"),
    ("deflate", "deflate"),
    ("br_tiny_q", "br;q=0.001"),
    ("junk", "zstd;q=2, br;level=3, gzip"),
    ("repeated", "br;q=0, br;q=0.7, zstd;q=0.6"),
    ("absent", None),
]

CODING_INM: Axis = [
    ("absent", None),
    ("zstd", '"{d}-zstd"'),
    ("W_br", 'W/"{d}-br"'),
    ("id", '"{d}"'),
    ("gz_in_list", '"nope", "{d}-gzip"'),
    ("deflate", '"{d}-deflate"'),
    ("upper", '"{d}-ZSTD"'),
]

CODING_KINDS: Axis = [("list", "list"), ("gen", "gen"), ("gen-cl", "gen-cl"), ("write-gen", "write-gen"), ("chunks", "chunks")]
CODING_SIZES: Axis = [SIZES[3], SIZES[4], SIZES[5], SIZES[6]]


def _coding_cases() -> List[Case]:
    """The codings: every config x every Accept-Encoding on a 1.4 KB JSON body, then
    pairwise over config, Accept-Encoding, If-None-Match, kind, size around the
    threshold, method and Origin."""
    cases = []
    for n, (cfg, ae) in enumerate(itertools.product(CODING_CONFIGS, CODING_ACCEPT_ENCODINGS)):
        body = make_body("text", 1400)
        cases.append(
            Case(
                id=f"coding-{n:04d}-{_slug(cfg[0])}-ae={_slug(ae[0])}",
                config=cfg[1],
                method="GET",
                request=_request("GET", ae[1], "https://a.example"),
                status="200 OK",
                headers=_app_headers("application/json", ()),
                body=body,
                kind="list",
            )
        )
    methods = [("GET", "GET"), ("HEAD", "HEAD")]
    origins = [ORIGINS[0], ORIGINS[1]]
    axes: List[Axis] = [CODING_CONFIGS, CODING_ACCEPT_ENCODINGS, CODING_INM, CODING_KINDS, CODING_SIZES, methods, origins]
    for n, row in enumerate(pairwise(axes, seed=15)):
        cfg, ae, inm, kind, size, method, origin = (axis[index] for axis, index in zip(axes, row))
        body = make_body("text", _size(size[1], cfg[1]))
        labels = [cfg[0], "ae=" + ae[0], "inm=" + inm[0], kind[0], "size=" + size[0], method[0], "o=" + origin[0]]
        cases.append(
            Case(
                id=f"codings-{n:04d}-" + "-".join(_slug(label) for label in labels),
                config=cfg[1],
                method=method[1],
                request=_request(method[1], ae[1], origin[1], _tag(inm[1], body)),
                status="200 OK",
                headers=_app_headers("text/html; charset=utf-8", ()),
                body=body,
                kind=kind[1],
            )
        )
    return cases


class _EnvironSubclass(dict):
    """An environ that is not exactly a dict."""


class _StrSubclass(str):
    """A str that is not exactly ``str``."""


CASES: List[Case] = (
    _negotiation_cases()
    + _cors_cases()
    + _conditional_cases()
    + _body_cases()
    + _status_cases()
    + _error_cases()
    + _config_cases()
    + _contract_cases()
    + _in_memory_cases()
    + _coding_cases()
)
assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"

_PYTHON_LOGS: Dict[str, List[Any]] = {}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_grid(case: Case, compiled_core: Any) -> None:
    python = run(_core_py, case)
    compiled = run(compiled_core, case)
    _PYTHON_LOGS[case.id] = _summary(python)
    if python != compiled:
        pytest.fail(_escaped(_mismatch(case, python, compiled)), pytrace=False)


# --- the grid as recorded before the plumbing left the cores ----------------------------------


def canonical(log: List[Any]) -> List[str]:
    """A log as the recording keeps it: one ``repr`` per event, a chunk of more than 64
    bytes as its SHA-256 and length."""
    out = []
    for event in log:
        if event[0] == "chunk" and type(event[1]) is bytes and len(event[1]) > 64:
            event = ("chunk", "sha256:" + hashlib.sha256(event[1]).hexdigest(), len(event[1]))
        out.append(repr(event))
    return out


def every_feature_off(config: Dict[str, Any]) -> bool:
    """No gzip, no ETag, no CORS: the middleware has nothing to add to a response."""
    return (
        not config.get("GZIP")
        and config.get("ETAG", True) is False
        and not config.get("CORS_ORIGINS")
        and config.get("CORS_ORIGIN_REGEX") is None
    )


def head_with_every_feature_off(case: Case) -> bool:
    return case.method == "HEAD" and every_feature_off(case.config)


def expected_now(case: Case, recorded: List[str]) -> List[str]:
    """What the middleware logs for ``case`` now, derived from its recorded log.

    SPEC changed one thing that the recording covers: ``HEAD`` sends no body byte with every
    feature off too.  The app's status and headers go out as they were, its body is closed
    unread (no chunk, nothing of what ``write()`` got) and the middleware returns an empty
    list, after that close.  (The other change, iterables over chunks already in memory
    buffered like lists, concerns only bodies of ``IN_MEMORY_KINDS``, which the recording
    predates.)
    """
    if not head_with_every_feature_off(case) or not any(event.startswith("('returned',") for event in recorded):
        return recorded
    unsent = ("('chunk',", "('server-write',", "('returned',")
    return [event for event in recorded if not event.startswith(unsent)] + [repr(("returned", "list"))]


def newer_than_the_recording(case: Case) -> bool:
    """Cases of features the recording predates: in-memory iterables, the codings."""
    return case.kind in IN_MEMORY_KINDS or case.id.startswith(("coding-", "codings-"))


def as_recorded(case: Case) -> Case:
    """``case`` as the recording ran it: gzip was the only coding, which
    ``COMPRESS_CODINGS = ["gzip"]`` gives exactly (SPEC)."""
    if not isinstance(case.config, dict):
        return case
    return dataclasses.replace(case, config={"COMPRESS_CODINGS": ["gzip"], **case.config})


def test_grid_matches_the_recording(core: Any) -> None:
    recorded: Dict[str, List[str]] = json.loads(gzip.decompress(RECORDING.read_bytes()))
    assert set(recorded) == {case.id for case in CASES if not newer_than_the_recording(case)}
    changed = 0
    mismatches = []
    for case in CASES:
        if case.id not in recorded:
            continue
        expected = expected_now(case, recorded[case.id])
        changed += expected != recorded[case.id]
        got = canonical(run(core, as_recorded(case)))
        if got != expected:
            mismatches.append(f"{case.describe()}\n" + "\n".join(difflib.unified_diff(expected, got, "expected", "now", lineterm="", n=2)))
    assert changed >= 10, "the HEAD-with-every-feature-off expectation no longer meets the grid"
    if mismatches:
        shown = "\n".join(mismatches[:40])
        pytest.fail(_escaped(f"{len(mismatches)} of {len(recorded)} cases differ from the recording:\n{shown}"), pytrace=False)


def test_in_memory_iterables_answer_as_lists(core: Any) -> None:
    """SPEC: an iterable whose iterator is a list or tuple iterator is buffered like a list:
    each such case logs exactly what the same chunks in a list (with ``close()``) log.  (With
    every feature off a GET gets the app's own iterable back, whatever it is.)"""
    cases = [case for case in CASES if case.kind in IN_MEMORY_KINDS]
    assert len(cases) >= 100
    for case in cases:
        as_list = dataclasses.replace(case, kind="closing-parts")
        renamed = [(("app-close", "ClosingList"), ("app-close", "InMemoryBody"))]
        if every_feature_off(case.config):
            renamed.append((("returned", "ClosingList"), ("returned", "InMemoryBody")))
        expected = [next((new for old, new in renamed if event == old), event) for event in run(core, as_list)]
        log = run(core, case)
        assert log == expected, _escaped(f"{case.describe()}\n" + _diff(_log_lines(expected), _log_lines(log)))


def _summary(log: List[Any]) -> Tuple[str, ...]:
    """What a case exercised (for the coverage check), from the reference log."""
    tags = []
    for event in log:
        if event[0] == "start_response" and type(event[2]) is list:
            status = event[1] if type(event[1]) is str else ""
            tags.append("status:" + status[:3])
            pairs = [header for header in event[2] if type(header) is tuple and type(header[0]) is str and type(header[1]) is str]
            names = {name.lower() for name, _ in pairs}
            values = {(name.lower(), value) for name, value in pairs}
            if ("content-encoding", "gzip") in values:
                tags.append("gzip")
            if "etag" in names:
                tags.append("etag")
            if "access-control-allow-origin" in names:
                tags.append("acao")
            if "access-control-max-age" in names:
                tags.append("max-age")
            if "access-control-allow-private-network" in names:
                tags.append("pna")
            if "vary" in names:
                tags.append("vary")
            if event[3] is not None:
                tags.append("exc_info")
        elif event[0] == "returned":
            tags.append("returned:" + event[1])
        elif event[0] == "raised":
            tags.append("raised:" + event[1])
        elif event[0] == "app-called":
            tags.append("app-called")
    return tuple(tags)


def test_grid_reaches_every_path() -> None:
    """The grid is only worth something if the reference takes every path on it."""
    counts: Dict[str, int] = {}
    for case in CASES:
        summary = _PYTHON_LOGS.get(case.id)
        if summary is None:
            summary = _PYTHON_LOGS[case.id] = _summary(run(_core_py, case))
        for tag in set(summary):
            counts[tag] = counts.get(tag, 0) + 1
    streamed_gzip = sum(
        1 for case in CASES if "gzip" in _PYTHON_LOGS[case.id] and "returned:_Stream" in _PYTHON_LOGS[case.id]
    )
    preflights = sum(
        1 for case in CASES if "status:204" in _PYTHON_LOGS[case.id] and "app-called" not in _PYTHON_LOGS[case.id]
    )
    expected = {
        "gzip": 300,
        "etag": 300,
        "status:304": 100,
        "acao": 200,
        "max-age": 50,
        "pna": 10,
        "vary": 300,
        "exc_info": 5,
        "returned:_Stream": 100,
        "returned:FileWrapper": 10,
        "returned:list": 1000,
        "raised:call": 10,
        "raised:iteration": 8,
        "raised:close": 3,
        "raised:construction": 10,
    }
    low = {tag: (counts.get(tag, 0), least) for tag, least in expected.items() if counts.get(tag, 0) < least}
    assert not low, f"the grid misses paths (tag: (cases, expected at least)): {low}"
    assert streamed_gzip >= 50 and preflights >= 100, (streamed_gzip, preflights)
    assert len(CASES) >= 2500


# --- state across requests: one middleware, many requests ----------------------------------
#
# A compiled core may keep state between responses (a pool of z_streams reset with
# deflateReset, buffers, caches): a stream abandoned half-way, a failure, a level changed at
# run time or two streams in flight must leave no trace in the next response.  The Python
# twin keeps none, so any difference shows here.


def _quick(
    label: str,
    kind: str = "gen",
    method: str = "GET",
    size: int = 140000,
    flavor: str = "text",
    content_type: Optional[str] = "text/html; charset=utf-8",
    extra: Tuple[Any, ...] = (),
    inm: Optional[str] = None,
    origin: Optional[str] = "https://a.example",
    acrm: Optional[str] = None,
    accept_encoding: Optional[str] = "gzip",
) -> Case:
    body = make_body(flavor, size)
    return Case(
        id=label,
        config={},
        method=method,
        request=_request(method, accept_encoding, origin, _tag(inm, body), None, acrm),
        status="200 OK",
        headers=_app_headers(content_type, extra),
        body=body,
        kind=kind,
    )


@dataclass
class Step:
    case: Case
    limit: Optional[int] = None  # chunks read before the client goes away (None: all)
    update: Tuple[Tuple[str, Any], ...] = ()  # .config assignments before this request


def _dispatching_middleware(core: Any, config: Dict[str, Any]) -> Tuple[ResponseMiddleware, List[Any]]:
    current: List[Any] = [None]

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return current[0](environ, start_response)

    return ResponseMiddleware(app, config, _core_module=core), current


def run_sequence(core: Any, config: Dict[str, Any], steps: Sequence[Step]) -> List[Any]:
    """The steps' requests one after another through one middleware bound to ``core``."""
    log: List[Any] = []
    middleware, current = _dispatching_middleware(core, config)
    for n, step in enumerate(steps):
        log.append(("step", n, step.case.id, step.limit, repr(step.update)))
        try:
            for key, value in step.update:
                middleware.config[key] = value
        except Exception as exc:
            log.append(("raised", "config", *_exc(exc)))
        current[0] = _make_app(step.case, log)
        result = _start(middleware, step.case, log)
        if result is not None:
            _pull(iter(result), log, step.limit)
            _close_result(result, log)
    return log


def run_interleaved(core: Any, config: Dict[str, Any], steps: Sequence[Step]) -> List[Any]:
    """The steps' requests all in flight at once on one middleware, one chunk of each in
    turn (as a threaded server interleaves them); each is closed after its ``limit``."""
    log: List[Any] = []
    middleware, current = _dispatching_middleware(core, config)
    flights = []
    for n, step in enumerate(steps):
        log.append(("start", n, step.case.id))
        current[0] = _make_app(step.case, log)
        result = _start(middleware, step.case, log)
        if result is not None:
            flights.append([n, result, iter(result), step.limit])
    while flights:
        for flight in list(flights):
            n, result, iterator, limit = flight
            log.append(("pull", n))
            more = (limit is None or limit > 0) and _pull(iterator, log, 1)
            if limit is not None:
                flight[3] = limit - 1
            if not more:
                log.append(("close", n))
                _close_result(result, log)
                flights.remove(flight)
    return log


_SEQ_CONFIG = {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}
_APP_ETAG = (("ETag", '"app-v1"'),)

SEQUENCES: Dict[str, Tuple[Dict[str, Any], List[Step]]] = {
    "abandoned_streams_then_full": (_SEQ_CONFIG, [
        Step(_quick("stream-abandoned-after-2"), limit=2),
        Step(_quick("stream-full")),
        Step(_quick("stream-abandoned-at-once"), limit=0),
        Step(_quick("buffered-gzip", kind="list", size=1400)),
        Step(_quick("stream-abandoned-random", flavor="bytes"), limit=3),
        Step(_quick("stream-small", size=700)),
        Step(_quick("stream-full-again", flavor="bytes")),
    ]),
    "level_changes": (_SEQ_CONFIG, [
        Step(_quick("stream-l9"), update=(("GZIP_LEVEL", 9),)),
        Step(_quick("stream-l1-abandoned"), limit=1, update=(("GZIP_LEVEL", 1),)),
        Step(_quick("stream-l1")),
        Step(_quick("buffered-l6", kind="list", size=1400), update=(("GZIP_LEVEL", 6),)),
        Step(_quick("stream-l6-abandoned"), limit=2),
        Step(_quick("stream-l9-again"), update=(("GZIP_LEVEL", 9),)),
        Step(_quick("stream-bad-level"), update=(("GZIP_LEVEL", 10),)),
        Step(_quick("stream-l2"), update=(("GZIP_LEVEL", 2),)),
    ]),
    "failures_then_full": (_SEQ_CONFIG, [
        Step(_quick("stream-fails-midway", kind="err-gen-mid")),
        Step(_quick("stream-after-failure")),
        Step(_quick("exc-info-after-headers", kind="err-exc-info-late")),
        Step(_quick("stream-after-exc-info")),
        Step(_quick("close-raises", kind="err-close-raises")),
        Step(_quick("yields-str", kind="err-yield-str")),
        Step(_quick("stream-last")),
    ]),
    "head_304_preflight_between": (_SEQ_CONFIG, [
        Step(_quick("head-stream", method="HEAD")),
        Step(_quick("stream-304", extra=_APP_ETAG, inm='"app-v1"')),
        Step(_quick("stream")),
        Step(_quick("preflight", method="OPTIONS", acrm="PUT")),
        Step(_quick("buffered-304", kind="list", size=1400, inm='"{d}-gzip"')),
        Step(_quick("stream-sse", content_type="text/event-stream")),
        Step(_quick("stream-end")),
    ]),
    "runtime_toggles": (_SEQ_CONFIG, [
        Step(_quick("stream-gzip")),
        Step(_quick("stream-gzip-off"), update=(("GZIP", False),)),
        Step(_quick("small-min0", kind="list", size=50), update=(("GZIP", True), ("GZIP_MIN_SIZE", 0))),
        Step(_quick("list-types", kind="list", size=1400, content_type="image/png", flavor="bytes"), update=(("GZIP_TYPES", ["image/png"]),)),
        Step(_quick("cors-star", kind="list", size=1400), update=(("CORS_ORIGINS", "*"),)),
        Step(_quick("cors-regex", kind="list", size=1400, origin="https://x.regex.example"), update=(("CORS_ORIGINS", None), ("CORS_ORIGIN_REGEX", _REGEX))),
        Step(_quick("etag-off", kind="list", size=1400, inm='"{d}-gzip"'), update=(("ETAG", False),)),
        Step(_quick("buffer-small", kind="gen-cl", size=1400), update=(("BUFFER_MAX_SIZE", 100),)),
    ]),
}

INTERLEAVED: Dict[str, Tuple[Dict[str, Any], List[Step]]] = {
    "three_gzip_streams": (_SEQ_CONFIG, [
        Step(_quick("a-text")),
        Step(_quick("b-random", flavor="bytes")),
        Step(_quick("c-text-small", size=3000)),
    ]),
    "abandoned_among_full": (_SEQ_CONFIG, [
        Step(_quick("a-abandoned-after-1"), limit=1),
        Step(_quick("b-full")),
        Step(_quick("c-abandoned-after-3", flavor="bytes"), limit=3),
        Step(_quick("d-full", size=9000)),
    ]),
    "mixed_levels_and_kinds": ({"GZIP": True, "GZIP_LEVEL": 9}, [
        Step(_quick("a-stream")),
        Step(_quick("b-buffered", kind="list", size=1400)),
        Step(_quick("c-head", method="HEAD")),
        Step(_quick("d-fails", kind="err-gen-mid")),
        Step(_quick("e-file", kind="file", size=20000)),
        Step(_quick("f-stream", flavor="bytes")),
    ]),
}


def _sequence_failure(name: str, steps: Sequence[Step], python: List[Any], compiled: List[Any]) -> str:
    described = "\n".join(step.case.describe() + f"\n  limit={step.limit} update={step.update!r}" for step in steps)
    return f"parity mismatch in sequence {name}\n{described}\n" + _diff(_log_lines(python, body=False), _log_lines(compiled, body=False))


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_sequence(name: str, compiled_core: Any) -> None:
    config, steps = SEQUENCES[name]
    python = run_sequence(_core_py, config, steps)
    compiled = run_sequence(compiled_core, config, steps)
    if python != compiled:
        pytest.fail(_escaped(_sequence_failure(name, steps, python, compiled)), pytrace=False)


@pytest.mark.parametrize("name", list(INTERLEAVED))
def test_interleaved(name: str, compiled_core: Any) -> None:
    config, steps = INTERLEAVED[name]
    python = run_interleaved(_core_py, config, steps)
    compiled = run_interleaved(compiled_core, config, steps)
    if python != compiled:
        pytest.fail(_escaped(_sequence_failure(name, steps, python, compiled)), pytrace=False)


@pytest.mark.parametrize("limit", [0, 1, 2, 4])
@pytest.mark.parametrize("kind", ["gen", "write-gen", "gen-lazy", "file"])
def test_client_goes_away(kind: str, limit: int, compiled_core: Any) -> None:
    """A server that stops reading after ``limit`` chunks and closes the iterable."""
    case = _quick(f"goes-away-{kind}-{limit}", kind=kind)
    case.config = dict(_SEQ_CONFIG)
    python = run(_core_py, case, limit)
    compiled = run(compiled_core, case, limit)
    if python != compiled:
        pytest.fail(_escaped(_mismatch(case, python, compiled)), pytrace=False)


# --- named guards for divergences this file has found ---------------------------------------


def core_request(
    method: Optional[str],
    origin: Optional[str] = None,
    accept_encoding: Optional[str] = None,
    if_none_match: Optional[str] = None,
    if_modified_since: Optional[str] = None,
) -> Tuple[Optional[str], ...]:
    """The request tuple the cores take (``_shared.Request``), in its order."""
    return (method, origin, accept_encoding, if_none_match, if_modified_since)


def _request_of(method: str, request: Tuple[Tuple[str, Optional[str]], ...]) -> Tuple[Optional[str], ...]:
    values = dict(request)
    return core_request(
        method,
        values.get("HTTP_ORIGIN"),
        values.get("HTTP_ACCEPT_ENCODING"),
        values.get("HTTP_IF_NONE_MATCH"),
        values.get("HTTP_IF_MODIFIED_SINCE"),
    )


@pytest.mark.parametrize(
    "name",
    [
        "Access-Control-Allow-Origin\u00e9",
        "access-control-\u00e9",
        "Access-Control-Allow-\u212aey",  # KELVIN SIGN lower-cases to an ASCII k
        "ACCESS-CONTROL-EXPOSE-HEADERS\udcff",
    ],
    ids=["latin1_suffix", "bare_prefix_latin1", "kelvin_suffix", "surrogate_suffix"],
)
@pytest.mark.parametrize("entry", ["respond", "respond_304", "respond_stream", "respond_stream_304"])
@pytest.mark.parametrize("cors", ["*", "list"])
def test_app_access_control_header_with_non_ascii_name(name: str, entry: str, cors: str, compiled_core: Any) -> None:
    """An app header named ``Access-Control-`` + non-ASCII still starts with
    ``access-control-`` once lower-cased, so the reference counts it as the app's own CORS
    and adds none; a classifier that sends every non-ASCII name to "other" adds them."""
    settings = _settings({"GZIP": True, "CORS_ORIGINS": "*" if cors == "*" else ["https://a.example"]})
    request = core_request("GET", "https://a.example", "gzip", "*" if entry.endswith("_304") else None)
    headers = [("Content-Type", "text/html"), ("ETag", '"v1"'), (name, "x")]
    if entry.startswith("respond_stream"):
        args: Tuple[Any, ...] = (settings, request, "200 OK", headers, True)
    else:
        args = (settings, request, "200 OK", headers, b"<p>hello</p>" * 100)
    function = entry.replace("_304", "")
    python = _guarded_outcome(getattr(_core_py, function), args)
    compiled = _guarded_outcome(getattr(compiled_core, function), args)
    if python != compiled:
        pytest.fail(_escaped(f"{function} with app header {name!r}:\n" + _diff(_pretty(python).splitlines(), _pretty(compiled).splitlines())), pytrace=False)


# --- direct parity of the core helpers -----------------------------------------------------


def _outcome(function: Callable[..., Any], *args: Any) -> Tuple[Any, ...]:
    """What a call gave: the value (types visible), or the exception's type and message."""
    try:
        value = function(*args)
    except Exception as exc:
        return ("raised", *_exc(exc))
    return ("returned", _norm(value))


def _guarded_outcome(function: Callable[..., Any], args: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """``_outcome`` on private copies of the list arguments, noting whether the call
    changed them (a core must not touch the app's header list)."""
    fresh = [list(arg) if type(arg) is list else arg for arg in args]
    before = [_norm(arg) if type(arg) is list else None for arg in fresh]
    outcome = _outcome(function, *fresh)
    after = [_norm(arg) if type(arg) is list else None for arg in fresh]
    return outcome + ("inputs kept" if before == after else "inputs changed",)


def _check_calls(compiled_core: Any, name: str, calls: Iterable[Tuple[str, Tuple[Any, ...]]]) -> None:
    """Call ``name`` of both cores with each argument tuple; report every mismatch at once."""
    mismatches = []
    count = 0
    for label, args in calls:
        count += 1
        python = _guarded_outcome(getattr(_core_py, name), args)
        compiled = _guarded_outcome(getattr(compiled_core, name), args)
        if python != compiled:
            mismatches.append(
                f"{name}(...) [{label}]\n  arguments:\n{_pretty(args, '    ')}\n"
                + _diff(_pretty(python).splitlines(), _pretty(compiled).splitlines())
            )
    assert count > 0
    if mismatches:
        pytest.fail(_escaped(f"{len(mismatches)} of {count} calls of {name} differ:\n" + "\n".join(mismatches[:60])), pytrace=False)


_AE_EXTRA = [
    None,
    "gzip;q=0.5, gzip;q=0, x-gzip;q=0",
    "gzip;q=1.0000",
    "gzip;q=1.",
    "gzip;q=0.999",
    "gzip;q=-1",
    "gzip;q=+1",
    "gzip;q=2",
    "gzip;q=0.5 ",
    "gzip,",
    ",gzip",
    "gzip;",
    "gzip;=",
    "gzip;q",
    "GzIp;Q=1",
    "X-GZIP",
    "*;q=1.000",
    "*, gzip;q=0",
    "identity;q=0",
    "gzip\x7f",
    "g\u0130zip",
    "\u212a",
    "zstd;q=0.5, br;q=0.5, gzip;q=0.5",
    "br;q=0, br;q=0.7",
    "identity;q=0.9, br;q=0.9",
    "identity;q=0.91, br;q=0.9",
    "*;q=0.2, gzip;q=0.1",
    "zstd;q=0.000, *",
    "Zstd, bR",
    "zstdx, brr, x-br, x-zstd",
]

#: Offered orders: every permutation of the codings, and shorter lists.
_OFFERS = [tuple(p) for n in (1, 2, 3) for p in itertools.permutations(("zstd", "br", "gzip"), n)]


def test_negotiate(compiled_core: Any) -> None:
    values = [value for _, value in ACCEPT_ENCODINGS + CODING_ACCEPT_ENCODINGS] + _AE_EXTRA
    _check_calls(
        compiled_core, "negotiate", ((f"{repr(value)[:40]} {offer}", (value, offer)) for value in values for offer in _OFFERS)
    )


def test_is_compressible(compiled_core: Any) -> None:
    extra_sets = [frozenset(), frozenset({"image/png"}), frozenset({"text/event-stream", "application/octet-stream"})]
    values = [value for _, value in CONTENT_TYPES] + ["IMAGE/SVG+XML", "application/json;", "text/html ;", "\ttext/css", "a/b+json", "a/+json+json", "x/yy+xml"]
    _check_calls(
        compiled_core,
        "is_compressible",
        ((f"{value!r:.40}/{sorted(extra)}", (value, extra)) for value, extra in itertools.product(values, extra_sets)),
    )


def test_parse_if_none_match(compiled_core: Any) -> None:
    digest = _md5(b"parity")
    values = [_tag(value, b"parity") for _, value in INM if value is not None] + [
        "W/",
        'W/"',
        '"a",',
        ', "a"',
        '"a" , "b" ,',
        "\t*\t",
        "**",
        '*, "a"',
        '"a"\t,\t"b"',
        '"a\x7fb"',
        '"a b"',
        '"\x80"',
        f'W/"{digest}-gzip", W/"{digest}"',
    ]
    _check_calls(compiled_core, "parse_if_none_match", ((repr(value)[:40], (value,)) for value in values))


def _settings(config: Dict[str, Any]) -> Any:
    return build_settings(initial_values(None, config))


def test_origin_allowed(compiled_core: Any) -> None:
    configs = [(label, _settings(config)) for label, config in CORS_CONFIGS]
    _check_calls(
        compiled_core,
        "origin_allowed",
        ((f"{label}/{origin_label}", (settings, origin)) for (label, settings), (origin_label, origin) in itertools.product(configs, ORIGINS)),
    )


_HASH_SIZES = [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 2047, 2048, 2049, 4096, 65536, 140000, 1 << 20]


def test_md5_hex(compiled_core: Any) -> None:
    _check_calls(
        compiled_core,
        "md5_hex",
        ((f"{flavor}/{size}", (make_body(flavor, size),)) for flavor, size in itertools.product(["text", "bytes"], _HASH_SIZES)),
    )


def test_gzip_compress(compiled_core: Any) -> None:
    sizes = [0, 1, 100, 499, 500, 501, 1400, 65536, 140000]
    _check_calls(
        compiled_core,
        "gzip_compress",
        (
            (f"{flavor}/{size}/level {level}", (make_body(flavor, size), level))
            for flavor, size, level in itertools.product(["text", "bytes"], sizes, range(1, 10))
        ),
    )


def _stream_log(core: Any, level: int, script: Sequence[Any]) -> List[Any]:
    """Drive a GzipStream with a script of chunks and "finish"/"close" steps."""
    log: List[Any] = []
    try:
        stream = core.GzipStream(level)
    except Exception as exc:
        return [("raised", "init", *_exc(exc))]
    for step in script:
        try:
            if step == "finish":
                log.append(("finish", _norm(stream.finish())))
            elif step == "close":
                log.append(("close", _norm(stream.close())))
            else:
                log.append(("compress", _norm(stream.compress(step))))
        except Exception as exc:
            log.append(("raised", repr(step)[:20], *_exc(exc)))
    return log


_STREAM_SCRIPTS: List[Tuple[str, List[Any]]] = [
    ("empty_member", ["finish"]),
    ("one_chunk", [make_body("text", 1400), "finish"]),
    ("empty_chunks", [b"", make_body("text", 300), b"", b"", make_body("text", 5), "finish"]),
    ("many_small", [bytes([i]) * (i % 7) for i in range(60)] + ["finish"]),
    ("big_random", [make_body("bytes", 140000), make_body("bytes", 1), "finish"]),
    ("big_text", [make_body("text", 140000), make_body("text", 65536), "finish"]),
    ("compress_after_finish", [b"abc", "finish", b"more", "finish"]),
    ("empty_after_finish", [b"abc", "finish", b""]),
    ("close_then_compress", [b"abc", "close", b"more", "finish"]),
    ("close_twice", [b"abc", "close", "close"]),
    ("close_after_finish", [b"abc", "finish", "close", b""]),
    ("only_empty", [b"", b"", "finish"]),
]


@pytest.mark.parametrize("level", [1, 6, 9])
@pytest.mark.parametrize("script", [script for _, script in _STREAM_SCRIPTS], ids=[label for label, _ in _STREAM_SCRIPTS])
def test_gzip_stream(level: int, script: List[Any], compiled_core: Any) -> None:
    python = _stream_log(_core_py, level, script)
    compiled = _stream_log(compiled_core, level, script)
    if python != compiled:
        pytest.fail(
            f"GzipStream({level}) differs:\n" + _diff([_short(repr(e)) for e in python], [_short(repr(e)) for e in compiled]),
            pytrace=False,
        )


def _streams_log(core: Any, script: Sequence[Tuple[int, Any]]) -> List[Any]:
    """Several GzipStreams alive at once: ``(n, level)`` opens stream n, ``(n, chunk)``,
    ``(n, "finish")`` and ``(n, "close")`` act on it."""
    log: List[Any] = []
    streams: Dict[int, Any] = {}
    for n, step in script:
        try:
            if isinstance(step, int):
                streams[n] = core.GzipStream(step)
                log.append(("open", n, step))
            elif step == "finish":
                log.append(("finish", n, _norm(streams[n].finish())))
            elif step == "close":
                log.append(("close", n, _norm(streams[n].close())))
            else:
                log.append(("compress", n, _norm(streams[n].compress(step))))
        except Exception as exc:
            log.append(("raised", n, *_exc(exc)))
    return log


def test_gzip_streams_interleaved(compiled_core: Any) -> None:
    text, noise = make_body("text", 20000), make_body("bytes", 20000)
    script: List[Tuple[int, Any]] = [
        (0, 6), (1, 6), (0, text[:5000]), (1, noise[:5000]), (2, 9), (2, text),
        (0, "close"), (3, 6), (1, noise[5000:]), (3, text[:10]), (1, "finish"),
        (4, 6), (4, text), (2, "finish"), (3, "finish"), (4, "finish"), (5, 1), (5, b""), (5, "finish"),
    ]
    python = _streams_log(_core_py, script)
    compiled = _streams_log(compiled_core, script)
    if python != compiled:
        pytest.fail("GzipStreams interleaved differ:\n" + _diff([_short(repr(e)) for e in python], [_short(repr(e)) for e in compiled]), pytrace=False)


@pytest.mark.parametrize("name", ["GzipStream", "gzip_compress"])
def test_level_out_of_range(name: str, compiled_core: Any) -> None:
    """Levels the config refuses (it allows 1 to 9) never reach a core through the
    middleware; called directly, both twins should still do the same thing."""
    args = (lambda level: (level,)) if name == "GzipStream" else (lambda level: (b"data" * 8, level))
    _check_calls(compiled_core, name, ((f"level {level}", args(level)) for level in [0, 10, -1, -2]))


_BUFFER_NAMES = [
    "Content-Length", "content-length", "CONTENT-LENGTH", "Content-Type", "content-type", "X-Other",
    "Content-Lengt\u0127", "Content-Typ\u00e9", "\u212aeep", "Content-Length\udcff", "\udcffContent-Type", "X-\ud800",
]
_BUFFER_LENGTHS = [
    "0", "1", "99", "100", "101", "4194304", "4194305", "18446744073709551616", "9" * 18, "9" * 19, "1" * 5000,
    " 100", "100 ", "\t100\t", "0100", "+100", "-1", "1e3", "1_000", "0x10", "", " ", "abc",
    "\uff11\uff10\uff10", "\u0661\u0660\u0660", "\u00b2", "100\r\n", "1 00", "\x00", "1\udcff", "\udcff",
]
_BUFFER_TYPES = [
    "text/event-stream", "Text/Event-Stream; charset=utf-8", " text/event-stream\t;", "text/event-streams", "text/html",
    "text/event-stream\u00e9", "", "\u212aext/event-stream", "text/event-stream\udcff",
]


def _buffer_header_lists() -> Iterator[Tuple[str, List[Any]]]:
    """Header lists for ``buffer_length``: every Content-Length value alone, with a media
    type before and after, repeated; names in every case and non-ASCII look-alikes; and
    lists that break PEP 3333 (a core must raise as the other does)."""
    for value in _BUFFER_LENGTHS:
        yield f"cl={value!r:.24}", [("Content-Length", value)]
        yield f"html+cl={value!r:.24}", [("Content-Type", "text/html"), ("Content-Length", value)]
        yield f"cl={value!r:.24}+sse", [("Content-Length", value), ("Content-Type", "text/event-stream")]
        yield f"cl={value!r:.24}+cl=5", [("Content-Length", value), ("Content-Length", "5")]
        yield f"cl=5+cl={value!r:.24}", [("content-length", "5"), ("Content-Length", value)]
    for name, value in itertools.product(_BUFFER_NAMES, ["10", "text/event-stream"]):
        yield f"{name!r}={value}", [(name, value), ("X-After", "1")]
    for content_type in _BUFFER_TYPES:
        yield f"type={content_type!r}", [("Content-Type", content_type), ("Content-Length", "10")]
        yield f"type={content_type!r} second", [("Content-Type", "text/html"), ("Content-Type", content_type), ("Content-Length", "10")]
        yield f"type={content_type!r} first", [("Content-Type", content_type), ("Content-Type", "text/html"), ("Content-Length", "10")]
    yield "empty", []
    yield "no length", [("Content-Type", "text/html"), ("Vary", "Origin")]
    yield "many headers", [(f"X-H{i}", "v") for i in range(200)] + [("Content-Length", "42")]
    bad: List[Any] = [
        ("Content-Length", 10), ("Content-Length", None), (b"Content-Length", "10"), ("Content-Type", b"text/html"),
        ["Content-Length", "10"], ("Content-Length", "10", "x"), ("Content-Length",), "Content-Length: 10", None, 5,
        ("Content-Length", type("Sub", (str,), {})("10")), (type("Sub", (str,), {})("Content-Length"), "10"),
    ]
    for header in bad:
        yield f"bad {header!r:.30}", [header]
        yield f"length then bad {header!r:.30}", [("Content-Length", "10"), header]


def test_buffer_length(compiled_core: Any) -> None:
    limits = [0, 1, 5, 9, 10, 11, 99, 100, 101, 4194304, 2**62]

    def calls() -> Iterable[Tuple[str, Tuple[Any, ...]]]:
        for (label, headers), limit in itertools.product(_buffer_header_lists(), limits):
            yield f"{label}/max {limit}", (headers, limit)

    _check_calls(compiled_core, "buffer_length", calls())


def test_buffer_length_reference() -> None:
    """The pure twin's answers, by SPEC: the first Content-Length's digits when at most
    ``buffer_max``, else -1; never for ``text/event-stream``."""
    assert _core_py.buffer_length([("Content-Length", "100")], 100) == 100
    assert _core_py.buffer_length([("Content-Length", "101")], 100) == -1
    assert _core_py.buffer_length([("content-length", " 7 "), ("Content-Length", "5")], 100) == 7
    assert _core_py.buffer_length([("Content-Length", "x"), ("Content-Length", "5")], 100) == -1
    assert _core_py.buffer_length([("Content-Type", "Text/Event-Stream; a=b"), ("Content-Length", "5")], 100) == -1
    assert _core_py.buffer_length([("Content-Type", "text/html"), ("Content-Type", "text/event-stream"), ("Content-Length", "5")], 100) == 5
    assert _core_py.buffer_length([("Content-Length", "\u0661")], 100) == -1
    assert _core_py.buffer_length([("Content-Length", "9" * 19)], 2**63) == -1
    assert _core_py.buffer_length([], 100) == -1
    with pytest.raises(TypeError, match="is not a \\(name, value\\) pair of str"):
        _core_py.buffer_length([("Content-Length", 5)], 100)


def _compress_then_finish(core: Any, chunk: Any) -> Any:
    stream = core.GzipStream(6)
    return stream.compress(chunk), stream.finish()


_OUTSIDE_THE_CONTRACT: List[Tuple[str, Callable[[Any], Any]]] = [
    # The middleware never makes these calls (config validation, PEP 3333 and the
    # plumbing's bytes checks stand in front); both twins should still agree.
    ("respond(request=list)", lambda core: core.respond(_settings({"GZIP": True}), ["GET", None, "gzip", None, None], "200 OK", [("Content-Type", "text/html")], b"x" * 600)),
    ("respond(request values of a str subclass)", lambda core: core.respond(_settings({"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}), tuple(_StrSubclass(v) for v in ("GET", "https://a.example", "gzip", "*", LM)), "200 OK", [("Content-Type", "text/html")], b"x" * 600)),
    ("respond(request of 4)", lambda core: core.respond(_settings({}), ("GET", None, None, None), "200 OK", [("Content-Type", "text/html")], b"x")),
    ("preflight(origin=None)", lambda core: core.preflight(_settings({"CORS_ORIGINS": ["https://a.example"]}), None, None)),
    ("preflight(private_network=bytes)", lambda core: core.preflight(_settings({"CORS_ORIGINS": "*", "CORS_ALLOW_PRIVATE_NETWORK": True}), "https://a.example", b"true")),
    ("respond(body=bytearray)", lambda core: core.respond(_settings({}), core_request("GET"), "200 OK", [("Content-Type", "text/html")], bytearray(b"x" * 600))),
    ("respond(headers=tuple)", lambda core: core.respond(_settings({}), core_request("GET"), "200 OK", (("Content-Type", "text/html"),), b"x")),
    ("respond_stream(may_compress=None)", lambda core: core.respond_stream(_settings({"GZIP": True}), core_request("GET", None, "gzip"), "200 OK", [("Content-Type", "text/html")], None)),
    ("buffer_length(headers=tuple)", lambda core: core.buffer_length((("Content-Length", "10"),), 100)),
    ("buffer_length(buffer_max=True)", lambda core: core.buffer_length([("Content-Length", "1")], True)),
    ("is_compressible(extra_types=set)", lambda core: core.is_compressible("image/png", {"image/png"})),
    ("is_compressible(None, frozenset())", lambda core: core.is_compressible(None, frozenset())),
    ("negotiate(str subclass)", lambda core: core.negotiate(_StrSubclass("gzip"), ("gzip",))),
    ("negotiate(bytes)", lambda core: core.negotiate(b"gzip", ("gzip",))),
    ("negotiate(codings=list)", lambda core: core.negotiate("br, gzip", ["gzip", "br"])),
    ("negotiate(codings=())", lambda core: core.negotiate("*", ())),
    ("parse_if_none_match(None)", lambda core: core.parse_if_none_match(None)),
    ("parse_if_none_match(str subclass)", lambda core: core.parse_if_none_match(_StrSubclass('"a"'))),
    ("origin_allowed(bytes)", lambda core: core.origin_allowed(_settings({"CORS_ORIGINS": ["https://a.example"]}), b"https://a.example")),
    ("origin_allowed(str subclass)", lambda core: core.origin_allowed(_settings({"CORS_ORIGINS": ["https://a.example"]}), _StrSubclass("https://a.example"))),
    ("md5_hex(str)", lambda core: core.md5_hex("abc")),
    ("md5_hex(bytearray)", lambda core: core.md5_hex(bytearray(b"abc"))),
    ("md5_hex(memoryview)", lambda core: core.md5_hex(memoryview(b"abc"))),
    ("gzip_compress(level=6.0)", lambda core: core.gzip_compress(b"abc", 6.0)),
    ("gzip_compress(level=True)", lambda core: core.gzip_compress(b"abc", True)),
    ("gzip_compress(bytearray)", lambda core: core.gzip_compress(bytearray(b"abc"), 6)),
    ("GzipStream(6.0)", lambda core: type(core.GzipStream(6.0)).__name__),
    ("GzipStream.compress(None)", lambda core: _compress_then_finish(core, None)),
    ("GzipStream.compress('')", lambda core: _compress_then_finish(core, "")),
    ("GzipStream.compress('abc')", lambda core: _compress_then_finish(core, "abc")),
    ("GzipStream.compress(bytearray)", lambda core: _compress_then_finish(core, bytearray(b"abc"))),
    ("GzipStream.compress(memoryview)", lambda core: _compress_then_finish(core, memoryview(b"abc"))),
]


# --- byte-pair header lists (the ASGI edge) -------------------------------------------------------


class _Bytes(bytes):
    """A bytes subclass: the twins take the reference's own path for it."""


_RAW_NAMES = [*RAW_REQUEST_NAMES, b"host", b"Origin", b"origin ", b"accept-encodin", b"", b"x-\xe9", _Bytes(b"origin"), bytearray(b"origin"), "origin", 7]
_RAW_VALUES = [b"", b"https://a.example", b"gzip, br", b"\xe9\xff", b" \t x ", _Bytes(b"zstd"), bytearray(b"br"), "str", None]


def _raw_lists() -> Iterable[Tuple[str, Tuple[Any, ...]]]:
    rng = random.Random(17)
    yield "empty", ([],)
    yield "tuple", (((b"origin", b"o"),),)
    yield "list pair", ([[b"origin", b"o"]],)
    yield "three-tuple", ([(b"origin", b"o", b"x")],)
    yield "not a pair", ([b"origin"],)
    for name, value in itertools.product(_RAW_NAMES, _RAW_VALUES):
        yield f"{name!r}={value!r}", ([(b"host", b"h"), (name, value)],)
    for n in range(300):
        pairs = [(rng.choice(_RAW_NAMES[:12]), rng.choice(_RAW_VALUES[:5])) for _ in range(rng.randrange(8))]
        yield f"random {n}", (pairs,)


def test_raw_request_fields(compiled_core: Any) -> None:
    _check_calls(compiled_core, "raw_request_fields", _raw_lists())


def test_decode_pairs(compiled_core: Any) -> None:
    _check_calls(compiled_core, "decode_pairs", _raw_lists())


_STR_NAMES = ["Content-Type", "content-type", "ETag", "Vary", "X-\xc0\xdf", "Access-Control-\u212a", "\u0130", "", "ÀB"]
_STR_VALUES = ["", "text/html; charset=utf-8", '"d41d8cd98f00b204e9800998ecf8427e-zstd"', "\xe9\xff", "\u0100", " \t "]


def test_encode_pairs(compiled_core: Any) -> None:
    def calls() -> Iterable[Tuple[str, Tuple[Any, ...]]]:
        for name, value in itertools.product(_STR_NAMES, _STR_VALUES):
            yield f"{name!r}={value!r}", ([("Content-Length", "3"), (name, value)],)
        yield "tuple of pairs", ((("Vary", "Origin"), ("ETag", '"x"')),)
        yield "empty", ([],)

    _check_calls(compiled_core, "encode_pairs", calls())


def test_byte_pair_reference() -> None:
    """The pure twins, by SPEC's ASGI section: latin-1 both ways, a request header
    sent twice joined with ", " as a WSGI server joins it, names lower-cased on the way out."""
    raw = [(b"host", b"h"), (b"origin", b"https://a"), (b"accept-encoding", b"gzip"), (b"accept-encoding", b"br\xe9"), (b"access-control-request-method", b"PUT")]
    assert _core_py.raw_request_fields(raw) == ("https://a", "gzip, br\xe9", None, None, "PUT", None)
    assert _core_py.raw_request_fields([(b"Origin", b"x")]) == (None,) * 6  # ASGI names are lower case
    assert _core_py.decode_pairs([(b"ETag", b'"\xff"')]) == [("ETag", '"\xff"')]
    assert _core_py.encode_pairs([("Content-Encoding", "zstd"), ("X-\xc0", "\xe9")]) == [(b"content-encoding", b"zstd"), (b"x-\xe0", b"\xe9")]
    with pytest.raises(UnicodeEncodeError):
        _core_py.encode_pairs([("X", "\u0100")])


def test_helpers_outside_the_contract(compiled_core: Any) -> None:
    """Arguments no middleware call passes; a divergence here is worth knowing, but only
    matters to code that calls the cores directly."""
    mismatches = []
    for label, call in _OUTSIDE_THE_CONTRACT:
        python = _outcome(call, _core_py)
        compiled = _outcome(call, compiled_core)
        if python != compiled:
            mismatches.append(f"{label}\n  python:   {_pretty(python)}\n  compiled: {_pretty(compiled)}")
    if mismatches:
        pytest.fail(_escaped(f"{len(mismatches)} of {len(_OUTSIDE_THE_CONTRACT)} calls differ:\n" + "\n".join(mismatches)), pytrace=False)


def test_preflight(compiled_core: Any) -> None:
    configs = [(label, _settings(config)) for label, config in CORS_CONFIGS if config.get("CORS_ORIGINS") or config.get("CORS_ORIGIN_REGEX")]

    def calls() -> Iterable[Tuple[str, Tuple[Any, ...]]]:
        for (label, settings), origin, pna in itertools.product(configs, ORIGINS, PNA):
            yield f"{label}/{origin[0]}/{pna[0]}", (settings, origin[1], pna[1])

    _check_calls(compiled_core, "preflight", calls())


def _direct_rows(seed: int) -> Iterable[Tuple[str, Any, Tuple[Optional[str], ...], Any, List[Any], bytes]]:
    configs = GZIP_CONFIGS + [CORS_CONFIGS[3], CORS_CONFIGS[7], KEY_CONFIGS[-3]]
    methods = [("GET", "GET"), ("HEAD", "HEAD"), ("POST", "POST"), ("get", "get")]
    inms = INM[:12]
    axes: List[Axis] = [configs, methods, ACCEPT_ENCODINGS, CONTENT_TYPES, EXTRAS, ODD_STATUSES, SIZES, inms, IMS[:6], ORIGINS[:10]]
    for row in pairwise(axes, seed=seed):
        cfg, method, ae, ct, extra, status, size, inm, ims, origin = (axis[index] for axis, index in zip(axes, row))
        body = make_body("text", _size(size[1], cfg[1]))
        headers = [(name, value.replace("{len}", str(len(body)))) for name, value in _app_headers(ct[1], extra[1])]
        request = _request_of(method[1], _request(method[1], ae[1], origin[1], _tag(inm[1], body), ims[1]))
        label = "/".join(part[0] for part in (cfg, method, ae, ct, extra, status, size, inm, ims, origin))
        yield label, _settings(cfg[1]), request, status[1], headers, body


def test_respond_direct(compiled_core: Any) -> None:
    """respond() of both cores with the same arguments (pairwise over config, method,
    request headers, media type, app extras, status and size)."""

    def calls() -> Iterable[Tuple[str, Tuple[Any, ...]]]:
        for label, settings, request, status, headers, body in _direct_rows(seed=11):
            yield label, (settings, request, status, headers, body)

    _check_calls(compiled_core, "respond", calls())


def test_respond_stream_direct(compiled_core: Any) -> None:
    def calls() -> Iterable[Tuple[str, Tuple[Any, ...]]]:
        for n, (label, settings, request, status, headers, _body) in enumerate(_direct_rows(seed=12)):
            yield label, (settings, request, status, headers, n % 5 != 0)

    _check_calls(compiled_core, "respond_stream", calls())


# --- Hypothesis: random hostile requests, responses and configs -----------------------------

try:
    from hypothesis import HealthCheck, given, settings as h_settings, strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    st = None

if st is not None:
    HOSTILE_CHARS = list(' \t,;=/*"Ww-qQ.0159gzipxGZIPdentyb:+') + [
        "\r",
        "\n",
        "\x00",
        "\x01",
        "\x7f",
        "\x80",
        "\xa0",
        "\xe9",
        "\xff",
        "\u0130",
        "\u212a",
        "\u2603",
        "\udcff",
        "\U0001f600",
    ]
    hostile_text = st.text(alphabet=st.sampled_from(HOSTILE_CHARS), max_size=24)

    def soup(tokens: List[str]) -> Any:
        return st.lists(st.sampled_from(tokens) | hostile_text, max_size=8).map("".join)

    AE_TOKENS = ["gzip", "x-gzip", "GZIP", "*", "identity", "br", "BR", "zstd", "Zstd", "deflate", ";q=0", ";q=1", ";q=0.5", ";q=0.001", ";q=1.000", ";q=junk", ", ", ",", " ", "\t", ";", "="]
    ORIGIN_TOKENS = ["https://", "http://", "a.example", "b.example", ":8443", ":443", "/", "null", ".regex.example", "sub", " ", ",", "\r\n", "A", "\u00e4", "*"]
    DATE_TOKENS = [LM, "Mon, 07 Nov 1994 08:49:37 GMT", "Saturday, 05-Nov-94 08:49:37 GMT", "Mon Nov  7 08:49:37 1994", " ", "GMT", "\u00f6"]
    TYPE_TOKENS = ["text", "application", "image", "/", "html", "json", "+json", "+xml", "svg+xml", "event-stream", "png", ";", " charset=utf-8", " ", "\t", "*", "TEXT"]
    HEADER_NAMES = ["Content-Type", "content-type", "Vary", "VARY", "ETag", "etag", "Content-Encoding", "Cache-Control", "Last-Modified", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "access-control-\u00e9", "Access-Control-\u212a", "ETag\u00e9", "Vary\u0130", "Content-Length", "Content-Language", "Set-Cookie", "X-Other"]
    VALUE_TOKENS = ["Cookie", "Origin", "accept-encoding", "*", ", ", "gzip", "br", "identity", "no-transform", "no-store", "max-age=0", '"app-v1"', 'W/"app-v1"', LM, "text/html", "application/json", "12", "https://a.example"]
    GOOD_STATUSES = [value for _, value in ODD_STATUSES]
    H_KINDS = ["list", "tuple", "chunks", "gen-cl", "gen", "gen-lazy", "write", "write-gen", "file", "closing-list", "iter-list", "iter-tuple", "err-gen-mid", "err-exc-info"]

    @st.composite
    def configs(draw: Any) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        options = {
            "GZIP": st.booleans(),
            "GZIP_MIN_SIZE": st.sampled_from([0, 1, 10, 100, 500, 1000]),
            "GZIP_LEVEL": st.integers(1, 9),
            "GZIP_TYPES": st.sampled_from([None, ["image/png"], "application/octet-stream, text/event-stream"]),
            "ETAG": st.booleans(),
            "CORS_ORIGINS": st.sampled_from([None, "*", list(_LIST), "https://a.example,null", ("null",), []]),
            "CORS_ORIGIN_REGEX": st.sampled_from([None, _REGEX, r".*\.example"]),
            "CORS_ALLOW_CREDENTIALS": st.booleans(),
            "CORS_EXPOSE_HEADERS": st.sampled_from([None, "X-A", ["X-A", "X-B"]]),
            "CORS_MAX_AGE": st.sampled_from([None, 0, 600]),
            "CORS_ALLOW_PRIVATE_NETWORK": st.booleans(),
            "BUFFER_MAX_SIZE": st.sampled_from([0, 16, 1000, 4 * 1024 * 1024]),
        }
        for key, strategy in options.items():
            if draw(st.booleans()):
                config[key] = draw(strategy)
        if config.get("CORS_ORIGINS") == "*" and config.get("CORS_ALLOW_CREDENTIALS"):
            config["CORS_ALLOW_CREDENTIALS"] = False
        return config

    @st.composite
    def cases(draw: Any) -> Case:
        config = draw(configs())
        flavor = draw(st.sampled_from(["text", "bytes"]))
        size = draw(st.sampled_from([0, 1, 9, 10, 11, 99, 100, 101, 499, 500, 501, 999, 1000, 1001, 1400, 5000]))
        body = make_body(flavor, size)
        digest = _md5(body)
        inm_tokens = [f'"{digest}"', f'"{digest}-gzip"', "W/", '"app-v1"', "*", ", ", ",", " ", '"', "\t", '"x"']

        def maybe(strategy: Any) -> Any:
            return st.none() | strategy

        method = draw(st.sampled_from(["GET", "GET", "HEAD", "POST", "OPTIONS", "PUT", "get"]))
        request = _request(
            method,
            draw(maybe(soup(AE_TOKENS))),
            draw(maybe(soup(ORIGIN_TOKENS))),
            draw(maybe(soup(inm_tokens))),
            draw(maybe(soup(DATE_TOKENS))),
            draw(maybe(st.sampled_from(["PUT", ""]) | hostile_text)),
            draw(maybe(st.sampled_from(["true", "TRUE", "false"]) | hostile_text)),
        )
        content_type = draw(maybe(soup(TYPE_TOKENS)))
        extra = draw(
            st.lists(st.tuples(st.sampled_from(HEADER_NAMES), soup(VALUE_TOKENS)), max_size=5)
        )
        status = draw(st.sampled_from(GOOD_STATUSES) | hostile_text)
        kind = draw(st.sampled_from(H_KINDS))
        return Case(
            id="hypothesis",
            config=config,
            method=method,
            request=request,
            status=status,
            headers=_app_headers(content_type, extra),
            body=body,
            kind=kind,
        )

    _H = h_settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=300,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )

    @_H
    @given(case=cases())
    def test_hypothesis_requests(compiled_core: Any, case: Case) -> None:
        python = run(_core_py, case)
        compiled = run(compiled_core, case)
        assert python == compiled, _escaped(_mismatch(case, python, compiled))

    _H_HELPERS = h_settings(_H, max_examples=200)

    @_H_HELPERS
    @given(value=soup(AE_TOKENS) | hostile_text, offer=st.sampled_from(_OFFERS))
    def test_hypothesis_negotiate(compiled_core: Any, value: str, offer: Tuple[str, ...]) -> None:
        assert _outcome(_core_py.negotiate, value, offer) == _outcome(compiled_core.negotiate, value, offer), repr(value)

    @_H_HELPERS
    @given(value=soup(['"abc"', "W/", "*", ", ", ",", " ", '"', "\t", '"x"', "\x01"]) | hostile_text)
    def test_hypothesis_parse_if_none_match(compiled_core: Any, value: str) -> None:
        assert _outcome(_core_py.parse_if_none_match, value) == _outcome(compiled_core.parse_if_none_match, value), repr(value)

    @_H_HELPERS
    @given(value=soup(TYPE_TOKENS) | hostile_text, extra=st.sampled_from([frozenset(), frozenset({"image/png", "text/event-stream"})]))
    def test_hypothesis_is_compressible(compiled_core: Any, value: str, extra: frozenset) -> None:
        assert _outcome(_core_py.is_compressible, value, extra) == _outcome(compiled_core.is_compressible, value, extra), repr(value)

    _ORIGIN_SETTINGS = [_settings(config) for _, config in CORS_CONFIGS]

    @_H_HELPERS
    @given(value=soup(ORIGIN_TOKENS) | hostile_text, index=st.integers(0, len(CORS_CONFIGS) - 1))
    def test_hypothesis_origin_allowed(compiled_core: Any, value: str, index: int) -> None:
        settings = _ORIGIN_SETTINGS[index]
        assert _outcome(_core_py.origin_allowed, settings, value) == _outcome(compiled_core.origin_allowed, settings, value), repr(value)

    @h_settings(derandomize=True, database=None, deadline=None, max_examples=150)
    @given(chunks=st.lists(st.binary(max_size=3000) | st.sampled_from([b"", make_body("text", 2000)]), max_size=8), level=st.integers(1, 9))
    def test_hypothesis_gzip_stream(compiled_core: Any, chunks: List[bytes], level: int) -> None:
        script = list(chunks) + ["finish"]
        assert _stream_log(_core_py, level, script) == _stream_log(compiled_core, level, script)
        body = b"".join(chunks)
        assert _outcome(_core_py.gzip_compress, body, level) == _outcome(compiled_core.gzip_compress, body, level)
        assert _outcome(_core_py.md5_hex, body) == _outcome(compiled_core.md5_hex, body)

else:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_hypothesis_requests() -> None:
        pass
