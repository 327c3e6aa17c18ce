"""``asok-fast bench``: every stack on every workload, interleaved, as one table.

How it measures (and why):

* Every stack is built first, so the frameworks are loaded in this process even
  for the stacks that do not use them.  A bare process misleads: there glibc
  hands the 256 KB a zlib stream allocates back to the system on every free, so
  each deflateInit pays page faults that a real server process does not pay.
* Each stack answers each workload once and is checked for the work it claims
  (a coding the request accepts, for asok_fast the one its negotiation picks,
  that decodes to the bare app's body; an ETag, a 304, CORS headers) before it
  is timed: a stack that skips work would look fast.  W7..W9 make a new body for
  every request (a cache of compressed bodies cannot serve them); their check
  asks twice and wants two different bodies.
* A *round* times one batch (about ``--batch-ms`` of requests) of every cell, in a
  shuffled order, workload by workload.  The time per request of a cell is the
  median over rounds; its overhead is the median over rounds of (cell - the same
  framework's bare app in the same round), so slow phases of a shared machine hit
  both sides of each difference.
* Two threads on W8 (W3 when W8 is not run; zstd for the browser's header):
  requests per second of one thread, then of two threads on the same
  middleware, alternated ``--thread-reps`` times; the ratio of medians (a
  target for the compiled core, information for the pure one).
* Every target is a ratio of cells measured in this one run (see
  :func:`evaluate_targets`) and comes with a 95 % interval: the run's rounds are
  resampled with replacement (a round's cells stay together, as they were
  measured side by side) and the ratio recomputed.  An interval that straddles
  the limit says the run's own noise could turn the verdict; runs minutes apart
  on a shared machine can differ by more than the interval.
* The compressed-body cache (issue 16) is on in ``compiled`` and ``python`` (the
  default): W1, W3, W10 and W11 measure its hits; ``compiled-nocache`` (cache
  off) beside ``compiled`` on W7..W9, W12 and W13 measures what a miss adds;
  ``compiled-isal`` is the ISA-L gzip engine with the cache off.
* ``--redis``: the shared tier (``COMPRESS_CACHE_BACKEND`` = a ``redis.Redis``
  client) against a real ``redis-server`` on 127.0.0.1, started and stopped
  here by its pid: one subprocess serves W11 (compressing W3's page once and
  filling the tier), then fresh subprocesses each time their first request
  for the same page, counting calls of ``_codecs.Encoders.encode``, against
  gzip-6 of the page through Python's zlib in the same process (wall clock:
  the request waits on the tier's thread).  See :func:`measure_shared_tier`.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import asgi_stacks as asgi_st
from . import stacks as st
from . import workloads as wl

__all__ = ["add_arguments", "run", "measure", "Results"]

US = 1000.0  # ns per microsecond


# --- arguments ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    parser.add_argument("--batch-ms", type=float, default=4.0, help="target duration of one timed batch (default 4 ms)")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: the thread's CPU time per request (default; a shared machine's other processes do not "
        "inflate it); wall: perf_counter",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 short rounds, short thread test (numbers are rough)")
    parser.add_argument("--workloads", default="", metavar="W1,W3", help="only these workloads (default: all)")
    parser.add_argument(
        "--anchors",
        default="flask,django,asok",
        metavar="LIST",
        help="anchor frameworks to build: any of flask,django,asok, or 'none' (default: all that import)",
    )
    parser.add_argument("--thread-seconds", type=float, default=0.6, help="length of one W8 throughput sample (default 0.6 s)")
    parser.add_argument("--thread-reps", type=int, default=5, help="W8 one/two-thread samples, alternated (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the in-round shuffle")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--svg", metavar="PATH", help="also draw the results as an SVG chart")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed (not only on a failed check)")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="also measure the shared cache tier: a real redis-server on 127.0.0.1 (needs redis-server and the "
        "redis package, asok_fast[redis]), a first process filling it, fresh processes served from it",
    )
    parser.add_argument("--redis-reps", type=int, default=7, help="fresh second processes per kind (cold, warm) with --redis (default 7)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


# --- progress -------------------------------------------------------------------------------


class Progress:
    """One status line on stderr: redrawn in place on a terminal, a line per step otherwise."""

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self._last_line = 0.0
        self._width = 0

    def note(self, text: str) -> None:
        """A message that stays."""
        if not self.enabled:
            return
        self._clear()
        print(text, file=self.stream, flush=True)

    def update(self, done: int, total: int, text: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        width = 24
        filled = int(width * done / total) if total else width
        eta = elapsed / done * (total - done) if done else 0.0
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:5.0f}s eta {eta:4.0f}s  {text}"
        if self.tty:
            line = line[:118]
            self.stream.write("\r" + line.ljust(self._width))
            self.stream.flush()
            self._width = len(line)
        elif time.monotonic() - self._last_line > 5 or done == total:
            print(line, file=self.stream, flush=True)
            self._last_line = time.monotonic()

    def _clear(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def done(self) -> None:
        self._clear()


# --- measurement ------------------------------------------------------------------------------


@dataclass
class CellResult:
    stack: str
    workload: str
    per_batch: int = 0
    samples: List[float] = field(default_factory=list)  # ns per request, one per round
    diffs: List[float] = field(default_factory=list)  # ns, minus the bare app in the same round
    bytes_out: Optional[int] = None
    status: Optional[int] = None
    coding: Optional[str] = None  # the Content-Encoding it sent (a floor: the one it makes)
    gzip6_out: Optional[int] = None  # the gzip-6 floor's size for the same body

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def overhead(self) -> Optional[float]:
        return statistics.median(self.diffs) if self.diffs else None

    @property
    def spread(self) -> float:
        """Interquartile range over the median, in percent."""
        if len(self.samples) < 4:
            return float("nan")
        q = statistics.quantiles(self.samples, n=4)
        return 100.0 * (q[2] - q[0]) / self.median


@dataclass
class Results:
    machine: Dict[str, Any]
    stacks: List[Dict[str, Any]]
    workloads: List[Dict[str, Any]]
    cells: Dict[Tuple[str, str], CellResult]
    skipped: Dict[Tuple[str, str], str]
    failed: Dict[Tuple[str, str], str]
    unavailable: Dict[str, str]
    threads: Dict[str, Any]
    rounds: int
    seconds: float
    clock: str = "cpu"
    targets: List[Dict[str, Any]] = field(default_factory=list)
    shared_tier: Dict[str, Any] = field(default_factory=dict)  # --redis (measure_shared_tier), else {}

    def cell(self, stack: str, workload: str) -> Optional[CellResult]:
        return self.cells.get((stack, workload))


def _calibrate(run: Callable[[int], int], batch_ns: float) -> int:
    """How many requests make one batch of about ``batch_ns``."""
    run(1)
    run(1)  # warm caches, lazy imports, first-request paths
    n = 1
    while True:
        elapsed = run(n)
        if elapsed >= batch_ns / 4 or n >= 1 << 16:
            break
        n *= 4
    per = max(elapsed / n, 1.0)
    return max(1, min(1 << 18, int(round(batch_ns / per))))


def machine_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }
    from .._codecs import available

    codings: Dict[str, str] = {}
    for coding, library in available():  # gzip twice where isal is installed: zlib, then ISA-L
        codings[coding] = f"{codings[coding]}; {library}" if coding in codings else library
    info["codings"] = codings
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    from .. import IMPLEMENTATION, __version__

    info["asok_fast"] = __version__
    info["implementation"] = IMPLEMENTATION  # the core the *+asok_fast stacks run
    cores, unavailable = st.twins()
    info["compiled_core"] = unavailable.get("compiled", "available")
    zlib_version = getattr(cores.get("compiled"), "zlib_version", None)
    if zlib_version is not None:
        info["zlib_compiled_core"] = zlib_version()
    versions = {}
    for dist in ("flask", "flask-compress", "flask-cors", "werkzeug", "django", "django-cors-headers", "asok", "brotli", "backports.zstd", "isal", "redis"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            pass
    info["anchors"] = versions
    return info


def _loadavg() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(
    stacks: Sequence[st.Stack],
    workloads: Sequence[wl.Workload],
    rounds: int,
    batch_ms: float,
    seed: int = 0,
    progress: Optional[Progress] = None,
) -> Tuple[Dict[Tuple[str, str], CellResult], Dict[Tuple[str, str], str], Dict[Tuple[str, str], str], Dict[Tuple[str, str], st.Cell]]:
    """Check and time every (stack, workload); return results, skipped, failed, cells."""
    progress = progress or Progress(False)
    cells: Dict[Tuple[str, str], st.Cell] = {}
    skipped: Dict[Tuple[str, str], str] = {}
    failed: Dict[Tuple[str, str], str] = {}
    results: Dict[Tuple[str, str], CellResult] = {}
    batch_ns = batch_ms * 1e6

    pairs = [(s, w) for w in workloads for s in stacks]
    for i, (stack, workload) in enumerate(pairs, 1):
        progress.update(i, len(pairs), f"check + calibrate {stack.id} on {workload.id}")
        key = (stack.id, workload.id)
        reason = stack.not_applicable(workload)
        if reason:
            skipped[key] = reason
            continue
        try:
            cell = stack.prepare(workload)
        except st.CheckFailed as exc:
            failed[key] = str(exc)
            continue
        cells[key] = cell
        result = CellResult(
            stack.id, workload.id, bytes_out=cell.info.get("bytes_out"), coding=cell.info.get("coding"), gzip6_out=cell.info.get("gzip6_out")
        )
        if cell.response is not None:
            result.status = cell.response.status
        result.per_batch = _calibrate(cell.run, batch_ns)
        results[key] = result
    # A stack whose bare app failed cannot have an overhead.
    rng = random.Random(seed)
    by_workload = {w.id: [key for key in cells if key[1] == w.id] for w in workloads}
    total = rounds * len(cells)
    done = 0
    for r in range(rounds):
        gc.collect()
        order = list(workloads)
        rng.shuffle(order)
        for workload in order:
            keys = list(by_workload[workload.id])
            rng.shuffle(keys)
            round_ns: Dict[str, float] = {}
            for key in keys:
                result = results[key]
                ns = cells[key].run(result.per_batch) / result.per_batch
                result.samples.append(ns)
                round_ns[key[0]] = ns
                done += 1
                progress.update(done, total, f"round {r + 1}/{rounds}: {key[0]} on {key[1]}")
            for key in keys:
                stack = cells[key].stack
                if stack.role == "floor":
                    results[key].diffs.append(round_ns[stack.id])
                elif stack.bare is not None and stack.bare.id in round_ns:
                    results[key].diffs.append(round_ns[stack.id] - round_ns[stack.bare.id])
    progress.done()
    return results, skipped, failed, cells


#: The control of the two-thread test: work that releases the GIL (hashlib
#: does for data over 2 KiB), so that its two-thread ratio is what the machine
#: gives two threads at that moment, whatever the middleware does.
_CONTROL_DATA = bytes(range(256)) * 4096  # 1 MiB


def _control_run(n: int) -> int:
    md5 = hashlib.md5
    data = _CONTROL_DATA
    for _ in range(n):
        md5(data).digest()
    return 0


def _rps(run: Callable[[int], int], threads: int, seconds: float) -> float:
    """Calls of ``run(1)`` per second, on ``threads`` threads at once (wall clock)."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(i: int) -> None:
        barrier.wait()
        n = 0
        while time.perf_counter() < deadline[0]:
            run(1)
            n += 1
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def thread_scaling(stack: st.Stack, workload: wl.Workload, seconds: float, reps: int, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Requests per second of ``stack`` on ``workload``: one thread vs two threads,
    and the same for the control (MD5 of 1 MiB, which releases the GIL), alternated.

    The ratio is wall-clock work: on a shared machine whose other processes take
    a CPU, no code gets 2x; ``control_ratio`` says what the machine gave.
    """
    cell = stack.prepare(workload)
    run = cell.run
    run(2)
    one: List[float] = []
    two: List[float] = []
    c1: List[float] = []
    c2: List[float] = []
    for i in range(reps):
        if progress:
            progress.update(i, reps, f"{workload.id} throughput, {stack.id}: one thread vs two")
        one.append(_rps(run, 1, seconds))
        two.append(_rps(run, 2, seconds))
        c1.append(_rps(_control_run, 1, seconds / 2))
        c2.append(_rps(_control_run, 2, seconds / 2))
    if progress:
        progress.done()
    m1, m2 = statistics.median(one), statistics.median(two)
    return {"stack": stack.id, "workload": workload.id, "rps_1": m1, "rps_2": m2, "ratio": m2 / m1,
            "samples_1": one, "samples_2": two,
            "control_ratio": statistics.median(c2) / statistics.median(c1), "control_1": c1, "control_2": c2}


# --- the shared tier (--redis) -----------------------------------------------------------------

#: The workload the shared tier is measured on: W3's page for a gzip-only client.
TIER_WORKLOAD = "W11"
#: What a "warm" second process serves first (another page, new every time:
#: its miss opens the tier's connection and threads).
TIER_WARMUP = "W13"


def _tier_unavailable() -> Optional[str]:
    if shutil.which("redis-server") is None:
        return "redis-server not found (Debian: apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        return f"the redis package is not importable ({exc}); pip install 'asok_fast[redis]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tier_child(argv: List[str]) -> None:
    """One process of the shared-tier measurement (run by :func:`measure_shared_tier`
    as ``python -c``): ``role`` ``first`` (fills the tier), ``cold`` (a fresh
    process's very first request) or ``warm`` (its first request for the page,
    after one for another page); prints one JSON line."""
    role, port, core_name = argv[0], int(argv[1]), argv[2]
    import redis

    from .. import _codecs
    from ..middleware import ResponseMiddleware

    calls = [0]
    encode = _codecs.Encoders.encode

    def counting(self: Any, settings: Any, coding: str, data: bytes) -> bytes:
        calls[0] += 1
        return encode(self, settings, coding, data)

    _codecs.Encoders.encode = counting  # type: ignore[method-assign]
    cores, unavailable = st.twins()
    if core_name not in cores:
        print(json.dumps({"error": unavailable.get(core_name, core_name)}))
        return
    client = redis.Redis(host="127.0.0.1", port=port)
    app = ResponseMiddleware(wl.bare_app, {**wl.CONFIG, "COMPRESS_CACHE_BACKEND": client}, _core_module=cores[core_name])
    workload = wl.by_id(TIER_WORKLOAD)
    environ = wl.environ_for(workload)
    if role == "warm":
        st.fetch(app, wl.environ_for(wl.by_id(TIER_WARMUP)))
    before = calls[0]
    t0 = time.perf_counter_ns()
    response = st.fetch(app, environ)
    request_ns = time.perf_counter_ns() - t0
    encodes = calls[0] - before
    coding = response.header("Content-Encoding")
    key = f"asok_fast:gzip:{_codecs.variant('gzip', 'zlib', wl.GZIP_LEVEL, False)}:{hashlib.sha256(workload.body).hexdigest()}"
    stored = None
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:  # the first process's write is sent off without waiting
        stored = client.get(key)
        if stored is not None or role != "first":
            break
        time.sleep(0.005)
    ok = coding == "gzip" and st.decode("gzip", response.body) == workload.body
    squeeze = zlib.compressobj
    times = []
    for _ in range(7):  # gzip-6 of the same page through Python's zlib, in this process
        t0 = time.perf_counter_ns()
        c = squeeze(wl.GZIP_LEVEL, zlib.DEFLATED, 31)
        c.compress(workload.body)
        c.flush()
        times.append(time.perf_counter_ns() - t0)
    print(json.dumps({
        "role": role,
        "core": core_name,
        "pid": os.getpid(),
        "request_ns": request_ns,
        "gzip6_ns": statistics.median(times),
        "encodes": encodes,
        "status": response.status,
        "coding": coding,
        "decodes_to_page": ok,
        "from_tier": stored is not None and response.body == stored,
        "stored_bytes": len(stored) if stored is not None else None,
        "bytes_out": len(response.body),
    }))


def _run_tier_child(role: str, port: int, core_name: str) -> Dict[str, Any]:
    code = "import sys; from asok_fast.benchmarks.runner import _tier_child; _tier_child(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, role, str(port), core_name],
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{role} process failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    out: Dict[str, Any] = json.loads(lines[-1])
    if "error" in out:
        raise RuntimeError(out["error"])
    return out


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 (no persistence, a temp dir), stopped by its pid."""

    def __init__(self) -> None:
        import redis

        self.dir = tempfile.mkdtemp(prefix="asok-fast-bench-redis-")
        self.port = _free_port()
        self.log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server exited ({self.proc.returncode})")
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.05)
        self.version = client.info("server").get("redis_version")
        client.close()

    def flush(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        client.flushall()
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure_shared_tier(reps: int, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """The shared tier against a real Redis on loopback, for each core: a first
    process serves W11 (compressing W3's page and filling the tier); then ``reps``
    fresh processes serve it as their very first request (``cold``) and ``reps``
    after one request for another page (``warm``), alternated.  ``{"skipped":
    why}`` without redis-server or the redis package."""
    why = _tier_unavailable()
    if why:
        return {"skipped": why}
    cores, missing = st.twins()
    server = RedisServer()
    out: Dict[str, Any] = {"redis_version": server.version, "port": server.port, "pid": server.proc.pid,
                           "workload": TIER_WORKLOAD, "cores": {}, "why_not": dict(missing)}
    try:
        steps = len(cores) * (1 + 2 * reps)
        done = 0
        for core_name in cores:
            try:
                server.flush()  # each core's first process finds the tier empty
                if progress:
                    progress.update(done, steps, f"shared tier, {core_name}: the first process")
                first = _run_tier_child("first", server.port, core_name)
                done += 1
                runs: Dict[str, List[Dict[str, Any]]] = {"cold": [], "warm": []}
                for i in range(reps):
                    for role in ("cold", "warm") if i % 2 == 0 else ("warm", "cold"):
                        if progress:
                            progress.update(done, steps, f"shared tier, {core_name}: a fresh {role} process ({i + 1}/{reps})")
                        runs[role].append(_run_tier_child(role, server.port, core_name))
                        done += 1
            except RuntimeError as exc:
                out["why_not"][core_name] = str(exc)
                continue
            out["cores"][core_name] = {"first": first, **runs}
    finally:
        server.stop()
        if progress:
            progress.done()
    return out


def _tier_lines(res: Results) -> List[str]:
    tier = res.shared_tier
    if not tier:
        return []
    if tier.get("skipped"):
        return [f"shared tier (--redis): skipped: {tier['skipped']}"]
    lines = [f"shared tier: redis-server {tier.get('redis_version')} on 127.0.0.1:{tier.get('port')} (pid {tier.get('pid')}), "
             f"{tier.get('workload')} (W3's page, gzip), wall clock, medians:"]
    for name, data in tier.get("cores", {}).items():
        first, cold, warm = data["first"], data["cold"], data["warm"]

        def med(runs: List[Dict[str, Any]], key: str) -> Optional[float]:
            return statistics.median(r[key] for r in runs) if runs else None

        lines.append(
            f"  {name}: 1st process compressed {first['encodes']}x, request {_us(first['request_ns'])}, stored "
            f"{first['stored_bytes']} B; fresh processes: cold 1st request {_us(med(cold, 'request_ns'))} "
            f"({sum(r['encodes'] for r in cold)} compressions in {len(cold)}), after another page {_us(med(warm, 'request_ns'))} "
            f"({sum(r['encodes'] for r in warm)} in {len(warm)}); gzip-6 of the page {_us(med(cold + warm, 'gzip6_ns'))}; "
            f"served the stored bytes {sum(1 for r in cold + warm if r['from_tier'])}/{len(cold) + len(warm)}"
        )
    for name, why in tier.get("why_not", {}).items():
        lines.append(f"  {name}: not measured: {why}")
    return lines


# --- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    workload: str
    name: str
    op: str  # "<=" or ">="
    limit: float
    value: Optional[float]
    detail: str
    why_missing: str = ""
    interval: Optional[Tuple[float, float]] = None  # 95 %, bootstrap over the rounds

    def _meets(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    @property
    def status(self) -> str:
        if self.value is None:
            return "n/a"
        return "PASS" if self._meets(self.value) else "MISS"

    @property
    def decided(self) -> Optional[bool]:
        """Whether the whole interval is on one side of the limit (None: no interval)."""
        if self.interval is None:
            return None
        lo, hi = self.interval
        return self._meets(lo) == self._meets(hi)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "workload": self.workload,
            "target": self.name,
            "op": self.op,
            "limit": self.limit,
            "value": self.value,
            "status": self.status,
            "interval_95": list(self.interval) if self.interval else None,
            "decided": self.decided,
            "detail": self.detail,
            "why_missing": self.why_missing,
        }


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None:
        return None
    if b <= 0:
        return math.inf if a > 0 else None
    return a / b


def _us(ns: Optional[float]) -> str:
    return "-" if ns is None else f"{_fmt_us(ns)} us"


#: Resamples behind each target's interval.
BOOTSTRAP_RESAMPLES = 1000

# A target's ratio is made of cell statistics: ("med", stack) the median time per
# request, ("ovh", stack) the median overhead over the same framework's bare app.
Stat = Tuple[str, str]


def _series(res: Results, stat: Stat, w: str) -> Optional[List[float]]:
    c = res.cell(stat[1], w)
    if c is None:
        return None
    series = c.samples if stat[0] == "med" else c.diffs
    return series or None


def _stat(res: Results, stat: Stat, w: str) -> Optional[float]:
    series = _series(res, stat, w)
    return statistics.median(series) if series else None


def _percentiles(values: List[float], lo: float = 0.025, hi: float = 0.975) -> Tuple[float, float]:
    values = sorted(values)
    last = len(values) - 1
    return values[round(lo * last)], values[round(hi * last)]


def _bootstrap_ratio(num: List[float], den: List[float], resamples: List[List[int]]) -> Optional[Tuple[float, float]]:
    """95 % percentile interval of median(num) / median(den), resampling whole
    rounds: index i picks round i on both sides, so the pairs measured side by
    side stay together."""
    n = min(len(num), len(den))
    if n < 2:
        return None
    median = statistics.median
    ratios = []
    for idx in resamples:
        a = median([num[i] for i in idx if i < n])
        b = median([den[i] for i in idx if i < n])
        r = _ratio(a, b)
        if r is not None:
            ratios.append(r)
    return _percentiles(ratios) if len(ratios) >= len(resamples) // 2 else None


def _resamples(n: int, count: int, seed: int) -> List[List[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(n) for _ in range(n)] for _ in range(count)]


def _why_missing(res: Results, stacks: Sequence[str], w: str) -> str:
    """Why a target cannot be computed ("" when every cell it needs was measured)."""
    return "; ".join(
        f"{n}: {st.why_unavailable(n, res.unavailable) or res.failed.get((n, w)) or res.skipped.get((n, w)) or 'not measured'}"
        for n in stacks
        if res.cell(n, w) is None
    )


#: The same framework's own extensions, against asok_fast around its bare app.
EXTENSIONS = (("flask+ext", "flask+asok_fast"), ("django+mw", "django+asok_fast"))


def evaluate_targets(res: Results, seed: int = 0) -> List[Target]:
    """The targets, each with its value from this run and a 95 % interval from
    resampling this run's rounds (the interval says how far the run's own noise
    could move the value; runs minutes apart on a shared machine can differ by
    more):

    * W1, W3: compiled overhead <= 1.05 x the C-work floor (MD5 + gzip-6
      through Python's bindings); W2: <= 1.5 x the MD5 floor;
    * through Flask, Django and Django without CommonMiddleware: asok_fast's
      overhead at most 10 % (W2) and 5 % (W4, W5) of the bare framework's time;
    * W1: each framework's own extensions cost at least 10 x asok_fast's overhead
      around the same framework's app;
    * python time / compiled time >= 1.5 on W1 and >= 3 on W2;
    * bodies new on every request, the browser's ``Accept-Encoding`` (zstd):
      compiled overhead <= 0.65 x the gzip-6 floor on W7 and <= 0.3 x on W8,
      bodies at most gzip-6's (W7) and 1.01 x gzip-6's (W8); for a client that
      accepts only br (W9), <= 0.75 x the floor and <= 0.95 x gzip-6's bytes;
      Flask's and Django's own stacks cost >= 10 x asok_fast's overhead on W7
      and more than it on W8; two threads on W8 >= 1.7 x one thread's req/s;
    * issue 16, the compressed-body cache (on in ``compiled``, the default):
      for a gzip-only client, cache hits cost <= 0.4 x the gzip-6 floor on W10
      (W1's body) and <= 0.2 x on W11 (W3's); on every workload whose body is
      new each time (W7, W8, W9, W12, W13) the overhead is <= 1.03 x that of
      ``compiled-nocache`` (the cache off); the ISA-L engine (``compiled-isal``,
      cache off) costs <= 0.3 x the gzip-6 floor on W11; with ``--redis``, a
      second process's first request for W11's page compresses nothing and
      takes less wall-clock time than gzip-6 of the page (in that process; the
      time is of processes that served another page first, the tier connected;
      a process's very first request, which opens the connection, is shown beside).
    """
    rounds = max((len(c.samples) for c in res.cells.values()), default=0)
    resamples = _resamples(rounds, BOOTSTRAP_RESAMPLES, seed) if rounds >= 2 else []

    def us(stat: Stat, w: str) -> str:
        return _us(_stat(res, stat, w))

    out: List[Target] = []

    def add(w: str, name: str, op: str, limit: float, num: Stat, den: Stat, detail: str) -> None:
        why = _why_missing(res, (num[1], den[1]), w)
        if why:
            out.append(Target(w, name, op, limit, None, detail, why))
            return
        value = _ratio(_stat(res, num, w), _stat(res, den, w))
        a, b = _series(res, num, w), _series(res, den, w)
        interval = _bootstrap_ratio(a, b, resamples) if a and b and resamples and value is not None else None
        out.append(Target(w, name, op, limit, value, detail, "", interval))

    c = "compiled"
    floor = ("med", "floor")
    for w, limit, what in (("W1", 1.05, "C-work floor"), ("W2", 1.5, "MD5 floor"), ("W3", 1.05, "C-work floor")):
        add(w, f"compiled overhead / {what}", "<=", limit, ("ovh", c), floor,
            f"{us(('ovh', c), w)} vs floor {us(floor, w)}")
    for framework in st.WRAPPED:
        ours = f"{framework}+asok_fast"
        for w, limit in (("W2", 0.10), ("W4", 0.05), ("W5", 0.05)):
            add(w, f"{ours} overhead / {framework} time", "<=", limit, ("ovh", ours), ("med", framework),
                f"{us(('ovh', ours), w)} vs {framework} {us(('med', framework), w)}")
    for anchor, ours in EXTENSIONS:
        add("W1", f"{anchor} overhead / {ours} overhead", ">=", 10.0, ("ovh", anchor), ("ovh", ours),
            f"{us(('ovh', anchor), 'W1')} vs {us(('ovh', ours), 'W1')}")
    for w, limit in (("W1", 1.5), ("W2", 3.0)):
        add(w, "python time / compiled time", ">=", limit, ("med", "python"), ("med", c),
            f"{us(('med', 'python'), w)} vs {us(('med', c), w)}")

    def add_size(w: str, limit: float) -> None:
        name = "compiled body / gzip-6 body"
        cell = res.cell(c, w)
        why = _why_missing(res, (c,), w)
        if not why and (cell is None or not cell.bytes_out or not cell.gzip6_out):
            why = f"{c}: sent no compressed body"
        if why:
            out.append(Target(w, name, "<=", limit, None, "", why))
            return
        assert cell is not None and cell.bytes_out and cell.gzip6_out
        out.append(Target(w, name, "<=", limit, cell.bytes_out / cell.gzip6_out,
                          f"{cell.coding} {cell.bytes_out} B vs gzip-6 {cell.gzip6_out} B of the same body"))

    for w, limit, size_limit in (("W7", 0.65, 1.0), ("W8", 0.3, 1.01), ("W9", 0.75, 0.95)):
        add(w, "compiled overhead / gzip-6 floor", "<=", limit, ("ovh", c), floor,
            f"{us(('ovh', c), w)} vs floor {us(floor, w)}")
        add_size(w, size_limit)
    for w, limit in (("W7", 10.0), ("W8", 1.0)):
        for anchor, ours in EXTENSIONS:
            add(w, f"{anchor} overhead / {ours} overhead", ">=", limit, ("ovh", anchor), ("ovh", ours),
                f"{us(('ovh', anchor), w)} vs {us(('ovh', ours), w)}")
    out.append(_thread_target(res, seed))

    # Issue 16: the compressed-body cache and the ISA-L engine.
    for w, limit in (("W10", 0.4), ("W11", 0.2)):
        add(w, "compiled overhead / gzip-6 floor", "<=", limit, ("ovh", c), floor,
            f"cache hits: {us(('ovh', c), w)} vs floor {us(floor, w)}")
    nocache = "compiled-nocache"
    for w in MISS_WORKLOADS:
        add(w, f"compiled overhead / {nocache} overhead", "<=", MISS_LIMIT, ("ovh", c), ("ovh", nocache),
            f"cache misses: {us(('ovh', c), w)} vs cache off {us(('ovh', nocache), w)}")
    isal = "compiled-isal"
    add("W11", f"{isal} overhead / gzip-6 floor", "<=", 0.3, ("ovh", isal), floor,
        f"ISAL_LEVEL 1, cache off: {us(('ovh', isal), 'W11')} vs floor {us(floor, 'W11')}")
    out.extend(asgi_st.evaluate_asgi_targets(res, seed))
    out.extend(_shared_tier_targets(res, seed))
    return out


#: The workloads whose bodies are new on every request (the cache's misses), and
#: the limit of their overhead against the same stack with the cache off.
MISS_WORKLOADS, MISS_LIMIT = ("W7", "W8", "W9", "W12", "W13"), 1.03

#: The shared tier's targets (``--redis``): what a second process's first
#: request for a body the first one compressed costs.
TIER_ENCODES = "shared tier: compressions by a 2nd process's 1st request"
TIER_TIME = "shared tier: 2nd process's 1st request / gzip-6 of W3"


def _shared_tier_targets(res: Results, seed: int) -> List[Target]:
    tier = res.shared_tier
    mine = (tier.get("cores") or {}).get("compiled")
    if not tier:
        why = "not measured (asok-fast bench --redis)"
    elif tier.get("skipped"):
        why = tier["skipped"]
    elif mine is None:
        why = "compiled: " + (tier.get("why_not", {}).get("compiled") or "not measured")
    else:
        why = ""
    if why:
        return [Target("W11", TIER_ENCODES, "<=", 0, None, "", why), Target("W11", TIER_TIME, "<=", 1.0, None, "", why)]
    cold, warm = mine["cold"], mine["warm"]
    encodes = sum(p["encodes"] for p in cold + warm)
    served = sum(1 for p in cold + warm if p["from_tier"])
    first = mine["first"]
    out = [Target("W11", TIER_ENCODES, "<=", 0, float(encodes),
                  f"{encodes} in {len(cold) + len(warm)} fresh processes ({served} served the 1st process's bytes); "
                  f"the 1st process compressed {first['encodes']}x and stored {first['stored_bytes']} B")]
    # The process's first request for the page, after one for another page
    # (what a live worker does); the very first request of a process also
    # opens its Redis connection (redis-py's handshake: about 2 ms here), shown beside.
    num = [p["request_ns"] for p in warm]
    den = [p["gzip6_ns"] for p in warm]
    value = _ratio(statistics.median(num), statistics.median(den))
    interval = _bootstrap_ratio(num, den, _resamples(len(num), BOOTSTRAP_RESAMPLES, seed)) if len(num) >= 2 else None
    cold_ns = statistics.median(p["request_ns"] for p in cold) if cold else None
    cold_ratio = _ratio(cold_ns, statistics.median(p["gzip6_ns"] for p in cold)) if cold else None
    shown = "-" if cold_ratio is None else _fmt_ratio(cold_ratio)
    out.append(Target("W11", TIER_TIME, "<=", 1.0, value,
                      f"{_us(statistics.median(num))} vs gzip-6 {_us(statistics.median(den))} (wall clock, median of {len(num)} "
                      f"processes); a process's very first request, opening its Redis connection: {_us(cold_ns)} ({shown}x)",
                      "", interval))
    return out


#: The workload whose two-thread rate is a target, and the limit.
THREADS_WORKLOAD, THREADS_LIMIT = "W8", 1.7


def _thread_target(res: Results, seed: int) -> Target:
    name = "compiled req/s two threads / one thread"
    t = res.threads.get("compiled")
    if t is None or t.get("workload") != THREADS_WORKLOAD:
        why = _why_missing(res, ("compiled",), THREADS_WORKLOAD) or (
            f"measured on {t['workload']}" if t else "two threads not measured"
        )
        return Target(THREADS_WORKLOAD, name, ">=", THREADS_LIMIT, None, "", why)
    one, two = t["samples_1"], t["samples_2"]
    reps = min(len(one), len(two))
    interval = _bootstrap_ratio(two, one, _resamples(reps, BOOTSTRAP_RESAMPLES, seed)) if reps >= 2 else None
    control = f"; control x{t['control_ratio']:.2f}" if "control_ratio" in t else ""
    return Target(THREADS_WORKLOAD, name, ">=", THREADS_LIMIT, t["ratio"],
                  f"{t['rps_2']:.0f} vs {t['rps_1']:.0f} req/s on {res.machine.get('cpus_usable', res.machine.get('cpus'))} CPUs{control}",
                  "", interval)


def framework_ratios(res: Results) -> List[Dict[str, Any]]:
    """Not targets: each framework's own stack against the same bare app wrapped by
    asok_fast (what a Flask or Django user swaps), overhead against overhead.

    These overheads are measured after the framework's own work, with colder CPU
    caches than the bare-app cells: zlib's state and tables are evicted between
    requests, so the same gzip work costs more there than in the tight loop.
    """
    out = []
    for w in res.workloads:
        for anchor, ours in (("flask+ext", "flask+asok_fast"), ("django+mw", "django+asok_fast"), ("asok+gzip+cors", None)):
            if ours is None:
                continue
            a, b = res.cell(anchor, w["id"]), res.cell(ours, w["id"])
            if a is None or b is None or a.overhead is None or b.overhead is None:
                continue
            ratio = _ratio(a.overhead, b.overhead) if b.overhead > 0 else None
            out.append({"workload": w["id"], "anchor": anchor, "asok_fast": ours, "anchor_overhead_ns": a.overhead,
                        "asok_fast_overhead_ns": b.overhead, "ratio": ratio})
    return out


# --- output ---------------------------------------------------------------------------------------


def _fmt_us(ns: Optional[float], signed: bool = False) -> str:
    if ns is None:
        return "-"
    us = ns / US
    a = abs(us)
    text = f"{us:.0f}" if a >= 100 else f"{us:.1f}" if a >= 10 else f"{us:.2f}"
    return ("+" + text if us >= 0 else text) if signed else text


def render_table(res: Results) -> str:
    lines: List[str] = []
    m = res.machine
    lines.append(
        f"asok_fast {m.get('asok_fast')} bench: {m.get('cpu')}, {m.get('cpus')} CPUs, {m.get('python')}, "
        f"zlib {m.get('zlib')}; {res.rounds} interleaved rounds in {res.seconds:.0f} s"
    )
    if m.get("codings"):
        lines.append("codings: " + ", ".join(f"{coding} ({library})" for coding, library in m["codings"].items()))
    if m.get("anchors"):
        lines.append("anchors: " + ", ".join(f"{name} {version}" for name, version in m["anchors"].items()))
    load = m.get("loadavg_1min_before_after")
    if load and None not in load:
        lines.append(f"load average (1 min) before/after: {load[0]:.2f} / {load[1]:.2f} on {m.get('cpus')} CPUs")
    clock = "CPU time of the serving thread" if res.clock == "cpu" else "wall-clock time"
    lines.append(
        f"{clock} per request in microseconds, median of rounds; (+overhead over the same framework's bare app)"
    )
    if m.get("frameworks_not_loaded"):
        lines.append(
            f"warning: measured without {', '.join(m['frameworks_not_loaded'])} loaded: the floor may read slower than in a server"
        )
    label_width = max(len(s["id"]) for s in res.stacks) + 2
    col = max([17] + [len(f"{w['id']} {w['name']}") + 2 for w in res.workloads])
    # At most five workloads side by side, so that the table fits a terminal.
    for first in range(0, len(res.workloads), 5):
        lines.append("")
        _table_block(res, res.workloads[first : first + 5], label_width, col, lines)
    lines.append("")
    for s in res.stacks:
        lines.append(f"  {s['id']:<{label_width}}{s['label']}")
    notes = sorted(set(res.skipped.values()))
    if notes:
        lines.append("")
        lines.append("n/a: " + "; ".join(notes))
    for key, why in sorted(res.failed.items()):
        lines.append(f"CHECK FAILED {key[0]} on {key[1]}: {why}")
    for name, why in sorted(res.unavailable.items()):
        lines.append(f"not measured: {name}: {why}")
    for w in res.workloads:
        sizes = [(s["id"], res.cell(s["id"], w["id"])) for s in res.stacks]
        shown = [f"{n} {c.coding} {c.bytes_out} B" for n, c in sizes if c is not None and c.coding and c.bytes_out is not None]
        if shown:
            lines.append(f"{w['id']} compressed size: " + ", ".join(shown))
    for t in res.threads.values():
        control = f"; control (MD5 of 1 MiB, GIL released) x{t['control_ratio']:.2f}" if "control_ratio" in t else ""
        lines.append(
            f"{t['workload']} throughput, {t['stack']}: one thread {t['rps_1']:.0f} req/s, two threads "
            f"{t['rps_2']:.0f} req/s (x{t['ratio']:.2f}) on {m.get('cpus_usable', m.get('cpus'))} CPUs{control}"
        )
    lines.extend(_tier_lines(res))
    _table_tail(res, lines)
    return "\n".join(lines)


def _table_block(res: Results, workloads: List[Dict[str, Any]], label_width: int, col: int, lines: List[str]) -> None:
    """The rows of every stack for some workloads."""
    wids = [w["id"] for w in workloads]
    header = "stack".ljust(label_width) + "".join(f"{w['id']} {w['name']}".rjust(col) for w in workloads)
    lines.append(header)
    lines.append("-" * len(header))
    for s in res.stacks:
        row = s["id"].ljust(label_width)
        for w in wids:
            key = (s["id"], w)
            c = res.cells.get(key)
            if c is not None:
                if s["role"] in ("bare",):
                    text = _fmt_us(c.median)
                elif s["role"] == "floor":
                    text = f"{_fmt_us(c.median)}"
                else:
                    text = f"{_fmt_us(c.median)} ({_fmt_us(c.overhead, True)})"
            elif key in res.failed:
                text = "CHECK FAILED"
            else:
                text = "n/a"
            row += text.rjust(col)
        lines.append(row)


def _table_tail(res: Results, lines: List[str]) -> None:
    """The framework views and the targets."""
    views = framework_ratios(res)
    if views:
        lines.append("")
        lines.append("through each framework (not targets; overhead of its own stack / of asok_fast around the same app):")
        for v in views:
            if v["ratio"] is not None:
                ratio = f"{v['ratio']:.1f}x"
            elif v["workload"] == "W4":
                ratio = "asok_fast answers the preflight without calling the app"
            else:
                ratio = "asok_fast's overhead is below this run's noise"
            lines.append(
                f"  {v['workload']}  {v['anchor']:<10} {_fmt_us(v['anchor_overhead_ns'], True):>7} us  vs  "
                f"{v['asok_fast']:<17} {_fmt_us(v['asok_fast_overhead_ns'], True):>7} us  -> {ratio}"
            )
    lines.append("")
    lines.append("targets (ratios from this run; [95% interval from resampling its rounds])")
    width = max(len(t["target"]) for t in res.targets) + 4
    undecided = False
    for t in res.targets:
        value = t["value"]
        shown = "-" if value is None else _fmt_ratio(value)
        interval = t.get("interval_95")
        span = f"[{_fmt_ratio(interval[0])}, {_fmt_ratio(interval[1])}]" if interval else ""
        status = t["status"]
        if t.get("decided") is False:
            status += "*"
            undecided = True
        tail = t["detail"] if t["status"] != "n/a" else t["why_missing"]
        lines.append(f"  {status:<6}{t['workload']}  {t['target']:<{width}}{shown:>7} {t['op']} {t['limit']:<5g}{span:<18} {tail}")
    if undecided:
        lines.append("  *: the interval straddles the limit: this run's own noise could turn the verdict")


def _fmt_ratio(value: float) -> str:
    """Two decimals; three below 1, where the limits are fractions such as 0.05."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def results_json(res: Results) -> Dict[str, Any]:
    cells: Dict[str, Dict[str, Any]] = {}
    for (stack, w), c in res.cells.items():
        cells.setdefault(stack, {})[w] = {
            "median_ns": c.median,
            "overhead_ns": c.overhead,
            "spread_iqr_pct": c.spread,
            "requests_per_batch": c.per_batch,
            "samples_ns": c.samples,
            "bytes_out": c.bytes_out,
            "coding": c.coding,
            "gzip6_out": c.gzip6_out,
            "status": c.status,
        }
    return {
        "machine": res.machine,
        "rounds": res.rounds,
        "seconds": res.seconds,
        "clock": res.clock,
        "config": wl.CONFIG,
        "workloads": res.workloads,
        "stacks": res.stacks,
        "results": cells,
        "skipped": {f"{k[0]} {k[1]}": v for k, v in res.skipped.items()},
        "check_failed": {f"{k[0]} {k[1]}": v for k, v in res.failed.items()},
        "unavailable": res.unavailable,
        "threads": res.threads,
        "targets": res.targets,
        "framework_ratios": framework_ratios(res),
        "shared_tier": res.shared_tier,
    }


_COLOURS = {"wsgi": "#2b6cb0", "flask": "#2f855a", "django": "#b7791f", "asok": "#805ad5", "asgi": "#c05621", "starlette": "#319795"}
_FLOOR_COLOUR = "#a0aec0"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_svg(res: Results) -> str:
    """Per workload, each stack's overhead over its bare app (log scale), as bars."""
    rows = [s for s in res.stacks if s["role"] != "bare"]
    panel_w, bar_h, gap = 560, 16, 4
    label_w, value_w = 170, 70
    panel_h = 34 + len(rows) * (bar_h + gap)
    cols = 2
    nrows = math.ceil(len(res.workloads) / cols)
    width = cols * panel_w + 40
    height = 90 + nrows * (panel_h + 20) + 40 + 15 * len(res.targets)
    values = [c.overhead for c in res.cells.values() if c.overhead and c.overhead > 0]
    lo = min(values) if values else 100.0
    hi = max(values) if values else 1e6
    lo_exp = math.floor(math.log10(lo / US)) if values else -1
    hi_exp = math.ceil(math.log10(hi / US)) if values else 3
    span = max(hi_exp - lo_exp, 1)
    bar_w = panel_w - label_w - value_w - 20

    def x_of(ns: float) -> float:
        return bar_w * (math.log10(ns / US) - lo_exp) / span

    m = res.machine
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="20" y="28" font-size="16" font-weight="bold">asok_fast: overhead per request over the same framework\'s bare app</text>',
        f'<text x="20" y="48" fill="#4a5568">{_esc(str(m.get("cpu")))}, {m.get("cpus")} CPUs, {_esc(str(m.get("python")))}, zlib {m.get("zlib")}; '
        f"median of {res.rounds} interleaved rounds; log scale, microseconds; grey = C-work floor (hashlib + zlib)</text>",
    ]
    legend_x = 20
    for name, colour in list(_COLOURS.items()) + [("floor", _FLOOR_COLOUR)]:
        out.append(f'<rect x="{legend_x}" y="58" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 14}" y="67">{name}</text>')
        legend_x += 80
    for i, w in enumerate(res.workloads):
        px = 20 + (i % cols) * panel_w
        py = 90 + (i // cols) * (panel_h + 20)
        out.append(f'<text x="{px}" y="{py + 12}" font-size="13" font-weight="bold">{_esc(w["id"] + " " + w["name"])}</text>')
        ax = px + label_w
        # decade grid
        for e in range(lo_exp, hi_exp + 1):
            gx = ax + bar_w * (e - lo_exp) / span
            out.append(f'<line x1="{gx:.1f}" y1="{py + 20}" x2="{gx:.1f}" y2="{py + panel_h - 6}" stroke="#e2e8f0"/>')
            out.append(f'<text x="{gx:.1f}" y="{py + panel_h + 6}" text-anchor="middle" fill="#718096" font-size="9">{10.0 ** e:g}</text>')
        for j, s in enumerate(rows):
            y = py + 22 + j * (bar_h + gap)
            out.append(f'<text x="{ax - 6}" y="{y + bar_h - 4}" text-anchor="end">{_esc(s["id"])}</text>')
            c = res.cells.get((s["id"], w["id"]))
            colour = _FLOOR_COLOUR if s["role"] == "floor" else _COLOURS.get(s["framework"], "#4a5568")
            if c is None or c.overhead is None:
                reason = "check failed" if (s["id"], w["id"]) in res.failed else "n/a"
                out.append(f'<text x="{ax + 4}" y="{y + bar_h - 4}" fill="#a0aec0">{reason}</text>')
                continue
            length = max(x_of(c.overhead), 1.0) if c.overhead > 0 else 1.0
            out.append(f'<rect x="{ax}" y="{y}" width="{length:.1f}" height="{bar_h}" fill="{colour}"><title>{_esc(s["label"])}: {_fmt_us(c.median)} us per request, overhead {_fmt_us(c.overhead, True)} us</title></rect>')
            out.append(f'<text x="{ax + length + 4:.1f}" y="{y + bar_h - 4}">{_fmt_us(c.overhead, True)}</text>')
    ty = 90 + nrows * (panel_h + 20) + 10
    out.append(f'<text x="20" y="{ty}" font-size="13" font-weight="bold">Targets (ratios from this run, [95% interval]; *: the interval straddles the limit)</text>')
    for k, t in enumerate(res.targets):
        y = ty + 18 + k * 15
        colour = {"PASS": "#2f855a", "MISS": "#c53030"}.get(t["status"], "#718096")
        value = t["value"]
        shown = "-" if value is None else _fmt_ratio(value)
        interval = t.get("interval_95")
        if interval:
            shown += f" [{_fmt_ratio(interval[0])}, {_fmt_ratio(interval[1])}]"
        tail = t["detail"] if t["status"] != "n/a" else t["why_missing"]
        mark = "*" if t.get("decided") is False else ""
        out.append(f'<text x="20" y="{y}" fill="{colour}" font-weight="bold">{t["status"]}{mark}</text>')
        out.append(
            f'<text x="64" y="{y}">{_esc(t["workload"])}  {_esc(t["target"])}: {shown} {_esc(t["op"])} {t["limit"]:g}'
            f'<tspan fill="#718096">   {_esc(str(tail)[:90])}</tspan></text>'
        )
    out.append("</svg>")
    return "\n".join(out)


# --- the command ---------------------------------------------------------------------------------


def _select_workloads(spec: str) -> List[wl.Workload]:
    if not spec:
        return list(wl.ALL_WORKLOADS)
    # W2 needs no W1 cell: each stack fetches its own W1 tag when W2 is prepared.
    return [wl.by_id(part.strip()) for part in spec.split(",") if part.strip()]


def run(args: argparse.Namespace) -> int:
    for name, default in (("redis", False), ("redis_reps", 7)):  # callers that build their own Namespace
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.quick:
        args.rounds = min(args.rounds, 3)
        args.batch_ms = min(args.batch_ms, 1.0)
        args.thread_seconds = min(args.thread_seconds, 0.1)
        args.thread_reps = min(args.thread_reps, 1)
    try:
        workloads = _select_workloads(args.workloads)
    except KeyError as exc:
        print(f"asok-fast bench: {exc.args[0]}", file=sys.stderr)
        return 2
    anchors = [] if args.anchors.strip().lower() == "none" else [a.strip() for a in args.anchors.split(",") if a.strip()]
    unknown = set(anchors) - set(st.FRAMEWORK_STACKS)
    if unknown:
        print(f"asok-fast bench: unknown anchor(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    progress = Progress(not args.no_progress)
    started = time.monotonic()
    load_before = _loadavg()
    st.set_clock(args.clock)
    progress.note("asok-fast bench: building stacks (the Asok anchor runs `asok create` once)...")
    stacks, unavailable = st.build_stacks(anchors)
    asgi_built, asgi_unavailable = asgi_st.build_asgi_stacks()
    stacks += asgi_built
    unavailable.update(asgi_unavailable)
    # Even without anchors: measure in a process that has the frameworks loaded.
    not_loaded = st.load_frameworks()
    if not_loaded:
        progress.note(
            "  warning: " + ", ".join(sorted(not_loaded)) + " not importable: in a small process glibc can hand "
            "zlib's freed memory back to the system, which makes the floor slower than in a real server"
        )
    for name, why in unavailable.items():
        progress.note(f"  not measured: {name}: {why}")
    results, skipped, failed, _cells = measure(stacks, workloads, args.rounds, args.batch_ms, args.seed, progress)

    threads: Dict[str, Any] = {}
    chosen = [w for w in workloads if w.id == THREADS_WORKLOAD] or [w for w in workloads if w.id == "W3"]
    if chosen:
        for stack in stacks:
            if stack.id in ("compiled", "python") and (stack.id, chosen[0].id) in results:
                threads[stack.id] = thread_scaling(stack, chosen[0], args.thread_seconds, args.thread_reps, progress)

    tier: Dict[str, Any] = {}
    if args.redis:
        reps = max(2, min(args.redis_reps, 2) if args.quick else args.redis_reps)
        tier = measure_shared_tier(reps, progress)
        if tier.get("skipped"):
            progress.note(f"  shared tier not measured: {tier['skipped']}")

    machine = machine_info()
    machine["frameworks_not_loaded"] = sorted(not_loaded)
    machine["loadavg_1min_before_after"] = [load_before, _loadavg()]
    res = Results(
        machine=machine,
        stacks=[{"id": s.id, "framework": s.framework, "role": s.role, "label": s.label, "bare": s.bare.id if s.bare else None} for s in stacks],
        workloads=[{"id": w.id, "name": w.name, "description": w.description} for w in workloads],
        cells=results,
        skipped=skipped,
        failed=failed,
        unavailable=unavailable,
        threads=threads,
        rounds=args.rounds,
        seconds=time.monotonic() - started,
        clock=args.clock,
        shared_tier=tier,
    )
    res.targets = [t.as_dict() for t in evaluate_targets(res, args.seed)]
    print(render_table(res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results_json(res), f, indent=1, default=str)
        progress.note(f"wrote {args.json}")
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(render_svg(res))
        progress.note(f"wrote {args.svg}")
    if failed:
        return 1
    if args.strict and any(t["status"] == "MISS" for t in res.targets):
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asok_fast.benchmarks.runner")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
