#!/usr/bin/env python3
"""End to end on W1 under uvicorn (one worker, 127.0.0.1) driven by wrk (issue 17).

    python bench/wrk_asgi.py [--seconds 5] [--rounds 3] [--connections 4] [--apps LIST] [--json PATH]
                             [--http auto|h11|httptools] [--loop auto|asyncio|uvloop]

Starts one uvicorn per app (``uvicorn --factory
asok_fast.benchmarks.asgi_stacks:env_app``, one worker: the server process
itself serves; its defaults otherwise, as a user runs it; ``--http`` and
``--loop`` pass uvicorn's options of those names: ``auto`` takes httptools and
uvloop when they are installed, as ``pip install 'uvicorn[standard]'`` does,
else h11 and asyncio; the line printed says which ran):

* ``starlette``            a bare Starlette app serving the workloads' routes;
* ``starlette+asok_fast``  the same app wrapped by ``ASGIMiddleware`` (the core the
                           package selects: the line says which; cache on);
* ``starlette+mw``         the same app built with Starlette's ``CORSMiddleware`` +
                           ``GZipMiddleware`` (min size 500, level 6);

``--apps`` can add ``starlette+compress`` (starlette-compress + CORS).  Each
server's W1 answer is checked over HTTP (asok_fast: the coding it negotiates,
zstd for the browser's header, decoding to the body, an ETag; the others: a
coding the request accepts, CORS), then ``wrk`` runs against each, interleaved
for ``--rounds`` rounds, with W1's headers.  Prints requests per second (median
of rounds), the ratios to bare Starlette (target: starlette+asok_fast >= 0.9x)
and the server's CPU time per request (user + system from /proc, Linux).  Each
server is stopped by its own pid.  Needs wrk (Debian: ``apt-get install wrk``)
and the ``bench`` extra.  wrk_e2e.py's helpers run wrk and read /proc.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wrk_e2e

from asok_fast import IMPLEMENTATION
from asok_fast.benchmarks import asgi_stacks as ast
from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl

APPS = ["starlette", "starlette+asok_fast", "starlette+mw"]
EXTRA_APPS = ["starlette+compress"]
CLAIMS = {
    "starlette": frozenset(),
    "starlette+asok_fast": st.ALL_FEATURES,
    "starlette+mw": frozenset({st.COMPRESS, st.CORS}),
    "starlette+compress": frozenset({st.COMPRESS, st.CORS}),
}
TARGET = 0.9  # starlette+asok_fast / starlette (issue 17)


def resolved(http: str, loop: str) -> Tuple[str, str]:
    """The HTTP implementation and event loop uvicorn runs for these options."""
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


class Server(wrk_e2e.Server):
    """One uvicorn process (one worker: it serves itself), stopped by its pid."""

    name = "uvicorn"
    options: Tuple[str, str] = ("auto", "auto")  # --http, --loop

    def argv(self) -> List[str]:
        return [
            sys.executable, "-m", "uvicorn",
            "--factory", "asok_fast.benchmarks.asgi_stacks:env_app",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
            "--log-level", "warning",
            "--no-access-log",
            "--http", self.options[0],
            "--loop", self.options[1],
        ]

    def env(self) -> Optional[Dict[str, str]]:
        return dict(os.environ, **{ast.APP_ENV: self.app})

    def worker(self) -> Optional[int]:
        return self.proc.pid  # uvicorn with one worker serves in its own process


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--apps", default=",".join(APPS), help=f"comma-separated, from {','.join(APPS + EXTRA_APPS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="uvicorn's --http (default auto)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="uvicorn's --loop (default auto)")
    args = parser.parse_args(argv)
    Server.options = (args.http, args.loop)
    http, loop = resolved(args.http, args.loop)
    if shutil.which("wrk") is None:
        print("wrk not found (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = [a for a in apps if a not in CLAIMS]
    if unknown:
        print(f"unknown app(s) {', '.join(unknown)}; known: {', '.join(APPS + EXTRA_APPS)}", file=sys.stderr)
        return 2
    workload = wl.by_id("W1")
    width = max([20] + [len(app) + 1 for app in apps])

    def check(app: str, response: st.Response) -> None:
        coding = ast.expected_coding(workload) if app.endswith("+asok_fast") else None
        st.check(workload, response, CLAIMS[app], workload.body, bare=not CLAIMS[app], coding=coding)
        if CLAIMS[app] == st.ALL_FEATURES and not response.header("ETag"):
            raise st.CheckFailed(f"{app}: no ETag")

    samples = wrk_e2e.interleaved(Server, apps, workload, check, args, width)

    medians = {app: statistics.median(s["rps"] for s in samples[app]) for app in apps}
    print(f"W1 end to end (Accept-Encoding: {workload.accept_encoding}, allowed Origin): uvicorn 1 worker ({http}, {loop}) on 127.0.0.1, "
          f"wrk -t1 -c{args.connections}, {args.rounds} x {args.seconds:g}s interleaved; asok_fast core: {IMPLEMENTATION}")
    base = medians.get("starlette")
    for app in apps:
        ratio = f"{medians[app] / base:.3f}x starlette" if base else ""
        runs = ", ".join(f"{s['rps']:.0f}" for s in samples[app])
        bad = sum(s.get("non_2xx", 0) for s in samples[app])
        print(f"  {app:{width}} {medians[app]:8.0f} req/s  {ratio:>18}   (runs: {runs}{'; non-2xx: %d' % bad if bad else ''})")
    if base and "starlette+asok_fast" in medians:
        ratio = medians["starlette+asok_fast"] / base
        print(f"  {'PASS' if ratio >= TARGET else 'MISS'} starlette+asok_fast keeps {ratio:.3f}x of bare Starlette's req/s "
              f"(target >= {TARGET})")
    if base and "starlette+mw" in medians:
        print(f"  (Starlette's CORSMiddleware + GZipMiddleware keep {medians['starlette+mw'] / base:.3f}x)")
    wrk_e2e.print_cpu(samples, apps, "starlette", "bare Starlette", "server", width)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"core": IMPLEMENTATION, "workload": "W1", "connections": args.connections, "seconds": args.seconds,
                       "http": http, "loop": loop, "samples": samples, "median_rps": medians, "target": TARGET}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
