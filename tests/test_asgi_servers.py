"""ASGIMiddleware behind real ASGI servers, over real sockets on 127.0.0.1.

Each server is a subprocess started by a module-scoped fixture and stopped by its own
process group id (``tests/servers.py``), on the compiled core (where built) and on the pure
one (``ASOK_FAST_NO_EXTENSIONS=1`` in the server's environment):

* ``asok-fast-serve``  ``python -m asok_fast serve --asgi asgi_server_apps:raw_app <flags>``:
                       the CLI wraps the bare ASGI app and serves it on embedded uvicorn;
* ``uvicorn``          stock ``uvicorn asgi_server_apps:app`` (the app wrapped in its module);
* ``hypercorn``        stock ``hypercorn asgi_server_apps:app``;
* ``granian``          stock ``granian --interface asgi asgi_server_apps:app`` (Rust, one
                       worker process under its main process).

Each serves a buffered JSON answer compressed (zstd for a browser's ``Accept-Encoding``, gzip
for a gzip-only client) with its ETag and a ``304`` on revalidation, a slow stream whose first
chunk decodes before the app makes the next, and a preflight answered with ``204`` without
the app being called.  Then, under stock uvicorn: a Starlette and a FastAPI app wrapped as
``app = ASGIMiddleware(app, config=...)`` and given to the framework
(``Middleware(ASGIMiddleware, ...)``, ``add_middleware(ASGIMiddleware, config=...)``), and a
real Asok project in ASGI mode with the two-line drop-in in its ``wsgi.py``.

Every expected body comes from ``server_apps``' own functions; compressed bytes are compared
with what the codec libraries make themselves (``servers.reference_bytes``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from server_apps import ALLOWED_ORIGIN, CLI_FLAGS, STREAM_CHUNKS, json_body
from servers import (
    BROWSER_ACCEPT_ENCODING,
    CODINGS,
    HOST,
    Server,
    StreamDecoder,
    decode,
    free_port,
    get_json,
    python_m_asok_fast,
    raw_request,
    reference_bytes,
    start_server,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the server tests run POSIX servers (process groups)")

JSON = json_body()
BROWSER = {"Accept-Encoding": BROWSER_ACCEPT_ENCODING}
GZIP_ONLY = {"Accept-Encoding": "gzip"}
ACCEPT = {coding: {"Accept-Encoding": coding} for coding in CODINGS}
PREFLIGHT = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def vary_tokens(value: Optional[str]) -> List[str]:
    return sorted(t.strip().lower() for t in (value or "").split(",") if t.strip())


def _python_m(module: str) -> List[str]:
    return [sys.executable, "-m", module]


def start_granian(name: str, target: str, workdir: Path, **kwargs) -> Server:
    """granian cannot listen on port 0 and say which port it got: a free port picked here,
    and another one if something took it before granian bound it."""
    pytest.importorskip("granian", reason="granian is not installed (the test extra)")
    for attempt in range(5):
        port = free_port()
        argv = _python_m("granian") + [
            "--interface", "asgi", "--host", HOST, "--port", str(port), "--workers", "1",
            "--no-ws", "--workers-kill-timeout", "3", target,
        ]
        try:
            return start_server(f"{name}-{attempt}", argv, workdir, port=port, **kwargs)
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == 4:
                raise
    raise AssertionError("unreachable")


def start_uvicorn(name: str, target: str, workdir: Path, **kwargs) -> Server:
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (the test extra)")
    argv = _python_m("uvicorn") + [target, "--host", HOST, "--port", "0", "--lifespan", "on", "--timeout-graceful-shutdown", "3"]
    return start_server(name, argv, workdir, **kwargs)


def start_hypercorn(name: str, target: str, workdir: Path, **kwargs) -> Server:
    pytest.importorskip("hypercorn", reason="hypercorn is not installed (the test extra)")
    argv = _python_m("hypercorn") + [target, "--bind", f"{HOST}:0", "--graceful-timeout", "3", "--workers", "1"]
    return start_server(name, argv, workdir, **kwargs)


def start_cli(name: str, target: str, workdir: Path, **kwargs) -> Server:
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (the serve extra)")
    argv = python_m_asok_fast() + ["serve", "--asgi", target, *CLI_FLAGS, "--host", HOST, "--port", "0"]
    return start_server(name, argv, workdir, **kwargs)


SERVERS = {
    "asok-fast-serve": (start_cli, "asgi_server_apps:raw_app"),
    "uvicorn": (start_uvicorn, "asgi_server_apps:app"),
    "hypercorn": (start_hypercorn, "asgi_server_apps:app"),
    "granian": (start_granian, "asgi_server_apps:app"),
}
CORES = {"default-core": False, "python": True}


@pytest.fixture(
    scope="module",
    params=[(name, core) for name in SERVERS for core in CORES],
    ids=[f"{name}-{core}" for name in SERVERS for core in CORES],
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    name, core = request.param
    start, target = SERVERS[name]
    srv = start(name, target, tmp_path_factory.mktemp(f"{name}-{core}"), no_extensions=CORES[core])
    try:
        yield srv
    finally:
        srv.stop()


def calls(server: Server) -> List[str]:
    """The requests that reached the app (not the middleware's own answers)."""
    return json.loads(get_body(server, "/__calls"))


def get_body(server: Server, path: str) -> bytes:
    r = raw_request(server.port, "GET", path)
    assert r.status == 200, (path, r.status, r.body[:200])
    return decode(r.get("Content-Encoding"), r.body)


# ---------------------------------------------------------------- the checks, for every server


def check_core(server: Server) -> None:
    info = get_json(server, "/__impl")
    assert info["implementation"] == server.expected_implementation, info
    assert info["core"] == ("asok_fast._core_c" if info["implementation"] == "compiled" else "asok_fast._core_py")
    if info.get("middleware") is not None:  # the ASGIMiddleware that answered runs that core
        assert info["middleware"] == server.expected_implementation


def check_buffered_json(server: Server, headers: Dict[str, str], coding: str, path: str = "/json", body: bytes = JSON) -> None:
    """The JSON in ``coding``, byte for byte what the codec library makes, with its ETag; then a
    ``304`` with no body byte on revalidation, and a ``200`` again for a stale tag."""
    first = raw_request(server.port, "GET", path, {**headers, "Origin": ALLOWED_ORIGIN})
    assert first.status == 200
    assert first.get("Content-Encoding") == coding
    assert first.get("Content-Type") == "application/json"
    assert int(first.get("Content-Length")) == len(first.body)  # the bytes on the wire
    assert first.get("Transfer-Encoding") is None
    assert first.body == reference_bytes(coding, body)
    assert decode(coding, first.body) == body
    etag = first.get("ETag")
    assert etag == f'"{md5(body)}-{coding}"'
    assert vary_tokens(first.get("Vary")) == ["accept-encoding", "origin"]
    assert first.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN

    again = raw_request(server.port, "GET", path, {**headers, "Origin": ALLOWED_ORIGIN, "If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""  # not one byte after the header block
    assert again.get("ETag") == etag
    assert again.get("Vary") == first.get("Vary")
    assert again.get("Content-Encoding") is None
    assert again.get("Content-Length") in (None, "0")
    assert again.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN

    stale = raw_request(server.port, "GET", path, {**headers, "If-None-Match": '"0123"'})
    assert stale.status == 200 and stale.body == first.body


def check_slow_stream(server: Server, coding: Optional[str]) -> None:
    """The app sends its first chunk, then waits on a gate only this test opens: what arrives
    meanwhile decodes to that whole chunk (a flushed block per ASGI message), and after the
    gate the body is complete, one frame or stream of ``coding``."""
    accept = ACCEPT[coding] if coding else {}
    gate = uuid.uuid4().hex
    conn = server.connection(timeout=10)
    try:
        conn.request("GET", f"/gated?id={gate}", headers=accept)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") is None
        assert response.getheader("ETag") is None  # a stream of unknown length gets no tag
        assert response.getheader("Content-Encoding") == coding
        assert "accept-encoding" in vary_tokens(response.getheader("Vary"))
        decoder = StreamDecoder(coding)
        text = b""
        while len(text) < len(STREAM_CHUNKS[0]):
            data = response.read1(65536)
            assert data, f"stream ended early after {text!r}"
            text += decoder.feed(data)
        assert text == STREAM_CHUNKS[0]  # decoded while the app waits before its next chunk
        if coding is not None:
            assert not decoder.complete  # the coding's end marker is still to come
        server.open_gate(gate)
        rest = response.read()
        text += decoder.feed(rest) + decoder.end()
        assert decoder.complete
        assert text == b"".join(STREAM_CHUNKS)
    finally:
        server.open_gate(gate)  # never leave the app waiting
        conn.close()


def check_preflight(server: Server, path: str = "/echo") -> None:
    """``204``, no body, the CORS headers; the app never sees the request.  An ``OPTIONS``
    without ``Access-Control-Request-Method`` is no preflight: it reaches the app."""
    probe = uuid.uuid4().hex
    r = raw_request(server.port, "OPTIONS", f"{path}?probe={probe}", PREFLIGHT)
    assert r.status == 204
    assert r.body == b""
    assert r.get("Content-Length") is None
    assert r.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert r.get("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE, PATCH, OPTIONS"
    assert r.get("Access-Control-Allow-Headers") == "Content-Type, X-CSRF-Token, Authorization"
    assert r.get("Access-Control-Max-Age") == "86400"
    assert r.get("Access-Control-Expose-Headers") is None  # actual responses only
    assert r.get("X-Worker-Pid") is None

    denied = raw_request(server.port, "OPTIONS", f"{path}?probe={probe}", {**PREFLIGHT, "Origin": "http://evil.example"})
    assert denied.status == 204 and denied.body == b""
    assert not [k for k, _ in denied.headers if k.lower().startswith("access-control-")]

    plain = uuid.uuid4().hex
    raw_request(server.port, "OPTIONS", f"{path}?probe={plain}", {"Origin": ALLOWED_ORIGIN})
    seen = calls(server)
    assert [c for c in seen if probe in c] == []  # neither preflight reached the app
    assert [c for c in seen if plain in c] == [f"OPTIONS {path}?probe={plain}"]


def check_put(server: Server) -> None:
    payload = json.dumps({"n": 1, "s": "x" * 50}).encode()
    conn = server.connection()
    try:
        conn.request("PUT", "/echo", body=payload, headers={"Content-Type": "application/json", "Origin": ALLOWED_ORIGIN})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert json.loads(data) == {"method": "PUT", "received": {"n": 1, "s": "x" * 50}}
    assert response.getheader("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert response.getheader("ETag") is None  # PUT: no validator


# ---------------------------------------------------------------- uvicorn, hypercorn, granian


def test_core(server: Server) -> None:
    check_core(server)


@pytest.mark.parametrize("headers,coding", [(BROWSER, "zstd"), (GZIP_ONLY, "gzip")], ids=["browser-zstd", "gzip-only"])
def test_buffered_json_compressed_with_etag_and_304(server: Server, headers: Dict[str, str], coding: str) -> None:
    check_buffered_json(server, headers, coding)


def test_identity_when_no_coding_is_accepted(server: Server) -> None:
    r = raw_request(server.port, "GET", "/json")
    assert r.status == 200
    assert r.get("Content-Encoding") is None
    assert r.body == JSON
    assert r.get("ETag") == f'"{md5(JSON)}"'
    assert vary_tokens(r.get("Vary")) == ["accept-encoding", "origin"]


@pytest.mark.parametrize("coding", [*CODINGS, None], ids=[*CODINGS, "identity"])
def test_slow_stream_arrives_chunk_by_chunk(server: Server, coding: Optional[str]) -> None:
    check_slow_stream(server, coding)


def test_preflight_answered_without_the_app(server: Server) -> None:
    check_preflight(server)


def test_put_reaches_the_app(server: Server) -> None:
    check_put(server)


def test_head_has_get_headers_and_no_body(server: Server) -> None:
    get = raw_request(server.port, "GET", "/json", BROWSER)
    head = raw_request(server.port, "HEAD", "/json", BROWSER)
    assert head.status == get.status == 200
    assert head.body == b""
    for name in ("Content-Length", "Content-Encoding", "ETag", "Vary", "Content-Type"):
        assert head.get(name) == get.get(name), name


# ---------------------------------------------------------------- Starlette and FastAPI under uvicorn

FRAMEWORK_APPS = ["starlette_app", "starlette_stack", "fastapi_app", "fastapi_stack"]


@pytest.fixture(scope="module", params=FRAMEWORK_APPS)
def framework(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    pytest.importorskip("starlette" if request.param.startswith("starlette") else "fastapi")
    srv = start_uvicorn(request.param, f"asgi_server_apps:{request.param}", tmp_path_factory.mktemp(request.param))
    try:
        yield srv
    finally:
        srv.stop()


def test_framework_core(framework: Server) -> None:
    check_core(framework)


@pytest.mark.parametrize("headers,coding", [(BROWSER, "zstd"), (GZIP_ONLY, "gzip")], ids=["browser-zstd", "gzip-only"])
def test_framework_buffered_json(framework: Server, headers: Dict[str, str], coding: str) -> None:
    check_buffered_json(framework, headers, coding)


@pytest.mark.parametrize("coding", ["zstd", "gzip"])
def test_framework_stream(framework: Server, coding: str) -> None:
    """Starlette's ``StreamingResponse`` (one body message per chunk) reaches the client as it is made."""
    check_slow_stream(framework, coding)


def test_framework_preflight_and_put(framework: Server) -> None:
    check_preflight(framework)
    check_put(framework)


# ---------------------------------------------------------------- a real Asok project in ASGI mode

ASOK_ORIGIN = "https://app.example.com"
ASOK_MIN_SIZE = 2000  # between /api/items (~1.4 KB: not compressed) and /report (~6 KB: compressed)


@pytest.fixture(scope="module")
def asok_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("asok", reason="the Asok tests need asok==0.8.0")
    from asgi_server_apps import make_asok_asgi_project

    return make_asok_asgi_project(
        tmp_path_factory.mktemp("asok_asgi"), GZIP=True, GZIP_MIN_SIZE=ASOK_MIN_SIZE, CORS_ORIGINS=[ASOK_ORIGIN],
    )


@pytest.fixture(scope="module")
def asok_server(asok_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    srv = start_uvicorn(
        "asok-uvicorn", "wsgi:app", tmp_path_factory.mktemp("asok_uvicorn"),
        cwd=asok_project,  # Asok() takes the current directory as the project root
        ready_path="/api/items",
        env_extra={"ASOK_ENV_OVERRIDE": "true"},
    )
    try:
        yield srv
    finally:
        srv.stop()


def asok_headers(**extra: str) -> Dict[str, str]:
    from asok_project import CSRF_COOKIE

    return {"Cookie": CSRF_COOKIE, **{k.replace("_", "-"): v for k, v in extra.items()}}


def test_asok_drop_in_is_two_lines(asok_project: Path) -> None:
    from asgi_server_apps import DROP_IN_IMPORT, DROP_IN_WRAP

    plain = (asok_project / "wsgi_plain.py").read_text(encoding="utf-8").splitlines()
    wrapped = (asok_project / "wsgi.py").read_text(encoding="utf-8").splitlines()
    assert [line for line in wrapped if line not in plain] == [DROP_IN_IMPORT, DROP_IN_WRAP]
    assert wrapped[-1] == DROP_IN_WRAP  # after the app.config lines


def test_asok_asgi_mode_is_served_by_uvicorn(asok_server: Server) -> None:
    log = asok_server.log()
    assert "Uvicorn running on" in log
    assert "ASGI 'lifespan' protocol appears unsupported" not in log  # Asok speaks ASGI itself


@pytest.mark.parametrize("headers,coding", [(BROWSER, "zstd"), (GZIP_ONLY, "gzip")], ids=["browser-zstd", "gzip-only"])
def test_asok_page_compressed_with_etag_and_304(asok_server: Server, headers: Dict[str, str], coding: str) -> None:
    from asok_project import PAGE_PATH

    page = raw_request(asok_server.port, "GET", PAGE_PATH, asok_headers(**{k.replace("-", "_"): v for k, v in headers.items()}))
    assert page.status == 200
    assert page.get("Content-Encoding") == coding  # compressed once: Asok's own GZIP was handed over
    assert int(page.get("Content-Length")) == len(page.body)
    html = decode(coding, page.body)
    assert html.startswith(b"<!DOCTYPE html>") and b"SKU-00059" in html
    assert len(html) > ASOK_MIN_SIZE
    assert page.body == reference_bytes(coding, html)
    etag = page.get("ETag")
    assert etag == f'"{md5(html)}-{coding}"'
    assert "accept-encoding" in vary_tokens(page.get("Vary"))

    again = raw_request(asok_server.port, "GET", PAGE_PATH, asok_headers(**{k.replace("-", "_"): v for k, v in headers.items()}, If_None_Match=etag))
    assert again.status == 304
    assert again.body == b""
    assert again.get("ETag") == etag


def test_asok_json_below_min_size_is_not_compressed(asok_server: Server) -> None:
    from asok_project import JSON_PATH, expected_json_body

    api = raw_request(asok_server.port, "GET", JSON_PATH, asok_headers(Accept_Encoding=BROWSER_ACCEPT_ENCODING))
    assert api.status == 200
    assert api.get("Content-Encoding") is None
    assert api.body == expected_json_body()
    assert api.get("ETag") == f'"{md5(api.body)}"'


def test_asok_cors_and_preflight(asok_server: Server) -> None:
    from asok_project import JSON_PATH

    allowed = raw_request(asok_server.port, "GET", JSON_PATH, asok_headers(Origin=ASOK_ORIGIN))
    assert allowed.values("Access-Control-Allow-Origin") == [ASOK_ORIGIN]  # once, never twice
    assert "origin" in vary_tokens(allowed.get("Vary"))
    denied = raw_request(asok_server.port, "GET", JSON_PATH, asok_headers(Origin="https://evil.example"))
    assert denied.values("Access-Control-Allow-Origin") == []

    preflight = {"Origin": ASOK_ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    ok = raw_request(asok_server.port, "OPTIONS", JSON_PATH, preflight)
    assert ok.status == 204 and ok.body == b""
    assert ok.values("Access-Control-Allow-Origin") == [ASOK_ORIGIN]
    assert ok.get("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE, PATCH, OPTIONS"
    assert ok.get("Access-Control-Max-Age") == "86400"
    no = raw_request(asok_server.port, "OPTIONS", JSON_PATH, {**preflight, "Origin": "https://evil.example"})
    assert no.status == 204 and no.get("Access-Control-Allow-Origin") is None


def test_asok_asgi_answers_equal_its_wsgi_answers(asok_project: Path, asok_server: Server, tmp_path: Path) -> None:
    """The same project served as WSGI (``asok-fast serve wsgi_plain:app`` on waitress): the same
    page and JSON bytes, coding and ETag from both modes."""
    pytest.importorskip("waitress", reason="the WSGI side is served by waitress (the serve extra)")
    from asok_project import JSON_PATH, PAGE_PATH

    wsgi = start_server(
        "asok-waitress",
        python_m_asok_fast() + ["serve", "wsgi_plain:app", "--host", HOST, "--port", "0"],
        tmp_path / "wsgi", cwd=asok_project, ready_path=JSON_PATH, env_extra={"ASOK_ENV_OVERRIDE": "true"},
    )
    try:
        for path in (PAGE_PATH, JSON_PATH):
            for accept in (BROWSER_ACCEPT_ENCODING, "gzip", "br"):
                headers = asok_headers(Accept_Encoding=accept, Origin=ASOK_ORIGIN)
                a = raw_request(asok_server.port, "GET", path, headers)
                w = raw_request(wsgi.port, "GET", path, headers)
                assert (a.status, a.body) == (w.status, w.body) == (200, w.body), (path, accept)
                for name in ("Content-Encoding", "Content-Length", "ETag", "Access-Control-Allow-Origin", "Content-Type"):
                    assert a.get(name) == w.get(name), (path, accept, name)
                assert vary_tokens(a.get("Vary")) == vary_tokens(w.get("Vary"))
    finally:
        wsgi.stop()
