"""What the tests share: the one in-process WSGI client, the apps and bodies, the references.

* the client: :func:`environ` builds a PEP 3333 environ, :class:`Server` is the
  server side of one request (it records every ``start_response`` call and what
  ``write()`` got), :func:`consume` iterates and closes as a server does, and
  :func:`call` does all of it at once and returns a :class:`Result`;
* app bodies: :class:`Tracked` (a stream that counts what was pulled and
  closed, and can fail), :class:`InMemory` (an iterable over chunks already in
  memory, as Django's ``HttpResponse`` is), :class:`ClosingList`;
* apps: :func:`make_app`, :func:`wsgi_app`, :func:`lazy_app`, and
  :func:`django_app` (a real Django project's handler);
* references written from SPEC, never read back from the package:
  :func:`md5_tag`, :func:`gzip_reference`, :func:`sync_flush_reference`,
  :func:`zstd_reference`, :func:`brotli_reference`, and :func:`decode` (the
  libraries' own decoders, a zstd one limited to an 8 MiB window).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import sys
import types
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
from wsgiref.util import setup_testing_defaults

import brotli

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

Header = Tuple[str, str]

HTML = "text/html; charset=utf-8"


# --- references ---------------------------------------------------------------------------


def md5_tag(body: bytes, suffix: str = "") -> str:
    """The ETag SPEC gives a body: its MD5 in quotes, with a coding's suffix."""
    return f'"{hashlib.md5(body).hexdigest()}{suffix}"'


def gzip_reference(data: bytes, level: int = 6) -> bytes:
    """What the spec says compressed bytes are: zlib framing with window bits 31."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def sync_flush_reference(chunks: Sequence[bytes], level: int = 6) -> List[bytes]:
    """A gzipped stream as SPEC has it: one sync-flushed block per non-empty chunk,
    ``b""`` for an empty one, then the end of the member."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = [c.compress(chunk) + c.flush(zlib.Z_SYNC_FLUSH) if chunk else b"" for chunk in chunks]
    out.append(c.flush())
    return out


def zstd_reference(data: bytes, level: int = 3) -> bytes:
    """SPEC's zstd bytes: one frame from the zstd module at ``level``, content size in it."""
    return zstd.compress(data, level)  # type: ignore[no-any-return]


def brotli_reference(data: bytes, quality: int = 4) -> bytes:
    """SPEC's br bytes: the brotli package at ``quality``, its default window."""
    return brotli.compress(data, quality=quality)  # type: ignore[no-any-return]


#: RFC 9659: a client need not decode a zstd window over 8 MiB (2**23); Chrome refuses one.
ZSTD_WINDOW_LOG_MAX = 23


def zstd_decoder() -> Any:
    return zstd.ZstdDecompressor(options={zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX})


def decode(coding: Optional[str], body: bytes) -> bytes:
    """``body`` decoded by the reference decoder of ``coding`` (None: as it is).

    zstd: every frame (a padded body starts with a skippable one), each through
    a decoder that refuses a window over 8 MiB, as a browser does."""
    if coding is None:
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)  # type: ignore[no-any-return]
    assert coding == "zstd", coding
    out = []
    while body:
        decoder = zstd_decoder()
        out.append(decoder.decompress(body))
        assert decoder.eof, "a truncated zstd frame"
        body = decoder.unused_data
    return b"".join(out)


# --- the client ---------------------------------------------------------------------------


def environ(method: str = "GET", path: str = "/", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Dict[str, Any]:
    """A PEP 3333 environ; ``headers`` by their HTTP names (``Accept-Encoding``)."""
    env: Dict[str, Any] = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": ""}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        env[key] = value
    env.update(extra)
    setup_testing_defaults(env)
    return env


class Server:
    """The server side of one request.

    Records every ``start_response`` call (status, a copy of the header list,
    ``exc_info``) and what the ``write()`` it returns was given; like a real
    server it re-raises an ``exc_info`` once a body byte went out (PEP 3333).
    ``on_start`` runs at each ``start_response``, to look at the app's body
    at the moment the headers are decided.
    """

    def __init__(self) -> None:
        self.calls: List[Tuple[str, List[Header], Any]] = []
        self.written: List[bytes] = []
        self.body_started = False
        self.on_start: Optional[Callable[[], None]] = None

    def start_response(self, status: str, headers: List[Header], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.body_started:
            raise exc_info[1].with_traceback(exc_info[2])
        self.calls.append((status, list(headers), exc_info))
        if self.on_start is not None:
            self.on_start()
        return self.write

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if data:
            self.body_started = True

    def serve(self, app: Callable[..., Any], method: str = "GET", path: str = "/", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Any:
        """Call ``app`` for one request; its iterable, unread."""
        return app(environ(method, path, headers, **extra), self.start_response)

    @property
    def status(self) -> str:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]

    @property
    def headers(self) -> List[Header]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][1]


def consume(iterable: Any, server: Optional[Server] = None) -> List[bytes]:
    """Iterate ``iterable`` to its end and close it, as a server does."""
    out = []
    try:
        for chunk in iterable:
            if server is not None and chunk:
                server.body_started = True
            out.append(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return out


@dataclass
class Result:
    """What a client got: the last ``start_response`` call and the body."""

    status: str
    headers: List[Header]
    chunks: List[bytes]
    exc_info: Any = None
    written: List[bytes] = field(default_factory=list)  # what the app's write() sent, first

    @property
    def body(self) -> bytes:
        return b"".join(self.written + self.chunks)

    @property
    def code(self) -> int:
        return int(self.status[:3])

    def get_all(self, name: str) -> List[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def get(self, name: str) -> Optional[str]:
        values = self.get_all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {self.headers}"
        return values[0] if values else None

    def one(self, name: str) -> str:
        """The value of header ``name``, asserting it is there exactly once."""
        values = self.get_all(name)
        assert len(values) == 1, f"expected exactly one {name!r} header, got {values!r} in {self.headers!r}"
        return values[0]

    def has(self, name: str) -> bool:
        return bool(self.get_all(name))

    def names(self) -> List[str]:
        return [k for k, _ in self.headers]

    def cors_names(self) -> List[str]:
        return [k.lower() for k, _ in self.headers if k.lower().startswith("access-control-")]

    def vary_tokens(self) -> List[str]:
        """The tokens of the one ``Vary`` line, lower-cased."""
        return [token.strip().lower() for token in self.one("Vary").split(",") if token.strip()]

    def gunzip(self) -> bytes:
        return gzip.decompress(self.body)


def call(app: Callable[..., Iterable[bytes]], method: str = "GET", path: str = "/", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Result:
    """Run one request through ``app`` as a server would: call, iterate, close.

    ``headers`` by their HTTP names; ``extra`` are environ entries.
    """
    return run_request(app, environ(method, path, headers, **extra))


def run_request(app: Callable[..., Iterable[bytes]], env: Dict[str, Any]) -> Result:
    """:func:`call` for a ready environ.

    What reaches the server must be PEP 3333's: a ``str`` status, a list of
    ``(str, str)`` headers, ``bytes`` chunks.
    """
    server = Server()
    chunks = consume(app(env, server.start_response), server)
    assert server.calls, "start_response was never called"
    status, response_headers, exc_info = server.calls[-1]
    assert type(status) is str, status
    for header in response_headers:
        assert type(header) is tuple and len(header) == 2 and type(header[0]) is str and type(header[1]) is str, header
    for chunk in server.written + chunks:
        assert type(chunk) is bytes, type(chunk)
    return Result(status, response_headers, chunks, exc_info, server.written)


# --- app bodies ---------------------------------------------------------------------------


class Tracked:
    """An app iterable that is not a list: yields ``chunks`` one at a time and
    records how far it was advanced and how often it was closed.

    ``fail_at``: raise ``error`` instead of producing chunk number ``fail_at``;
    ``close_error``: raised by ``close()`` (after counting the call);
    ``start``: called at the first ``next()`` (an app calling ``start_response``
    that late, as PEP 3333 allows).
    """

    def __init__(
        self,
        chunks: Sequence[Any],
        fail_at: Optional[int] = None,
        error: Optional[BaseException] = None,
        close_error: Optional[BaseException] = None,
        start: Optional[Callable[[], Any]] = None,
    ) -> None:
        self.chunks = list(chunks)
        self.start = start
        self.pulled = 0  # next() calls
        self.produced = 0  # chunks handed out
        self.closed = 0
        self.read_after_close = 0
        self.fail_at = fail_at
        self.error = error
        self.close_error = close_error

    def __iter__(self) -> "Tracked":
        return self

    def __next__(self) -> Any:
        self.pulled += 1
        if self.start is not None:
            start, self.start = self.start, None
            start()
        if self.closed:
            self.read_after_close += 1
        if self.fail_at is not None and self.produced == self.fail_at:
            assert self.error is not None
            raise self.error
        if self.produced == len(self.chunks):
            raise StopIteration
        self.produced += 1
        return self.chunks[self.produced - 1]

    def close(self) -> None:
        self.closed += 1
        if self.close_error is not None:
            raise self.close_error


class InMemory:
    """An iterable (not a list) whose iterator is a list or tuple iterator over
    chunks already in memory, with ``close()``: Django's ``HttpResponse`` is one."""

    def __init__(self, chunks: Sequence[bytes], kind: type = list) -> None:
        self.chunks = kind(chunks)
        self.iterations = 0
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        self.iterations += 1
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


class ClosingList(list):
    """A list body (buffered) that counts close() calls."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


# --- apps ---------------------------------------------------------------------------------


def _chunks(chunks: Sequence[bytes]) -> Iterator[bytes]:
    yield from chunks


def make_app(
    body: bytes = b"",
    content_type: Optional[str] = HTML,
    status: str = "200 OK",
    headers: Sequence[Header] = (),
    chunks: Optional[Sequence[bytes]] = None,
    stream: bool = False,
) -> Callable[..., Iterable[bytes]]:
    """A WSGI app returning ``body`` (a list) or ``chunks`` from a generator when ``stream``.

    ``app.calls`` counts calls; ``app.environs`` keeps what the app saw.
    """

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        app.calls += 1  # type: ignore[attr-defined]
        app.environs.append(env)  # type: ignore[attr-defined]
        response_headers = []
        if content_type is not None:
            response_headers.append(("Content-Type", content_type))
        response_headers.extend(headers)
        start_response(status, response_headers)
        if stream:
            return _chunks(list(chunks if chunks is not None else [body]))
        return list(chunks) if chunks is not None else [body]

    app.calls = 0  # type: ignore[attr-defined]
    app.environs = []  # type: ignore[attr-defined]
    return app


def wsgi_app(
    body: Callable[[], Any],
    status: str = "200 OK",
    headers: Sequence[Header] = (("Content-Type", HTML),),
) -> Callable[..., Any]:
    """An app answering ``status``/``headers`` with a fresh ``body()``.

    ``app.environs`` keeps a copy of each environ, ``app.bodies`` each body made.
    """

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        app.environs.append(dict(env))  # type: ignore[attr-defined]
        start_response(status, list(headers))
        app.bodies.append(body())  # type: ignore[attr-defined]
        return app.bodies[-1]  # type: ignore[attr-defined]

    app.environs = []  # type: ignore[attr-defined]
    app.bodies = []  # type: ignore[attr-defined]
    return app


def lazy_app(
    chunks: Sequence[bytes],
    status: str = "200 OK",
    headers: Sequence[Header] = (("Content-Type", HTML),),
    log: Optional[List[str]] = None,
) -> Callable[..., Any]:
    """An app calling start_response at the first next() of its body, as PEP 3333 allows."""

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        def body() -> Iterator[bytes]:
            start_response(status, list(headers))
            if log is not None:
                log.append("started")
            yield from chunks

        return body()

    return app


_DJANGO_URLCONFS = itertools.count()


def django_app(body: bytes, content_type: str = HTML) -> Callable[..., Any]:
    """A Django project's WSGI handler answering ``HttpResponse(body)`` at every path,
    with no middleware at all: no ``CommonMiddleware``, so no ``Content-Length``.

    Django's settings are process-wide: the first call configures them; each call
    makes its own URLconf module and makes it the project's.
    """
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import re_path

    urls = types.ModuleType(f"asok_fast_tests_urls_{next(_DJANGO_URLCONFS)}")
    urls.urlpatterns = [re_path(r"", lambda request: HttpResponse(body, content_type=content_type))]  # type: ignore[attr-defined]
    sys.modules[urls.__name__] = urls
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="asok-fast-tests-" + "x" * 40,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=urls.__name__,
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
            LOGGING_CONFIG=None,
        )
        django.setup(set_prefix=False)
    settings.ROOT_URLCONF = urls.__name__
    settings.MIDDLEWARE = []
    return WSGIHandler()
