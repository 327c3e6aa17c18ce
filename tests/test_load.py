"""Load: short versions of scripts/soak.py and scripts/threads.py.

* leaks: 20,000 requests of the benchmark workloads W1..W6 through both cores
  in one process: after a warm-up, the number of live objects is flat and the
  memory pymalloc holds does not grow (nor the resident set, outside ASan);
* threads: 16 threads x 500 mixed requests through ONE middleware, gzip on,
  while another thread swaps the whole config between two versions: every
  response equals, byte for byte, the single-threaded answer of one version;
* the same through waitress with 16 threads over real 127.0.0.1 sockets.

The full runs (a million requests; 16 x 10,000) are ``python scripts/soak.py``
and ``python scripts/threads.py [--waitress]``.
"""

from __future__ import annotations

import faulthandler
import gc
import hashlib
import http.client
import io
import os
import random
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple

import pytest

from asok_fast import ResponseMiddleware

from wsgi_helpers import run_request

O1, O2 = "https://app.example.com", "https://admin.example.com"


# --- leaks -----------------------------------------------------------------------------------


def _workloads() -> Tuple[Dict[str, Any], Callable[..., Any], List[Tuple[str, Callable[[Any], Dict[str, Any]], bool]]]:
    """(config, app, [(id, make_environ(if_none_match), revalidate)]) of W1..W6."""
    try:
        from asok_fast.benchmarks.workloads import CONFIG, WORKLOADS, bare_app, environ_for
    except ImportError:  # the benchmark module is absent: a compact equivalent
        bodies = {
            "/api": ("application/json", b"[" + b",".join(b'{"id":%d,"price":%d}' % (i, i * 7) for i in range(80)) + b"]"),
            "/html": ("text/html", b"".join(b"<tr><td>%d</td></tr>\n" % i for i in range(7000))),
            "/txt": ("text/plain", b"x" * 100),
            "/png": ("image/png", b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(640))),
        }

        def bare_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ["REQUEST_METHOD"] == "OPTIONS":
                start_response("204 No Content", [])
                return []
            ctype, body = bodies[environ["PATH_INFO"]]
            start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
            return [body]

        shapes = [
            ("W1", "GET", "/api", {"HTTP_ORIGIN": O1}, False), ("W2", "GET", "/api", {"HTTP_ORIGIN": O1}, True),
            ("W3", "GET", "/html", {}, False), ("W4", "OPTIONS", "/api", {"HTTP_ORIGIN": O1, "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "PUT"}, False),
            ("W5", "GET", "/txt", {}, False), ("W6", "GET", "/png", {}, False),
        ]

        def make(method: str, path: str, extra: Dict[str, str], inm: Any) -> Dict[str, Any]:
            env = _environ(method, path, {})
            env.update(extra, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
            if inm is not None:
                env["HTTP_IF_NONE_MATCH"] = inm
            return env

        config = {"CORS_ORIGINS": [O1, O2], "GZIP": True, "GZIP_MIN_SIZE": 500}
        return config, bare_app, [(w, (lambda inm, s=(m, p, e): make(s[0], s[1], s[2], inm)), r) for w, m, p, e, r in shapes]
    return CONFIG, bare_app, [(w.id, (lambda inm, w=w: environ_for(w, inm)), w.revalidate) for w in WORKLOADS]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _figures() -> Tuple[int, int, int]:
    gc.collect()
    gc.collect()
    return len(gc.get_objects()), sys.getallocatedblocks(), _rss()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm (Linux)")
def test_20000_requests_leave_memory_flat(core: Any) -> None:
    config, app, shapes = _workloads()
    plan = []
    mw = ResponseMiddleware(app, dict(config), _core_module=core)
    tag = next(run_request(mw, make(None)).get("ETag") for _, make, revalidate in shapes if not revalidate)
    for wid, make, revalidate in shapes:
        env_maker = (lambda make=make, inm=(tag if revalidate else None): make(inm))
        plan.append((wid, mw, env_maker, run_request(mw, env_maker())))
    total, warmup = 20_000, 4_000
    before: Tuple[int, int, int] = (0, 0, 0)
    mismatches = 0
    for i in range(total):
        if i == warmup:
            before = _figures()
        label, mw, make, expected = plan[i % len(plan)]
        if run_request(mw, make()) != expected:
            mismatches += 1
    after = _figures()
    objects, blocks, rss = (a - b for a, b in zip(after, before))
    assert mismatches == 0
    assert objects <= 0, f"live objects grew by {objects} over {total - warmup} requests"
    # CPython's free lists keep a few hundred freed blocks; a per-request leak would be >= 16,000.
    assert blocks < 256, f"pymalloc blocks grew by {blocks} over {total - warmup} requests"
    if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine holds freed memory
        assert rss < 2 * 1024 * 1024, f"RSS grew by {rss / 1024:.0f} KiB over {total - warmup} requests"


# --- threads ---------------------------------------------------------------------------------

CONFIG_A: Dict[str, Any] = {
    "CORS_ORIGINS": [O1, O2], "CORS_ALLOW_CREDENTIALS": True, "CORS_EXPOSE_HEADERS": None, "CORS_MAX_AGE": 86400,
    "GZIP": True, "GZIP_LEVEL": 6, "GZIP_MIN_SIZE": 500, "ETAG": True, "GZIP_TYPES": None,
}
CONFIG_B: Dict[str, Any] = {
    "CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": False, "CORS_EXPOSE_HEADERS": "ETag", "CORS_MAX_AGE": 600,
    "GZIP": True, "GZIP_LEVEL": 1, "GZIP_MIN_SIZE": 50, "ETAG": True, "GZIP_TYPES": ["image/png"],
}
JSON = b"[" + b",".join(b'{"id":%d,"name":"item %03d","price":%d.5}' % (i, i, i * 7) for i in range(1, 25)) + b"]"
HTML = b"".join(b'<tr id="p%d"><td>%d</td><td>widget %d</td></tr>\n' % (i, i, i * 31 % 997) for i in range(600))
PNG = b"\x89PNG\r\n\x1a\n" + b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(48))
STREAM = [b"<p>event %03d " % i + b"y" * (60 + i * 41 % 200) + b"</p>\n" for i in range(10)]


def mixed_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/api":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [JSON]
    if path == "/html":
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(HTML)))])
        return [HTML]
    if path == "/png":
        start_response("200 OK", [("Content-Type", "image/png")])
        return [PNG]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/html")])
        return (chunk for chunk in STREAM)
    if path == "/cl-gen":
        start_response("200 OK", [("Content-Type", "text/css"), ("Content-Length", str(len(HTML)))])
        return (HTML[i:i + 4096] for i in range(0, len(HTML), 4096))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


GZ = {"HTTP_ACCEPT_ENCODING": "gzip"}
MIXED: List[Tuple[str, str, str, Dict[str, str]]] = [
    ("json", "GET", "/api", {**GZ, "HTTP_ORIGIN": O1}),
    ("json-refused", "GET", "/api", {**GZ, "HTTP_ORIGIN": "https://evil.example"}),
    ("json-identity", "GET", "/api", {"HTTP_ORIGIN": O2}),
    ("html", "GET", "/html", GZ),
    ("html-304", "GET", "/html", {**GZ, "HTTP_IF_NONE_MATCH": '"%s"' % hashlib.md5(HTML).hexdigest()}),
    ("html-head", "HEAD", "/html", GZ),
    ("png", "GET", "/png", GZ),
    ("stream", "GET", "/stream", {**GZ, "HTTP_ORIGIN": O1}),
    ("cl-gen", "GET", "/cl-gen", GZ),
    ("missing", "GET", "/missing", {"HTTP_ORIGIN": O1}),
    ("preflight", "OPTIONS", "/api", {"HTTP_ORIGIN": O1, "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "PUT"}),
]


def _environ(method: str, path: str, extra: Dict[str, str]) -> Dict[str, Any]:
    env: Dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    env.update(extra)
    return env


def _references(core: Any) -> Dict[str, Dict[str, Any]]:
    refs = {}
    for name, config in (("A", CONFIG_A), ("B", CONFIG_B)):
        mw = ResponseMiddleware(mixed_app, dict(config), _core_module=core)
        refs[name] = {label: run_request(mw, _environ(method, path, extra)) for label, method, path, extra in MIXED}
    assert all(refs["A"][label] != refs["B"][label] for label, *_ in MIXED), "A and B must differ on every request"
    return refs


class _Switcher(threading.Thread):
    def __init__(self, mw: Any) -> None:
        super().__init__(daemon=True)
        self.mw, self.done, self.switches = mw, threading.Event(), 0

    def run(self) -> None:
        rng = random.Random(7)
        while not self.done.is_set():
            time.sleep(rng.uniform(0.0002, 0.002))
            values = CONFIG_B if self.switches % 2 == 0 else CONFIG_A
            if self.switches % 4 < 2:
                self.mw.config.update(values)  # every key at once
            else:
                self.mw.config = dict(values)  # a new Config
            self.switches += 1


def _run_threads(worker: Callable[[int], None], mw: Any, threads: int, timeout: float = 120.0) -> int:
    switcher = _Switcher(mw)
    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    switcher.start()
    for thread in workers:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            faulthandler.dump_traceback(all_threads=True)
            pytest.fail(f"a worker thread was still running after {timeout:.0f}s: deadlock?")
    switcher.done.set()
    switcher.join(10)
    return switcher.switches


def test_16_threads_one_middleware_config_switching(core: Any) -> None:
    refs = _references(core)
    mw = ResponseMiddleware(mixed_app, dict(CONFIG_A), _core_module=core)
    counts = {"A": 0, "B": 0, "bad": 0}
    bad: List[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        for _ in range(500):
            label, method, path, extra = MIXED[rng.randrange(len(MIXED))]
            try:
                got = run_request(mw, _environ(method, path, extra))
                which = "A" if got == refs["A"][label] else "B" if got == refs["B"][label] else "bad"
            except Exception as exc:  # noqa: BLE001 - counted as a failure
                which, got = "bad", exc
            with lock:
                counts[which] += 1
                if which == "bad" and len(bad) < 3:
                    bad.append(f"{label}: {str(got)[:400]}")

    switches = _run_threads(worker, mw, 16)
    assert counts["bad"] == 0, "\n".join(bad)
    assert counts["A"] + counts["B"] == 16 * 500
    assert switches > 10 and counts["A"] > 0 and counts["B"] > 0, (switches, counts)


def test_16_threads_through_waitress_over_sockets(core: Any) -> None:
    waitress_server = pytest.importorskip("waitress.server", reason="waitress is in the test extra")
    refs = _references(core)
    server_headers = {"date", "server", "connection", "transfer-encoding"}

    def wire(response: Any, head: bool) -> Any:
        # waitress sorts and title-cases header names; the order is checked in-process.
        return response.code, sorted((k.lower(), v) for k, v in response.headers), b"" if head else response.body

    expected = {name: {label: wire(table[label], method == "HEAD") for label, method, _, _ in MIXED} for name, table in refs.items()}
    mw = ResponseMiddleware(mixed_app, dict(CONFIG_A), _core_module=core)
    server = waitress_server.create_server(mw, host="127.0.0.1", port=0, threads=16, channel_timeout=30)
    closing = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:
            # close() from this thread's caller can pull the sockets out from
            # under the loop's select() (EBADF): that is the shutdown, not a fault.
            if not closing.is_set():
                raise

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    counts = {"A": 0, "B": 0, "bad": 0}
    bad: List[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(100 + n)
        conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
        try:
            for _ in range(60):
                label, method, path, extra = MIXED[rng.randrange(len(MIXED))]
                headers = {k[5:].replace("_", "-").title(): v for k, v in extra.items()}
                try:
                    conn.request(method, path, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                    got = (response.status, sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() not in server_headers), body)
                    which = "A" if got == expected["A"][label] else "B" if got == expected["B"][label] else "bad"
                except Exception as exc:  # noqa: BLE001
                    which, got = "bad", exc
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
                with lock:
                    counts[which] += 1
                    if which == "bad" and len(bad) < 3:
                        bad.append(f"{label}: {str(got)[:400]}")
        finally:
            conn.close()

    try:
        _run_threads(client, mw, 16)
    finally:
        closing.set()
        server.close()
        serving.join(timeout=10)
    assert counts["bad"] == 0, "\n".join(bad)
    assert counts["A"] + counts["B"] == 16 * 60
