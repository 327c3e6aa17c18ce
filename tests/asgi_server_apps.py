"""ASGI apps that the ASGI server tests serve over real sockets (uvicorn, hypercorn, granian).

Imported by the server subprocesses (``PYTHONPATH`` holds this directory, see
``tests/servers.py``) and by the tests (for the expected bytes).  The bodies, the
configuration and the gates of the slow streams are those of ``server_apps`` (the WSGI
twin), so a WSGI and an ASGI server answer the same requests with the same bytes.

* ``raw_app``: a bare ASGI app (no framework).  ``asok-fast serve --asgi`` wraps it from
  its flags (``server_apps.CLI_FLAGS``, the same configuration as ``CONFIG``).
* ``app``: ``raw_app`` wrapped by ``ASGIMiddleware`` with ``CONFIG``, for a stock
  ``uvicorn``/``hypercorn``/``granian asgi_server_apps:app``.
* ``starlette_app`` / ``fastapi_app``: a Starlette and a FastAPI app, each wrapped as
  ``app = ASGIMiddleware(app, config=CONFIG)``; ``starlette_stack`` / ``fastapi_stack``: the
  same apps with ``ASGIMiddleware`` given to the framework (``Middleware(...)`` and
  ``add_middleware(ASGIMiddleware, config=CONFIG)``).
* ``browser_page``: the browser test's page (``/cors-test``), served from another origin
  than the API it calls.
* ``make_asok_asgi_project``: a real Asok project (``asok create``) whose ``wsgi.py`` ends with
  the two-line drop-in ``from asok_fast import ASGIMiddleware`` / ``app = ASGIMiddleware(app)``,
  for ``uvicorn wsgi:app`` (Asok's ASGI mode).

Every app records each request it receives (``/__calls`` lists them), so a test can tell
that a preflight never reached it, and every response carries ``x-worker-pid``.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.

import asyncio
import html
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Tuple
from urllib.parse import parse_qs

from server_apps import (
    BROWSER_PAGE,
    CONFIG,
    GATE_TIMEOUT,
    GATES_ENV,
    STREAM_CHUNKS,
    big_body,
    json_body,
)

import asok_fast
from asok_fast import ASGIMiddleware

_JSON = json_body()
_BIG = big_body()

# "METHOD /path?query" of every http request that reached an app of this process.
CALLS: List[str] = []

DROP_IN_IMPORT = "from asok_fast import ASGIMiddleware"
DROP_IN_WRAP = "app = ASGIMiddleware(app)"


# ------------------------------------------------------------------ shared pieces


def _record(scope: Dict[str, Any]) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    CALLS.append(f"{scope['method']} {scope['path']}" + (f"?{query}" if query else ""))


def _impl_body(served: Any) -> bytes:
    from asok_fast import _core

    info = {
        "implementation": asok_fast.IMPLEMENTATION,
        "core": _core.core.__name__,
        "middleware": getattr(served, "implementation", None),
        "asok_fast_file": asok_fast.__file__,
        "pid": os.getpid(),
    }
    return json.dumps(info).encode()


def _calls_body() -> bytes:
    return json.dumps(CALLS).encode()


async def gate_opened(gate: str) -> bool:
    """Wait (without blocking the event loop) until the test creates the gate file."""
    path = os.path.join(os.environ[GATES_ENV], gate)
    deadline = time.monotonic() + GATE_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def gated_chunks(gate: str) -> AsyncIterator[bytes]:
    """``STREAM_CHUNKS``: the first at once, the others only after the gate opened."""
    yield STREAM_CHUNKS[0]
    if not await gate_opened(gate):
        yield b"GATE TIMED OUT\n"
        return
    for chunk in STREAM_CHUNKS[1:]:
        yield chunk


# ------------------------------------------------------------------ the bare ASGI app

Headers = List[Tuple[bytes, bytes]]


async def _send_whole(send: Any, status: int, content_type: str, body: bytes, extra: Headers = ()) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-worker-pid", str(os.getpid()).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def raw_app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    _record(scope)
    path, method = scope["path"], scope["method"]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    no_store = [(b"cache-control", b"no-store")]
    if path == "/__impl":
        await _send_whole(send, 200, "application/json", _impl_body(app), no_store)
    elif path == "/__calls":
        await _send_whole(send, 200, "application/json", _calls_body(), no_store)
    elif path == "/json":
        await _send_whole(send, 200, "application/json", _JSON)
    elif path == "/big":
        await _send_whole(send, 200, "text/html; charset=utf-8", _BIG)
    elif path == "/echo" and method in ("PUT", "POST"):
        received = json.loads(await _read_body(receive) or b"null")
        await _send_whole(send, 200, "application/json", json.dumps({"method": method, "received": received}).encode())
    elif path == "/accept-encoding":
        offered = dict(scope["headers"]).get(b"accept-encoding")
        shown = None if offered is None else offered.decode("latin-1")
        page = f'<!DOCTYPE html>\n<html><body><pre id="offered">{html.escape(repr(shown))}</pre></body></html>\n'
        await _send_whole(send, 200, "text/html; charset=utf-8", page.encode(), no_store)
    elif path == "/gated":
        # A slow stream: no Content-Length, one body message per chunk.
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"x-worker-pid", str(os.getpid()).encode())],
        })
        async for chunk in gated_chunks(query["id"][0]):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        await _send_whole(send, 404, "text/plain", b"not found\n")


# A stock ASGI server (uvicorn / hypercorn / granian asgi_server_apps:app) serves this one.
app = ASGIMiddleware(raw_app, CONFIG)


# ------------------------------------------------------------------ the browser test's page


async def browser_page(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/cors-test":
        await _send_whole(send, 200, "text/html; charset=utf-8", BROWSER_PAGE, [(b"cache-control", b"no-store")])
    else:
        await _send_whole(send, 404, "text/plain", b"not found\n")


# ------------------------------------------------------------------ Starlette and FastAPI


class Recorder:
    """A framework's own (innermost) middleware that records every http request reaching the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] != "/__calls":
            _record(scope)
        await self.app(scope, receive, send)


def _starlette_routes(served: Any) -> List[Any]:
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    def pid() -> Dict[str, str]:
        return {"x-worker-pid": str(os.getpid())}

    async def impl(request: Request) -> Response:
        return Response(_impl_body(served()), media_type="application/json", headers={"cache-control": "no-store"})

    async def calls(request: Request) -> Response:
        return Response(_calls_body(), media_type="application/json", headers={"cache-control": "no-store"})

    async def json_page(request: Request) -> Response:
        return Response(_JSON, media_type="application/json", headers=pid())

    async def echo(request: Request) -> Response:
        received = json.loads(await request.body() or b"null")
        body = json.dumps({"method": request.method, "received": received}).encode()
        return Response(body, media_type="application/json", headers=pid())

    async def gated(request: Request) -> Response:
        return StreamingResponse(gated_chunks(request.query_params["id"]), media_type="text/plain", headers=pid())

    return [
        Route("/__impl", impl),
        Route("/__calls", calls),
        Route("/json", json_page),
        Route("/echo", echo, methods=["PUT", "POST"]),
        Route("/gated", gated),
    ]


def _fastapi_api(served: Any) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response, StreamingResponse

    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    api.add_middleware(Recorder)  # added first: innermost

    def pid() -> Dict[str, str]:
        return {"x-worker-pid": str(os.getpid())}

    @api.get("/__impl")
    async def impl(request: Request) -> Response:
        return Response(_impl_body(served()), media_type="application/json", headers={"cache-control": "no-store"})

    @api.get("/__calls")
    async def calls() -> Response:
        return Response(_calls_body(), media_type="application/json", headers={"cache-control": "no-store"})

    @api.get("/json")
    async def json_page(request: Request) -> Response:
        return Response(_JSON, media_type="application/json", headers=pid())

    @api.put("/echo")
    async def echo(request: Request) -> Response:
        received = json.loads(await request.body() or b"null")
        body = json.dumps({"method": request.method, "received": received}).encode()
        return Response(body, media_type="application/json", headers=pid())

    @api.get("/gated")
    async def gated(request: Request, id: str) -> StreamingResponse:
        return StreamingResponse(gated_chunks(id), media_type="text/plain", headers=pid())

    return api


def _middleware_of(outer: Any) -> Any:
    """The ASGIMiddleware inside a framework's middleware stack (built on its first call)."""
    layer = getattr(outer, "middleware_stack", None)
    while layer is not None and not isinstance(layer, ASGIMiddleware):
        layer = getattr(layer, "app", None)
    return layer


def _make_starlette_apps() -> Tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    wrapped = ASGIMiddleware(
        Starlette(routes=_starlette_routes(lambda: wrapped), middleware=[Middleware(Recorder)]), config=CONFIG,
    )
    stack = Starlette(
        routes=_starlette_routes(lambda: _middleware_of(stack)),
        middleware=[Middleware(ASGIMiddleware, config=CONFIG), Middleware(Recorder)],  # first: outermost
    )
    return wrapped, stack


def _make_fastapi_apps() -> Tuple[Any, Any]:
    wrapped = ASGIMiddleware(_fastapi_api(lambda: wrapped), config=CONFIG)
    stack = _fastapi_api(lambda: _middleware_of(stack))
    stack.add_middleware(ASGIMiddleware, config=CONFIG)
    return wrapped, stack


def __getattr__(name: str) -> Any:
    # Built on first use, so that a server of the bare app imports no framework.
    if name in ("starlette_app", "starlette_stack"):
        wrapped, stack = _make_starlette_apps()
    elif name in ("fastapi_app", "fastapi_stack"):
        wrapped, stack = _make_fastapi_apps()
    else:
        raise AttributeError(name)
    kind = name.partition("_")[0]
    globals()[f"{kind}_app"], globals()[f"{kind}_stack"] = wrapped, stack
    return globals()[name]


# ------------------------------------------------------------------ a real Asok project, ASGI mode


def add_asgi_drop_in(wsgi: Path) -> None:
    """The two lines: the import beside Asok's, the wrap after the project's config."""
    source = wsgi.read_text(encoding="utf-8")
    if "from asok import Asok\n" not in source:
        raise RuntimeError(f"unexpected scaffolded wsgi.py:\n{source}")
    source = source.replace("from asok import Asok\n", f"from asok import Asok\n{DROP_IN_IMPORT}\n", 1)
    wsgi.write_text(source.rstrip("\n") + f"\n\n{DROP_IN_WRAP}\n", encoding="utf-8")


def make_asok_asgi_project(parent: Path, **config: Any) -> Path:
    """Scaffold a real Asok project (``tests/asok_project.py``: ``asok create``, a JSON page
    and an HTML report, ``config`` written as ``app.config[...]`` lines), keep the scaffolded
    ``wsgi.py`` as ``wsgi_plain.py``, add the ASGI drop-in to ``wsgi.py``; return the root."""
    from asok_project import make_asok_app

    asok_app = make_asok_app(parent, **config)
    root = Path(asok_app.root_dir)
    asok_app.shutdown()
    (root / "wsgi_plain.py").write_text((root / "wsgi.py").read_text(encoding="utf-8"), encoding="utf-8")
    add_asgi_drop_in(root / "wsgi.py")
    return root
