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

The servers run the default ``COMPRESS_CODINGS`` (zstd, br, gzip, in that order of
preference).  Each test names the coding it expects and sends an ``Accept-Encoding`` that
makes it so: ``{"Accept-Encoding": "gzip"}`` for gzip, never a client's default header
(curl 7.88 and Chromium send ``gzip, deflate, br, zstd``, and get zstd).
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
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

import pytest

from server_apps import ALLOWED_ORIGIN, CLI_FLAGS, FILE_BODY, SMALL_BODY, STREAM_CHUNKS, big_body, json_body, unique_body
from servers import (
    BROWSER_ACCEPT_ENCODING,
    CODINGS,
    HOST,
    Server,
    StreamDecoder,
    asok_fast_command,
    decode,
    get_json,
    python_m_asok_fast,
    python_m_gunicorn,
    raw_request,
    reference_bytes,
    start_server,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the server tests run POSIX servers (process groups, gunicorn)")
pytest.importorskip("waitress", reason="the server tests need waitress (the serve extra)")

BIG = big_body()
JSON = json_body()
GZIP_OK = {"Accept-Encoding": "gzip"}
ACCEPT = {coding: {"Accept-Encoding": coding} for coding in CODINGS}  # exactly one coding each
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}  # br has no magic number
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


# ---------------------------------------------------------------- zstd, br, gzip, Content-Length, ETag


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("path,expected,ctype", [("/big", BIG, "text/html"), ("/json", JSON, "application/json")])
def test_each_coding_decodes_to_the_exact_body(server: Server, coding: str, path: str, expected: bytes, ctype: str) -> None:
    """A buffered answer (the JSON, the big page) in the one coding the client accepts."""
    r = raw_request(server.port, "GET", path, ACCEPT[coding])
    assert r.status == 200
    assert r.get("Content-Encoding") == coding
    assert int(r.get("Content-Length")) == len(r.body)  # the bytes on the wire
    assert decode(coding, r.body) == expected
    assert r.body.startswith(MAGIC.get(coding, b"")) and len(r.body) < len(expected)
    assert r.get("ETag") == f'"{md5(expected)}-{coding}"'
    assert vary_tokens(r.get("Vary")) == ["accept-encoding", "origin"]
    assert r.get("Content-Type").startswith(ctype)
    assert r.get("Transfer-Encoding") is None


@pytest.mark.parametrize("coding", CODINGS)
def test_compressed_bytes_are_deterministic(server: Server, coding: str) -> None:
    """Same body, coding, level and library: the same bytes from every request (and replica),
    equal to what the library itself makes at the default level (zstd 3, brotli 4, zlib 6)."""
    first = raw_request(server.port, "GET", "/big", ACCEPT[coding])
    second = raw_request(server.port, "GET", "/big", ACCEPT[coding])
    assert first.get("Content-Encoding") == second.get("Content-Encoding") == coding
    assert first.body == second.body
    assert first.body == reference_bytes(coding, BIG)


@pytest.mark.parametrize(
    "accept_encoding,expected",
    [
        (BROWSER_ACCEPT_ENCODING, "zstd"),  # Chromium's and curl's header: the server's first choice
        ("gzip, br", "br"),
        ("br;q=0.5, gzip", "gzip"),  # the client's weights first, the server's order breaks ties
        ("x-gzip", "gzip"),
        ("*", "zstd"),
        ("zstd;q=0, br;q=0, *", "gzip"),
        ("zstd;q=0, br;q=0, gzip;q=0", None),
        ("deflate", None),
    ],
)
def test_negotiation_over_the_wire(server: Server, accept_encoding: str, expected: Optional[str]) -> None:
    r = raw_request(server.port, "GET", "/json", {"Accept-Encoding": accept_encoding})
    assert r.status == 200
    assert r.get("Content-Encoding") == expected
    assert decode(expected, r.body) == JSON
    assert r.get("ETag") == f'"{md5(JSON)}{"-" + expected if expected else ""}"'
    assert vary_tokens(r.get("Vary")) == ["accept-encoding", "origin"]


def test_identity_when_no_coding_is_accepted(server: Server) -> None:
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


@pytest.mark.parametrize("coding", [*CODINGS, None], ids=[*CODINGS, "identity"])
def test_304_round_trip(server: Server, coding: Optional[str]) -> None:
    accept = ACCEPT[coding] if coding else {}
    conn = server.connection()
    try:
        conn.request("GET", "/json", headers=accept)
        first = conn.getresponse()
        body = first.read()
        assert first.status == 200
        assert first.getheader("Content-Encoding") == coding
        etag = first.getheader("ETag")
        assert etag == (f'"{md5(JSON)}-{coding}"' if coding else f'"{md5(JSON)}"')
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


@pytest.mark.parametrize("held,coding", [("", "gzip"), ("-br", "zstd"), ("-zstd", "gzip"), ("-gzip", "br")])
def test_304_for_the_other_representation_tag(server: Server, held: str, coding: str) -> None:
    """A client holding another representation's tag (weakened, as proxies do) revalidates a
    request in ``coding``: the digest names the content; the 304 carries ``coding``'s own tag."""
    r = raw_request(server.port, "GET", "/big", {**ACCEPT[coding], "If-None-Match": f'W/"{md5(BIG)}{held}"'})
    assert r.status == 304 and r.body == b""
    assert r.get("ETag") == f'"{md5(BIG)}-{coding}"'
    stale = raw_request(server.port, "GET", "/big", {**ACCEPT[coding], "If-None-Match": '"0123"'})
    assert stale.status == 200 and stale.get("Content-Encoding") == coding and decode(coding, stale.body) == BIG


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


@pytest.mark.parametrize("coding", [*CODINGS, None], ids=[*CODINGS, "identity"])
def test_head_has_get_headers_and_no_body(server: Server, coding: Optional[str]) -> None:
    accept = ACCEPT[coding] if coding else {}
    get = raw_request(server.port, "GET", "/big", accept)
    head = raw_request(server.port, "HEAD", "/big", accept)
    assert head.status == get.status == 200
    assert head.get("Content-Encoding") == coding
    assert head.body == b""  # not one body byte on the wire
    for name in ("Content-Length", "Content-Encoding", "ETag", "Vary", "Content-Type"):
        assert head.get(name) == get.get(name), name
    assert int(head.get("Content-Length")) == len(get.body)


# ---------------------------------------------------------------- streams


@pytest.mark.parametrize("coding", [*CODINGS, None], ids=[*CODINGS, "identity"])
def test_stream_first_chunk_arrives_before_the_next_is_made(server: Server, coding: Optional[str]) -> None:
    """A slow stream in each coding: the first chunk decodes from the bytes that arrived while
    the app is blocked before making the next one (a flushed block per chunk), and the whole
    body is one complete frame or stream of the coding."""
    accept = ACCEPT[coding] if coding else {}
    gate = uuid.uuid4().hex
    conn = server.connection(timeout=10)
    try:
        conn.request("GET", f"/gated?id={gate}", headers=accept)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") is None
        assert response.getheader("ETag") is None
        assert response.getheader("Content-Encoding") == coding
        decoder = StreamDecoder(coding)
        text = b""
        # The app is now blocked on the gate, which only this test opens: whatever arrives
        # was sent before the app made its next chunk.
        while len(text) < len(STREAM_CHUNKS[0]):
            data = response.read1(65536)
            assert data, f"stream ended early after {text!r}"
            text += decoder.feed(data)
        assert text == STREAM_CHUNKS[0]

        if server.extra.get("workers") == "sync":
            # the worker holding the stream is busy: another process answers meanwhile
            info = get_json(server, "/__impl")
            assert str(info["pid"]) != response.getheader("X-Worker-Pid")
            assert info["implementation"] == server.expected_implementation

        server.open_gate(gate)
        rest = response.read()
        text += decoder.feed(rest) + decoder.end()
        assert decoder.complete  # a complete gzip member / zstd frame / brotli stream
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
    r = raw_request(server.port, method, "/file", {"Accept-Encoding": BROWSER_ACCEPT_ENCODING})
    assert r.status == 200
    assert r.get("Content-Encoding") is None
    assert r.get("Content-Length") == str(len(FILE_BODY))
    assert r.body == (FILE_BODY if method == "GET" else b"")


# ---------------------------------------------------------------- concurrency


def test_concurrent_clients_get_byte_exact_answers(server: Server) -> None:
    rng = random.Random(1234)
    jobs = [(i, rng.choice(["/unique", "/big", "/json"]), rng.choice([*CODINGS, None])) for i in range(120)]
    local = threading.local()

    def one(job):
        n, path, coding = job
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = server.connection(timeout=20)
        target = f"/unique?n={n}" if path == "/unique" else path
        expected = unique_body(n) if path == "/unique" else (BIG if path == "/big" else JSON)
        conn.request("GET", target, headers=ACCEPT[coding] if coding else {})
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close" or response.will_close:
            conn.close()
            local.conn = None
        assert response.status == 200, (target, response.status)
        assert int(response.getheader("Content-Length")) == len(data)
        assert response.getheader("Content-Encoding") == coding, (target, response.getheaders())
        assert decode(coding, data) == expected, target
        suffix = f"-{coding}" if coding else ""
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


def curl_decodes(coding: str) -> bool:
    """Whether this curl was built with the library for ``coding`` (``curl -V`` features)."""
    features = subprocess.run([CURL, "-V"], capture_output=True, text=True, timeout=20).stdout
    line = next((text for text in features.splitlines() if text.startswith("Features:")), "")
    return {"gzip": "libz", "br": "brotli", "zstd": "zstd"}[coding] in line.split()


@needs_curl
@pytest.mark.parametrize("coding", CODINGS)
def test_curl_compressed_gives_the_exact_body(server: Server, tmp_path, coding: str) -> None:
    """curl asks for one coding (``-H``) and decodes it itself (``--compressed``)."""
    if not curl_decodes(coding):
        pytest.skip(f"this curl cannot decode {coding} (curl -V lists no such feature)")
    headers_file = tmp_path / "headers"
    done = curl("--compressed", "-H", f"Accept-Encoding: {coding}", "-D", str(headers_file), f"{server.url}/big")
    assert done.returncode == 0, done.stderr
    assert done.stdout == BIG
    headers = header_map(headers_file.read_text("latin-1"))
    assert headers["content-encoding"] == [coding]
    assert int(headers["content-length"][0]) < len(BIG)


@needs_curl
@pytest.mark.parametrize("coding", CODINGS)
def test_curl_head(server: Server, coding: str) -> None:
    done = curl("-I", "-H", f"Accept-Encoding: {coding}", f"{server.url}/big")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("latin-1")
    assert text.startswith("HTTP/1.1 200")
    headers = header_map(text)
    assert headers["content-encoding"] == [coding]
    assert headers["etag"] == [f'"{md5(BIG)}-{coding}"']
    get = raw_request(server.port, "GET", "/big", ACCEPT[coding])
    assert headers["content-length"] == [str(len(get.body))]


@needs_curl
def test_curl_304_with_if_none_match(server: Server) -> None:
    zstd_only = ("-H", "Accept-Encoding: zstd")
    tag = f'"{md5(JSON)}-zstd"'
    done = curl(*zstd_only, "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", f"If-None-Match: {tag}", f"{server.url}/json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "304 0"
    fresh = curl(*zstd_only, "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", 'If-None-Match: "stale"', f"{server.url}/json")
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
