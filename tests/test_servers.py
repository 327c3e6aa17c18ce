"""ResponseMiddleware behind real servers, over real sockets on 127.0.0.1.

Each server is a subprocess started by a module-scoped fixture and stopped by its own
process group id (``tests/servers.py``):

* ``waitress``          ``asok-fast serve server_apps:app <flags>`` (the console script,
                        waitress by default; the CLI wraps the bare app from its flags);
* ``waitress-pure``     ``python -m asok_fast serve ...`` with ``ASOK_FAST_NO_EXTENSIONS=1``:
                        the pure-Python core over sockets;
* ``gunicorn-sync``     ``python -m asok_fast serve ... --workers 2``: the CLI driving
                        gunicorn, 2 sync workers, the app imported in each worker;
* ``gunicorn-gthread``  stock ``gunicorn -w 2 -k gthread --threads 4 server_apps:application``;
* ``gunicorn-preload``  stock ``gunicorn -w 2 --preload server_apps:application``: the app
                        and the compiled core's state are made in the master, then forked.

The clients are ``http.client``, a raw socket (to count the bytes on the wire) and
``curl``.  Every expected body comes from ``server_apps``' own functions.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import threading
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

import pytest

from server_apps import ALLOWED_ORIGIN, CLI_FLAGS, FILE_BODY, SMALL_BODY, STREAM_CHUNKS, big_body, json_body, unique_body
from servers import (
    HOST,
    Server,
    asok_fast_command,
    get_json,
    python_m_asok_fast,
    python_m_gunicorn,
    raw_request,
    start_server,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the server tests run POSIX servers (process groups, gunicorn)")
pytest.importorskip("waitress", reason="the server tests need waitress (the serve extra)")

BIG = big_body()
JSON = json_body()
GZIP_OK = {"Accept-Encoding": "gzip"}
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed (Debian package: curl)")


def _gunicorn_stock_flags() -> List[str]:
    from gunicorn.config import KNOWN_SETTINGS

    flags = ["-b", f"{HOST}:0", "--graceful-timeout", "3", "--log-level", "info"]
    # gunicorn >= 25.1 opens a per-user control socket by default; keep the test servers apart.
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        flags.append("--no-control-socket")
    return flags


def _cli_serve(*extra: str) -> List[str]:
    return ["serve", "server_apps:app", *CLI_FLAGS, "--host", HOST, "--port", "0", *extra]


SERVERS = {
    "waitress": dict(argv=lambda: asok_fast_command() + _cli_serve("--access-log")),
    "waitress-pure": dict(argv=lambda: python_m_asok_fast() + _cli_serve("--threads", "6"), no_extensions=True),
    "gunicorn-sync": dict(argv=lambda: python_m_asok_fast() + _cli_serve("--workers", "2"), workers="sync"),
    "gunicorn-gthread": dict(
        argv=lambda: python_m_gunicorn() + _gunicorn_stock_flags() + ["-w", "2", "-k", "gthread", "--threads", "4", "server_apps:application"],
        workers="gthread",
    ),
    "gunicorn-preload": dict(
        argv=lambda: python_m_gunicorn() + _gunicorn_stock_flags() + ["-w", "2", "--preload", "server_apps:application"],
        workers="sync",
        preload=True,
    ),
}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    spec = SERVERS[request.param]
    if request.param.startswith("gunicorn") and importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed (the serve extra; not on Windows)")
    workdir = tmp_path_factory.mktemp(request.param)
    srv = start_server(request.param, spec["argv"](), workdir, no_extensions=spec.get("no_extensions", False))
    srv.extra.update({k: v for k, v in spec.items() if k not in ("argv", "no_extensions")})
    try:
        yield srv
    finally:
        srv.stop()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def vary_tokens(value: Optional[str]) -> List[str]:
    return sorted(t.strip().lower() for t in (value or "").split(",") if t.strip())


def fetch(server: Server, method: str, path: str, headers: Optional[Dict[str, str]] = None, body: Optional[bytes] = None):
    conn = server.connection()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response, data
    finally:
        conn.close()


# ---------------------------------------------------------------- which core, which process


def test_implementation_and_processes(server: Server) -> None:
    info = get_json(server, "/__impl")
    assert info["implementation"] == server.expected_implementation, info
    assert info["core"] == ("asok_fast._core_c" if info["implementation"] == "compiled" else "asok_fast._core_py")
    workers = server.extra.get("workers")
    if workers is None:  # waitress: one process
        assert info["pid"] == info["loaded_in"] == server.pid
    elif server.extra.get("preload"):
        # loaded (and the middleware built) in the master, served by a forked worker
        assert info["loaded_in"] == server.pid
        assert info["pid"] != server.pid
    else:
        # loaded by the worker itself, after the fork
        assert info["pid"] != server.pid
        assert info["loaded_in"] == info["pid"]


# ---------------------------------------------------------------- gzip, Content-Length, ETag


@pytest.mark.parametrize("path,expected,ctype", [("/big", BIG, "text/html"), ("/json", JSON, "application/json")])
def test_gzip_decodes_to_the_exact_body(server: Server, path: str, expected: bytes, ctype: str) -> None:
    r = raw_request(server.port, "GET", path, GZIP_OK)
    assert r.status == 200
    assert r.get("Content-Encoding") == "gzip"
    assert int(r.get("Content-Length")) == len(r.body)  # the bytes on the wire
    assert gzip.decompress(r.body) == expected
    assert r.body[:2] == b"\x1f\x8b" and len(r.body) < len(expected)
    assert r.get("ETag") == f'"{md5(expected)}-gzip"'
    assert vary_tokens(r.get("Vary")) == ["accept-encoding", "origin"]
    assert r.get("Content-Type").startswith(ctype)
    assert r.get("Transfer-Encoding") is None


def test_gzip_bytes_are_deterministic(server: Server) -> None:
    """Same body, same level, same zlib: the same bytes from every request (and replica)."""
    first = raw_request(server.port, "GET", "/big", GZIP_OK)
    second = raw_request(server.port, "GET", "/big", GZIP_OK)
    assert first.body == second.body
    co = zlib.compressobj(6, zlib.DEFLATED, 31)
    assert first.body == co.compress(BIG) + co.flush()


def test_identity_when_gzip_not_accepted(server: Server) -> None:
    r = raw_request(server.port, "GET", "/big")
    assert r.status == 200
    assert r.get("Content-Encoding") is None
    assert r.body == BIG
    assert int(r.get("Content-Length")) == len(BIG)
    assert r.get("ETag") == f'"{md5(BIG)}"'
    assert vary_tokens(r.get("Vary")) == ["accept-encoding", "origin"]


def test_small_body_is_not_compressed(server: Server) -> None:
    r = raw_request(server.port, "GET", "/small", GZIP_OK)
    assert r.status == 200
    assert r.get("Content-Encoding") is None
    assert r.body == SMALL_BODY
    assert int(r.get("Content-Length")) == len(SMALL_BODY)
    assert r.get("ETag") == f'"{md5(SMALL_BODY)}"'


# ---------------------------------------------------------------- 304


@pytest.mark.parametrize("accept", [GZIP_OK, {}], ids=["gzip", "identity"])
def test_304_round_trip(server: Server, accept: Dict[str, str]) -> None:
    conn = server.connection()
    try:
        conn.request("GET", "/json", headers=accept)
        first = conn.getresponse()
        body = first.read()
        assert first.status == 200
        etag = first.getheader("ETag")
        assert etag in (f'"{md5(JSON)}"', f'"{md5(JSON)}-gzip"')
        conn.request("GET", "/json", headers={**accept, "If-None-Match": etag})
        again = conn.getresponse()
        assert again.status == 304
        assert again.read() == b""
        assert again.getheader("ETag") == etag
        assert again.getheader("Vary") == first.getheader("Vary")
        assert again.getheader("Content-Encoding") is None
        assert again.getheader("Content-Type") is None
        assert again.getheader("Content-Length") in (None, "0")
        # the connection still frames the next answer correctly
        conn.request("GET", "/json", headers=accept)
        third = conn.getresponse()
        assert third.status == 200 and third.read() == body
    finally:
        conn.close()
    # on the wire: no body byte after the 304's header block
    raw = raw_request(server.port, "GET", "/json", {**accept, "If-None-Match": etag})
    assert raw.status == 304 and raw.body == b""


def test_304_for_the_other_representation_tag(server: Server) -> None:
    """A client holding the identity tag revalidates a gzip request (the digest names the content)."""
    r = raw_request(server.port, "GET", "/big", {**GZIP_OK, "If-None-Match": f'W/"{md5(BIG)}"'})
    assert r.status == 304 and r.body == b""
    assert r.get("ETag") == f'"{md5(BIG)}-gzip"'
    stale = raw_request(server.port, "GET", "/big", {**GZIP_OK, "If-None-Match": '"0123"'})
    assert stale.status == 200 and gzip.decompress(stale.body) == BIG


# ---------------------------------------------------------------- CORS


def test_preflight_204(server: Server) -> None:
    headers = {
        "Origin": ALLOWED_ORIGIN,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type",
    }
    r = raw_request(server.port, "OPTIONS", "/echo", headers)
    assert r.status == 204
    assert r.body == b""
    assert r.get("Content-Length") is None
    assert r.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert "PUT" in r.get("Access-Control-Allow-Methods")
    assert "Content-Type" in r.get("Access-Control-Allow-Headers")
    assert r.get("Access-Control-Max-Age") == "86400"
    assert r.get("Access-Control-Expose-Headers") is None  # actual responses only
    assert r.get("X-Worker-Pid") is None  # answered by the middleware: the app never ran

    denied = raw_request(server.port, "OPTIONS", "/echo", {**headers, "Origin": "http://evil.example"})
    assert denied.status == 204 and denied.body == b""
    assert not [k for k, _ in denied.headers if k.lower().startswith("access-control-")]


def test_cors_on_actual_requests(server: Server) -> None:
    r = raw_request(server.port, "GET", "/json", {**GZIP_OK, "Origin": ALLOWED_ORIGIN})
    assert r.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert r.get("Access-Control-Expose-Headers") == "ETag, Content-Encoding"
    assert gzip.decompress(r.body) == JSON
    other = raw_request(server.port, "GET", "/json", {**GZIP_OK, "Origin": "http://evil.example"})
    assert not [k for k, _ in other.headers if k.lower().startswith("access-control-")]
    assert other.body == r.body  # same content, no CORS


def test_put_reaches_the_app(server: Server) -> None:
    payload = json.dumps({"n": 1, "s": "x" * 50}).encode()
    response, data = fetch(server, "PUT", "/echo", {"Content-Type": "application/json", "Origin": ALLOWED_ORIGIN}, payload)
    assert response.status == 200
    assert json.loads(data) == {"method": "PUT", "received": {"n": 1, "s": "x" * 50}}
    assert response.getheader("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert response.getheader("ETag") is None  # PUT: no validator, never a 304


# ---------------------------------------------------------------- HEAD


@pytest.mark.parametrize("accept", [GZIP_OK, {}], ids=["gzip", "identity"])
def test_head_has_get_headers_and_no_body(server: Server, accept: Dict[str, str]) -> None:
    get = raw_request(server.port, "GET", "/big", accept)
    head = raw_request(server.port, "HEAD", "/big", accept)
    assert head.status == get.status == 200
    assert head.body == b""  # not one body byte on the wire
    for name in ("Content-Length", "Content-Encoding", "ETag", "Vary", "Content-Type"):
        assert head.get(name) == get.get(name), name
    assert int(head.get("Content-Length")) == len(get.body)


# ---------------------------------------------------------------- streams


@pytest.mark.parametrize("accept", [GZIP_OK, {}], ids=["gzip", "identity"])
def test_stream_first_chunk_arrives_before_the_next_is_made(server: Server, accept: Dict[str, str]) -> None:
    gate = uuid.uuid4().hex
    conn = server.connection(timeout=10)
    try:
        conn.request("GET", f"/gated?id={gate}", headers=accept)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") is None
        assert response.getheader("ETag") is None
        gzipped = response.getheader("Content-Encoding") == "gzip"
        assert gzipped == bool(accept)
        decoder = zlib.decompressobj(31) if gzipped else None
        text = b""
        # The app is now blocked on the gate, which only this test opens: whatever arrives
        # was sent before the app made its next chunk.
        while len(text) < len(STREAM_CHUNKS[0]):
            data = response.read1(65536)
            assert data, f"stream ended early after {text!r}"
            text += decoder.decompress(data) if decoder else data
        assert text == STREAM_CHUNKS[0]

        if server.extra.get("workers") == "sync":
            # the worker holding the stream is busy: another process answers meanwhile
            info = get_json(server, "/__impl")
            assert str(info["pid"]) != response.getheader("X-Worker-Pid")
            assert info["implementation"] == server.expected_implementation

        server.open_gate(gate)
        rest = response.read()
        text += (decoder.decompress(rest) + decoder.flush()) if decoder else rest
        if decoder:
            assert decoder.eof  # a complete gzip member, trailer included
        assert text == b"".join(STREAM_CHUNKS)
    finally:
        server.open_gate(gate)  # never leave a worker waiting
        conn.close()


def test_head_of_a_stream_sends_no_body_and_does_not_wait_for_it(server: Server) -> None:
    gate = uuid.uuid4().hex  # never opened: a HEAD must not run the stream
    r = raw_request(server.port, "HEAD", f"/gated?id={gate}", GZIP_OK, timeout=5)
    assert r.status == 200
    if server.name.startswith("waitress"):
        # waitress 3.0 frames every response of unknown length as chunked, HEAD included, and
        # then writes the last-chunk marker: its own framing bytes, not a byte of the body.
        assert r.body in (b"", b"0\r\n\r\n")
    else:
        assert r.body == b""
    assert r.get("Content-Encoding") == "gzip"  # what a GET would get
    assert r.get("ETag") is None
    server.open_gate(gate)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_file_wrapper_body_passes_through(server: Server, method: str) -> None:
    """The server's own wsgi.file_wrapper object goes back to it untouched (zero-copy path)."""
    r = raw_request(server.port, method, "/file", GZIP_OK)
    assert r.status == 200
    assert r.get("Content-Encoding") is None
    assert r.get("Content-Length") == str(len(FILE_BODY))
    assert r.body == (FILE_BODY if method == "GET" else b"")


# ---------------------------------------------------------------- concurrency


def test_concurrent_clients_get_byte_exact_answers(server: Server) -> None:
    rng = random.Random(1234)
    jobs = [(i, rng.choice(["/unique", "/big", "/json"]), rng.random() < 0.6) for i in range(120)]
    local = threading.local()

    def one(job):
        n, path, use_gzip = job
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = server.connection(timeout=20)
        target = f"/unique?n={n}" if path == "/unique" else path
        expected = unique_body(n) if path == "/unique" else (BIG if path == "/big" else JSON)
        conn.request("GET", target, headers=GZIP_OK if use_gzip else {})
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close" or response.will_close:
            conn.close()
            local.conn = None
        assert response.status == 200, (target, response.status)
        assert int(response.getheader("Content-Length")) == len(data)
        encoded = response.getheader("Content-Encoding") == "gzip"
        assert encoded == use_gzip, (target, response.getheaders())
        body = gzip.decompress(data) if encoded else data
        assert body == expected, target
        suffix = "-gzip" if encoded else ""
        assert response.getheader("ETag") == f'"{md5(expected)}{suffix}"'
        return n

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = sorted(pool.map(one, jobs))
    assert done == list(range(120))


# ---------------------------------------------------------------- curl


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([CURL, "-sS", "--max-time", "15", *args], capture_output=True, timeout=timeout)


def header_map(text: str) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for line in text.splitlines()[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            out.setdefault(name.strip().lower(), []).append(value.strip())
    return out


@needs_curl
def test_curl_compressed_gives_the_exact_body(server: Server, tmp_path) -> None:
    headers_file = tmp_path / "headers"
    done = curl("--compressed", "-D", str(headers_file), f"{server.url}/big")
    assert done.returncode == 0, done.stderr
    assert done.stdout == BIG
    headers = header_map(headers_file.read_text("latin-1"))
    assert headers["content-encoding"] == ["gzip"]
    assert int(headers["content-length"][0]) < len(BIG)


@needs_curl
def test_curl_head(server: Server) -> None:
    done = curl("-I", "--compressed", f"{server.url}/big")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("latin-1")
    assert text.startswith("HTTP/1.1 200")
    headers = header_map(text)
    assert headers["content-encoding"] == ["gzip"]
    assert headers["etag"] == [f'"{md5(BIG)}-gzip"']
    get = raw_request(server.port, "GET", "/big", GZIP_OK)
    assert headers["content-length"] == [str(len(get.body))]


@needs_curl
def test_curl_304_with_if_none_match(server: Server) -> None:
    tag = f'"{md5(JSON)}-gzip"'
    done = curl("--compressed", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", f"If-None-Match: {tag}", f"{server.url}/json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "304 0"
    fresh = curl("--compressed", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", 'If-None-Match: "stale"', f"{server.url}/json")
    code, size = fresh.stdout.decode().split()
    assert code == "200" and 0 < int(size) < len(JSON)


@needs_curl
def test_curl_preflight(server: Server) -> None:
    done = curl("-i", "-X", "OPTIONS", "-H", f"Origin: {ALLOWED_ORIGIN}", "-H", "Access-Control-Request-Method: PUT", f"{server.url}/echo")
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 204")
    assert body == b""
    assert header_map(head.decode("latin-1"))["access-control-allow-origin"] == [ALLOWED_ORIGIN]


# ---------------------------------------------------------------- the access log


def test_access_log_shows_what_the_client_got(server: Server) -> None:
    """``--access-log`` (the ``waitress`` server here) logs what left the middleware; off by default."""
    etag = f'"{md5(JSON)}-gzip"'
    assert raw_request(server.port, "GET", "/json?from=log", {**GZIP_OK, "If-None-Match": etag}).status == 304
    big = raw_request(server.port, "GET", "/big?from=log", GZIP_OK)
    log = server.log()
    if server.name == "waitress":
        assert '"GET /json?from=log" 304 - -' in log
        assert f'"GET /big?from=log" 200 {len(big.body)} gzip' in log
    else:
        assert "from=log" not in log
