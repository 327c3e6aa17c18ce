"""SPEC "Bodies": what the middleware does with every kind of WSGI response body.

Buffered bodies (lists, tuples, iterables over chunks already in memory such as
Django's ``HttpResponse``, iterables declaring a small ``Content-Length``),
streams (never read ahead; gzipped chunk by chunk with a sync flush each),
``wsgi.file_wrapper`` passthrough, ``HEAD`` (no body byte, with every feature
off too), ``close()`` exactly once on every path, ``exc_info`` and ``write()``
as PEP 3333 has them, and responses that cannot carry a body.  Every test runs
against both cores through ``make_mw``.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple
from wsgiref.handlers import SimpleHandler
from wsgiref.util import FileWrapper

import pytest

from wsgi_helpers import (
    HTML,
    ClosingList,
    InMemory,
    Server,
    Tracked,
    call,
    consume,
    django_app,
    environ,
    gzip_reference,
    lazy_app,
    md5_tag as tag,
    sync_flush_reference,
    wsgi_app,
)

Header = Tuple[str, str]

BODY = b"".join(b"<li>item %04d: the quick brown fox jumps</li>\n" % i for i in range(40))
CHUNKS = [BODY[:500], BODY[500:1100], BODY[1100:]]
ACCEPT_GZIP = {"Accept-Encoding": "gzip"}
GZIP_ON = {"GZIP": True}
CORS_METHODS = ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS")
CORS_HEADERS = ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token, Authorization")
VARY_AE = ("Vary", "Accept-Encoding")


# --- buffered bodies ---------------------------------------------------------------


def assert_buffered_answer(mw: Any) -> Any:
    """BODY answered whole, plain and gzipped (GZIP_ON); returns the gzipped Result."""
    plain = call(mw)
    assert plain.status == "200 OK"
    assert plain.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", tag(BODY)), VARY_AE]
    assert plain.chunks == [BODY]

    packed = call(mw, headers=ACCEPT_GZIP)
    compressed = gzip_reference(BODY)
    assert packed.status == "200 OK"
    assert packed.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", tag(BODY, "-gzip")),
        VARY_AE,
    ]
    assert packed.chunks == [compressed]
    assert gzip.decompress(packed.body) == BODY
    return packed


@pytest.mark.parametrize("kind", [list, tuple])
def test_list_and_tuple_bodies_are_buffered_and_joined(make_mw: Any, kind: type) -> None:
    mw = make_mw(wsgi_app(lambda: kind(CHUNKS)), GZIP_ON)
    assert_buffered_answer(mw)


class ClosingTuple(tuple):
    closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("kind", [ClosingList, ClosingTuple])
def test_list_and_tuple_subclasses_are_buffered_and_closed_once(make_mw: Any, kind: type) -> None:
    # SPEC: "a list or tuple of byte strings" is buffered; a subclass (one with
    # close(), say) is still a list.
    bodies: List[Any] = []

    def body() -> Any:
        bodies.append(kind(CHUNKS))
        return bodies[-1]

    mw = make_mw(wsgi_app(body), GZIP_ON)
    result = call(mw, headers=ACCEPT_GZIP)
    compressed = gzip_reference(BODY)
    assert result.status == "200 OK"
    assert result.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", tag(BODY, "-gzip")),
        VARY_AE,
    ]
    assert result.chunks == [compressed]
    assert bodies[0].closed == 1


@pytest.mark.parametrize("kind", ["generator", "custom"])
def test_iterable_with_small_declared_length_is_buffered(make_mw: Any, kind: str) -> None:
    tracked: List[Tracked] = []

    def body() -> Any:
        if kind == "generator":
            return (chunk for chunk in CHUNKS)
        tracked.append(Tracked(CHUNKS))
        return tracked[-1]

    headers = (("Content-Type", HTML), ("Content-Length", str(len(BODY))))
    mw = make_mw(wsgi_app(body, headers=headers), GZIP_ON)

    server = Server()
    if kind == "custom":
        # Buffered: the whole body was read before the headers were decided.
        server.on_start = lambda: seen.append((tracked[-1].produced, tracked[-1].closed))
    seen: List[Tuple[int, int]] = []
    chunks = consume(server.serve(mw, headers=ACCEPT_GZIP), server)
    compressed = gzip_reference(BODY)
    assert server.status == "200 OK"
    assert server.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", tag(BODY, "-gzip")),
        VARY_AE,
    ]
    assert chunks == [compressed]
    if kind == "custom":
        assert seen == [(3, 1)]
        assert tracked[-1].closed == 1

    plain = call(mw)
    assert plain.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", tag(BODY)), VARY_AE]
    assert plain.chunks == [BODY]

    # Its ETag works: either representation's tag gives a 304.
    for sent in (tag(BODY), tag(BODY, "-gzip")):
        again = call(mw, headers={"If-None-Match": sent, **ACCEPT_GZIP})
        assert again.status == "304 Not Modified"
        assert again.headers == [("ETag", tag(BODY, "-gzip")), VARY_AE]
        assert again.chunks == []


def test_app_length_is_corrected_on_a_buffered_iterable(make_mw: Any) -> None:
    # The app declared fewer bytes than it sent: the buffered response carries
    # the length of what goes out.
    headers = (("Content-Type", "application/octet-stream"), ("Content-Length", "10"))
    mw = make_mw(wsgi_app(lambda: (chunk for chunk in CHUNKS), headers=headers))
    result = call(mw)
    assert result.headers == [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(BODY))),
        ("ETag", tag(BODY)),
    ]
    assert result.chunks == [BODY]


@pytest.mark.parametrize("limit, buffered", [(len(BODY), True), (len(BODY) - 1, False)])
def test_declared_length_against_buffer_max_size(make_mw: Any, limit: int, buffered: bool) -> None:
    tracked: List[Tracked] = []

    def body() -> Tracked:
        tracked.append(Tracked(CHUNKS))
        return tracked[-1]

    headers = (("Content-Type", HTML), ("Content-Length", str(len(BODY))))
    mw = make_mw(wsgi_app(body, headers=headers), {"GZIP": True, "BUFFER_MAX_SIZE": limit})

    server = Server()
    produced_at_start: List[int] = []
    server.on_start = lambda: produced_at_start.append(tracked[-1].produced)
    chunks = consume(server.serve(mw), server)
    if buffered:
        assert produced_at_start == [3]
        assert server.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", tag(BODY)), VARY_AE]
        assert chunks == [BODY]
    else:
        # Streamed: nothing read before the headers, no ETag, the app's length kept.
        assert produced_at_start == [0]
        assert server.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), VARY_AE]
        assert chunks == CHUNKS
    assert tracked[-1].closed == 1

    server = Server()
    chunks = consume(server.serve(mw, headers=ACCEPT_GZIP), server)
    if buffered:
        compressed = gzip_reference(BODY)
        assert server.headers == [
            ("Content-Type", HTML),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(compressed))),
            ("ETag", tag(BODY, "-gzip")),
            VARY_AE,
        ]
        assert chunks == [compressed]
    else:
        assert server.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
        assert chunks == sync_flush_reference(CHUNKS)
    assert tracked[-1].closed == 1


def test_passthrough_stream_keeps_the_app_length(make_mw: Any) -> None:
    headers = (("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY))))
    mw = make_mw(wsgi_app(lambda: Tracked(CHUNKS), headers=headers), {"GZIP": True, "BUFFER_MAX_SIZE": 16})
    result = call(mw, headers=ACCEPT_GZIP)
    assert result.status == "200 OK"
    assert result.headers == [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))]
    assert result.chunks == CHUNKS


# --- streams -------------------------------------------------------------------------------


def recording_generator(chunks: Sequence[bytes], state: Dict[str, int]) -> Iterator[bytes]:
    for number, chunk in enumerate(chunks, 1):
        state["produced"] = number
        yield chunk
    state["finished"] = 1


STREAM_PARTS = [b"<p>part %d " % i + b"x" * (100 * i) + b"</p>\n" for i in range(1, 6)]


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_stream_delivers_each_chunk_before_the_next_is_made(make_mw: Any, level: int) -> None:
    state = {"produced": 0}
    mw = make_mw(wsgi_app(lambda: recording_generator(STREAM_PARTS, state)), {"GZIP": True, "GZIP_LEVEL": level})
    server = Server()
    iterable = server.serve(mw, headers=ACCEPT_GZIP)
    assert server.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
    assert state["produced"] == 0  # nothing read ahead

    received: List[bytes] = []
    iterator = iter(iterable)
    for k in range(len(STREAM_PARTS)):
        received.append(next(iterator))
        # Chunk k is out, and the app has not been asked for chunk k + 1 yet ...
        assert state["produced"] == k + 1
        # ... and what arrived so far decodes to everything the app made so far.
        assert zlib.decompressobj(31).decompress(b"".join(received)) == b"".join(STREAM_PARTS[: k + 1])
    assert "finished" not in state
    received.extend(iterator)
    iterable.close()
    assert state["finished"] == 1
    assert received == sync_flush_reference(STREAM_PARTS, level)
    assert gzip.decompress(b"".join(received)) == b"".join(STREAM_PARTS)


def test_plain_stream_delivers_each_chunk_before_the_next_is_made(make_mw: Any) -> None:
    state = {"produced": 0}
    mw = make_mw(wsgi_app(lambda: recording_generator(STREAM_PARTS, state)), GZIP_ON)
    server = Server()
    iterable = server.serve(mw)
    assert server.headers == [("Content-Type", HTML), VARY_AE]
    assert state["produced"] == 0
    received = []
    for k, chunk in enumerate(iterable):
        assert state["produced"] == k + 1
        received.append(chunk)
    iterable.close()
    assert received == STREAM_PARTS


@pytest.mark.parametrize("accept", [False, True])
def test_empty_stream_chunks_give_empty_output_chunks(make_mw: Any, accept: bool) -> None:
    parts = [b"", STREAM_PARTS[0], b"", b"", STREAM_PARTS[1], b""]
    mw = make_mw(wsgi_app(lambda: Tracked(parts)), GZIP_ON)
    result = call(mw, headers=ACCEPT_GZIP if accept else None)
    if accept:
        assert result.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
        assert result.chunks == sync_flush_reference(parts)
        assert [c == b"" for c in result.chunks] == [True, False, True, True, False, True, False]
        assert result.gunzip() == b"".join(parts)
    else:
        assert result.headers == [("Content-Type", HTML), VARY_AE]
        assert result.chunks == parts


def test_compressed_stream_has_no_length_and_no_etag_of_ours(make_mw: Any) -> None:
    headers = (("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("Cache-Control", "max-age=60"))
    mw = make_mw(wsgi_app(lambda: Tracked(CHUNKS), headers=headers), {"GZIP": True, "BUFFER_MAX_SIZE": 100})
    result = call(mw, headers=ACCEPT_GZIP)
    assert result.status == "200 OK"
    assert result.headers == [
        ("Content-Type", HTML),
        ("Cache-Control", "max-age=60"),
        ("Content-Encoding", "gzip"),
        VARY_AE,
    ]
    assert result.chunks == sync_flush_reference(CHUNKS)


def test_compressed_stream_weakens_the_app_etag(make_mw: Any) -> None:
    headers = (("Content-Type", HTML), ("ETag", '"v7"'))
    mw = make_mw(wsgi_app(lambda: Tracked(CHUNKS), headers=headers), GZIP_ON)
    result = call(mw, headers=ACCEPT_GZIP)
    assert result.headers == [("Content-Type", HTML), ("ETag", 'W/"v7"'), ("Content-Encoding", "gzip"), VARY_AE]
    assert result.gunzip() == BODY
    plain = call(mw)
    assert plain.headers == [("Content-Type", HTML), ("ETag", '"v7"'), VARY_AE]
    assert plain.chunks == CHUNKS


@pytest.mark.parametrize("content_type", ["text/event-stream", "text/event-stream; charset=utf-8", "Text/Event-Stream"])
def test_event_stream_is_never_compressed_or_buffered(make_mw: Any, content_type: str) -> None:
    events = [b"data: %d\n\n" % i * 40 for i in range(4)]
    state = {"produced": 0}
    headers = (("Content-Type", content_type), ("Content-Length", str(sum(map(len, events)))))
    mw = make_mw(wsgi_app(lambda: recording_generator(events, state), headers=headers), {"GZIP": True, "GZIP_MIN_SIZE": 0})
    server = Server()
    iterable = server.serve(mw, headers=ACCEPT_GZIP)
    assert state["produced"] == 0  # not held
    assert server.headers == [("Content-Type", content_type), ("Content-Length", str(sum(map(len, events))))]
    received = []
    for k, chunk in enumerate(iterable):
        assert state["produced"] == k + 1
        received.append(chunk)
    iterable.close()
    assert received == events


# --- wsgi.file_wrapper ---------------------------------------------------------------------


class RecordingFile(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0
        self.closes = 0

    def read(self, *args: Any) -> bytes:  # type: ignore[override]
        self.reads += 1
        return super().read(*args)

    def close(self) -> None:
        self.closes += 1
        super().close()


def file_app(files: List[RecordingFile]) -> Callable[..., Any]:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        files.append(RecordingFile(BODY))
        start_response("200 OK", [("Content-Type", HTML), ("Content-Length", str(len(BODY)))])
        return env["wsgi.file_wrapper"](files[-1], 512)

    return app


@pytest.mark.parametrize("origins", ["*", ["https://a.example"]])
def test_file_wrapper_passes_through_the_same_object(make_mw: Any, origins: Any) -> None:
    files: List[RecordingFile] = []
    server = Server()
    returned: List[Any] = []

    def app_spy(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        returned.append(file_app(files)(env, start_response))
        return returned[-1]

    mw = make_mw(app_spy, {"GZIP": True, "CORS_ORIGINS": origins, "GZIP_MIN_SIZE": 0})
    headers = {"Origin": "https://a.example", **ACCEPT_GZIP}
    iterable = server.serve(mw, headers=headers, **{"wsgi.file_wrapper": FileWrapper})
    assert isinstance(returned[0], FileWrapper)
    assert iterable is returned[0]  # the server keeps its zero-copy path
    if origins == "*":
        cors = [("Access-Control-Allow-Origin", "*"), CORS_METHODS, CORS_HEADERS]
    else:
        cors = [("Vary", "Origin"), ("Access-Control-Allow-Origin", "https://a.example"), CORS_METHODS, CORS_HEADERS]
    assert server.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY)))] + cors
    assert b"".join(consume(iterable, server)) == BODY  # not compressed
    assert files[-1].closes == 1


def test_file_wrapper_on_head_is_closed_unread(make_mw: Any) -> None:
    files: List[RecordingFile] = []
    mw = make_mw(file_app(files), {"GZIP": True, "CORS_ORIGINS": "*"})
    extra = {"wsgi.file_wrapper": FileWrapper}
    get = call(mw, headers=ACCEPT_GZIP, **extra)
    head = call(mw, "HEAD", headers=ACCEPT_GZIP, **extra)
    assert head.status == get.status == "200 OK"
    assert head.headers == get.headers == [
        ("Content-Type", HTML),
        ("Content-Length", str(len(BODY))),
        ("Access-Control-Allow-Origin", "*"),
        CORS_METHODS,
        CORS_HEADERS,
    ]
    assert get.body == BODY
    assert head.chunks == []
    assert files[1].reads == 0
    assert files[1].closes == 1


# --- HEAD ----------------------------------------------------------------------------------


HEAD_CASES = {
    "buffered": ((("Content-Type", HTML),), lambda: list(CHUNKS), {}, {}),
    "buffered-gzip-etag": ((("Content-Type", HTML),), lambda: list(CHUNKS), GZIP_ON, ACCEPT_GZIP),
    "buffered-iterable-gzip": (
        (("Content-Type", HTML), ("Content-Length", str(len(BODY)))),
        lambda: Tracked(CHUNKS),
        GZIP_ON,
        ACCEPT_GZIP,
    ),
    "stream": ((("Content-Type", HTML),), lambda: Tracked(CHUNKS), GZIP_ON, {}),
    "stream-gzip": ((("Content-Type", HTML), ("ETag", '"s1"')), lambda: Tracked(CHUNKS), GZIP_ON, ACCEPT_GZIP),
    "stream-long": (
        (("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))),
        lambda: Tracked(CHUNKS),
        {"BUFFER_MAX_SIZE": 10},
        {},
    ),
    "cors-list": ((("Content-Type", HTML),), lambda: list(CHUNKS), {"CORS_ORIGINS": ["https://a.example"], "GZIP": True}, {"Origin": "https://a.example", **ACCEPT_GZIP}),
}


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_head_headers_equal_get_headers(make_mw: Any, case: str) -> None:
    headers, body, config, request = HEAD_CASES[case]
    made: List[Any] = []

    def make_body() -> Any:
        made.append(body())
        return made[-1]

    app = wsgi_app(make_body, headers=headers)
    mw = make_mw(app, config)
    get = call(mw, headers=request)
    head = call(mw, "HEAD", headers=request)
    assert head.status == get.status == "200 OK"
    assert head.headers == get.headers
    assert len(get.body) > 0
    assert head.chunks == []
    assert [env["REQUEST_METHOD"] for env in app.environs] == ["GET", "GET"]  # type: ignore[attr-defined]
    if isinstance(made[1], Tracked):
        assert made[1].closed == 1
        if case.startswith("stream"):
            assert made[1].produced == 0  # closed unread


def test_head_for_an_app_that_sends_no_body_to_head(make_mw: Any) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        start_response("200 OK", [("Content-Type", HTML)])
        return [] if env["REQUEST_METHOD"] == "HEAD" else [BODY]

    mw = make_mw(app, GZIP_ON)
    compressed = gzip_reference(BODY)
    head = call(mw, "HEAD", headers=ACCEPT_GZIP)
    assert head.status == "200 OK"
    assert head.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", tag(BODY, "-gzip")),
        VARY_AE,
    ]
    assert head.chunks == []
    assert call(mw, "HEAD", headers={"If-None-Match": tag(BODY)}).status == "304 Not Modified"


# --- HEAD with every feature off ----------------------------------------------------------
#
# SPEC: HEAD sends no body byte in every configuration.  With ETAG off, no GZIP and no CORS
# the middleware has nothing to add: the app's status and headers go out as they are, and
# its body is closed unread.

EVERY_FEATURE_OFF = {"ETAG": False}


def _head_off_app(kind: str, made: List[Any], files: List[RecordingFile]) -> Callable[..., Any]:
    # The app's own headers, a stale Content-Length included: passed on as they are.
    headers = [("Content-Type", HTML), ("Content-Length", "10"), ("X-App", "1")]

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if kind == "list":
            write = start_response("200 OK", list(headers))
            write(CHUNKS[0])
            made.append(ClosingList(CHUNKS[1:]))
        elif kind == "lazy-iterable":
            made.append(Tracked(CHUNKS, start=lambda: start_response("200 OK", list(headers))))
        else:
            start_response("200 OK", list(headers))
            files.append(RecordingFile(BODY))
            made.append(env["wsgi.file_wrapper"](files[-1], 512))
        return made[-1]

    return app


@pytest.mark.parametrize("kind", ["list", "lazy-iterable", "file-wrapper"])
def test_head_with_every_feature_off_sends_no_body(make_mw: Any, kind: str) -> None:
    made: List[Any] = []
    files: List[RecordingFile] = []
    mw = make_mw(_head_off_app(kind, made, files), EVERY_FEATURE_OFF)
    app_headers = [("Content-Type", HTML), ("Content-Length", "10"), ("X-App", "1")]

    server = Server()
    chunks = consume(server.serve(mw, "HEAD", **{"wsgi.file_wrapper": FileWrapper}), server)
    assert server.calls == [("200 OK", app_headers, None)]
    assert chunks == []
    assert server.written == []
    if kind == "file-wrapper":
        assert (files[0].reads, files[0].closes) == (0, 1)
    else:
        assert made[0].closed == 1
    if kind == "lazy-iterable":
        assert made[0].produced == 1  # only as far as start_response: nothing of it is sent

    get = call(mw, **{"wsgi.file_wrapper": FileWrapper})
    assert (get.status, get.headers) == ("200 OK", app_headers)
    assert get.body == BODY  # GET is the app's own answer, untouched


# --- iterables over chunks already in memory -----------------------------------------------
#
# SPEC: an iterable whose iterator is a list or tuple iterator is finite and buffered like a
# list (ETag, 304, Content-Length, gzip above GZIP_MIN_SIZE only), even without a
# Content-Length of its own: Django's HttpResponse without CommonMiddleware is one.


@pytest.mark.parametrize("kind", [list, tuple])
def test_iterable_over_chunks_in_memory_is_buffered(make_mw: Any, kind: type) -> None:
    app = wsgi_app(lambda: InMemory(CHUNKS, kind))
    mw = make_mw(app, GZIP_ON)
    packed = assert_buffered_answer(mw)

    for sent in (tag(BODY), tag(BODY, "-gzip")):
        again = call(mw, headers={"If-None-Match": sent, **ACCEPT_GZIP})
        assert (again.status, again.headers, again.chunks) == ("304 Not Modified", [("ETag", tag(BODY, "-gzip")), VARY_AE], [])
        identity = call(mw, headers={"If-None-Match": sent})
        assert (identity.status, identity.headers, identity.chunks) == ("304 Not Modified", [("ETag", tag(BODY)), VARY_AE], [])

    head = call(mw, "HEAD", headers=ACCEPT_GZIP)
    assert (head.status, head.headers, head.chunks) == ("200 OK", packed.headers, [])
    assert [(body.iterations, body.closed) for body in app.bodies] == [(1, 1)] * 7  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", [list, tuple])
def test_small_iterable_over_chunks_in_memory_is_not_compressed(make_mw: Any, kind: type) -> None:
    small = BODY[:100]
    app = wsgi_app(lambda: InMemory([small[:40], b"", small[40:]], kind))
    result = call(make_mw(app, GZIP_ON), headers=ACCEPT_GZIP)
    assert result.status == "200 OK"
    assert result.headers == [("Content-Type", HTML), ("Content-Length", "100"), ("ETag", tag(small))]
    assert result.chunks == [small]
    assert app.bodies[0].closed == 1  # type: ignore[attr-defined]

    # The same chunks from a stream of unknown length are compressed: that one counts as
    # large enough, this one is known to be 100 bytes.
    streamed = call(make_mw(wsgi_app(lambda: Tracked([small[:40], b"", small[40:]])), GZIP_ON), headers=ACCEPT_GZIP)
    assert streamed.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
    assert streamed.chunks == sync_flush_reference([small[:40], b"", small[40:]])


def test_django_httpresponse_without_common_middleware_gets_etag_and_304(make_mw: Any) -> None:
    pytest.importorskip("django", reason="the Django test needs django installed")
    from django.core.signals import request_finished

    page = b"<!doctype html><title>Django</title>" + BODY
    mw = make_mw(django_app(page), GZIP_ON)
    closes: List[int] = []

    def count(sender: Any, **kwargs: Any) -> None:
        closes.append(1)

    request_finished.connect(count)
    try:
        full = call(mw)
        assert full.status == "200 OK"
        assert full.headers == [("Content-Type", HTML), ("Content-Length", str(len(page))), ("ETag", tag(page)), VARY_AE]
        assert full.chunks == [page]

        packed = call(mw, headers=ACCEPT_GZIP)
        compressed = gzip_reference(page)
        assert packed.headers == [
            ("Content-Type", HTML),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(compressed))),
            ("ETag", tag(page, "-gzip")),
            VARY_AE,
        ]
        assert packed.chunks == [compressed]

        again = call(mw, headers={"If-None-Match": tag(page, "-gzip"), **ACCEPT_GZIP})
        assert (again.status, again.headers, again.chunks) == ("304 Not Modified", [("ETag", tag(page, "-gzip")), VARY_AE], [])
        assert closes == [1, 1, 1]  # HttpResponse.close(), once per request
    finally:
        request_finished.disconnect(count)


# --- close() exactly once ------------------------------------------------------------------


def test_close_once_when_a_stream_is_fully_read(make_mw: Any) -> None:
    bodies: List[Tracked] = []
    mw = make_mw(wsgi_app(lambda: bodies.append(Tracked(CHUNKS)) or bodies[-1]), GZIP_ON)
    plain = call(mw)
    assert plain.chunks == CHUNKS
    assert bodies[-1].closed == 1
    assert bodies[-1].read_after_close == 0
    packed = call(mw, headers=ACCEPT_GZIP)
    assert packed.chunks == sync_flush_reference(CHUNKS)
    assert bodies[-1].closed == 1
    assert bodies[-1].read_after_close == 0


@pytest.mark.parametrize("accept", [False, True])
def test_close_once_when_the_server_stops_early(make_mw: Any, accept: bool) -> None:
    body = Tracked(CHUNKS)
    mw = make_mw(wsgi_app(lambda: body), GZIP_ON)
    server = Server()
    iterable = server.serve(mw, headers=ACCEPT_GZIP if accept else None)
    first = next(iter(iterable))
    assert first == (sync_flush_reference(CHUNKS)[0] if accept else CHUNKS[0])
    iterable.close()
    iterable.close()  # a second close from a sloppy server reaches the app once
    assert body.closed == 1
    assert body.produced == 1
    assert list(iterable) == []
    assert body.read_after_close == 0


def test_close_once_on_a_304_for_a_stream(make_mw: Any) -> None:
    body = Tracked(CHUNKS)
    headers = (("Content-Type", HTML), ("ETag", '"s1"'), ("Cache-Control", "no-cache"))
    mw = make_mw(wsgi_app(lambda: body, headers=headers), GZIP_ON)
    result = call(mw, headers={"If-None-Match": 'W/"s1"', **ACCEPT_GZIP})
    assert result.status == "304 Not Modified"
    assert result.headers == [("ETag", 'W/"s1"'), ("Cache-Control", "no-cache"), VARY_AE]
    assert result.chunks == []
    assert body.closed == 1
    assert body.produced == 0


def test_close_once_on_a_stream_304_from_last_modified(make_mw: Any) -> None:
    body = Tracked(CHUNKS)
    headers = (("Content-Type", HTML), ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"))
    mw = make_mw(wsgi_app(lambda: body, headers=headers))
    result = call(mw, headers={"If-Modified-Since": "Sunday, 06-Nov-94 08:49:37 GMT"})
    assert result.status == "304 Not Modified"
    assert result.headers == [("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")]
    assert result.chunks == []
    assert body.closed == 1
    assert body.produced == 0


class Boom(Exception):
    pass


def test_app_raising_before_start_response_propagates_unchanged(make_mw: Any) -> None:
    error = Boom("before")

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raise error

    server = Server()
    with pytest.raises(Boom) as caught:
        server.serve(make_mw(app, GZIP_ON))
    assert caught.value is error
    assert server.calls == []


def test_app_raising_after_start_response_propagates_unchanged(make_mw: Any) -> None:
    error = Boom("after")

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", HTML)])
        raise error

    server = Server()
    with pytest.raises(Boom) as caught:
        server.serve(make_mw(app, GZIP_ON))
    assert caught.value is error
    assert server.calls == []  # nothing was sent on the app's behalf


@pytest.mark.parametrize("accept", [False, True])
def test_app_raising_mid_stream_then_server_closes_once(make_mw: Any, accept: bool) -> None:
    error = Boom("mid-stream")
    body = Tracked(CHUNKS, fail_at=1, error=error)
    mw = make_mw(wsgi_app(lambda: body), GZIP_ON)
    server = Server()
    iterable = server.serve(mw, headers=ACCEPT_GZIP if accept else None)
    iterator = iter(iterable)
    assert next(iterator) == (sync_flush_reference(CHUNKS)[0] if accept else CHUNKS[0])
    with pytest.raises(Boom) as caught:
        next(iterator)
    assert caught.value is error
    assert body.closed == 0
    iterable.close()
    assert body.closed == 1


def test_app_raising_while_a_declared_length_body_is_buffered(make_mw: Any) -> None:
    error = Boom("buffering")
    body = Tracked(CHUNKS, fail_at=2, error=error)
    headers = (("Content-Type", HTML), ("Content-Length", str(len(BODY))))
    server = Server()
    with pytest.raises(Boom) as caught:
        server.serve(make_mw(wsgi_app(lambda: body, headers=headers), GZIP_ON))
    assert caught.value is error
    assert body.closed == 1
    assert server.calls == []


def test_close_raising_on_a_stream_propagates_and_is_not_repeated(make_mw: Any) -> None:
    error = Boom("close")
    body = Tracked(CHUNKS, close_error=error)
    mw = make_mw(wsgi_app(lambda: body), GZIP_ON)
    server = Server()
    iterable = server.serve(mw)
    assert list(iterable) == CHUNKS
    with pytest.raises(Boom) as caught:
        iterable.close()
    assert caught.value is error
    iterable.close()
    assert body.closed == 1


@pytest.mark.parametrize("kind", ["list", "declared-length"])
def test_close_raising_on_a_buffered_body_propagates_once(make_mw: Any, kind: str) -> None:
    error = Boom("close")
    if kind == "list":
        body: Any = ClosingList(CHUNKS)

        def close() -> None:
            body.closed += 1
            raise error

        body.close = close
        headers: Tuple[Header, ...] = (("Content-Type", HTML),)
    else:
        body = Tracked(CHUNKS, close_error=error)
        headers = (("Content-Type", HTML), ("Content-Length", str(len(BODY))))
    server = Server()
    with pytest.raises(Boom) as caught:
        server.serve(make_mw(wsgi_app(lambda: body, headers=headers), GZIP_ON))
    assert caught.value is error
    assert body.closed == 1


def test_str_chunk_in_a_list_raises_type_error(make_mw: Any) -> None:
    body = ClosingList([b"fine", "not bytes"])
    with pytest.raises(TypeError, match="str, not bytes"):
        call(make_mw(wsgi_app(lambda: body), GZIP_ON))
    assert body.closed == 1


def test_single_str_chunk_in_a_list_raises_type_error(make_mw: Any) -> None:
    with pytest.raises(TypeError, match="str, not bytes"):
        call(make_mw(wsgi_app(lambda: ["text"]), GZIP_ON))


def test_str_chunk_in_a_buffered_iterable_raises_type_error(make_mw: Any) -> None:
    body = Tracked([b"fine", "not bytes"])
    headers = (("Content-Type", HTML), ("Content-Length", "13"))
    with pytest.raises(TypeError, match="str, not bytes"):
        call(make_mw(wsgi_app(lambda: body, headers=headers), GZIP_ON))
    assert body.closed == 1


@pytest.mark.parametrize("accept", [False, True])
def test_str_chunk_in_a_stream_raises_type_error(make_mw: Any, accept: bool) -> None:
    body = Tracked([b"fine", "not bytes", b"never"])
    server = Server()
    iterable = server.serve(make_mw(wsgi_app(lambda: body), GZIP_ON), headers=ACCEPT_GZIP if accept else None)
    iterator = iter(iterable)
    next(iterator)
    with pytest.raises(TypeError, match="str, not bytes"):
        next(iterator)
    iterable.close()
    assert body.closed == 1
    assert body.produced == 2


def test_str_passed_to_write_raises_type_error(make_mw: Any) -> None:
    errors: List[BaseException] = []

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        write = start_response("200 OK", [("Content-Type", HTML)])
        try:
            write("text")
        except TypeError as exc:
            errors.append(exc)
            raise
        return [b"unreached"]

    with pytest.raises(TypeError, match="str, not bytes"):
        call(make_mw(app, GZIP_ON))
    assert len(errors) == 1


# --- start_response: lazily, twice, exc_info -----------------------------------------------


def test_lazy_start_response_in_a_gzip_stream(make_mw: Any) -> None:
    result = call(make_mw(lazy_app(STREAM_PARTS), GZIP_ON), headers=ACCEPT_GZIP)
    assert result.status == "200 OK"
    assert result.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
    assert result.chunks == sync_flush_reference(STREAM_PARTS)


def test_lazy_start_response_in_a_declared_length_body(make_mw: Any) -> None:
    headers = (("Content-Type", HTML), ("Content-Length", str(len(BODY))))
    result = call(make_mw(lazy_app(CHUNKS, headers=headers), GZIP_ON), headers=ACCEPT_GZIP)
    compressed = gzip_reference(BODY)
    assert result.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", tag(BODY, "-gzip")),
        VARY_AE,
    ]
    assert result.chunks == [compressed]


@pytest.mark.parametrize("status", ["204 No Content", "200 OK"])
def test_lazy_start_response_with_an_empty_body(make_mw: Any, status: str) -> None:
    # A generator that calls start_response and ends without yielding is a valid
    # (empty) response, not a non-bytes chunk.
    headers = () if status.startswith("204") else (("Content-Type", "application/octet-stream"),)
    result = call(make_mw(lazy_app([], status=status, headers=headers), GZIP_ON), headers=ACCEPT_GZIP)
    assert result.status == status
    assert result.headers == list(headers)
    assert result.chunks == []


def test_lazy_generator_ending_without_start_response(make_mw: Any) -> None:
    closed: List[int] = []

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        def body() -> Iterator[bytes]:
            try:
                return
                yield b""
            finally:
                closed.append(1)

        return body()

    with pytest.raises(AssertionError, match="start_response"):
        call(make_mw(app, GZIP_ON))
    assert closed == [1]


def test_start_response_twice_without_exc_info_raises(make_mw: Any) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        start_response("200 OK", [("Content-Type", HTML)])
        start_response("500 Internal Server Error", [("Content-Type", HTML)])
        return [b"x"]

    server = Server()
    with pytest.raises(AssertionError, match="second time"):
        server.serve(make_mw(app, GZIP_ON))
    assert server.calls == []


def test_exc_info_before_the_body_replaces_status_and_headers(make_mw: Any) -> None:
    error = Boom("handled")
    oops = b"<h1>Server error</h1>" * 40

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        start_response("200 OK", [("Content-Type", HTML), ("X-First", "1")])
        try:
            raise error
        except Boom:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [oops]

    server = Server()
    chunks = consume(server.serve(make_mw(app, GZIP_ON), headers=ACCEPT_GZIP), server)
    compressed = gzip_reference(oops)
    assert len(server.calls) == 1
    status, headers, exc_info = server.calls[0]
    assert status == "500 Internal Server Error"
    # A 500 gets no ETag (only 200s do); the second headers won, processed.
    assert headers == [("Content-Type", "text/plain"), ("Content-Encoding", "gzip"), ("Content-Length", str(len(compressed))), VARY_AE]
    assert exc_info is not None and exc_info[0] is Boom and exc_info[1] is error
    assert chunks == [compressed]


def test_exc_info_before_the_first_chunk_of_a_lazy_stream(make_mw: Any) -> None:
    error = Boom("handled")

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        def body() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", HTML)])
            try:
                raise error
            except Boom:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"try later"

        return body()

    server = Server()
    chunks = consume(server.serve(make_mw(app), headers=ACCEPT_GZIP), server)
    assert [(s, h) for s, h, _ in server.calls] == [("503 Service Unavailable", [("Content-Type", "text/plain")])]
    assert server.calls[0][2][1] is error
    assert chunks == [b"try later"]


@pytest.mark.parametrize("accept", [False, True])
def test_exc_info_after_the_headers_went_out_reraises(make_mw: Any, accept: bool) -> None:
    # PEP 3333: once the headers are sent, start_response(..., exc_info) must
    # re-raise.  The middleware has committed its headers (gzip or not) when it
    # handed them to the server, whatever the server has written yet.
    error = Boom("too late")
    seen: List[BaseException] = []
    closed: List[int] = []

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", HTML)])

        def body() -> Iterator[bytes]:
            try:
                yield CHUNKS[0]
                try:
                    raise error
                except Boom:
                    try:
                        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
                    except Boom as exc:
                        seen.append(exc)
                        raise
                yield b"error page"
            finally:
                closed.append(1)

        return body()

    server = Server()
    iterable = server.serve(make_mw(app, GZIP_ON), headers=ACCEPT_GZIP if accept else None)
    iterator = iter(iterable)
    next(iterator)  # the server has *not* marked its body as started
    with pytest.raises(Boom) as caught:
        next(iterator)
    assert caught.value is error
    assert seen == [error]
    iterable.close()
    assert closed == [1]
    assert [s for s, _, _ in server.calls] == ["200 OK"]
    assert server.calls[0][1] == ([("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE] if accept else [("Content-Type", HTML), VARY_AE])


def test_exc_info_on_the_first_stream_chunk_under_wsgiref(make_mw: Any) -> None:
    # Under a real server: the app fails on its first chunk after the middleware
    # has committed gzip headers.  The client must not get the app's error
    # headers with a gzip body; wsgiref's own error page goes out instead.
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", HTML)])

        def body() -> Iterator[bytes]:
            try:
                raise Boom("first chunk")
            except Boom:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"error page " * 100

        return body()

    out, errors = io.BytesIO(), io.StringIO()
    env = environ("GET", "/", ACCEPT_GZIP)
    handler = SimpleHandler(io.BytesIO(), out, errors, env, multithread=False, multiprocess=False)
    handler.run(make_mw(app, GZIP_ON))
    raw = out.getvalue()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.0 500 Internal Server Error"
    assert [line for line in lines[1:] if not line.startswith(b"Date:")] == [
        b"Content-Type: text/plain",
        b"Content-Length: %d" % len(SimpleHandler.error_body),
    ]
    assert payload == SimpleHandler.error_body
    assert "Boom: first chunk" in errors.getvalue()


# --- write() -------------------------------------------------------------------------------


def test_write_comes_first_in_a_buffered_body(make_mw: Any) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        write = start_response("200 OK", [("Content-Type", HTML)])
        write(BODY[:300])
        write(BODY[300:700])
        return [BODY[700:1000], BODY[1000:]]

    mw = make_mw(app, GZIP_ON)
    packed = call(mw, headers=ACCEPT_GZIP)
    compressed = gzip_reference(BODY)
    assert packed.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", tag(BODY, "-gzip")),
        VARY_AE,
    ]
    assert packed.chunks == [compressed]
    plain = call(mw)
    assert plain.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", tag(BODY)), VARY_AE]
    assert plain.chunks == [BODY]


def test_write_with_an_empty_list(make_mw: Any) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        start_response("200 OK", [("Content-Type", HTML)])(BODY)
        return []

    result = call(make_mw(app, GZIP_ON), headers=ACCEPT_GZIP)
    assert result.gunzip() == BODY
    assert result.get("ETag") == tag(BODY, "-gzip")
    assert result.get("Content-Length") == str(len(result.body))


@pytest.mark.parametrize("accept", [False, True])
def test_write_comes_first_in_a_stream(make_mw: Any, accept: bool) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Tracked:
        write = start_response("200 OK", [("Content-Type", HTML)])
        write(STREAM_PARTS[0])
        write(STREAM_PARTS[1])
        return Tracked(STREAM_PARTS[2:])

    result = call(make_mw(app, GZIP_ON), headers=ACCEPT_GZIP if accept else None)
    if accept:
        assert result.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
        assert result.chunks == sync_flush_reference(STREAM_PARTS)
    else:
        assert result.headers == [("Content-Type", HTML), VARY_AE]
        assert result.chunks == STREAM_PARTS


# --- responses without a body --------------------------------------------------------------


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "102 Processing"])
@pytest.mark.parametrize("kind", ["list", "stream", "declared-length"])
def test_bodiless_status_sends_no_body_and_no_length(make_mw: Any, status: str, kind: str) -> None:
    bodies: List[Any] = []

    def body() -> Any:
        bodies.append(ClosingList([b"junk"]) if kind == "list" else Tracked([b"junk"]))
        return bodies[-1]

    headers: Tuple[Header, ...] = (("X-Kept", "1"), ("ETag", '"e"'))
    if kind != "stream":
        headers += (("Content-Length", "4"),)
    mw = make_mw(wsgi_app(body, status=status, headers=headers), {"GZIP": True, "CORS_ORIGINS": "*"})
    for method in ("GET", "HEAD"):
        result = call(mw, method, headers=ACCEPT_GZIP)
        assert result.status == status
        assert result.headers == [("X-Kept", "1"), ("ETag", '"e"'), ("Access-Control-Allow-Origin", "*"), CORS_METHODS, CORS_HEADERS]
        assert result.chunks == []
        assert bodies[-1].closed == 1


# --- an unfinished stream releases its compressor ------------------------------------------


def test_never_exhausted_gzip_stream_is_closed_and_released(make_mw: Any) -> None:
    finished: List[str] = []

    def endless() -> Iterator[bytes]:
        try:
            n = 0
            while True:
                n += 1
                yield b"<p>tick %d</p>\n" % n
        finally:
            finished.append("closed")

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", HTML)])
        return endless() if env["PATH_INFO"] == "/endless" else [BODY]

    mw = make_mw(app, GZIP_ON)
    server = Server()
    iterable = server.serve(mw, headers=ACCEPT_GZIP, PATH_INFO="/endless")
    iterator = iter(iterable)
    received = [next(iterator) for _ in range(50)]
    assert zlib.decompressobj(31).decompress(b"".join(received)) == b"".join(b"<p>tick %d</p>\n" % n for n in range(1, 51))
    iterable.close()
    assert finished == ["closed"]
    assert list(iterable) == []  # a closed stream yields nothing more (no gzip tail)

    # The same middleware serves the next requests normally.
    for _ in range(2):
        after = call(mw, headers=ACCEPT_GZIP)
        assert after.chunks == [gzip_reference(BODY)]
        streamed = Server()
        again = iter(streamed.serve(mw, headers=ACCEPT_GZIP, PATH_INFO="/endless"))
        assert next(again) == sync_flush_reference([b"<p>tick 1</p>\n"])[0]
        again.close()  # type: ignore[attr-defined]
    assert finished == ["closed"] * 3


@pytest.mark.parametrize("accept", [False, True])
def test_write_during_iteration_keeps_its_place(make_mw: Any, accept: bool) -> None:
    # PEP 3333: written bytes count as if yielded, so a write() made while the
    # app produces chunk k lands before chunk k; one made during the last
    # next() is not lost.
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        write = start_response("200 OK", [("Content-Type", HTML)])

        def body() -> Iterator[bytes]:
            write(STREAM_PARTS[0])
            yield STREAM_PARTS[1]
            yield STREAM_PARTS[2]
            write(STREAM_PARTS[3])
            write(STREAM_PARTS[4])

        return body()

    result = call(make_mw(app, GZIP_ON), headers=ACCEPT_GZIP if accept else None)
    if accept:
        assert result.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), VARY_AE]
        assert result.chunks == sync_flush_reference(STREAM_PARTS)
    else:
        assert result.headers == [("Content-Type", HTML), VARY_AE]
        assert result.chunks == STREAM_PARTS


def test_list_returned_without_start_response(make_mw: Any) -> None:
    body = ClosingList([b"orphan"])

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        return body

    server = Server()
    with pytest.raises(AssertionError, match="without calling start_response"):
        server.serve(make_mw(app, GZIP_ON))
    assert body.closed == 1
    assert server.calls == []
