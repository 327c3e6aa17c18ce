#!/usr/bin/env python3
"""Soak: a million requests through both cores in one process; memory must stay flat.

    python scripts/soak.py [--requests 1000000] [--warmup 250000] [--cache cache-8M,cache-1M] [--no-asgi] [--json out.json]

Every workload W1..W6 (``asok_fast.benchmarks.workloads`` when it is there,
else the minimal copies below) goes through ``ResponseMiddleware`` instances,
one set per core, round robin, as a server calls them: a fresh environ per
request, the body read to the end, ``close()`` called.  (Only the pure core,
said so at the start, when the compiled one cannot be loaded or
``ASOK_FAST_NO_EXTENSIONS`` is set.)  The browser's ``Accept-Encoding`` gives
zstd; beside W1..W6 the mix has every coding on its own (W1 and W3 for a
client that accepts only ``br``, only ``gzip``), W3 streamed (the app's
generator, no ``Content-Length``) in each coding, and W1/W3 through a
middleware with ``COMPRESS_RANDOM_PADDING`` on, buffered and streamed.  Every
response is compared with the first one of its (core, workload) pair, byte
for byte (status, header list, body), so nothing is lost along the way; a
padded one, whose bytes differ every time, must decode to the same body with
the same headers but ``Content-Length``.

The compressed-body cache (issue 16): every pair runs through middlewares
with the cache at its default size (8 MiB) and at 1 MiB (``--cache``), and
the answers are compared with a cache-off middleware's.  Beside W1..W6 the
mix has a stream of distinct bodies (``distinct-once``: every request a new
4-24 KiB HTML page, so admission's bookkeeping churns; ``distinct-twice``:
every page asked twice in a row, so it is admitted, and the cache fills and
evicts), each answer compared with what a cache-off middleware gives that
very request.  The ASGI twin (issue 17, ``--asgi``, on by default): the same
pairs through ``ASGIMiddleware`` over ASGI apps answering as the WSGI ones
do (streams as ``more_body`` messages that yield to the loop between them),
each round's ASGI requests as concurrent tasks on one asyncio event loop,
every answer equal to the WSGI one (status code, headers with names
lower-cased, body).

After the warm-up (every pool, cache and free list filled) the script takes
a garbage collection and reads

* the resident set size (``/proc/self/statm``),
* ``len(gc.get_objects())`` -- live container objects,
* ``sys.getallocatedblocks()`` -- every block pymalloc holds: a reference
  leaked by C code (a bytes or str never freed) shows here, not in gc;

then again every ``--sample`` requests and at the end.  It fails (exit 1)
when the RSS grew by 2 MiB or more after the warm-up beyond the room the
caches still had at the baseline (their sizes minus the compressed bytes they
held: so never more than the cache sizes plus 2 MiB), when the object count
grew at all (``--slack``, default 0), when the allocated blocks grew by more
than CPython's free lists hold (``--block-slack``, default 256: one leaked
block per request would be ~10**6; plus 8 for every cache entry or
remembered locator gained), or when any response differed.  Linux only
(``/proc``).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import gzip
import hashlib
import io
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple

import brotli

import asok_fast
from asok_fast import ASGIMiddleware, ResponseMiddleware, _core, _core_py

try:  # Python 3.14
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# --- workloads -------------------------------------------------------------------------------

try:
    from asok_fast.benchmarks.workloads import CONFIG, WORKLOADS, bare_app, environ_for

    SOURCE = "asok_fast.benchmarks.workloads"

    def workloads() -> List[Tuple[str, Callable[[str], Dict[str, Any]], bool]]:
        """(id, make_environ(if_none_match), revalidate) for W1..W6."""
        return [(w.id, (lambda inm, w=w: environ_for(w, inm)), w.revalidate) for w in WORKLOADS]

except ImportError:  # the benchmark module is not there: minimal stand-ins
    SOURCE = "scripts/soak.py's own W1..W6"
    ORIGIN = "https://app.example.com"
    CONFIG = {"CORS_ORIGINS": [ORIGIN, "https://admin.example.com"], "GZIP": True, "GZIP_LEVEL": 6, "GZIP_MIN_SIZE": 500, "ETAG": True}
    _ROUTES = {
        "/api/items": ("application/json", b"[" + b",".join(b'{"id":%d,"name":"Product %03d","price":%d.5}' % (i, i, i * 7) for i in range(1, 21)) + b"]"),
        "/catalogue": ("text/html; charset=utf-8", b"".join(b"<tr><td>%d</td><td>widget %d</td></tr>\n" % (i, i * 31 % 997) for i in range(4000))),
        "/robots.txt": ("text/plain; charset=utf-8", b"User-agent: *\nDisallow: /admin/\n".ljust(99, b"#") + b"\n"),
        "/img/noise.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(640))),
    }

    def bare_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = _ROUTES.get(environ["PATH_INFO"])
        if environ["REQUEST_METHOD"] == "OPTIONS":
            start_response("204 No Content", [("Allow", "GET, HEAD, OPTIONS")])
            return []
        ctype, body = route  # type: ignore[misc]
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    _SHAPES = [
        ("W1", "GET", "/api/items", {"Origin": ORIGIN}, False),
        ("W2", "GET", "/api/items", {"Origin": ORIGIN}, True),
        ("W3", "GET", "/catalogue", {}, False),
        ("W4", "OPTIONS", "/api/items", {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}, False),
        ("W5", "GET", "/robots.txt", {}, False),
        ("W6", "GET", "/img/noise.png", {}, False),
    ]

    def _environ(method: str, path: str, headers: Dict[str, str], inm: Any) -> Dict[str, Any]:
        env: Dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd",
        }
        for name, value in headers.items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
        if inm is not None:
            env["HTTP_IF_NONE_MATCH"] = inm
        return env

    def workloads() -> List[Tuple[str, Callable[[str], Dict[str, Any]], bool]]:
        return [(wid, (lambda inm, s=(m, p, h): _environ(s[0], s[1], s[2], inm)), reval) for wid, m, p, h, reval in _SHAPES]


# --- the run ----------------------------------------------------------------------------------


class Server:
    __slots__ = ("status", "headers")

    def __init__(self) -> None:
        self.status = None
        self.headers = None

    def start_response(self, status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        self.status = status
        self.headers = headers
        return _write


def _write(data: bytes) -> None:
    raise AssertionError("write() is not used by these apps")


def one(mw: Any, environ: Dict[str, Any]) -> Tuple[Any, Any, bytes]:
    server = Server()
    result = mw(environ, server.start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return server.status, server.headers, body


def cores() -> List[Tuple[str, Any]]:
    """(name, core) of each twin to soak; says why when the compiled one is left out."""
    compiled, why = _core.find_compiled()
    if compiled is None:
        print(f"compiled core: not soaked ({why})")
        return [("python", _core_py)]
    return [("compiled", compiled), ("python", _core_py)]


def streamed_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The bare app's answer as a stream: its body from a generator, in 8 KiB
    chunks, with no ``Content-Length`` (so it is compressed chunk by chunk)."""
    captured: List[Any] = []
    body = b"".join(bare_app(environ, lambda status, headers, exc_info=None: captured.append((status, headers))))
    status, headers = captured[-1]
    start_response(status, [h for h in headers if h[0].lower() != "content-length"])
    return (body[i:i + 8192] for i in range(0, len(body), 8192))


def decode(coding: Any, body: bytes) -> bytes:
    """``body`` decoded in ``coding`` by the libraries' own decoders (None: as is)."""
    if coding is None:
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)  # type: ignore[no-any-return]
    out = b""
    while body:  # a padded body opens with a skippable frame
        decoder = zstd.ZstdDecompressor()
        out += decoder.decompress(body)
        if not decoder.eof:
            raise ValueError("a truncated zstd frame")
        body = decoder.unused_data
    return out


def unpadded(response: Tuple[Any, Any, bytes]) -> Tuple[Any, Any, bytes]:
    """A padded response as what it must equal every time: the body decoded,
    ``Content-Length`` masked (both vary with the padding)."""
    status, headers, body = response
    coding = None
    out = []
    for name, value in headers:
        if name.lower() == "content-encoding":
            coding = value
        elif name.lower() == "content-length":
            value = "<varies with the padding>"
        out.append((name, value))
    return status, out, decode(coding, body)


def as_is(response: Tuple[Any, Any, bytes]) -> Tuple[Any, Any, bytes]:
    return response


#: Beside W1..W6: (id, workload, app, Accept-Encoding or None for the workload's, padded).
EXTRA = [
    ("W1-br", "W1", "bare", "br", False),
    ("W1-gzip", "W1", "bare", "gzip", False),
    ("W3-br", "W3", "bare", "br;q=1, gzip;q=0.5", False),
    ("W3-gzip", "W3", "bare", "gzip", False),
    ("W3-stream-zstd", "W3", "stream", None, False),
    ("W3-stream-br", "W3", "stream", "br", False),
    ("W3-stream-gzip", "W3", "stream", "x-gzip", False),
    ("W1-padded-zstd", "W1", "bare", None, True),
    ("W3-padded-br", "W3", "bare", "br", True),
    ("W3-padded-gzip", "W3", "bare", "gzip", True),
    ("W3-padded-stream-zstd", "W3", "stream", None, True),
    ("W3-padded-stream-br", "W3", "stream", "br", True),
]


# --- the stream of distinct bodies --------------------------------------------------------------

# Realistic page text: words drawn at random (compresses about 3:1, as HTML does).
_WORDS = [b"<li>", b"</li>", b"<a href=\"/item/", b"\">", b"</a>", b"widget", b"gadget", b"price", b"stock", b"blue",
          b"small", b"large", b"review", b"shipping", b"<span class=\"tag\">", b"</span>", b"\n"]
_TEXT = bytes(b" ".join(_WORDS[(i * 2654435761 >> 7) % len(_WORDS)] + b"%d" % ((i * 40503) % 9973) for i in range(16000)))[: 64 * 1024]
DISTINCT = "/distinct/"
DISTINCT_PER_ROUND = 16  # even: a page asked twice is asked by the same middleware


def distinct_body(n: int) -> bytes:
    """Page ``n``: 4 to 24 KiB, unlike every other page (its number is in it)."""
    size = 4096 + (n * 7919) % (20 * 1024)
    at = (n * 1237) % (len(_TEXT) - size)
    return (b"<!doctype html><title>page %d</title><main>" % n + _TEXT[at:at + size])[:size]


def soak_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The bare app, and ``/distinct/<n>``: page ``n``."""
    path = environ["PATH_INFO"]
    if path.startswith(DISTINCT):
        body = distinct_body(int(path[len(DISTINCT):]))
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]
    return bare_app(environ, start_response)


# --- the ASGI twin -------------------------------------------------------------------------------

_SCOPE_ENVIRON = "asok_fast.soak.environ"  # an extension key: the WSGI environ the ASGI app answers from


def to_scope(environ: Dict[str, Any]) -> Dict[str, Any]:
    headers = [(key[5:].lower().replace("_", "-").encode("latin-1"), value.encode("latin-1"))
               for key, value in environ.items() if key.startswith("HTTP_")]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": environ["REQUEST_METHOD"], "scheme": "http", "path": environ["PATH_INFO"],
        "raw_path": environ["PATH_INFO"].encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), _SCOPE_ENVIRON: environ,
    }


def asgi_twin(stream: bool) -> Callable[..., Any]:
    """The ASGI app answering as ``soak_app`` (``stream``: as ``streamed_app``) does:
    one body message, or 8 KiB ``more_body`` messages that yield to the loop between them."""

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        environ = dict(scope[_SCOPE_ENVIRON], REQUEST_METHOD=scope["method"])
        captured: List[Any] = []
        body = b"".join(soak_app(environ, lambda status, headers, exc_info=None: captured.append((status, headers))))
        status, headers = captured[-1]
        if stream:
            headers = [h for h in headers if h[0].lower() != "content-length"]
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        await send({"type": "http.response.start", "status": int(status[:3]), "headers": raw})
        if not stream:
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        for i in range(0, len(body), 8192):
            await send({"type": "http.response.body", "body": body[i:i + 8192], "more_body": True})
            await asyncio.sleep(0)  # let the other tasks' streams interleave with this one
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def one_asgi(mw: Any, environ: Dict[str, Any]) -> Tuple[Any, Any, bytes]:
    """(int status, [(name, value)], body) of one request through an ASGI middleware."""
    start: List[Any] = []
    body: List[bytes] = []
    ended = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.append(message)
        else:
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                ended.append(True)

    await mw(to_scope(environ), receive, send)
    if len(start) != 1 or len(ended) != 1:
        return (None, f"{len(start)} starts, {len(ended)} ends", b"".join(body))
    return start[0]["status"], [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start[0]["headers"]], b"".join(body)


def asgi_form(response: Tuple[Any, Any, bytes]) -> Tuple[Any, Any, bytes]:
    """A WSGI answer as the ASGI one must be: the int code, header names lower-cased."""
    status, headers, body = response
    return int(str(status)[:3]), [(n.lower(), v) for n, v in headers], body


# --- the plan --------------------------------------------------------------------------------

#: The cache sizes soaked (``--cache``): label -> COMPRESS_CACHE_SIZE.
CACHES = {"cache-8M": 8 * MIB, "cache-1M": 1 * MIB, "cache-off": 0}

Entry = Tuple[str, str, str, Any, Callable[[], Dict[str, Any]], Callable[[Any], Any], Callable[[Dict[str, Any]], Any]]


def build(caches: List[str], asgi: bool) -> List[Entry]:
    """(label, workload id, interface, middleware, make_environ, normalise, expected(environ)) for every
    (core, cache size, interface, workload); the expected answers come from a cache-off WSGI middleware."""
    plan: List[Entry] = []
    for name, core in cores():
        def reference(app: Any, padded: bool) -> Any:
            return ResponseMiddleware(app, {**CONFIG, "COMPRESS_RANDOM_PADDING": padded, "COMPRESS_CACHE_SIZE": 0}, _core_module=core)

        refs = {(app_name, padded): reference(app, padded) for app_name, app in (("bare", soak_app), ("stream", streamed_app)) for padded in (False, True)}
        ref = refs[("bare", False)]
        shapes = workloads()
        tag = None
        for wid, make, revalidate in shapes:  # W1's tag, for W2's If-None-Match
            if not revalidate:
                status, headers, _ = one(ref, make(None))
                tag = tag or dict(headers).get("ETag")
        makes = {wid: make for wid, make, _ in shapes}
        # (workload id, app name, padded, make_environ, normalise, fixed?)
        requests: List[Tuple[str, str, bool, Callable[[], Dict[str, Any]], Callable[[Any], Any], bool]] = []
        for wid, make, revalidate in shapes:
            inm = tag if revalidate else None
            requests.append((wid, "bare", False, (lambda make=make, inm=inm: make(inm)), as_is, True))
        for xid, wid, app_name, accept, padded in EXTRA:

            def make_extra(make: Any = makes[wid], accept: Any = accept) -> Dict[str, Any]:
                environ = make(None)
                if accept is not None:
                    environ["HTTP_ACCEPT_ENCODING"] = accept
                return environ  # type: ignore[no-any-return]

            requests.append((xid, app_name, padded, make_extra, unpadded if padded else as_is, True))
        # A heavy share of the traffic (16 of each per round and middleware), so that the
        # warm-up fills every cache and its list of bodies seen once: after it,
        # entries are evicted as fast as they are admitted.
        for did, twice in (("distinct-once", False), ("distinct-twice", True)):
            maker = _distinct_maker(makes["W3"], twice)
            requests.extend([(did, "bare", False, maker, as_is, False)] * DISTINCT_PER_ROUND)
        for cache in caches:
            size = CACHES[cache]
            for iface in ("wsgi", "asgi") if asgi else ("wsgi",):
                mws = {}
                for app_name in ("bare", "stream"):
                    for padded in (False, True):
                        config = {**CONFIG, "COMPRESS_RANDOM_PADDING": padded, "COMPRESS_CACHE_SIZE": size}
                        if iface == "wsgi":
                            mws[(app_name, padded)] = ResponseMiddleware(soak_app if app_name == "bare" else streamed_app, config, _core_module=core)
                        else:
                            mws[(app_name, padded)] = ASGIMiddleware(asgi_twin(app_name == "stream"), config, _core_module=core)
                form = as_is if iface == "wsgi" else asgi_form
                for wid, app_name, padded, make, norm, fixed in requests:
                    ref_mw = refs[(app_name, padded)]
                    if fixed:
                        answer = form(norm(one(ref_mw, make())))
                        expect: Callable[[Dict[str, Any]], Any] = lambda environ, answer=answer: answer
                    else:
                        expect = lambda environ, ref_mw=ref_mw, norm=norm, form=form: form(norm(one(ref_mw, dict(environ, **{"wsgi.input": io.BytesIO(b"")}))))
                    plan.append((f"{name}/{cache}/{iface}", wid, iface, mws[(app_name, padded)], make, norm, expect))
    return plan


def _distinct_maker(make: Callable[[Any], Dict[str, Any]], twice: bool) -> Callable[[], Dict[str, Any]]:
    """W3's request for page after page: each new (``twice``: each asked twice in a row)."""
    counter = iter(range(10**15))

    def make_distinct() -> Dict[str, Any]:
        k = next(counter)
        environ = make(None)
        environ["PATH_INFO"] = DISTINCT + str(k // 2 if twice else 10**12 + k)
        return environ

    return make_distinct


def caches_of(plan: List[Entry]) -> List[Any]:
    """The distinct BodyCache objects of the plan's middlewares."""
    seen: Dict[int, Any] = {}
    for _, _, _, mw, *_ in plan:
        cache = mw._state[1].cache
        if cache is not None:
            seen[id(cache)] = cache
    return list(seen.values())


async def _together(coroutines: List[Any]) -> List[Any]:
    return await asyncio.gather(*coroutines)


def run_round(plan: List[Entry], loop: Any) -> List[Tuple[Entry, Any, Any]]:
    """One request of every entry: the WSGI ones in turn, the ASGI ones as
    concurrent tasks on ``loop``.  Returns (entry, environ, answer) triples."""
    out = []
    pending = []
    for entry in plan:
        environ = entry[4]()
        if entry[2] == "wsgi":
            out.append((entry, environ, entry[5](one(entry[3], environ))))
        else:
            pending.append((entry, environ))
    if pending:
        answers = loop.run_until_complete(_together([one_asgi(entry[3], environ) for entry, environ in pending]))
        out.extend((entry, environ, entry[5](answer)) for (entry, environ), answer in zip(pending, answers))
    return out


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=250_000, help="requests before the baseline (default 250000: the caches fill)")
    parser.add_argument("--sample", type=int, default=100_000, help="print figures every N requests")
    parser.add_argument("--rss-bound", type=float, default=2.0, help="MiB of RSS growth allowed after warm-up beyond the caches' room (default 2)")
    parser.add_argument("--slack", type=int, default=0, help="live objects allowed to be gained (default 0)")
    # CPython's free lists (floats, tuples, frames...) keep up to a few hundred
    # freed blocks; a leak of one block per request would show as ~+10**6.
    parser.add_argument("--block-slack", type=int, default=256, help="pymalloc blocks allowed to be gained (default 256)")
    parser.add_argument("--cache", default="cache-8M,cache-1M", help=f"comma-separated cache sizes to soak, of {', '.join(CACHES)} (default cache-8M,cache-1M)")
    parser.add_argument("--asgi", action=argparse.BooleanOptionalAction, default=True, help="also through ASGIMiddleware on one event loop (default on)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    caches = [c for c in args.cache.split(",") if c]
    unknown = [c for c in caches if c not in CACHES]
    if unknown:
        parser.error(f"unknown --cache {unknown}; known: {', '.join(CACHES)}")

    plan = build(caches, args.asgi)
    loop = asyncio.new_event_loop()
    sent = set()
    for entry, environ, got in run_round(plan, loop):
        label, wid, iface, mw, make, norm, expect = entry
        headers = got[1] if isinstance(got[1], list) else []
        encoding = dict((k.lower(), v) for k, v in headers).get("content-encoding", "identity")
        sent.add(encoding)
        if "/cache-8M/" in label or len(caches) == 1:
            print(f"  {label:26} {wid}: {got[0]}, {encoding} {len(got[2])} B, {', '.join(k for k, _ in headers)}")
    if not {"zstd", "br", "gzip"} <= sent:
        print(f"SOAK FAILED: the mix must send every coding, it sends {sent}")
        return 1
    n = len(plan)
    print(f"asok_fast {asok_fast.__version__}: {n} (core/cache/interface, workload) pairs, Python {platform.python_version()}, workloads from {SOURCE}")

    mismatches = 0
    first_mismatch = ""
    # Figures go into arrays allocated before the baseline: keeping them must
    # not itself allocate (each sample row as Python objects would add blocks).
    # Requests go a round (one of every pair) at a time: figures are taken at
    # the first round's end at or past each point.
    points = [d for d in range(1, args.requests + 1)
              if d == args.warmup or (d > args.warmup and (d - args.warmup) % args.sample == 0) or d == args.requests]
    at = array.array("q", points)
    fig = array.array("d", [0.0] * (8 * len(points)))  # seconds, rss, objects, blocks, requests, cache bytes, entries+remembered, room
    all_caches = caches_of(plan)
    k = 0
    done = 0
    started = time.perf_counter()
    while done < args.requests:
        for entry, environ, got in run_round(plan, loop):
            if got != entry[6](environ):
                mismatches += 1
                if not first_mismatch:
                    first_mismatch = f"request {done} {entry[0]} {entry[1]}: {got[0]} {got[1]} {len(got[2])} B"
        done += n
        while k < len(at) and done >= at[k]:
            gc.collect()
            gc.collect()
            fig[8 * k] = time.perf_counter() - started
            fig[8 * k + 1] = rss()
            fig[8 * k + 2] = len(gc.get_objects())
            fig[8 * k + 3] = sys.getallocatedblocks()
            fig[8 * k + 4] = done
            held = 0
            items = 0
            room = 0
            for cache in all_caches:
                held += cache.held_bytes
                items += len(cache) + cache.remembered
                room += cache.max_bytes - cache.held_bytes
            fig[8 * k + 5] = held
            fig[8 * k + 6] = items
            fig[8 * k + 7] = room
            print(
                f"{done:>9} requests {fig[8 * k]:>7.1f}s  RSS {fig[8 * k + 1] / MIB:8.2f} MiB ({(fig[8 * k + 1] - fig[1]) / 1024:+8.1f} KiB)"
                f"  objects {fig[8 * k + 2]:.0f} ({fig[8 * k + 2] - fig[2]:+.0f})  blocks {fig[8 * k + 3]:.0f} ({fig[8 * k + 3] - fig[3]:+.0f})"
                f"  caches {held / MIB:.2f} MiB held, {items:.0f} entries+remembered",
                flush=True,
            )
            k += 1

    samples: List[Dict[str, Any]] = []
    for j in range(k):
        samples.append({
            "requests": int(fig[8 * j + 4]),
            "seconds": round(fig[8 * j], 1),
            "rss_mib": round(fig[8 * j + 1] / MIB, 2),
            "rss_growth_kib": round((fig[8 * j + 1] - fig[1]) / 1024, 1),
            "objects": int(fig[8 * j + 2]),
            "objects_growth": int(fig[8 * j + 2] - fig[2]),
            "blocks": int(fig[8 * j + 3]),
            "blocks_growth": int(fig[8 * j + 3] - fig[3]),
            "cache_held_mib": round(fig[8 * j + 5] / MIB, 2),
            "cache_items": int(fig[8 * j + 6]),
        })
    final = samples[-1]
    cache_total = sum(cache.max_bytes for cache in all_caches)
    room = fig[7]  # what the caches could still take at the baseline
    bound = args.rss_bound * MIB + room
    items_growth = max(0, final["cache_items"] - samples[0]["cache_items"])
    failures = []
    if final["rss_growth_kib"] * 1024 >= bound:
        failures.append(f"RSS grew by {final['rss_growth_kib']:.1f} KiB after warm-up (bound {bound / MIB:.2f} MiB: "
                        f"{args.rss_bound} MiB + the caches' room {room / MIB:.2f} MiB)")
    if final["objects_growth"] > args.slack:
        failures.append(f"live objects grew by {final['objects_growth']}")
    if final["blocks_growth"] > args.block_slack + 8 * items_growth:
        failures.append(f"pymalloc blocks grew by {final['blocks_growth']} (cache entries+remembered {items_growth:+d})")
    if mismatches:
        failures.append(f"{mismatches} responses differed from the cache-off WSGI answer ({first_mismatch})")
    summary = {
        "requests": done,
        "warmup": args.warmup,
        "caches": caches,
        "asgi": args.asgi,
        "cache_sizes_total_mib": round(cache_total / MIB, 2),
        "cache_room_at_baseline_mib": round(room / MIB, 2),
        "pairs": [f"{label}/{wid}" for label, wid, *_ in plan],
        "python": platform.python_version(),
        "samples": samples,
        "mismatches": mismatches,
        "failures": failures,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    elapsed = time.perf_counter() - started
    print(
        f"{done} requests over {n} pairs in {elapsed:.0f}s; after the {args.warmup}-request warm-up: "
        f"RSS {final['rss_growth_kib']:+.1f} KiB (caches: {cache_total / MIB:.0f} MiB in all, {room / MIB:.2f} MiB of room at the baseline), "
        f"live objects {final['objects_growth']:+d}, pymalloc blocks {final['blocks_growth']:+d}; {mismatches} responses differed"
    )
    if failures:
        print("SOAK FAILED: " + "; ".join(failures))
        return 1
    print("SOAK OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
