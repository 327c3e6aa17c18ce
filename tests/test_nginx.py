"""nginx with ``proxy_cache`` in front of the middleware: the cache keeps the codings apart.

A real nginx (Debian's ``nginx``; ``.ci/run`` installs it) runs unprivileged in its own
prefix under the test's temporary directory (its config, pid file, logs, temp and cache
paths), in the foreground (``daemon off``), in its own session, and is stopped by its
process group id like the WSGI servers (``tests/servers.py``).  It listens on a 127.0.0.1
port picked just before it starts (nginx cannot report a port 0 it was given), and proxies
to ``asok-fast serve server_apps:app`` (waitress, the default codings zstd, br, gzip; the
compiled core and the pure one).

The ``server`` block and the cache lines are those docs/deployment.md gives, on a loopback
port without TLS:

* ``proxy_cache_path`` (in ``http``; here in the test's own directory and smaller),
  ``proxy_cache`` and ``proxy_cache_valid 200 10m`` (in ``location /``): the app's responses
  carry no ``Cache-Control`` or ``Expires``, and nginx caches nothing without one or the other,
  or ``proxy_cache_valid``;
* ``add_header X-Cache-Status $upstream_cache_status`` (test only: which answers the cache gave).

nginx reads the response's ``Vary`` (``Accept-Encoding, Origin``, one line: nginx before 1.23
reads only the last ``Vary`` line) and keeps one cached variant per value of those request
headers, so a zstd body filled by one client is never the answer to a client that did not
offer zstd.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Dict, Optional

import pytest

from server_apps import ALLOWED_ORIGIN, CLI_FLAGS, big_body, json_body
from servers import (
    BROWSER_ACCEPT_ENCODING,
    HOST,
    RawResponse,
    Server,
    asok_fast_command,
    decode,
    free_port,
    raw_request,
    start_server,
)

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)"),
    pytest.mark.skipif(os.name != "posix", reason="the test servers are POSIX process groups"),
]
pytest.importorskip("waitress", reason="the app behind nginx is served with waitress (the serve extra)")

BIG = big_body()
JSON = json_body()
ETAG = {path: hashlib.md5(body).hexdigest() for path, body in (("/big", BIG), ("/json", JSON))}

# What each client offers -> the coding it must get (None: identity).
CLIENTS: Dict[str, Optional[str]] = {
    "zstd": "zstd",
    "gzip": "gzip",
    "": None,  # no Accept-Encoding header
    "br": "br",
    BROWSER_ACCEPT_ENCODING: "zstd",
    "gzip, br": "br",
}

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log info;
{user}
events {{
    worker_connections 64;
}}

http {{
    access_log {run}/access.log;
    client_body_temp_path {run}/client_body;
    proxy_temp_path {run}/proxy_temp;
    fastcgi_temp_path {run}/fastcgi_temp;
    uwsgi_temp_path {run}/uwsgi_temp;
    scgi_temp_path {run}/scgi_temp;

    # The cache (docs/deployment.md): 10 MB on disk here, keys in 1 MB of shared memory.
    proxy_cache_path {run}/cache levels=1:2 keys_zone=asok:1m max_size=10m inactive=10m use_temp_path=off;

    upstream asok_app {{
        server 127.0.0.1:{app_port};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name app.example.com;

        gzip off;                      # asok_fast compresses

        location / {{
            proxy_pass http://asok_app;
            proxy_http_version 1.1;    # keep-alive to the app
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;

            proxy_cache asok;          # the cache (docs/deployment.md)
            proxy_cache_valid 200 10m;
            add_header X-Cache-Status $upstream_cache_status always;   # test only
        }}

        location /stream {{             # streamed responses: pass each chunk on as it comes
            proxy_pass http://asok_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
}}
"""


def start_nginx(workdir: Path, app_port: int, attempts: int = 3) -> Server:
    run = workdir / "nginx"
    run.mkdir(parents=True, exist_ok=True)
    # As root, nginx would run its workers as "nobody", who cannot enter pytest's private
    # temporary directory: keep them as the user running the test.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    last: Optional[BaseException] = None
    for attempt in range(attempts):
        port = free_port()
        conf = run / "nginx.conf"
        conf.write_text(NGINX_CONF.format(run=run, user=user, app_port=app_port, port=port), encoding="utf-8")
        try:
            return start_server(
                f"nginx-{attempt}",
                [NGINX, "-p", str(run), "-c", str(conf), "-e", str(run / "error.log")],
                workdir,
                port=port,
                ready_path="/__impl",  # through the proxy to the app
            )
        except RuntimeError as exc:
            last = exc
            if "Address already in use" not in str(exc) + (run / "error.log").read_text(errors="replace"):
                raise
    raise RuntimeError(f"nginx found no free port in {attempts} attempts: {last}")


@pytest.fixture(scope="module", params=[False, True], ids=["default-core", "python"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("nginx")
    app = start_server(
        "app",
        asok_fast_command() + ["serve", "server_apps:app", *CLI_FLAGS, "--host", HOST, "--port", "0", "--access-log"],
        workdir / "app",
        no_extensions=request.param,
    )
    try:
        nginx = start_nginx(workdir, app.port)
        try:
            yield nginx, app
        finally:
            nginx.stop()
    finally:
        app.stop()


def get(nginx: Server, path: str, accept_encoding: str, **headers: str) -> RawResponse:
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    if accept_encoding:
        sent["Accept-Encoding"] = accept_encoding
    return raw_request(nginx.port, "GET", path, sent)


def check(r: RawResponse, path: str, coding: Optional[str]) -> None:
    """The answer is the representation ``coding`` of ``path``'s body, whole, with its own tag."""
    expected = BIG if path.startswith("/big") else JSON
    assert r.status == 200
    assert r.get("Content-Encoding") == coding, r.headers
    assert int(r.get("Content-Length")) == len(r.body)
    assert decode(coding, r.body) == expected
    assert r.get("ETag") == f'"{ETAG[path.split("?")[0]]}{"-" + coding if coding else ""}"'
    assert len(r.values("Vary")) == 1  # one line: what nginx 1.22 reads
    assert sorted(t.strip().lower() for t in r.get("Vary").split(",")) == ["accept-encoding", "origin"]


def app_requests(app: Server, path: str) -> int:
    """How many times the app behind nginx was asked for ``path`` (its access log)."""
    return sum(1 for line in app.log().splitlines() if f'"GET {path}" 200' in line)


def test_a_cached_zstd_body_never_reaches_another_client(stack) -> None:
    nginx, app = stack
    assert raw_request(nginx.port, "GET", "/__impl").get("Server").startswith("nginx")
    path = f"/big?run={uuid.uuid4().hex}"

    # A zstd client fills the cache; a second zstd request is answered from it.
    first = get(nginx, path, "zstd")
    check(first, path, "zstd")
    assert first.get("X-Cache-Status") == "MISS"
    again = get(nginx, path, "zstd")
    check(again, path, "zstd")
    assert again.get("X-Cache-Status") == "HIT" and again.body == first.body
    assert app_requests(app, path) == 1

    # Every other client gets its own coding, from the app (a MISS), never the cached zstd.
    for offered in ("gzip", "", "br"):
        r = get(nginx, path, offered)
        check(r, path, CLIENTS[offered])
        assert r.get("X-Cache-Status") == "MISS", (offered, r.headers)
    assert app_requests(app, path) == 4

    # Each variant is now cached beside the others: every client, in any order, gets its own.
    for offered in ("gzip", "zstd", "", "br", "zstd", "gzip"):
        r = get(nginx, path, offered)
        check(r, path, CLIENTS[offered])
        assert r.get("X-Cache-Status") == "HIT", (offered, r.headers)
    assert app_requests(app, path) == 4


@pytest.mark.parametrize("offered", list(CLIENTS), ids=[repr(c) for c in CLIENTS])
def test_each_client_gets_its_coding_through_the_cache(stack, offered: str) -> None:
    """Whatever the cache already holds (the zstd variant first), each Accept-Encoding gets
    the coding the middleware negotiates for it, twice (from the app, then from the cache)."""
    nginx, _ = stack
    path = f"/json?run={uuid.uuid4().hex}"
    check(get(nginx, path, "zstd"), path, "zstd")
    for _ in range(2):
        r = get(nginx, path, offered)
        check(r, path, CLIENTS[offered])
    assert r.get("X-Cache-Status") == "HIT"  # the second one: from this client's own variant


def test_cors_answers_are_kept_apart_by_origin(stack) -> None:
    """``Vary`` holds Origin too (one line): an allowed origin's cached answer carries its
    Access-Control-Allow-Origin; another origin's request is not answered from it."""
    nginx, _ = stack
    path = f"/json?run={uuid.uuid4().hex}"
    allowed = get(nginx, path, "gzip", Origin=ALLOWED_ORIGIN)
    check(allowed, path, "gzip")
    assert allowed.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert get(nginx, path, "gzip", Origin=ALLOWED_ORIGIN).get("X-Cache-Status") == "HIT"
    other = get(nginx, path, "gzip", Origin="http://evil.example")
    check(other, path, "gzip")
    assert other.get("X-Cache-Status") == "MISS"
    assert not [k for k, _ in other.headers if k.lower().startswith("access-control-")]


def test_revalidation_from_the_cache_keeps_the_coding_tag(stack) -> None:
    """nginx answers If-None-Match from the cached variant: a 304 with that variant's tag."""
    nginx, _ = stack
    path = f"/big?run={uuid.uuid4().hex}"
    for coding in ("zstd", "gzip", "br"):
        check(get(nginx, path, coding), path, coding)
        tag = f'"{ETAG["/big"]}-{coding}"'
        r = get(nginx, path, coding, If_None_Match=tag)
        assert r.status == 304 and r.body == b""
        assert r.get("ETag") == tag
        assert r.get("X-Cache-Status") == "HIT"
