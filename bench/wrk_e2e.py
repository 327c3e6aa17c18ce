#!/usr/bin/env python3
"""End to end on W1 (repeated body: cache hits): gunicorn (one sync worker, 127.0.0.1) driven by wrk.

    python bench/wrk_e2e.py [--seconds 5] [--rounds 3] [--connections 4] [--workload W1] [--json PATH]

Starts one gunicorn per app, each with one sync worker:

* ``flask``            bare Flask;
* ``flask+asok_fast``  the same Flask app wrapped by ResponseMiddleware, on the core
                       the package selects (``asok_fast.IMPLEMENTATION``: the line
                       says which), its compressed-body cache on (the default);
* ``flask+ext``        Flask + Flask-Compress (its default codings: zstd for this
                       header) + Flask-CORS + Werkzeug ETags;

checks each server's answer over HTTP (the coding asok_fast negotiates, zstd for
this header, that decodes to the body; ETag, CORS) and then runs ``wrk`` against
each, interleaved for ``--rounds`` rounds, with the workload's request headers
(``Accept-Encoding: gzip, deflate, br, zstd`` and the allowed ``Origin``).
The default workload, W1, sends the same body every time: after its second
request asok_fast serves it from the compressed-body cache (issue 16's "W1
repeated").  ``--workload W7`` serves W1's list with a new request number in
every body (what the cache cannot answer); ``W10``/``W12`` are W1/W7 for a
client that accepts only gzip.  ``--apps`` can add ``flask+asok_fast-nocache``
(``COMPRESS_CACHE_SIZE = 0``).  Prints requests per second (median of rounds)
and the ratios to bare Flask; the target is flask+asok_fast >= 0.92x (issue 16;
issue 15's was 0.9x, also printed).
Each server is stopped by its own pid.  Needs wrk (Debian: ``apt-get install
wrk``) and the ``bench`` extra.

Beside requests per second it prints the worker's CPU time per request (user +
system, read from /proc around each wrk run, Linux only): the server's own cost,
which does not depend on how wrk and the worker share the machine's cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

from asok_fast import IMPLEMENTATION, _core_py
from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl

APPS = ["flask", "flask+asok_fast", "flask+ext"]
#: Apps that can be asked for beside the default ones.
EXTRA_APPS = ["flask+asok_fast-nocache"]
CLAIMS = {
    "flask": frozenset(),
    "flask+asok_fast": st.ALL_FEATURES,
    "flask+asok_fast-nocache": st.ALL_FEATURES,
    "flask+ext": st.ALL_FEATURES,
}
#: The workloads this script can drive (a GET of the JSON list, with CORS).
WORKLOADS = ("W1", "W7", "W10", "W12")
TARGET = 0.92  # flask+asok_fast / flask (issue 16)
EARLIER_TARGET = 0.9  # issue 15's


def wl_coding(workload: wl.Workload) -> Optional[str]:
    """The coding asok_fast's default ``COMPRESS_CODINGS`` negotiates for ``workload``."""
    return st.middleware_stack("python", _core_py, st.Stack("bare", "wsgi", "bare", "bare")).expected_coding(workload)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process on 127.0.0.1 serving a benchmark app, stopped by its pid.

    This one is gunicorn (a master and its single sync worker); wrk_asgi.py's
    subclass runs uvicorn instead."""

    name = "gunicorn"

    def __init__(self, app: str, port: int, log_dir: str) -> None:
        self.app = app
        self.port = port
        self.log_path = os.path.join(log_dir, f"{self.name}-{app.replace('+', '_')}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT, env=self.env())

    def argv(self) -> List[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "--workers", "1",
            "--worker-class", "sync",
            "--bind", f"127.0.0.1:{self.port}",
            "--log-level", "warning",
            "--backlog", "256",
            f'asok_fast.benchmarks.stacks:gunicorn_app("{self.app}")',
        ]

    def env(self) -> Optional[Dict[str, str]]:
        return None  # the parent's

    def worker(self) -> Optional[int]:
        """The pid whose CPU time is the server's work: gunicorn's single worker."""
        return worker_pid(self.proc.pid)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} for {self.app} exited ({self.proc.returncode}); log: {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self.get(wl.by_id("W1")).status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} for {self.app} did not answer on port {self.port}; log: {self.log_path}")

    def get(self, workload: wl.Workload) -> st.Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(workload.method, workload.path, headers=wl.request_headers(workload))
            answer = conn.getresponse()
            body = answer.read()
            return st.Response(answer.status, list(answer.getheaders()), body)
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # a graceful stop (gunicorn's takes its worker with it)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _stat_fields(pid: object) -> Optional[List[str]]:
    """The fields of /proc/<pid>/stat after the command name (proc(5) field 3 on), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def worker_pid(master: int) -> Optional[int]:
    """The pid of gunicorn's single worker (the master's child), or None off Linux."""
    try:
        with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as f:
            children = f.read().split()
    except OSError:  # no children file (or no /proc): look for the parent pid instead
        entries = os.listdir("/proc") if os.path.isdir("/proc") else []
        children = [e for e in entries if e.isdigit() and (_stat_fields(e) or ["", ""])[1] == str(master)]
    return int(children[0]) if len(children) == 1 else None


def cpu_seconds(pid: Optional[int]) -> Optional[float]:
    """User + system CPU time of ``pid`` so far (proc(5) fields 14 and 15), or None."""
    fields = _stat_fields(pid) if pid is not None else None
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, seconds: float, connections: int, worker: Optional[int] = None, workload_id: str = "W1") -> Dict[str, float]:
    workload = wl.by_id(workload_id)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for name, value in wl.request_headers(workload).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://127.0.0.1:{port}{workload.path}")
    cpu_before = cpu_seconds(worker)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu_after = cpu_seconds(worker)
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p50 = re.search(r"50%\s+([0-9.]+)(us|ms|s)", out)
    result = {"rps": float(rps.group(1)), "non_2xx": float(bad.group(1)) if bad else 0.0}
    if p50:
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
        result["p50_ms"] = float(p50.group(1)) * scale
    if errors:
        result["socket_errors"] = errors.group(0)  # type: ignore[assignment]
    done = re.search(r"(\d+) requests in", out)
    if cpu_before is not None and cpu_after is not None and done and int(done.group(1)):
        result["worker_cpu_us"] = (cpu_after - cpu_before) / int(done.group(1)) * 1e6
    return result


def print_cpu(samples: Dict[str, List[Dict[str, float]]], apps: List[str], base: str, base_label: str, whose: str, width: int) -> None:
    """The server's CPU time per request of each app (median of rounds), and its
    difference from ``base``'s; nothing when a round could not read it."""
    cpu = {app: [s["worker_cpu_us"] for s in samples[app] if "worker_cpu_us" in s] for app in apps}
    if not all(cpu.values()):
        return
    cpu_base = statistics.median(cpu[base]) if base in cpu else None
    print(f"{whose} CPU time per request (user + system, median of rounds):")
    for app in apps:
        mine = statistics.median(cpu[app])
        extra = f"  ({mine - cpu_base:+.1f} us over {base_label})" if cpu_base is not None and app != base else ""
        print(f"  {app:{width}} {mine:8.1f} us{extra}")


def interleaved(
    server_cls: type,
    apps: List[str],
    workload: wl.Workload,
    check: Callable[[str, st.Response], None],
    args: argparse.Namespace,
    width: int,
) -> Dict[str, List[Dict[str, float]]]:
    """Start one ``server_cls`` per app, ``check`` each one's answer to ``workload``,
    then run wrk against them in ``args.rounds`` interleaved rounds (a seeded order
    per round); every server is stopped by its pid, whatever happens."""
    log_dir = tempfile.mkdtemp(prefix=f"asok-fast-wrk-{server_cls.name}-")
    servers: Dict[str, Server] = {}
    samples: Dict[str, List[Dict[str, float]]] = {app: [] for app in apps}
    try:
        for app in apps:
            servers[app] = server_cls(app, free_port(), log_dir)
        for app, server in servers.items():
            server.wait_ready()
            response = server.get(workload)
            check(app, response)
            print(
                f"{app:{width}} pid {server.proc.pid} port {server.port}: {response.status}, "
                f"{len(response.body)} B, Content-Encoding {response.header('Content-Encoding') or '-'}, "
                f"ETag {response.header('ETag') or '-'}",
                file=sys.stderr,
            )
        rng = random.Random(args.seed)
        for r in range(args.rounds):
            order = list(apps)
            rng.shuffle(order)
            for app in order:
                print(f"round {r + 1}/{args.rounds}: wrk {args.seconds:g}s on {app}", file=sys.stderr, flush=True)
                server = servers[app]
                samples[app].append(run_wrk(server.port, args.seconds, args.connections, server.worker(), workload.id))
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    return samples


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--apps", default=",".join(APPS), help=f"comma-separated, from {','.join(APPS + EXTRA_APPS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--workload", default="W1", choices=WORKLOADS,
                        help="W1 (default: the same body every time, cache hits), W7 (a new body every request), "
                        "W10/W12 (the same for a gzip-only client)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = [a for a in apps if a not in CLAIMS]
    if unknown:
        print(f"unknown app(s) {', '.join(unknown)}; known: {', '.join(APPS + EXTRA_APPS)}", file=sys.stderr)
        return 2
    width = max([16] + [len(app) + 1 for app in apps])
    core_name = IMPLEMENTATION  # the gunicorn workers inherit this environment, so select alike
    workload = wl.by_id(args.workload)
    reference = None if workload.fresh is not None else workload.body

    def check(app: str, response: st.Response) -> None:
        # Over HTTP the server adds Date, Server, Connection; the body is what counts.
        coding = wl_coding(workload) if app.startswith("flask+asok_fast") else None
        st.check(workload, response, CLAIMS[app], reference, bare=not CLAIMS[app], coding=coding)

    samples = interleaved(Server, apps, workload, check, args, width)

    medians = {app: statistics.median(s["rps"] for s in samples[app]) for app in apps}
    body = "a new body every request: cache misses" if workload.fresh is not None else "the same body every time: cache hits"
    print(f"{args.workload} end to end ({body}; Accept-Encoding: {workload.accept_encoding}): gunicorn 1 sync worker "
          f"on 127.0.0.1, wrk -t1 -c{args.connections}, {args.rounds} x {args.seconds:g}s interleaved; "
          f"asok_fast core: {core_name}")
    base = medians.get("flask")
    for app in apps:
        ratio = f"{medians[app] / base:.2f}x flask" if base else ""
        runs = ", ".join(f"{s['rps']:.0f}" for s in samples[app])
        bad = sum(s.get("non_2xx", 0) for s in samples[app])
        print(f"  {app:{width}} {medians[app]:8.0f} req/s  {ratio:>12}   (runs: {runs}{'; non-2xx: %d' % bad if bad else ''})")
    status = 0
    if base and "flask+asok_fast" in medians:
        ratio = medians["flask+asok_fast"] / base
        verdict = "PASS" if ratio >= TARGET else "MISS"
        earlier = "PASS" if ratio >= EARLIER_TARGET else "MISS"
        print(f"  {verdict} flask+asok_fast keeps {ratio:.3f}x of bare Flask's req/s (target >= {TARGET}; "
              f"issue 15's >= {EARLIER_TARGET}: {earlier})")
    if base and "flask+ext" in medians:
        print(f"  (Flask-Compress + Flask-CORS keep {medians['flask+ext'] / base:.2f}x)")
    print_cpu(samples, apps, "flask", "bare Flask", "worker", width)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"core": core_name, "workload": args.workload, "connections": args.connections,
                       "seconds": args.seconds, "samples": samples, "median_rps": medians,
                       "target": TARGET}, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
