#!/usr/bin/env python3
"""Soak: a million requests through both cores in one process; memory must stay flat.

    python scripts/soak.py [--requests 1000000] [--warmup 60000] [--json out.json]

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

After the warm-up (every pool, cache and free list filled) the script takes
a garbage collection and reads

* the resident set size (``/proc/self/statm``),
* ``len(gc.get_objects())`` -- live container objects,
* ``sys.getallocatedblocks()`` -- every block pymalloc holds: a reference
  leaked by C code (a bytes or str never freed) shows here, not in gc;

then again every ``--sample`` requests and at the end.  It fails (exit 1)
when the RSS grew by 2 MiB or more after the warm-up, when the object count
grew at all (``--slack``, default 0), when the allocated blocks grew by more
than CPython's free lists hold (``--block-slack``, default 256: one leaked
block per request would be ~10**6), or when any response differed.  Linux only
(``/proc``).
"""

from __future__ import annotations

import argparse
import array
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
from asok_fast import ResponseMiddleware, _core, _core_py

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


def build() -> List[Tuple[str, str, Any, Callable[[], Dict[str, Any]], Callable[[Any], Any]]]:
    """(core name, workload id, middleware, make_environ, normalise) for every pair."""
    plan = []
    for name, core in cores():
        mws = {
            (app_name, padded): ResponseMiddleware(app, {**CONFIG, "COMPRESS_RANDOM_PADDING": padded}, _core_module=core)
            for app_name, app in (("bare", bare_app), ("stream", streamed_app))
            for padded in (False, True)
        }
        mw = mws[("bare", False)]
        shapes = workloads()
        tag = None
        for wid, make, revalidate in shapes:  # W1's tag, for W2's If-None-Match
            if not revalidate:
                status, headers, _ = one(mw, make(None))
                tag = tag or dict(headers).get("ETag")
        for wid, make, revalidate in shapes:
            inm = tag if revalidate else None
            plan.append((name, wid, mw, (lambda make=make, inm=inm: make(inm)), as_is))
        makes = {wid: make for wid, make, _ in shapes}
        for xid, wid, app_name, accept, padded in EXTRA:

            def make_extra(make: Any = makes[wid], accept: Any = accept) -> Dict[str, Any]:
                environ = make(None)
                if accept is not None:
                    environ["HTTP_ACCEPT_ENCODING"] = accept
                return environ  # type: ignore[no-any-return]

            plan.append((name, xid, mws[(app_name, padded)], make_extra, unpadded if padded else as_is))
    return plan


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=60_000, help="requests before the baseline (default 60000)")
    parser.add_argument("--sample", type=int, default=100_000, help="print figures every N requests")
    parser.add_argument("--rss-bound", type=float, default=2.0, help="MiB of RSS growth allowed after warm-up (default 2)")
    parser.add_argument("--slack", type=int, default=0, help="live objects allowed to be gained (default 0)")
    # CPython's free lists (floats, tuples, frames...) keep up to a few hundred
    # freed blocks; a leak of one block per request would show as ~+10**6.
    parser.add_argument("--block-slack", type=int, default=256, help="pymalloc blocks allowed to be gained (default 256)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    plan = build()
    expected = {(name, wid): norm(one(mw, make())) for name, wid, mw, make, norm in plan}
    for name, wid, mw, make, norm in plan:
        status, headers, body = one(mw, make())
        encoding = dict((k.lower(), v) for k, v in headers).get("content-encoding", "identity")
        print(f"  {name:8} {wid}: {status}, {encoding} {len(body)} B, {', '.join(k for k, _ in headers)}")
    sent = {dict((k.lower(), v) for k, v in one(mw, make())[1]).get("content-encoding") for _, _, mw, make, _ in plan}
    if not {"zstd", "br", "gzip"} <= sent:
        print(f"SOAK FAILED: the mix must send every coding, it sends {sent}")
        return 1
    print(f"asok_fast {asok_fast.__version__} ({', '.join(sorted({n for n, *_ in plan}))}), Python {platform.python_version()}, workloads from {SOURCE}")

    mismatches = 0
    first_mismatch = ""
    # Figures go into arrays allocated before the baseline: keeping them must
    # not itself allocate (each sample row as Python objects would add blocks).
    points = [d for d in range(1, args.requests + 1)
              if d == args.warmup or (d > args.warmup and (d - args.warmup) % args.sample == 0) or d == args.requests]
    at = array.array("q", points)
    fig = array.array("d", [0.0] * (4 * len(points)))  # seconds, rss, objects, blocks
    k = 0
    started = time.perf_counter()
    n = len(plan)
    for i in range(args.requests):
        name, wid, mw, make, norm = plan[i % n]
        got = norm(one(mw, make()))
        if got != expected[(name, wid)]:
            mismatches += 1
            if not first_mismatch:
                first_mismatch = f"request {i} {name} {wid}: {got[0]} {got[1]} {len(got[2])} B"
        if k < len(at) and i + 1 == at[k]:
            gc.collect()
            gc.collect()
            fig[4 * k] = time.perf_counter() - started
            fig[4 * k + 1] = rss()
            fig[4 * k + 2] = len(gc.get_objects())
            fig[4 * k + 3] = sys.getallocatedblocks()
            print(
                f"{at[k]:>9} requests {fig[4 * k]:>7.1f}s  RSS {fig[4 * k + 1] / MIB:8.2f} MiB ({(fig[4 * k + 1] - fig[1]) / 1024:+8.1f} KiB)"
                f"  objects {fig[4 * k + 2]:.0f} ({fig[4 * k + 2] - fig[2]:+.0f})  blocks {fig[4 * k + 3]:.0f} ({fig[4 * k + 3] - fig[3]:+.0f})",
                flush=True,
            )
            k += 1

    samples: List[Dict[str, Any]] = []
    for j in range(k):
        samples.append({
            "requests": at[j],
            "seconds": round(fig[4 * j], 1),
            "rss_mib": round(fig[4 * j + 1] / MIB, 2),
            "rss_growth_kib": round((fig[4 * j + 1] - fig[1]) / 1024, 1),
            "objects": int(fig[4 * j + 2]),
            "objects_growth": int(fig[4 * j + 2] - fig[2]),
            "blocks": int(fig[4 * j + 3]),
            "blocks_growth": int(fig[4 * j + 3] - fig[3]),
        })
    final = samples[-1]
    failures = []
    if final["rss_growth_kib"] * 1024 >= args.rss_bound * MIB:
        failures.append(f"RSS grew by {final['rss_growth_kib']:.1f} KiB after warm-up (bound {args.rss_bound} MiB)")
    if final["objects_growth"] > args.slack:
        failures.append(f"live objects grew by {final['objects_growth']}")
    if final["blocks_growth"] > args.block_slack:
        failures.append(f"pymalloc blocks grew by {final['blocks_growth']}")
    if mismatches:
        failures.append(f"{mismatches} responses differed from the first of their kind ({first_mismatch})")
    summary = {
        "requests": args.requests,
        "warmup": args.warmup,
        "pairs": [f"{name}/{wid}" for name, wid, *_ in plan],
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
        f"{args.requests} requests over {n} (core, workload) pairs in {elapsed:.0f}s; after the {args.warmup}-request warm-up: "
        f"RSS {final['rss_growth_kib']:+.1f} KiB, live objects {final['objects_growth']:+d}, "
        f"pymalloc blocks {final['blocks_growth']:+d}; {mismatches} responses differed"
    )
    if failures:
        print("SOAK FAILED: " + "; ".join(failures))
        return 1
    print("SOAK OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
