"""``wsgiref.validate`` around the middleware, and around the app inside it.

``validator(mw)`` checks the middleware as an application (status, header
names and values, Content-Type rules for 204/304, bytes chunks, close());
``mw(validator(app))`` checks it as the app's server (environ, start_response,
write(), iterating and closing the app's iterable).  Warnings from
wsgiref.validate are errors here, so a ``WSGIWarning`` fails the test.
"""

from __future__ import annotations

import gzip
import io
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple
from wsgiref.util import FileWrapper
from wsgiref.validate import WSGIWarning, validator

import pytest

from wsgi_helpers import Result, call, gzip_reference, md5_tag

pytestmark = [pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning"), pytest.mark.filterwarnings("error")]

Header = Tuple[str, str]

HTML = "text/html; charset=utf-8"
BODY = b"".join(b"<tr><td>row %03d</td><td>some table data</td></tr>\n" % i for i in range(30))
PARTS = [BODY[:400], BODY[400:900], BODY[900:]]
METHODS = ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS")
ALLOW_HEADERS = ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token, Authorization")


def drive(app: Callable[..., Any], method: str = "GET", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Result:
    """One request through ``validator(app)`` the way a server runs it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        result = call(validator(app), method, headers=headers, **extra)
    assert result.exc_info is None
    return result


class ValidatedList(list):
    """The chunks of a validated list body; close() reaches the validator."""

    def __init__(self, wrapper: Any) -> None:
        super().__init__(wrapper)
        self._wrapper = wrapper

    def close(self) -> None:
        self._wrapper.close()


class Inner:
    """``validator(app)`` as the middleware's app; keeps the validator's
    iterator wrappers so a test can check each was closed."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._validated = validator(app)
        self.results: List[Any] = []

    def __call__(self, env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        result = self._validated(env, start_response)
        self.results.append(result)
        if isinstance(result.original_iterator, (list, tuple)):
            # Keep a finite body finite (the validator's wrapper would make it a
            # stream); the validator still sees it iterated and closed.
            return ValidatedList(result)
        return result

    def all_closed(self) -> bool:
        return bool(self.results) and all(r.closed for r in self.results)


def simple_app(
    body: List[bytes],
    status: str = "200 OK",
    headers: Tuple[Header, ...] = (("Content-Type", HTML),),
    stream: bool = False,
) -> Callable[..., Any]:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response(status, list(headers))
        if stream:
            return (chunk for chunk in body)
        return list(body)

    return app


def both_ways(make_mw: Any, app: Callable[..., Any], config: Optional[Dict[str, Any]] = None, method: str = "GET", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Result:
    """Validate outside only, then outside and inside; both must give the same
    response (a file_wrapper body is the exception: wrapped by the validator
    it is no longer one, see test_file_wrapper)."""
    outer_only = drive(make_mw(app, config), method, headers, **extra)
    inner = Inner(app)
    both = drive(make_mw(inner, config), method, headers, **extra)
    if not isinstance(inner.results[0].original_iterator, FileWrapper):
        assert (both.status, both.headers, both.chunks) == (outer_only.status, outer_only.headers, outer_only.chunks)
    assert inner.all_closed()
    return outer_only


def test_warnings_from_the_validator_are_errors() -> None:
    # The guard the other tests rely on: a sloppy app fails here.
    def sloppy(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        start_response("200", [("Content-Type", "text/plain")])
        return [b"x"]

    with pytest.raises(WSGIWarning):
        drive(sloppy)


def test_plain_200(make_mw: Any) -> None:
    served = both_ways(make_mw, simple_app(PARTS))
    assert served.status == "200 OK"
    assert served.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", md5_tag(BODY))]
    assert served.chunks == [BODY]


def test_gzip_buffered(make_mw: Any) -> None:
    served = both_ways(make_mw, simple_app(PARTS), {"GZIP": True}, headers={"Accept-Encoding": "gzip, deflate"})
    assert served.status == "200 OK"
    assert served.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BODY)))),
        ("ETag", md5_tag(BODY, "-gzip")),
        ("Vary", "Accept-Encoding"),
    ]
    assert served.chunks == [gzip_reference(BODY)]


def test_gzip_streamed(make_mw: Any) -> None:
    served = both_ways(make_mw, simple_app(PARTS, stream=True), {"GZIP": True}, headers={"Accept-Encoding": "gzip"})
    assert served.status == "200 OK"
    assert served.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
    assert len(served.chunks) == len(PARTS) + 1
    assert gzip.decompress(served.body) == BODY


def test_etag_200_and_304(make_mw: Any) -> None:
    app = simple_app(PARTS, headers=(("Content-Type", HTML), ("Cache-Control", "max-age=0")))
    first = both_ways(make_mw, app)
    assert first.headers == [
        ("Content-Type", HTML),
        ("Cache-Control", "max-age=0"),
        ("Content-Length", str(len(BODY))),
        ("ETag", md5_tag(BODY)),
    ]
    again = both_ways(make_mw, app, headers={"If-None-Match": md5_tag(BODY)})
    assert again.status == "304 Not Modified"
    assert again.headers == [("Cache-Control", "max-age=0"), ("ETag", md5_tag(BODY))]
    assert again.chunks == []


def test_304_for_a_stream_with_an_app_etag(make_mw: Any) -> None:
    app = simple_app(PARTS, headers=(("Content-Type", HTML), ("ETag", '"v2"')), stream=True)
    served = both_ways(make_mw, app, {"GZIP": True}, headers={"If-None-Match": '"v1", W/"v2"', "Accept-Encoding": "gzip"})
    assert served.status == "304 Not Modified"
    assert served.headers == [("ETag", 'W/"v2"'), ("Vary", "Accept-Encoding")]
    assert served.chunks == []


@pytest.mark.parametrize("origins", [["https://a.example", "https://b.example"], "*"])
def test_cors_actual_response(make_mw: Any, origins: Any) -> None:
    served = both_ways(make_mw, simple_app(PARTS), {"CORS_ORIGINS": origins}, headers={"Origin": "https://b.example"})
    assert served.status == "200 OK"
    base = [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", md5_tag(BODY))]
    if origins == "*":
        assert served.headers == base + [("Access-Control-Allow-Origin", "*"), METHODS, ALLOW_HEADERS]
    else:
        assert served.headers == base + [("Vary", "Origin"), ("Access-Control-Allow-Origin", "https://b.example"), METHODS, ALLOW_HEADERS]
    assert served.chunks == [BODY]


@pytest.mark.parametrize("origins", [["https://a.example"], "*"])
def test_preflight_204(make_mw: Any, origins: Any) -> None:
    inner = Inner(simple_app([b"never"]))
    served = drive(
        make_mw(inner, {"CORS_ORIGINS": origins}),
        "OPTIONS",
        {"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"},
    )
    assert served.status == "204 No Content"
    head = [("Access-Control-Allow-Origin", "*")] if origins == "*" else [("Vary", "Origin"), ("Access-Control-Allow-Origin", "https://a.example")]
    assert served.headers == head + [METHODS, ALLOW_HEADERS, ("Access-Control-Max-Age", "86400")]
    assert served.chunks == []
    assert inner.results == []  # answered without the app


@pytest.mark.parametrize("stream", [False, True])
def test_head(make_mw: Any, stream: bool) -> None:
    app = simple_app(PARTS, stream=stream)
    config = {"GZIP": True}
    get = both_ways(make_mw, app, config, headers={"Accept-Encoding": "gzip"})
    head = both_ways(make_mw, app, config, "HEAD", headers={"Accept-Encoding": "gzip"})
    assert head.status == get.status == "200 OK"
    assert head.headers == get.headers
    assert head.chunks == []
    assert gzip.decompress(get.body) == BODY


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_file_wrapper(make_mw: Any, method: str) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", HTML), ("Content-Length", str(len(BODY)))])
        return env["wsgi.file_wrapper"](io.BytesIO(BODY), 256)

    config = {"GZIP": True, "CORS_ORIGINS": "*"}
    extra = {"wsgi.file_wrapper": FileWrapper}
    served = both_ways(make_mw, app, config, method, {"Accept-Encoding": "gzip"}, **extra)
    assert served.status == "200 OK"
    assert served.headers == [
        ("Content-Type", HTML),
        ("Content-Length", str(len(BODY))),
        ("Access-Control-Allow-Origin", "*"),
        METHODS,
        ALLOW_HEADERS,
    ]
    assert served.body == (BODY if method == "GET" else b"")

    # Behind the validator the app's body is the validator's iterator, no
    # longer a file_wrapper: an iterable with a small Content-Length, buffered.
    inner = Inner(app)
    wrapped = drive(make_mw(inner, config), method, {"Accept-Encoding": "gzip"}, **extra)
    assert inner.all_closed()
    assert wrapped.status == "200 OK"
    assert wrapped.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BODY)))),
        ("ETag", md5_tag(BODY, "-gzip")),
        ("Vary", "Accept-Encoding"),
        ("Access-Control-Allow-Origin", "*"),
        METHODS,
        ALLOW_HEADERS,
    ]
    assert (gzip.decompress(wrapped.body) if method == "GET" else wrapped.body) == (BODY if method == "GET" else b"")


@pytest.mark.parametrize("stream", [False, True])
def test_204_from_the_app(make_mw: Any, stream: bool) -> None:
    app = simple_app([], status="204 No Content", headers=(("X-Done", "yes"),), stream=stream)
    served = both_ways(make_mw, app, {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}, headers={"Origin": "https://a.example"})
    assert served.status == "204 No Content"
    assert served.headers == [("X-Done", "yes"), ("Vary", "Origin"), ("Access-Control-Allow-Origin", "https://a.example"), METHODS, ALLOW_HEADERS]
    assert served.chunks == []


def test_event_stream(make_mw: Any) -> None:
    events = [b"data: %d\n\n" % i for i in range(5)]
    app = simple_app(events, headers=(("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")), stream=True)
    served = both_ways(make_mw, app, {"GZIP": True, "GZIP_MIN_SIZE": 0}, headers={"Accept-Encoding": "gzip"})
    assert served.status == "200 OK"
    assert served.headers == [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    assert served.chunks == events


def test_write_and_lazy_start_response(make_mw: Any) -> None:
    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        write = start_response("200 OK", [("Content-Type", HTML)])
        write(PARTS[0])
        return PARTS[1:]

    served = both_ways(make_mw, app, {"GZIP": True}, headers={"Accept-Encoding": "gzip"})
    assert served.chunks == [gzip_reference(BODY)]

    def lazy(env: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def body() -> Any:
            start_response("200 OK", [("Content-Type", HTML)])
            yield from PARTS

        return body()

    streamed = both_ways(make_mw, lazy, {"GZIP": True}, headers={"Accept-Encoding": "gzip"})
    assert streamed.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
    assert gzip.decompress(streamed.body) == BODY
