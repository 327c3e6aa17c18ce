#!/usr/bin/env python3
"""Threads: 16 threads of mixed requests through ONE middleware while a 17th changes its config.

    python scripts/threads.py [--threads 16] [--requests 10000] [--core both|compiled|python]
                              [--waitress | --asgi] [--timeout 900]

In-process (default): ``--threads`` worker threads each make ``--requests``
requests, drawn from a mixed set (buffered JSON and HTML with CORS, zstd, br
and gzip and their ETags, 304 revalidations, compressed streams in each
coding, a Content-Length generator, ``write()``, ``HEAD``, preflights, allowed,
refused and absent origins, with and without compression), through one
``ResponseMiddleware`` with compression on.  Another thread switches the whole
configuration between two versions, A and B, every few milliseconds
(``mw.config = ...`` and ``mw.config.update(...)``, both of which change every
key at once).  A and B differ in everything a response shows (CORS list vs
``*``, the order of ``COMPRESS_CODINGS`` -- a browser's header gets zstd from A
and br from B --, gzip, zstd and brotli levels, thresholds, exposed headers),
and for every request both references were computed beforehand,
single-threaded, on a fresh middleware: each response must equal one of them
exactly (status, header list, every chunk, byte for byte: the padding is off)
-- a response made of half A and half B, or a corrupted body, matches neither.

The ``padded-*`` requests go (under ``/padded/``) to a second middleware with
``COMPRESS_RANDOM_PADDING`` on, whose bytes differ on every response: there
the body must decode, in its coding, to the reference's exact bytes and the
headers but ``Content-Length`` must be the reference's.

``--waitress``: the same over real sockets: waitress serves the one
middleware from this process with ``--threads`` threads on 127.0.0.1, and as
many client threads make their requests over keep-alive connections; the
server's own headers (Date, Server, Connection, Transfer-Encoding) are set
aside (waitress also sorts and title-cases header names: the rest is compared
as a sorted list of lower-case names and values), and the body bytes must be
the reference's exactly.

The compressed-body cache is on (``COMPRESS_CACHE_SIZE`` 256 KiB in A and B,
kept across their switches): the fixed bodies repeat, so most buffered
answers are cache hits, and one request in three asks for one of 300
distinct 4-24 KiB pages (``/distinct/<n>``), which are admitted on their
second appearance and, at about 1.2 MB compressed in all, keep the cache
evicting while 16 threads read and fill it.

``--asgi``: many concurrent tasks (``--threads`` x 4) on one asyncio event
loop, against ONE ``ASGIMiddleware`` (config A, padding off) over an ASGI
app answering as the WSGI one does: streams are ``more_body`` messages with
a yield to the loop between them, so the tasks' streams interleave.  Every
answer (status code, header list, body) must equal the one the same request
got sequentially from a fresh ``ASGIMiddleware`` beforehand.

A watchdog turns a deadlock into a failure: after ``--timeout`` seconds the
stacks of all threads are printed and the script exits 3.  Exit 1 on any
mismatch, 0 when every response matched a reference.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple

import brotli

from asok_fast import ASGIMiddleware, ResponseMiddleware, _core, _core_py

try:  # Python 3.14
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

Header = Tuple[str, str]
O1, O2 = "https://app.example.com", "https://admin.example.com"

CONFIG_A: Dict[str, Any] = {
    "CORS_ORIGINS": [O1, O2], "CORS_ORIGIN_REGEX": None, "CORS_ALLOW_CREDENTIALS": True,
    "CORS_EXPOSE_HEADERS": None, "CORS_MAX_AGE": 86400, "CORS_ALLOW_PRIVATE_NETWORK": False,
    "GZIP": True, "GZIP_LEVEL": 6, "GZIP_MIN_SIZE": 500, "ETAG": True, "GZIP_TYPES": None,
    "COMPRESS_CODINGS": ("zstd", "br", "gzip"), "ZSTD_LEVEL": 3, "BROTLI_LEVEL": 4, "COMPRESS_RANDOM_PADDING": False,
    "COMPRESS_CACHE_SIZE": 256 * 1024,
}
CONFIG_B: Dict[str, Any] = {
    "CORS_ORIGINS": "*", "CORS_ORIGIN_REGEX": None, "CORS_ALLOW_CREDENTIALS": False,
    "CORS_EXPOSE_HEADERS": "ETag, Content-Encoding", "CORS_MAX_AGE": 600, "CORS_ALLOW_PRIVATE_NETWORK": True,
    "GZIP": True, "GZIP_LEVEL": 1, "GZIP_MIN_SIZE": 50, "ETAG": True, "GZIP_TYPES": ["image/png"],
    "COMPRESS_CODINGS": ["br", "gzip", "zstd"], "ZSTD_LEVEL": 1, "BROTLI_LEVEL": 2, "COMPRESS_RANDOM_PADDING": False,
    "COMPRESS_CACHE_SIZE": 256 * 1024,
}
# The second middleware (paths under /padded/): A with the random padding on.
CONFIG_PADDED: Dict[str, Any] = {**CONFIG_A, "COMPRESS_RANDOM_PADDING": True}
assert CONFIG_A.keys() == CONFIG_B.keys()

JSON = b"[" + b",".join(b'{"id":%d,"name":"Product %03d","price":%d.25,"stock":%d}' % (i, i, i * 7, i * 13 % 250) for i in range(1, 21)) + b"]"
HTML = b"".join(b'<tr id="p%d"><td>%d</td><td><a href="/p/%d">widget %d</a></td></tr>\n' % (i, i, i, i * 31 % 997) for i in range(700))
PNG = b"\x89PNG\r\n\x1a\n" + b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(64))
SMALL = b"ok\n" * 30
STREAM = [b"<p>event %03d: " % i + b"x" * (40 + i * 37 % 300) + b"</p>\n" for i in range(12)]
HTML_TAG = '"%s-gzip"' % hashlib.md5(HTML).hexdigest()
JSON_ZSTD_TAG = 'W/"%s-zstd"' % hashlib.md5(JSON).hexdigest()


_TEXT = b" ".join(b"<li>item %d: widget %d</li>" % (i, (i * 40503) % 9973) for i in range(4000))[: 64 * 1024]
DISTINCT_PAGES = 300


def distinct_body(n: int) -> bytes:
    """Page ``n``: 4 to 24 KiB, unlike every other page."""
    size = 4096 + (n * 7919) % (20 * 1024)
    at = (n * 1237) % (len(_TEXT) - size)
    return (b"<!doctype html><title>page %d</title>" % n + _TEXT[at:at + size])[:size]


def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path.startswith("/distinct/"):
        body = distinct_body(int(path[len("/distinct/"):]))
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]
    if path == "/api":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [JSON]
    if path == "/html":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(HTML)))])
        return [HTML]
    if path == "/png":
        start_response("200 OK", [("Content-Type", "image/png")])
        return [PNG]
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [SMALL]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/html")])
        return (chunk for chunk in STREAM)
    if path == "/cl-gen":
        start_response("200 OK", [("Content-Type", "text/css"), ("Content-Length", str(len(HTML)))])
        return (HTML[i:i + 4096] for i in range(0, len(HTML), 4096))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        write(HTML[:1000])
        return [HTML[1000:3000]]
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("204 No Content", [])
    return []


GZ = {"Accept-Encoding": "gzip, deflate, br"}  # A and B: br
BROWSER = {"Accept-Encoding": "gzip, deflate, br, zstd"}  # A: zstd, B: br
ZSTD = {"Accept-Encoding": "zstd"}
BR = {"Accept-Encoding": "br;q=1, gzip;q=0.5"}
GZIP = {"Accept-Encoding": "gzip"}
REQUESTS: List[Tuple[str, str, str, Dict[str, str]]] = [
    ("json-browser", "GET", "/api", {**BROWSER, "Origin": O1}),
    ("json-zstd", "GET", "/api", {**ZSTD, "Origin": O2}),
    ("json-zstd-304", "GET", "/api", {**ZSTD, "If-None-Match": JSON_ZSTD_TAG}),
    ("html-browser", "GET", "/html", BROWSER),
    ("html-br", "GET", "/html", BR),
    ("html-only-gzip", "GET", "/html", GZIP),
    ("html-zstd-head", "HEAD", "/html", ZSTD),
    ("stream-zstd", "GET", "/stream", {**ZSTD, "Origin": O1}),
    ("stream-br", "GET", "/stream", BR),
    ("stream-only-gzip", "GET", "/stream", GZIP),
    ("cl-generator-browser", "GET", "/cl-gen", BROWSER),
    ("write-zstd", "GET", "/write", ZSTD),
    ("padded-html-browser", "GET", "/padded/html", BROWSER),
    ("padded-json-br", "GET", "/padded/api", {**BR, "Origin": O1}),
    ("padded-html-gzip", "GET", "/padded/html", GZIP),
    ("padded-stream-zstd", "GET", "/padded/stream", ZSTD),
    ("padded-stream-br", "GET", "/padded/stream", BR),
    ("padded-stream-gzip", "GET", "/padded/stream", GZIP),
    ("json-cors-gzip", "GET", "/api", {**GZ, "Origin": O1}),
    ("json-other-origin", "GET", "/api", {**GZ, "Origin": O2}),
    ("json-refused-origin", "GET", "/api", {**GZ, "Origin": "https://evil.example"}),
    ("json-identity", "GET", "/api", {"Origin": O1}),
    ("json-304", "GET", "/api", {**GZ, "Origin": O1, "If-None-Match": '"%s-gzip", "%s"' % (hashlib.md5(JSON).hexdigest(), hashlib.md5(JSON).hexdigest())}),
    ("html-gzip", "GET", "/html", GZ),
    ("html-304", "GET", "/html", {**GZ, "If-None-Match": HTML_TAG}),
    ("html-head", "HEAD", "/html", GZ),
    ("png", "GET", "/png", GZ),
    ("small", "GET", "/small", {**GZ, "Origin": O2}),
    ("stream-gzip", "GET", "/stream", {**GZ, "Origin": O1}),
    ("stream-identity", "GET", "/stream", {}),
    ("cl-generator", "GET", "/cl-gen", GZ),
    ("write", "GET", "/write", GZ),
    ("missing", "GET", "/missing", {"Origin": O1}),
    ("preflight", "OPTIONS", "/api", {"Origin": O1, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Private-Network": "true"}),
    ("preflight-refused", "OPTIONS", "/api", {"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}),
    ("post", "POST", "/api", {**GZ, "Origin": O1}),
]

# The distinct pages, asked (one request in three) at random: repeats are hits, the rest evicts.
DISTINCT = [(f"distinct-{n}", "GET", f"/distinct/{n}", BROWSER) for n in range(DISTINCT_PAGES)]


def draw(rng: random.Random) -> Tuple[str, str, str, Dict[str, str]]:
    if rng.randrange(3) == 0:
        return DISTINCT[rng.randrange(len(DISTINCT))]
    return REQUESTS[rng.randrange(len(REQUESTS))]


def environ(method: str, path: str, headers: Dict[str, str]) -> Dict[str, Any]:
    env: Dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


Response = Tuple[str, Tuple[Header, ...], Tuple[bytes, ...]]


def one(mw: Any, method: str, path: str, headers: Dict[str, str]) -> Response:
    captured: List[Any] = []

    def start_response(status: str, response_headers: List[Header], exc_info: Any = None) -> Callable[[bytes], None]:
        captured.append((status, tuple(response_headers)))
        return lambda data: None

    result = mw(environ(method, path, headers), start_response)
    try:
        chunks = tuple(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, out = captured[-1]
    return status, out, chunks


def make_front(core: Any, config: Dict[str, Any]) -> Tuple[Callable[..., Any], Any]:
    """(the WSGI callable served, the middleware whose config the switcher flips).

    Paths under ``/padded/`` go to a second middleware with the padding on."""
    mw = ResponseMiddleware(app, dict(config), _core_module=core)
    padded = ResponseMiddleware(app, dict(CONFIG_PADDED), _core_module=core)

    def front(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path.startswith("/padded/"):
            environ["PATH_INFO"] = path[len("/padded"):]
            return padded(environ, start_response)  # type: ignore[no-any-return]
        return mw(environ, start_response)  # type: ignore[no-any-return]

    return front, mw


def decode(coding: Any, body: bytes) -> bytes:
    """``body`` decoded in ``coding`` by the libraries' own decoders (None: as is)."""
    if coding is None:
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)  # type: ignore[no-any-return]
    assert coding == "zstd", coding
    out = b""
    while body:  # a padded body opens with a skippable frame
        decoder = zstd.ZstdDecompressor()
        out += decoder.decompress(body)
        assert decoder.eof, "a truncated zstd frame"
        body = decoder.unused_data
    return out


def unpadded(status: str, headers: Iterable[Header], body: bytes) -> Tuple[str, Tuple[Header, ...], bytes]:
    """A padded response as what it must equal: ``Content-Length`` masked, the body decoded."""
    coding = None
    out = []
    for name, value in headers:
        if name.lower() == "content-encoding":
            coding = value
        elif name.lower() == "content-length":
            value = "<varies with the padding>"
        out.append((name, value))
    return status, tuple(out), decode(coding, body)


def padded_label(label: str) -> bool:
    return label.startswith("padded-")


def references(core: Any) -> Dict[str, Dict[str, Response]]:
    """{"A": {label: response}, "B": ...}, single-threaded, fresh middlewares."""
    refs: Dict[str, Dict[str, Response]] = {}
    for name, config in (("A", CONFIG_A), ("B", CONFIG_B)):
        front, _ = make_front(core, config)
        refs[name] = {label: one(front, method, path, headers) for label, method, path, headers in REQUESTS + DISTINCT}
    differ = [label for label, *_ in REQUESTS if refs["A"][label] == refs["B"][label] and not padded_label(label)]
    # Every request but the refused preflight (204 + Vary only in A, no Vary in B...) must tell A from B.
    assert not differ, f"A and B give the same answer to {differ}: a mix could go unseen"
    codings = {dict((k.lower(), v) for k, v in r[1]).get("content-encoding") for table in refs.values() for r in table.values()}
    assert {"zstd", "br", "gzip"} <= codings, f"the mix must hold every coding, got {codings}"
    return refs


def expected_in_process(refs: Dict[str, Dict[str, Response]]) -> Dict[str, Dict[str, Any]]:
    """What a response must equal: the reference, or for a padded one its unpadded form."""
    return {
        name: {label: unpadded(r[0], r[1], b"".join(r[2])) if padded_label(label) else r for label, r in table.items()}
        for name, table in refs.items()
    }


class Switcher(threading.Thread):
    """Flips the whole config between A and B until told to stop."""

    def __init__(self, mw: Any, seed: int) -> None:
        super().__init__(name="config-switcher", daemon=True)
        self.mw = mw
        self.stop = threading.Event()
        self.rng = random.Random(seed)
        self.switches = 0

    def run(self) -> None:
        current = "A"
        while not self.stop.is_set():
            time.sleep(self.rng.uniform(0.0005, 0.004))
            current = "B" if current == "A" else "A"
            values = CONFIG_A if current == "A" else CONFIG_B
            if self.switches % 2:
                self.mw.config = dict(values)  # a new Config object
            else:
                self.mw.config.update(values)  # every key of the live one at once
            self.switches += 1


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.a = self.b = self.both = self.bad = self.errors = 0
        self.examples: List[str] = []

    def add(self, label: str, got: Any, refs: Dict[str, Dict[str, Any]], key: Callable[[Any], Any] = lambda r: r) -> None:
        in_a = got == key(refs["A"][label])
        in_b = got == key(refs["B"][label])
        with self.lock:
            if in_a and in_b:
                self.both += 1
            elif in_a:
                self.a += 1
            elif in_b:
                self.b += 1
            else:
                self.bad += 1
                if len(self.examples) < 5:
                    self.examples.append(f"{label}: {str(got)[:600]}")

    def error(self, label: str, exc: BaseException) -> None:
        with self.lock:
            self.errors += 1
            if len(self.examples) < 5:
                self.examples.append(f"{label}: raised {exc!r}")


def watchdog(threads: List[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            print(f"DEADLOCK? {thread.name} still running after {timeout:.0f}s; stacks:", file=sys.stderr, flush=True)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            os._exit(3)


def run_in_process(core: Any, threads: int, requests: int, timeout: float, seed: int = 1) -> Dict[str, Any]:
    refs = expected_in_process(references(core))
    front, mw = make_front(core, CONFIG_A)
    tally = Tally()

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        for _ in range(requests):
            label, method, path, headers = draw(rng)
            try:
                got: Any = one(front, method, path, headers)
                if padded_label(label):
                    got = unpadded(got[0], got[1], b"".join(got[2]))
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                tally.error(label, exc)
                continue
            tally.add(label, got, refs)

    switcher = Switcher(mw, seed)
    workers = [threading.Thread(target=worker, args=(n,), name=f"worker-{n}", daemon=True) for n in range(threads)]
    started = time.perf_counter()
    switcher.start()
    for thread in workers:
        thread.start()
    watchdog(workers, timeout)
    switcher.stop.set()
    watchdog([switcher], 10)
    return _summary(core, "in-process", threads, requests, tally, switcher.switches, time.perf_counter() - started)


# --- waitress --------------------------------------------------------------------------------

_SERVER_HEADERS = {"date", "server", "connection", "transfer-encoding", "keep-alive"}


def _wire_key(response: Response, head: bool) -> Tuple[str, Tuple[Header, ...], bytes]:
    """A reference response as a client sees it: code, app/middleware headers, body."""
    status, headers, chunks = response
    return status.split(" ", 1)[0], _canonical(headers), b"" if head else b"".join(chunks)


def _wire_unpadded(label: str, key: Tuple[str, Tuple[Header, ...], bytes]) -> Any:
    return unpadded(*key) if padded_label(label) else key


def _canonical(headers: Iterable[Header]) -> Tuple[Header, ...]:
    # waitress sends the headers sorted by name and title-cased ("Etag"): compare
    # them as a sorted multiset of (lower-case name, value); the order itself is
    # checked by the in-process run.
    return tuple(sorted((k.lower(), v) for k, v in headers if k.lower() not in _SERVER_HEADERS))


def run_waitress(core: Any, threads: int, requests: int, timeout: float, seed: int = 1) -> Dict[str, Any]:
    import waitress.server

    refs = references(core)
    wire = {
        name: {label: _wire_unpadded(label, _wire_key(r, REQUESTS_BY_LABEL[label][0] == "HEAD")) for label, r in table.items()}
        for name, table in refs.items()
    }
    front, mw = make_front(core, CONFIG_A)
    server = waitress.server.create_server(front, host="127.0.0.1", port=0, threads=threads, connection_limit=threads * 4, channel_timeout=60)
    port = server.effective_port
    serving = threading.Thread(target=server.run, name="waitress", daemon=True)
    serving.start()
    tally = Tally()

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for _ in range(requests):
                label, method, path, headers = draw(rng)
                try:
                    conn.request(method, path, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                    got = _wire_unpadded(label, (str(response.status), _canonical(response.getheaders()), body))
                except Exception as exc:  # noqa: BLE001
                    tally.error(label, exc)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    continue
                tally.add(label, got, wire)
        finally:
            conn.close()

    switcher = Switcher(mw, seed)
    clients = [threading.Thread(target=client, args=(n,), name=f"client-{n}", daemon=True) for n in range(threads)]
    started = time.perf_counter()
    switcher.start()
    for thread in clients:
        thread.start()
    watchdog(clients, timeout)
    switcher.stop.set()
    watchdog([switcher], 10)
    elapsed = time.perf_counter() - started
    server.close()
    return _summary(core, f"waitress (threads={threads}, 127.0.0.1:{port})", threads, requests, tally, switcher.switches, elapsed)


# --- ASGI: concurrent tasks on one event loop ------------------------------------------------------


def asgi_app(the_scope: Dict[str, Any], receive: Any, send: Any) -> Any:
    """The ASGI twin of ``app``: a list body as one message, any other as one
    ``more_body`` message per chunk with a yield to the loop after each."""

    async def run() -> None:
        env = environ(the_scope["method"], the_scope["path"], {})
        captured: List[Any] = []
        written: List[bytes] = []

        def start_response(status: str, headers: List[Header], exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, headers))
            return written.append

        result = app(env, start_response)
        status, headers = captured[-1]
        await send({"type": "http.response.start", "status": int(status[:3]),
                    "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]})
        if isinstance(result, list) and not written:
            await send({"type": "http.response.body", "body": b"".join(result), "more_body": False})
            return
        for chunk in written + list(result):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)  # the other tasks run: streams interleave
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return run()


def asgi_scope(method: str, path: str, headers: Dict[str, str]) -> Dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }


async def one_asgi(mw: Any, method: str, path: str, headers: Dict[str, str]) -> Any:
    """(status, headers, body messages as (bytes, more_body)) of one request."""
    messages: List[Any] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        messages.append(message)

    await mw(asgi_scope(method, path, headers), receive, send)
    start = [m for m in messages if m["type"] == "http.response.start"]
    bodies = tuple((m.get("body", b""), bool(m.get("more_body", False))) for m in messages if m["type"] == "http.response.body")
    return (start[0]["status"] if len(start) == 1 else None, tuple(start[0]["headers"]) if start else (), bodies)


ASGI_REQUESTS = [r for r in REQUESTS if not padded_label(r[0]) and r[2] != "/write"] + DISTINCT


def run_asgi(core: Any, tasks: int, requests: int, timeout: float, seed: int = 1) -> Dict[str, Any]:
    config = dict(CONFIG_A)
    loop = asyncio.new_event_loop()
    try:
        sequential = ASGIMiddleware(asgi_app, dict(config), _core_module=core)
        refs = {label: loop.run_until_complete(one_asgi(sequential, method, path, headers)) for label, method, path, headers in ASGI_REQUESTS}
        table = {"A": refs, "B": refs}
        mw = ASGIMiddleware(asgi_app, dict(config), _core_module=core)
        tally = Tally()
        interleaved = [0]

        async def worker(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            for _ in range(requests):
                if rng.randrange(3) == 0:
                    label, method, path, headers = DISTINCT[rng.randrange(len(DISTINCT))]
                else:
                    label, method, path, headers = ASGI_REQUESTS[rng.randrange(len(ASGI_REQUESTS) - len(DISTINCT))]
                try:
                    got = await one_asgi(mw, method, path, headers)
                except Exception as exc:  # noqa: BLE001
                    tally.error(label, exc)
                    continue
                tally.add(label, got, table)
                if len(got[2]) > 1:
                    interleaved[0] += 1
                await asyncio.sleep(0)

        async def everything() -> None:
            await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(tasks))), timeout)

        started = time.perf_counter()
        try:
            loop.run_until_complete(everything())
        except asyncio.TimeoutError:
            print(f"DEADLOCK? the ASGI tasks still run after {timeout:.0f}s", file=sys.stderr, flush=True)
            os._exit(3)
        elapsed = time.perf_counter() - started
    finally:
        loop.close()
    cache = mw._state[1].cache
    where = f"asgi ({tasks} tasks on one loop, {interleaved[0]} multi-message streams; cache {len(cache)} entries, {cache.held_bytes} B held)"
    return _summary(core, where, tasks, requests, tally, 0, elapsed)


REQUESTS_BY_LABEL = {label: (method, path, headers) for label, method, path, headers in REQUESTS + DISTINCT}


def _summary(core: Any, where: str, threads: int, requests: int, tally: Tally, switches: int, elapsed: float) -> Dict[str, Any]:
    name = "python" if core is _core_py else "compiled"
    total = threads * requests
    result = {
        "core": name, "where": where, "threads": threads, "requests_per_thread": requests, "total": total,
        "matched_A": tally.a, "matched_B": tally.b, "matched_both": tally.both, "mismatched": tally.bad,
        "errors": tally.errors, "config_switches": switches, "seconds": round(elapsed, 1), "examples": tally.examples,
    }
    print(
        f"{name:8} {where}: {threads} threads x {requests} = {total} requests in {elapsed:.1f}s, "
        f"{switches} config switches; matched A {tally.a}, B {tally.b}, either {tally.both}; "
        f"mismatched {tally.bad}, errors {tally.errors}",
        flush=True,
    )
    for example in tally.examples:
        print("   ", example)
    return result


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--requests", type=int, default=10_000, help="per thread")
    parser.add_argument("--core", choices=["both", "compiled", "python"], default="both")
    parser.add_argument("--waitress", action="store_true", help="over real sockets through waitress")
    parser.add_argument("--asgi", action="store_true", help="ASGIMiddleware: --threads x 4 concurrent tasks on one event loop")
    parser.add_argument("--timeout", type=float, default=900.0, help="deadlock watchdog, seconds per run")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.core == "python":
        cores = [_core_py]
    else:
        compiled, why = _core.find_compiled()
        if compiled is None:
            print(f"--core {args.core} needs the compiled core ({why})", file=sys.stderr)
            return 2
        cores = [compiled, _core_py] if args.core == "both" else [compiled]
    if args.asgi:
        results = [run_asgi(core, args.threads * 4, args.requests, args.timeout) for core in cores]
    else:
        runner = run_waitress if args.waitress else run_in_process
        results = [runner(core, args.threads, args.requests, args.timeout) for core in cores]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    failed = [r for r in results if r["mismatched"] or r["errors"] or r["total"] != r["matched_A"] + r["matched_B"] + r["matched_both"]]
    if failed:
        print("THREADS FAILED")
        return 1
    print("THREADS OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
