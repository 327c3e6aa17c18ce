"""The ASGI twin (SPEC "ASGI"): the same answer as the WSGI middleware, from the same core.

One parity suite drives the same cases (the WSGI parity grid's axes, translated to
ASGI: a request's headers as byte pairs, an app's body as one message, several
``more_body`` messages, or several under a declared ``Content-Length``) through
``ResponseMiddleware`` and ``ASGIMiddleware`` and compares the status, the headers
(names case-insensitively, values and order exactly) and the body bytes.  Then the
ASGI-only paths: scopes, preflights, ``more_body``, HEAD, 304, trailers,
``pathsend``, failures and a client that goes away.  Both cores throughout.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from asok_fast import ASGIMiddleware, ResponseMiddleware
from asgi_helpers import AsgiResult, asgi_app, asgi_call, scope
from test_parity import (
    ACCEPT_ENCODINGS,
    CODING_ACCEPT_ENCODINGS,
    CODING_CONFIGS,
    CONTENT_TYPES,
    CORS_CONFIGS,
    EXTRAS,
    GZIP_CONFIGS,
    INM,
    METHODS,
    ORIGINS,
    SIZES,
    STATUSES,
    _size,
    _tag,
    make_body,
    pairwise,
)
from wsgi_helpers import call, decode

HTML = "text/html; charset=utf-8"
BROWSER = "gzip, deflate, br, zstd"


def _latin1(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return False
        return "\r" not in value and "\n" not in value and "\x00" not in value
    return all(_latin1(v) for v in value)


def _usable(axis: List[Tuple[str, Any]]) -> List[Tuple[str, Any]]:
    """An axis's values that an ASGI server could carry (latin-1 bytes, no CR/LF/NUL)."""
    return [(label, value) for label, value in axis if _latin1(value) and not (isinstance(value, str) and len(value) > 2000)]


# --- the same case through both middlewares -----------------------------------------------------

KINDS = [("one", "one"), ("stream", "stream"), ("declared", "declared"), ("empty-stream", "empty-stream")]


def _chunks(body: bytes) -> List[bytes]:
    third = max(1, len(body) // 3)
    return [body[:third], b"", body[third : 2 * third], body[2 * third :]]


def _wsgi_app(status: str, headers: List[Tuple[str, str]], body: bytes, kind: str) -> Any:
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        extra = [("Content-Length", str(len(body)))] if kind == "declared" else []
        start_response(status, headers + extra)
        if kind == "one":
            return [body]
        return _generate(_chunks(body) if kind != "empty-stream" else [])

    return app


def _generate(chunks: List[bytes]) -> Iterator[bytes]:
    yield from chunks


def _asgi_app(status: str, headers: List[Tuple[str, str]], body: bytes, kind: str) -> Any:
    extra = [("Content-Length", str(len(body)))] if kind == "declared" else []
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers + extra]

    async def app(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": int(status[:3]), "headers": raw})
        if kind == "one":
            await send({"type": "http.response.body", "body": body})  # more_body absent: false
            return
        # An empty stream is one that says more is coming, then ends: a first
        # message that ended the body would make it finite (SPEC).
        for chunk in _chunks(body) if kind != "empty-stream" else [b""]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def both(core: Any, config: Dict[str, Any], method: str, request: Dict[str, str], status: str, headers: List[Tuple[str, str]], body: bytes, kind: str) -> Tuple[Any, AsgiResult]:
    wsgi = call(ResponseMiddleware(_wsgi_app(status, headers, body, kind), config, _core_module=core), method, headers=request)
    asgi = asgi_call(ASGIMiddleware(_asgi_app(status, headers, body, kind), config, _core_module=core), method, headers=request)
    return wsgi, asgi


def assert_same(wsgi: Any, asgi: AsgiResult, label: str = "") -> None:
    assert asgi.status == wsgi.code, label
    assert [(n.lower(), v) for n, v in asgi.headers] == [(n.lower(), v) for n, v in wsgi.headers], label
    assert asgi.body == wsgi.body, label
    assert asgi.ended(), label


def _cases() -> List[Tuple[str, Dict[str, Any], str, Dict[str, str], str, List[Tuple[str, str]], bytes, str]]:
    configs = _usable(GZIP_CONFIGS) + _usable(CODING_CONFIGS) + _usable(CORS_CONFIGS)
    axes = [
        _usable(METHODS),
        _usable(ACCEPT_ENCODINGS) + _usable(CODING_ACCEPT_ENCODINGS),
        _usable(CONTENT_TYPES),
        SIZES,
        KINDS,
        configs,
        _usable(EXTRAS),
        STATUSES,
        _usable(ORIGINS),
        _usable(INM),
    ]
    out = []
    for n, row in enumerate(pairwise(axes, seed=17)):
        m, ae, ct, size, kind, cfg, extra, status, origin, inm = (axis[i] for axis, i in zip(axes, row))
        config = cfg[1] if isinstance(cfg[1], dict) else {}
        body = make_body("text", _size(size[1], config))
        request = {}
        for name, value in (("Accept-Encoding", ae[1]), ("Origin", origin[1]), ("If-None-Match", _tag(inm[1], body))):
            if value is not None:
                request[name] = value
        headers = ([("Content-Type", ct[1])] if ct[1] is not None else []) + [
            (name, value.replace("{len}", str(len(body)))) for name, value in extra[1]
        ]
        if kind[1] == "declared" and any(n.lower() == "content-length" for n, _ in headers):
            kind = ("one", "one")
        label = f"{n:04d}-{m[0]}-{ae[0]}-{ct[0]}-{size[0]}-{kind[0]}-{cfg[0]}-{extra[0]}-{status[0]}-{origin[0]}-{inm[0]}"
        out.append((label, config, m[1].upper(), request, status[1], headers, body, kind[1]))
    return out


CASES = _cases()


def test_the_grid_answers_as_the_wsgi_middleware(core: Any) -> None:
    mismatches = []
    for label, config, method, request, status, headers, body, kind in CASES:
        wsgi, asgi = both(core, config, method, request, status, headers, body, kind)
        try:
            assert_same(wsgi, asgi, label)
        except AssertionError:
            mismatches.append(f"{label}\n  wsgi: {wsgi.code} {wsgi.headers} {len(wsgi.body)}\n  asgi: {asgi.status} {asgi.headers} {len(asgi.body)}")
    assert len(CASES) > 200
    assert not mismatches, f"{len(mismatches)} of {len(CASES)} differ:\n" + "\n".join(mismatches[:8])


@pytest.mark.parametrize("accept", [BROWSER, "br", "gzip", "zstd;q=0.5, gzip;q=0.4", None])
@pytest.mark.parametrize("kind", ["one", "stream", "declared"])
@pytest.mark.parametrize("config", [{"GZIP": True}, {"GZIP": True, "COMPRESS_CACHE_SIZE": 0}, {"GZIP": True, "GZIP_ENGINE": "isal"}], ids=["cache", "no-cache", "isal"])
def test_every_coding_and_the_cache(core: Any, accept: Optional[str], kind: str, config: Dict[str, Any]) -> None:
    body = make_body("text", 20_000)
    request = {"Accept-Encoding": accept} if accept else {}
    for _ in range(3):  # the third is a cache hit where the cache is on
        wsgi, asgi = both(core, config, "GET", request, "200 OK", [("Content-Type", HTML)], body, kind)
        assert_same(wsgi, asgi)
        assert decode(asgi.get("content-encoding"), asgi.body) == body


# --- ASGI's own paths ------------------------------------------------------------------------------


@pytest.fixture
def make_asgi(core: Any) -> Any:
    def make(app: Any, config: Optional[Dict[str, Any]] = None) -> ASGIMiddleware:
        return ASGIMiddleware(app, config, _core_module=core)

    return make


def test_websocket_and_lifespan_pass_untouched(make_asgi: Any) -> None:
    seen: List[Tuple[str, Any, Any]] = []

    async def app(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((the_scope["type"], receive, send))

    mw = make_asgi(app, {"GZIP": True, "CORS_ORIGINS": "*"})

    async def receive() -> Dict[str, Any]:
        return {}

    async def send(message: Dict[str, Any]) -> None:
        pass

    for kind in ("websocket", "lifespan"):
        asyncio.run(mw({"type": kind, "headers": []}, receive, send))
    assert seen == [("websocket", receive, send), ("lifespan", receive, send)]


def test_preflight_answered_without_the_app(make_asgi: Any) -> None:
    app = asgi_app(b"never")
    mw = make_asgi(app, {"CORS_ORIGINS": ["https://a.example"], "CORS_MAX_AGE": 600})
    r = asgi_call(mw, "OPTIONS", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"})
    assert app.calls == 0
    assert r.status == 204
    assert r.headers == [
        ("vary", "Origin"),
        ("access-control-allow-origin", "https://a.example"),
        ("access-control-allow-methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS"),
        ("access-control-allow-headers", "Content-Type, X-CSRF-Token, Authorization"),
        ("access-control-max-age", "600"),
    ]
    assert r.chunks == [b""] and r.ended()
    # OPTIONS without Access-Control-Request-Method reaches the app.
    assert asgi_call(mw, "OPTIONS", headers={"Origin": "https://a.example"}).body == b"never"


def test_a_first_message_that_ends_the_body_is_buffered(make_asgi: Any) -> None:
    body = make_body("text", 5000)
    r = asgi_call(make_asgi(asgi_app(body), {"GZIP": True}), headers={"Accept-Encoding": "br"})
    assert r.get("content-encoding") == "br"
    assert r.get("content-length") == str(len(r.body))
    assert r.get("etag") == f'"{hashlib.md5(body).hexdigest()}-br"'
    assert len(r.chunks) == 1 and r.ended()


def test_a_stream_is_compressed_message_by_message(make_asgi: Any) -> None:
    chunks = [make_body("text", 3000 + i) for i in range(5)]
    r = asgi_call(make_asgi(asgi_app(chunks=chunks), {"GZIP": True}), headers={"Accept-Encoding": "zstd"})
    assert r.get("content-encoding") == "zstd"
    assert r.get("content-length") is None and r.get("etag") is None
    from wsgi_helpers import zstd_decoder

    decoder = zstd_decoder()
    for chunk, wire in zip(chunks, r.chunks):
        assert decoder.decompress(wire) == chunk  # each message decodes as it arrives
    assert r.ended()
    assert decode("zstd", r.body) == b"".join(chunks)


def test_head_sends_no_body_byte(make_asgi: Any) -> None:
    body = make_body("text", 5000)
    for config in ({"GZIP": True}, {"ETAG": False}):  # features on, and every feature off
        for app in (asgi_app(body), asgi_app(chunks=[body, body])):
            mw = make_asgi(app, config)
            get = asgi_call(mw, "GET", headers={"Accept-Encoding": "gzip"})
            head = asgi_call(mw, "HEAD", headers={"Accept-Encoding": "gzip"})
            assert head.status == 200
            assert head.headers == get.headers
            assert head.body == b"" and head.ended()


def test_304_sends_no_body_byte(make_asgi: Any) -> None:
    body = make_body("text", 5000)
    tag = f'"{hashlib.md5(body).hexdigest()}"'
    r = asgi_call(make_asgi(asgi_app(body), {"GZIP": True}), headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
    assert r.status == 304
    assert r.body == b"" and r.ended()
    # A stream with the app's own ETag: the same 304, the rest of the app's messages dropped.
    app = asgi_app(chunks=[body], headers=[("ETag", '"v1"')])
    r = asgi_call(make_asgi(app, {"GZIP": True}), headers={"If-None-Match": '"v1"'})
    assert r.status == 304
    assert r.chunks == [b""] and r.ended()


def test_trailers_and_pathsend_pass_the_body_untouched(make_asgi: Any) -> None:
    body = make_body("text", 5000)

    async def with_trailers(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")], "trailers": True})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False})

    r = asgi_call(make_asgi(with_trailers, {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}), headers={"Accept-Encoding": "gzip", "Origin": "https://a.example"})
    assert r.start["trailers"] is True
    assert r.body == body and r.get("content-encoding") is None
    # Never compressed, for any client: no Vary: Accept-Encoding (SPEC); the origin's still.
    assert r.get("vary") == "Origin"
    assert r.get("access-control-allow-origin") == "https://a.example"
    assert r.messages[-1] == {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False}

    async def with_pathsend(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": "/srv/big.txt"})

    r = asgi_call(make_asgi(with_pathsend, {"GZIP": True}), headers={"Accept-Encoding": "gzip"})
    assert [m["type"] for m in r.messages] == ["http.response.start", "http.response.pathsend"]
    assert r.get("content-encoding") is None and r.get("vary") is None


class Boom(Exception):
    pass


def test_an_app_that_raises_before_or_after_start(make_asgi: Any) -> None:
    async def before(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        raise Boom("before")

    async def after(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": make_body("text", 3000), "more_body": True})
        raise Boom("after")

    with pytest.raises(Boom, match="before"):
        asgi_call(make_asgi(before, {"GZIP": True}))
    with pytest.raises(Boom, match="after"):
        asgi_call(make_asgi(after, {"GZIP": True}), headers={"Accept-Encoding": "gzip"})


def test_a_client_that_goes_away_releases_the_compressor(make_asgi: Any, monkeypatch: Any) -> None:
    from asok_fast import asgi as asgi_module

    closed: List[Any] = []
    real_close = asgi_module._Response.close

    def close(self: Any) -> None:
        closed.append(self._encoder)
        real_close(self)

    monkeypatch.setattr(asgi_module._Response, "close", close)
    chunks = [make_body("text", 3000)] * 6
    with pytest.raises(OSError):
        asgi_call(make_asgi(asgi_app(chunks=chunks), {"GZIP": True}), headers={"Accept-Encoding": "br"}, send_fails_at=3)
    assert len(closed) == 1 and closed[0] is not None  # a live compressor, released


def test_repeated_request_headers_are_joined_as_a_wsgi_server_does(make_asgi: Any) -> None:
    body = make_body("text", 5000)
    app = asgi_app(body)
    mw = make_asgi(app, {"GZIP": True})
    the_scope = scope(headers={})
    the_scope["headers"] = [(b"accept-encoding", b"zstd;q=0"), (b"accept-encoding", b"br")]
    result = AsgiResult()

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        result.messages.append(message)

    asyncio.run(mw(the_scope, receive, send))
    assert result.get("content-encoding") == "br"


def test_config_and_errors_are_the_wsgi_middlewares(make_asgi: Any) -> None:
    mw = make_asgi(asgi_app(make_body("text", 5000)))
    assert dict(mw.config) == dict(ResponseMiddleware(lambda e, s: []).config)
    mw.config["GZIP"] = True
    assert asgi_call(mw, headers={"Accept-Encoding": "gzip"}).get("content-encoding") == "gzip"
    mw.config["ZSTD_LEVEL"] = 42
    with pytest.raises(ValueError, match="ZSTD_LEVEL"):
        asgi_call(mw, headers={"Accept-Encoding": "gzip"})
    with pytest.raises(TypeError, match="ASGIMiddleware needs an ASGI application"):
        ASGIMiddleware(None)  # type: ignore[arg-type]


def test_an_app_that_returns_before_its_body_ends(make_asgi: Any) -> None:
    """The response is finished with what the app sent, as ASGI requires of a complete answer."""
    body = make_body("text", 5000)

    async def start_only(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})

    async def unended_stream(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": body, "more_body": True})

    r = asgi_call(make_asgi(start_only, {"GZIP": True}), headers={"Accept-Encoding": "gzip"})
    assert (r.status, r.get("content-length"), r.body) == (200, "0", b"") and r.ended()
    r = asgi_call(make_asgi(unended_stream, {"GZIP": True}), headers={"Accept-Encoding": "zstd"})
    assert r.get("content-encoding") == "zstd" and r.ended()
    assert decode("zstd", r.body) == body
