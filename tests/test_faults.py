"""Faults: apps that fail at every point, servers that stop reading, streams never finished.

For each fault, on both cores: the app's exception comes out unchanged, the app
iterable's ``close()`` runs exactly once, the gzip compressor state is handed
back (the compiled core's pool of deflate states, read through ``_pool_idle()``,
is back where it was; for the pure core the stream's compressor is dropped),
and the next request through the same middleware on the same thread gets the
exact bytes a fresh middleware gives.
"""

from __future__ import annotations

import gc
import gzip
import os
import sys
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from wsgi_helpers import Server, Tracked, consume

LEVEL = 6
CONFIG = {"GZIP": True, "GZIP_MIN_SIZE": 100, "GZIP_LEVEL": LEVEL, "CORS_ORIGINS": ["https://a.example"]}
TEXT = "text/html; charset=utf-8"
CHUNKS = [b"<p>chunk %03d: the quick brown fox jumps over the lazy dog</p>\n" % i * 8 for i in range(6)]
BODY = b"".join(CHUNKS)
REQUEST = {"Accept-Encoding": "gzip", "Origin": "https://a.example"}


class Boom(Exception):
    """The app's own error."""


def make_body(chunks: Sequence[Any], fail_at: Optional[int] = None, close_error: Optional[BaseException] = None) -> Tracked:
    """A streamed app body: ``chunks`` one by one, ``fail_at`` raises instead of
    that chunk, ``close_error`` is raised by ``close()`` (after counting)."""
    error = Boom(f"failed at chunk {fail_at}") if fail_at is not None else None
    return Tracked(chunks, fail_at=fail_at, error=error, close_error=close_error)


class Router:
    """One app whose behaviour the test switches between requests."""

    def __init__(self) -> None:
        self.handler: Callable[..., Any] = ok_app

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.handler(environ, start_response)


def ok_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", TEXT)])
    return make_body(CHUNKS)


def ok_list_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", TEXT)])
    return [BODY]


def request(mw: Any, method: str = "GET") -> Tuple[Server, Any]:
    server = Server()
    return server, server.serve(mw, method, headers=REQUEST)


def full(mw: Any) -> Tuple[str, List[Tuple[str, str]], bytes]:
    """A complete request (read to the end, closed): status, headers, body."""
    server, result = request(mw)
    chunks = consume(result, server)
    status, out, _ = server.calls[-1]
    return status, out, b"".join(chunks)


def pool(core: Any) -> Optional[int]:
    """Idle deflate states at LEVEL in the compiled core's pool (None: pure core)."""
    idle = getattr(core, "_pool_idle", None)
    return idle()[LEVEL] if idle is not None else None


@pytest.fixture
def setup(make_mw: Callable[..., Any], core: Any) -> Tuple[Any, Router, Callable[[], None]]:
    """(middleware, router, check_next): ``check_next()`` asserts that the next
    streamed and buffered gzip requests give a fresh middleware's exact bytes."""
    router = Router()
    mw = make_mw(router, CONFIG)
    reference_router = Router()
    reference = make_mw(reference_router, CONFIG)
    expected_stream = full(reference)
    reference_router.handler = ok_list_app
    expected_list = full(reference)
    assert gzip.decompress(expected_stream[2]) == BODY and gzip.decompress(expected_list[2]) == BODY
    # Warm the pool: one state at LEVEL is idle before each test's fault.
    full(mw)

    def check_next() -> None:
        router.handler = ok_app
        assert full(mw) == expected_stream
        router.handler = ok_list_app
        assert full(mw) == expected_list
        router.handler = ok_app

    return mw, router, check_next


def test_raises_before_start_response(setup: Any, core: Any) -> None:
    mw, router, check_next = setup
    error = Boom("before start_response")

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raise error

    router.handler = app
    idle = pool(core)
    server = Server()
    with pytest.raises(Boom) as raised:
        server.serve(mw, headers=REQUEST)
    assert raised.value is error  # unchanged, not wrapped
    assert server.calls == []
    assert pool(core) == idle
    check_next()


def test_raises_after_start_response(setup: Any, core: Any) -> None:
    mw, router, check_next = setup
    error = Boom("after start_response")

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", TEXT)])
        raise error

    router.handler = app
    idle = pool(core)
    server = Server()
    with pytest.raises(Boom) as raised:
        server.serve(mw, headers=REQUEST)
    assert raised.value is error
    assert server.calls == []  # nothing reached the server: it can still send a 500
    assert pool(core) == idle
    check_next()


@pytest.mark.parametrize("fail_at", [0, 1, 3])
def test_raises_mid_stream(setup: Any, core: Any, fail_at: int) -> None:
    """A gzipped stream whose app fails at chunk ``fail_at``: the chunks before it
    went out, the error propagates from ``next()``, ``close()`` runs once and the
    compressor state goes back."""
    mw, router, check_next = setup
    body = make_body(CHUNKS, fail_at=fail_at)
    router.handler = lambda environ, start_response: (start_response("200 OK", [("Content-Type", TEXT)]), body)[1]
    idle = pool(core)
    server, result = request(mw)
    assert dict(server.calls[0][1])["Content-Encoding"] == "gzip"
    if idle is not None:
        assert pool(core) == idle - 1  # the stream holds a state from the pool
    received = []
    with pytest.raises(Boom):
        for chunk in result:
            received.append(chunk)
    assert len(received) == fail_at
    decoder = zlib.decompressobj(31)
    assert decoder.decompress(b"".join(received)) == b"".join(CHUNKS[:fail_at])
    assert body.closed == 0
    result.close()
    result.close()  # a server may close twice: the app still sees one close()
    assert body.closed == 1
    assert pool(core) == idle
    assert result._encoder is None  # the pure core's compressor is dropped too
    check_next()


def test_raises_while_buffering(setup: Any, core: Any) -> None:
    """A body declaring a small Content-Length is buffered: the failure comes
    out of the call itself, after the middleware closed the body once."""
    mw, router, check_next = setup
    body = make_body(CHUNKS, fail_at=2)
    router.handler = lambda environ, start_response: (
        start_response("200 OK", [("Content-Type", TEXT), ("Content-Length", str(len(BODY)))]),
        body,
    )[1]
    idle = pool(core)
    server = Server()
    with pytest.raises(Boom):
        server.serve(mw, headers=REQUEST)
    assert server.calls == []
    assert body.closed == 1
    assert pool(core) == idle
    check_next()


@pytest.mark.parametrize("read", [0, 2, len(CHUNKS) + 1])
def test_close_raises(setup: Any, core: Any, read: int) -> None:
    """``close()`` of the app raises (after 0, some or all chunks): the error
    comes out of the middleware's close(), the compressor is back first."""
    mw, router, check_next = setup
    error = Boom("close failed")
    body = make_body(CHUNKS, close_error=error)
    router.handler = lambda environ, start_response: (start_response("200 OK", [("Content-Type", TEXT)]), body)[1]
    idle = pool(core)
    server, result = request(mw)
    iterator = iter(result)
    for _ in range(read):
        next(iterator, None)
    with pytest.raises(Boom) as raised:
        result.close()
    assert raised.value is error
    assert body.closed == 1
    result.close()  # closed already: close() is not called again
    assert body.closed == 1
    assert pool(core) == idle
    check_next()


def test_close_raises_on_buffered_body(setup: Any, core: Any) -> None:
    mw, router, check_next = setup
    error = Boom("close failed")
    body = make_body(CHUNKS, close_error=error)
    router.handler = lambda environ, start_response: (
        start_response("200 OK", [("Content-Type", TEXT), ("Content-Length", str(len(BODY)))]),
        body,
    )[1]
    server = Server()
    with pytest.raises(Boom) as raised:
        server.serve(mw, headers=REQUEST)
    assert raised.value is error
    assert body.closed == 1
    check_next()


@pytest.mark.parametrize("read", [0, 1, 3])
def test_client_disconnects_mid_stream(setup: Any, core: Any, read: int) -> None:
    """The server stops after ``read`` chunks and calls close() early."""
    mw, router, check_next = setup
    body = make_body(CHUNKS)
    router.handler = lambda environ, start_response: (start_response("200 OK", [("Content-Type", TEXT)]), body)[1]
    idle = pool(core)
    server, result = request(mw)
    iterator = iter(result)
    received = [next(iterator) for _ in range(read)]
    assert zlib.decompressobj(31).decompress(b"".join(received)) == b"".join(CHUNKS[:read])
    result.close()
    assert body.closed == 1
    assert pool(core) == idle
    assert next(iterator, None) is None  # closed: nothing more comes out
    assert body.closed == 1
    check_next()


def test_generator_never_exhausted(setup: Any, core: Any) -> None:
    """An endless generator: the server reads some chunks and closes; the
    generator's ``finally`` runs once (GeneratorExit), the state goes back."""
    mw, router, check_next = setup
    finished: List[str] = []

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", TEXT)])
        try:
            n = 0
            while True:
                n += 1
                yield b"<p>%d forever and ever</p>\n" % n * 20
        finally:
            finished.append("finally")

    router.handler = app
    idle = pool(core)
    server, result = request(mw)
    iterator = iter(result)
    received = b"".join(next(iterator) for _ in range(50))
    assert zlib.decompressobj(31).decompress(received).startswith(b"<p>1 forever")
    assert finished == []
    result.close()
    assert finished == ["finally"]
    result.close()
    assert finished == ["finally"]
    assert pool(core) == idle
    check_next()


def test_non_bytes_chunk_mid_stream(setup: Any, core: Any) -> None:
    mw, router, check_next = setup
    body = make_body([CHUNKS[0], "not bytes", CHUNKS[1]])
    router.handler = lambda environ, start_response: (start_response("200 OK", [("Content-Type", TEXT)]), body)[1]
    idle = pool(core)
    server, result = request(mw)
    iterator = iter(result)
    next(iterator)
    with pytest.raises(TypeError, match="not bytes"):
        next(iterator)
    result.close()
    assert body.closed == 1
    assert pool(core) == idle
    check_next()


def test_exc_info_after_headers_went_out(setup: Any, core: Any) -> None:
    """start_response(..., exc_info) once the headers are committed re-raises
    the app's error (PEP 3333); the stream is then closed once."""
    mw, router, check_next = setup
    error = Boom("late failure")

    class Late(Tracked):
        def __next__(self) -> Any:
            if self.produced == 1:
                try:
                    raise error
                except Boom:
                    self.start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return super().__next__()

    body = Late(CHUNKS)

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body.start_response = start_response  # type: ignore[attr-defined]
        start_response("200 OK", [("Content-Type", TEXT)])
        return body

    router.handler = app
    idle = pool(core)
    server, result = request(mw)
    iterator = iter(result)
    next(iterator)
    with pytest.raises(Boom) as raised:
        next(iterator)
    assert raised.value is error
    result.close()
    assert body.closed == 1
    assert pool(core) == idle
    check_next()


def test_head_closes_the_stream_unread(setup: Any, core: Any) -> None:
    mw, router, check_next = setup
    body = make_body(CHUNKS)
    router.handler = lambda environ, start_response: (start_response("200 OK", [("Content-Type", TEXT)]), body)[1]
    idle = pool(core)
    server = Server()
    result = server.serve(mw, "HEAD", headers=REQUEST)
    assert list(result) == []
    assert body.pulled == 0 and body.closed == 1
    assert dict(server.calls[0][1])["Content-Encoding"] == "gzip"
    assert pool(core) == idle
    check_next()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm (Linux)")
def test_abandoned_streams_free_their_state(setup: Any, core: Any) -> None:
    """A server that drops the iterable without close() (a broken one): the
    stream's compressor is freed when the object goes, not leaked.  A deflate
    state is ~270 KB, so 300 leaked ones would be ~80 MB."""
    mw, router, check_next = setup
    router.handler = ok_app
    for _ in range(20):
        server, result = request(mw)
        next(iter(result))
        del result
    gc.collect()
    before = _rss()
    for _ in range(300):
        server, result = request(mw)
        next(iter(result))
        del result, server
    gc.collect()
    grown = _rss() - before
    if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine holds freed memory
        assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB over 300 abandoned streams"
    if pool(core) is not None:
        assert pool(core) <= core._POOL_MAX
    check_next()
