"""The ASGI stacks of the benchmarks (issue 17): the same workloads through ASGI apps.

=============================  ==========  ==============================================
stack id                       framework   what it is
=============================  ==========  ==============================================
``asgi``                       asgi        :func:`bare_asgi_app`, the route table of
                                           :func:`.workloads.bare_app` as an ASGI app
``asgi-compiled``              asgi        ``ASGIMiddleware(bare_asgi_app, CONFIG)`` on
``asgi-python``                            ``_core_c`` / ``_core_py``
``asgi+starlette-mw``          asgi        Starlette's ``CORSMiddleware`` around its
                                           ``GZipMiddleware`` (min size 500, level 6)
                                           around the bare ASGI app
``asgi+starlette-compress``    asgi        ``CORSMiddleware`` around starlette-compress's
                                           ``CompressMiddleware`` (its defaults: zstd 4,
                                           br 4, gzip 4, min size 500) around the bare app
``starlette``                  starlette   a bare Starlette app serving the same routes
``starlette+mw``               starlette   the same app built with ``middleware=`` CORS +
                                           GZip, configured as above
``starlette+asok_fast``        starlette   the bare Starlette app wrapped by
                                           ``ASGIMiddleware`` (the core the package selects)
=============================  ==========  ==============================================

Starlette's CORS is configured as asok_fast is by :data:`.workloads.CONFIG`: the
two origins, asok_fast's default methods, request headers and max age.  Its
middlewares send no ``ETag`` and no ``304``: they claim compression and CORS
only, and are not run on W2; ``GZipMiddleware`` makes gzip only, so it is not
run on W9 (a client that takes only br).

How a request is driven: the app's coroutine is stepped with ``send(None)``
with no event loop at all.  The server's ``receive`` and ``send`` are
coroutines that never suspend, and neither do the apps on these workloads, so
the coroutine finishes in that one step and the time is the app's and the
middleware's, not asyncio's.  A stack that does suspend (Starlette's
``GZipMiddleware`` hands a body of 128 KiB or more to a worker thread: W3, W8,
W11, W13) is found out when it is checked, and that cell is driven by
``run_until_complete`` on one persistent event loop instead (``cell.info
["driver"]`` says ``"loop"``): its time then includes the loop's round trip
and the thread hop, which are what Starlette does with such a body, and it is
timed by the wall clock even when the run times CPU (``--clock cpu``): the
serving thread's CPU time would leave out the compression done in the worker
thread (``cell.info["clock"]`` says ``"wall"``).

:class:`ASGIStack` is a :class:`.stacks.Stack`: :func:`.runner.measure` times
its cells, subtracts its ``bare`` stack round by round and checks its answers
with :func:`.stacks.check`, exactly as for the WSGI stacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import types
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from .. import _core_py
from .._config import DEFAULTS
from ..asgi import ASGIMiddleware
from . import stacks as st
from . import workloads as wl
from .workloads import CONFIG, GZIP_LEVEL, Workload

__all__ = [
    "ASGI_STACK_IDS",
    "STARLETTE_CORS",
    "ASGIStack",
    "NeedsLoop",
    "asgi_fetch",
    "bare_asgi_app",
    "build_asgi_stacks",
    "env_app",
    "scope_for",
    "uvicorn_app",
]

Scope = Dict[str, Any]
Message = Dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


# --- the bare ASGI app --------------------------------------------------------------------------

_B_CTYPE, _B_CLEN, _B_ALLOW = b"content-type", b"content-length", b"allow"
_ROUTES: Dict[str, Tuple[bytes, bytes, bytes]] = {
    path: (ctype.encode("latin-1"), body, str(len(body)).encode("ascii")) for path, (ctype, body) in wl.ROUTES.items()
}
_FRESH: Dict[str, Tuple[bytes, wl.FreshBody, bytes]] = {
    path: (ctype.encode("latin-1"), make, str(make.length).encode("ascii")) for path, (ctype, make) in wl.FRESH_ROUTES.items()
}
_ALLOW = wl.ALLOW.encode("latin-1")


async def bare_asgi_app(scope: Scope, receive: Any, send: Any) -> None:
    """:func:`.workloads.bare_app` as an ASGI app: the same statuses, headers and
    bodies (``OPTIONS``: ``204`` with ``Allow``; a fresh route makes its body now).

    Every message and header list is new on every call, as a framework makes
    them: Starlette's middlewares write into the app's header list.
    """
    path = scope["path"]
    route = _ROUTES.get(path)
    if route is None:
        fresh = _FRESH.get(path)
        if fresh is None:
            await send({"type": "http.response.start", "status": 404, "headers": [(_B_CTYPE, b"text/plain"), (_B_CLEN, b"9")]})
            await send({"type": "http.response.body", "body": b"not found", "more_body": False})
            return
        ctype, make, length = fresh
        body = None if scope["method"] == "OPTIONS" else make()
    else:
        ctype, body, length = route
    if scope["method"] == "OPTIONS":
        await send({"type": "http.response.start", "status": 204, "headers": [(_B_ALLOW, _ALLOW)]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(_B_CTYPE, ctype), (_B_CLEN, length)]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def scope_for(workload: Workload, if_none_match: Optional[str] = None) -> Scope:
    """An ASGI 3 ``http`` scope for one request of ``workload`` (the headers of
    :func:`.workloads.request_headers`, lower-cased, plus ``host``)."""
    headers = [(b"host", b"localhost:8000")]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in wl.request_headers(workload, if_none_match).items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": workload.method,
        "scheme": "http",
        "path": workload.path,
        "raw_path": workload.path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


# --- driving one request ----------------------------------------------------------------------------

_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT: Message = {"type": "http.disconnect"}


class NeedsLoop(RuntimeError):
    """The app suspended (or asked for a running loop): it cannot be stepped alone."""


def _receiver() -> Callable[[], Awaitable[Message]]:
    """The server's ``receive`` for a GET: the empty request body, then a disconnect."""
    state = [False]

    async def receive() -> Message:
        if state[0]:
            return dict(_DISCONNECT)
        state[0] = True
        return dict(_REQUEST)

    return receive


async def _sink(message: Message) -> None:
    """The server's ``send`` while timing: the messages go nowhere."""


def _step(coro: Any) -> None:
    """Run ``coro`` to its end in one step, or raise :class:`NeedsLoop`."""
    try:
        coro.send(None)
    except StopIteration:
        return
    except RuntimeError as exc:  # e.g. "no running event loop", sniffio/anyio without a loop
        raise NeedsLoop(str(exc)) from exc
    coro.close()
    raise NeedsLoop("the app suspended")


_LOOP: List[asyncio.AbstractEventLoop] = []


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop for every stack that needs one (made on first use)."""
    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
    return _LOOP[0]


def asgi_fetch(app: ASGIApp, scope: Scope, loop: bool = False) -> st.Response:
    """One request through ``app``: stepped alone, or (``loop``) on the persistent
    loop; the answer as a :class:`.stacks.Response` (header bytes as latin-1 str)."""
    messages: List[Message] = []

    async def send(message: Message) -> None:
        messages.append(dict(message))

    coro = app(dict(scope), _receiver(), send)
    if loop:
        _loop().run_until_complete(coro)
    else:
        _step(coro)
    starts = [m for m in messages if m["type"] == "http.response.start"]
    if len(starts) != 1:
        raise st.CheckFailed(f"{len(starts)} http.response.start messages")
    start = starts[0]
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    if not bodies or bodies[-1].get("more_body", False):
        raise st.CheckFailed("the body never ended (no last http.response.body)")
    headers = [(bytes(n).decode("latin-1"), bytes(v).decode("latin-1")) for n, v in start.get("headers", ())]
    return st.Response(int(start["status"]), headers, b"".join(bytes(m.get("body", b"")) for m in bodies))


def _asgi_timer(app: ASGIApp, scope: Scope, copy: bool, loop: bool) -> Callable[[int], int]:
    """``run(n)``: ns for ``n`` requests (the clock :func:`.stacks.set_clock` chose)."""
    repeat = itertools.repeat
    perf = st._clock
    send = _sink
    receiver = _receiver

    if loop:
        run_until_complete = _loop().run_until_complete
        if perf is time.thread_time_ns:  # the worker thread's work is not this thread's CPU time
            perf = time.perf_counter_ns

        def run_loop(n: int) -> int:
            t0 = perf()
            for _ in repeat(None, n):
                run_until_complete(app(dict(scope) if copy else scope, receiver(), send))
            return perf() - t0

        return run_loop

    def run(n: int) -> int:
        t0 = perf()
        for _ in repeat(None, n):
            coro = app(dict(scope) if copy else scope, receiver(), send)
            try:
                coro.send(None)
            except StopIteration:
                continue
            coro.close()
            raise NeedsLoop("the app suspended while timed")
        return perf() - t0

    return run


def _asgi_caller(app: ASGIApp, scope: Scope, copy: bool, loop: bool) -> Callable[[], None]:
    """One request, as :func:`_asgi_timer` makes them, untimed."""
    if loop:
        run_until_complete = _loop().run_until_complete

        def call_loop() -> None:
            run_until_complete(app(dict(scope) if copy else scope, _receiver(), _sink))

        return call_loop

    def call() -> None:
        _step(app(dict(scope) if copy else scope, _receiver(), _sink))

    return call


# --- the stack ------------------------------------------------------------------------------------------


@dataclass
class ASGIStack(st.Stack):
    """A :class:`.stacks.Stack` whose ``app`` is an ASGI app (``copy_environ``:
    hand each request a copy of the scope, for apps that write into it;
    ``preflight_body``: the body the stack sends with a preflight answer, which
    the check then disregards: Starlette's ``CORSMiddleware`` answers ``200 OK``
    with the text ``OK``)."""

    preflight_body: bytes = b""

    def _check(self, workload: Workload, response: st.Response) -> Optional[bytes]:
        if workload.method == "OPTIONS" and self.preflight_body and response.body == self.preflight_body:
            response = st.Response(response.status, response.headers, b"")
        return super()._check(workload, response)

    def environ(self, workload: Workload) -> Dict[str, Any]:  # the scope, in the runner's name
        if not workload.revalidate:
            return scope_for(workload)
        return scope_for(workload, if_none_match=self._w1_tag())

    def _w1_tag(self) -> str:
        w1 = wl.by_id("W1")
        if self.role == "bare" or self.app is None:
            return f'"{hashlib.md5(w1.body).hexdigest()}-zstd"'
        tag = self._fetch(scope_for(w1)).header("ETag")
        if tag is None:
            raise st.CheckFailed(f"{self.id}: no ETag on W1, so W2 has no tag to send")
        return tag

    def _fetch(self, scope: Scope) -> st.Response:
        """One request: stepped alone when the app allows it, else on the loop."""
        assert self.app is not None
        try:
            return asgi_fetch(self.app, scope)  # type: ignore[arg-type]
        except NeedsLoop:
            return asgi_fetch(self.app, scope, loop=True)  # type: ignore[arg-type]

    def reference_body(self, workload: Workload) -> bytes:
        if self.bare is None:
            return workload.body
        source = wl.by_id("W1") if workload.revalidate else workload
        return asgi_fetch(self.bare.app, scope_for(source)).body  # type: ignore[arg-type]

    def prepare(self, workload: Workload) -> st.Cell:
        cell = self._prepared.get(workload.id)
        if cell is not None:
            return cell
        reason = self.not_applicable(workload)
        if reason:
            raise LookupError(reason)
        assert self.app is not None
        scope = self.environ(workload)
        loop = False
        try:
            response = asgi_fetch(self.app, scope)  # type: ignore[arg-type]
        except NeedsLoop:
            loop = True
            response = asgi_fetch(self.app, scope, loop=True)  # type: ignore[arg-type]
        try:
            decoded = self._check(workload, response)
            if workload.fresh is not None:
                again = asgi_fetch(self.app, scope, loop=loop)  # type: ignore[arg-type]
                if self._check(workload, again) == decoded:
                    raise st.CheckFailed("two requests gave the same body: the workload needs a new one every time")
        except st.CheckFailed as exc:
            raise st.CheckFailed(f"{self.id} on {workload.id}: {exc}") from None
        app = self.app
        cell = st.Cell(
            self,
            workload,
            _asgi_timer(app, scope, self.copy_environ, loop),  # type: ignore[arg-type]
            _asgi_caller(app, scope, self.copy_environ, loop),  # type: ignore[arg-type]
            scope,
            response,
        )
        cell.info["driver"] = "loop" if loop else "step"
        if loop and st._clock is time.thread_time_ns:
            cell.info["clock"] = "wall"
        cell.info["bytes_out"] = len(response.body)
        coding = (response.header("Content-Encoding") or "identity").lower()
        if coding != "identity" and decoded is not None:
            cell.info["coding"] = coding
            cell.info["gzip6_out"] = len(st.gzip6(decoded))
        self._prepared[workload.id] = cell
        return cell


# --- the Starlette stacks ---------------------------------------------------------------------------------


def _csv(key: str) -> List[str]:
    return [part.strip() for part in str(DEFAULTS[key]).split(",") if part.strip()]


#: Starlette's ``CORSMiddleware`` keyword arguments: asok_fast's CORS as CONFIG sets it.
STARLETTE_CORS: Dict[str, Any] = {
    "allow_origins": list(wl.ORIGINS),
    "allow_methods": _csv("CORS_ALLOW_METHODS"),
    "allow_headers": _csv("CORS_ALLOW_HEADERS"),
    "max_age": int(DEFAULTS["CORS_MAX_AGE"]),
}
#: Starlette's ``GZipMiddleware`` keyword arguments (the WSGI peers' minimum size and level).
STARLETTE_GZIP: Dict[str, Any] = {"minimum_size": wl.GZIP_MIN_SIZE, "compresslevel": GZIP_LEVEL}

#: What Starlette's ``CORSMiddleware`` sends as the body of its preflight answer (``200``).
STARLETTE_PREFLIGHT_BODY = b"OK"

_NO_ETAG_SKIP = {"W2": "Starlette's middlewares send no ETag and no 304"}


def starlette_mw(app: ASGIApp) -> ASGIApp:
    """Starlette's ``CORSMiddleware`` around its ``GZipMiddleware`` around ``app``
    (the order of ``middleware=[CORS, GZip]``: CORS outermost)."""
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware

    return CORSMiddleware(GZipMiddleware(app, **STARLETTE_GZIP), **STARLETTE_CORS)  # type: ignore[return-value]


def starlette_compress(app: ASGIApp) -> ASGIApp:
    """``CORSMiddleware`` around starlette-compress's ``CompressMiddleware`` (its defaults)."""
    from starlette.middleware.cors import CORSMiddleware
    from starlette_compress import CompressMiddleware

    return CORSMiddleware(CompressMiddleware(app), **STARLETTE_CORS)  # type: ignore[return-value]


def starlette_app(full: bool = False) -> ASGIApp:
    """A Starlette app serving the workloads' routes (async endpoints, as
    :func:`bare_asgi_app` answers); ``full``: built with ``middleware=`` CORS + GZip."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def endpoint(ctype: str, body: Any) -> Callable[[Request], Awaitable[Response]]:
        async def view(request: Request) -> Response:
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": wl.ALLOW})
            return Response(body() if callable(body) else body, media_type=ctype)

        return view

    routes: Dict[str, Tuple[str, Any]] = {**wl.ROUTES, **wl.FRESH_ROUTES}
    table = [Route(path, endpoint(ctype, body), methods=["GET", "HEAD", "OPTIONS"]) for path, (ctype, body) in routes.items()]
    middleware = [Middleware(CORSMiddleware, **STARLETTE_CORS), Middleware(GZipMiddleware, **STARLETTE_GZIP)] if full else []
    return Starlette(routes=table, middleware=middleware)  # type: ignore[return-value]


# --- building them -------------------------------------------------------------------------------------------

#: Every ASGI stack id, in the order :func:`build_asgi_stacks` makes them.
ASGI_STACK_IDS: Tuple[str, ...] = (
    "asgi",
    "asgi-compiled",
    "asgi-python",
    "asgi+starlette-mw",
    "asgi+starlette-compress",
    "starlette",
    "starlette+mw",
    "starlette+asok_fast",
)


def asgi_middleware_stack(core_name: str, core: types.ModuleType, bare: st.Stack, config: Optional[Dict[str, Any]] = None) -> ASGIStack:
    """``ASGIMiddleware(bare_asgi_app, config)`` (default :data:`CONFIG`) bound to ``core``, as ``asgi-<core_name>``."""
    config = dict(CONFIG if config is None else config)
    app = ASGIMiddleware(bare.app, dict(config), _core_module=core)  # type: ignore[arg-type]
    codings = tuple(config.get("COMPRESS_CODINGS", st.DEFAULT_CODINGS))
    return ASGIStack(f"asgi-{core_name}", "asgi", "middleware", f"ASGIMiddleware ({core_name} core)", app, st.ALL_FEATURES,  # type: ignore[arg-type]
                     copy_environ=False, bare=bare, codings=codings)


def _starlette_missing() -> Optional[str]:
    for module in ("starlette", "starlette_compress"):
        try:
            __import__(module)
        except Exception as exc:
            return f"{module} not importable ({type(exc).__name__}: {exc}); pip install 'asok-fast[bench]'"
    return None


def build_asgi_stacks() -> Tuple[List[st.Stack], Dict[str, str]]:
    """The ASGI stacks that can be built here, and ``{stack: why not}``."""
    stacks: List[st.Stack] = []
    unavailable: Dict[str, str] = {}
    bare = ASGIStack("asgi", "asgi", "bare", "bare ASGI app", bare_asgi_app, copy_environ=False)  # type: ignore[arg-type]
    stacks.append(bare)
    cores, why_not = st.twins()
    for name, core in cores.items():
        stacks.append(asgi_middleware_stack(name, core, bare))
    for name, why in why_not.items():
        unavailable[f"asgi-{name}"] = why
    missing = _starlette_missing()
    if missing:
        for stack_id in ASGI_STACK_IDS[3:]:
            unavailable[stack_id] = missing
        return stacks, unavailable
    anchor_claims = frozenset({st.COMPRESS, st.CORS})
    gzip_skip = {**_NO_ETAG_SKIP, **st._GZIP_ONLY_SKIP}
    stacks.append(ASGIStack("asgi+starlette-mw", "asgi", "anchor", "Starlette CORSMiddleware + GZipMiddleware (level 6)",
                            starlette_mw(bare_asgi_app), anchor_claims, copy_environ=False, skip=dict(gzip_skip), bare=bare,
                            preflight_body=STARLETTE_PREFLIGHT_BODY))  # type: ignore[arg-type]
    stacks.append(ASGIStack("asgi+starlette-compress", "asgi", "anchor", "starlette-compress (its defaults) + CORSMiddleware",
                            starlette_compress(bare_asgi_app), anchor_claims, copy_environ=False, skip=dict(_NO_ETAG_SKIP), bare=bare,
                            preflight_body=STARLETTE_PREFLIGHT_BODY))  # type: ignore[arg-type]
    plain = ASGIStack("starlette", "starlette", "bare", "bare Starlette", starlette_app(full=False))  # type: ignore[arg-type]
    stacks.append(plain)
    stacks.append(ASGIStack("starlette+mw", "starlette", "anchor", "Starlette + CORSMiddleware + GZipMiddleware",
                            starlette_app(full=True), anchor_claims, skip=dict(gzip_skip), bare=plain,
                            preflight_body=STARLETTE_PREFLIGHT_BODY))  # type: ignore[arg-type]
    wrapped = ASGIMiddleware(plain.app, dict(CONFIG))  # type: ignore[arg-type]
    stacks.append(ASGIStack("starlette+asok_fast", "starlette", "middleware", f"bare Starlette + ASGIMiddleware ({wrapped.implementation} core)",
                            wrapped, st.ALL_FEATURES, bare=plain, codings=tuple(CONFIG.get("COMPRESS_CODINGS", st.DEFAULT_CODINGS))))  # type: ignore[arg-type]
    return stacks, unavailable


def uvicorn_app(name: str) -> ASGIApp:
    """An ASGI app for ``uvicorn --factory`` (see bench/wrk_asgi.py), by name:
    ``asgi``, ``asgi-compiled``, ``asgi-python``, ``starlette``, ``starlette+mw``,
    ``starlette+compress``, ``starlette+asok_fast`` (the core the package selects)."""
    if name == "asgi":
        return bare_asgi_app  # type: ignore[return-value]
    if name in ("asgi-compiled", "asgi-python"):
        kind = name.split("-", 1)[1]
        cores, why_not = st.twins()
        if kind not in cores:
            raise RuntimeError(why_not[kind])
        return ASGIMiddleware(bare_asgi_app, dict(CONFIG), _core_module=cores[kind])  # type: ignore[return-value]
    if name == "starlette":
        return starlette_app(full=False)
    if name == "starlette+mw":
        return starlette_app(full=True)
    if name == "starlette+compress":
        return starlette_compress(starlette_app(full=False))
    if name == "starlette+asok_fast":
        return ASGIMiddleware(starlette_app(full=False), dict(CONFIG))  # type: ignore[return-value]
    raise ValueError(f"unknown app {name!r}")


#: The environment variable :func:`env_app` reads (bench/wrk_asgi.py sets it per server).
APP_ENV = "ASOK_FAST_BENCH_ASGI_APP"


def env_app() -> ASGIApp:
    """``uvicorn --factory asok_fast.benchmarks.asgi_stacks:env_app``: the app
    :func:`uvicorn_app` makes for the name in ``$ASOK_FAST_BENCH_ASGI_APP``."""
    import os

    return uvicorn_app(os.environ[APP_ENV])


def expected_coding(workload: Workload) -> Optional[str]:
    """The coding asok_fast's default ``COMPRESS_CODINGS`` picks for ``workload``."""
    return _core_py.negotiate(workload.accept_encoding, tuple(CONFIG.get("COMPRESS_CODINGS", st.DEFAULT_CODINGS)))


# --- targets (issue 17) -------------------------------------------------------------------------------------

#: (workload, target name, op, limit, numerator, denominator): ``("ovh", stack)``
#: is the stack's median overhead over its bare app, ``("med", stack)`` its median time.
ASGI_TARGETS: Tuple[Tuple[str, str, str, float, Tuple[str, str], Tuple[str, str]], ...] = (
    ("W1", "asgi+starlette-mw overhead / asgi-compiled overhead", ">=", 5.0, ("ovh", "asgi+starlette-mw"), ("ovh", "asgi-compiled")),
    ("W1", "asgi+starlette-compress overhead / asgi-compiled overhead", ">=", 3.0, ("ovh", "asgi+starlette-compress"), ("ovh", "asgi-compiled")),
    ("W4", "asgi+starlette-mw overhead / asgi-compiled overhead", ">=", 10.0, ("ovh", "asgi+starlette-mw"), ("ovh", "asgi-compiled")),
    ("W1", "asgi-compiled overhead / compiled overhead", "<=", 1.15, ("ovh", "asgi-compiled"), ("ovh", "compiled")),
    ("W3", "asgi-compiled overhead / compiled overhead", "<=", 1.15, ("ovh", "asgi-compiled"), ("ovh", "compiled")),
)


def evaluate_asgi_targets(res: Any, seed: int = 0) -> List[Any]:
    """Issue 17's in-process targets as :class:`.runner.Target` objects, each a
    ratio of cells of this one run with its 95 % interval (as
    :func:`.runner.evaluate_targets` computes its own); ``compiled`` is the WSGI
    stack of :func:`.stacks.build_stacks`, measured in the same rounds."""
    from . import runner

    rounds = max((len(c.samples) for c in res.cells.values()), default=0)
    resamples = runner._resamples(rounds, runner.BOOTSTRAP_RESAMPLES, seed) if rounds >= 2 else []
    out = []
    for w, name, op, limit, num, den in ASGI_TARGETS:
        detail = f"{runner._us(runner._stat(res, num, w))} vs {runner._us(runner._stat(res, den, w))}"
        why = runner._why_missing(res, (num[1], den[1]), w)
        if why:
            out.append(runner.Target(w, name, op, limit, None, detail, why))
            continue
        value = runner._ratio(runner._stat(res, num, w), runner._stat(res, den, w))
        a, b = runner._series(res, num, w), runner._series(res, den, w)
        interval = runner._bootstrap_ratio(a, b, resamples) if a and b and resamples and value is not None else None
        out.append(runner.Target(w, name, op, limit, value, detail, "", interval))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m asok_fast.benchmarks.asgi_stacks``: the ASGI stacks beside the
    WSGI ``bare`` and ``compiled`` (and ``python``) stacks, interleaved in one run
    by :func:`.runner.measure`; the table of medians and issue 17's targets."""
    import argparse
    import time as _time

    from . import runner

    parser = argparse.ArgumentParser(prog="python -m asok_fast.benchmarks.asgi_stacks")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch-ms", type=float, default=4.0)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--workloads", default="W1,W3,W4", metavar="W1,W3,W4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    st.set_clock(args.clock)
    workloads = [wl.by_id(part.strip()) for part in args.workloads.split(",") if part.strip()]
    wsgi_bare = st.Stack("bare", "wsgi", "bare", "bare WSGI app", wl.bare_app, copy_environ=False)
    cores, unavailable = st.twins()
    stacks: List[st.Stack] = [wsgi_bare] + [st.middleware_stack(name, core, wsgi_bare) for name, core in cores.items()]
    asgi, asgi_unavailable = build_asgi_stacks()
    stacks += asgi
    unavailable.update(asgi_unavailable)
    st.load_frameworks()  # measure in a process that has the frameworks loaded, as `asok-fast bench` does
    progress = runner.Progress(not args.no_progress)
    started = _time.monotonic()
    results, skipped, failed, cells = runner.measure(stacks, workloads, args.rounds, args.batch_ms, args.seed, progress)
    res = runner.Results(
        machine=runner.machine_info(),
        stacks=[{"id": s.id, "framework": s.framework, "role": s.role, "label": s.label, "bare": s.bare.id if s.bare else None} for s in stacks],
        workloads=[{"id": w.id, "name": w.name, "description": w.description} for w in workloads],
        cells=results, skipped=skipped, failed=failed, unavailable=unavailable, threads={},
        rounds=args.rounds, seconds=_time.monotonic() - started, clock=args.clock,
    )
    res.targets = [t.as_dict() for t in evaluate_asgi_targets(res, args.seed)]
    print(runner.render_table(res))
    loops = sorted(f"{k[0]} on {k[1]}" for k, c in cells.items() if c.info.get("driver") == "loop")
    if loops:
        print("driven on an event loop and timed by the wall clock (the app hands work to a thread): " + ", ".join(loops))
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
