"""A real browser (headless Chromium) calling an app wrapped by asok_fast from another origin.

Two servers, both ``asok-fast serve`` on waitress:

* the page server, ``server_apps:browser_page`` on ``http://127.0.0.1:PORT_A``;
* the API, ``server_apps:app`` on ``http://localhost:PORT_B``, compression on (the default
  codings: zstd, br, gzip), CORS allowing the
  page's origin ``http://127.0.0.1:PORT_A`` only, ``--access-log`` on, so the test reads
  what the browser sent and what it got back (``204`` preflight, ``304``).

The page's script (``server_apps.BROWSER_PAGE``) runs a ``GET`` (zstd JSON), a ``PUT``
with ``Content-Type: application/json`` (preflighted), and a second ``GET`` with
``cache: 'no-cache'`` (the browser revalidates its cached copy with ``If-None-Match``), then
writes what it read into the DOM.  Chromium runs with ``--dump-dom`` and a virtual time
budget, and the test parses the dumped DOM.  Loaded from ``http://localhost:PORT_A``
instead, the page's origin is not allowed and every call fails in the browser.

The demo's own pages are loaded too (what a person sees after README's first command): the
text Chromium renders equals the text of what the app produced, received as zstd, or as br
when the demo is served with ``--compress-codings br,gzip``.

Which codings Chromium offers: Chromium 156 (Debian 12) sends ``Accept-Encoding: gzip,
deflate, br, zstd`` over plain http to ``127.0.0.1`` and to ``localhost``, for navigations and
for ``fetch()`` alike (not only over HTTPS); ``test_what_chromium_offers_over_plain_http``
reads it back from the server, and the zstd assertions rest on it.

The same page and calls through uvicorn (ASGI): the page from a stock uvicorn, the API from
``asok-fast serve`` on its embedded uvicorn, serving the bare ASGI app (``--asgi``) or a FastAPI
app (detected), with the same expectations and the same access-log lines.

Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped, saying so, when it is absent.
"""

from __future__ import annotations

import hashlib
import html
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from server_apps import json_body
from servers import Server, asok_fast_command, python_m_asok_fast, start_server, stop_process_group

pytest.importorskip("waitress", reason="the browser tests serve with waitress (the serve extra)")


def _find_chromium() -> str:
    override = os.environ.get("ASOK_FAST_CHROMIUM")
    if override:
        return override
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return ""


CHROMIUM = _find_chromium()
pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM,
        reason="no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)",
    ),
    pytest.mark.skipif(os.name != "posix", reason="the test servers are POSIX process groups"),
]

JSON = json_body()
JSON_COMPACT = json.dumps(json.loads(JSON), separators=(",", ":"))
ETAG_ZSTD = f'"{hashlib.md5(JSON).hexdigest()}-zstd"'
RESULT_RE = re.compile(r"RESULT:(\{.*\}):END", re.S)


def run_chromium(url: str, profile: Path, budget_ms: int = 10000) -> str:
    """Load ``url`` in a fresh headless Chromium and return the DOM it dumps."""
    profile.mkdir(parents=True, exist_ok=True)
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # root in a container: the sandbox needs user namespaces
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-crash-reporter",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    env = dict(os.environ, HOME=str(profile))  # nothing written into the real home
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        stop_process_group(proc)  # the browser's helper processes too
    dom = out.decode("utf-8", "replace")
    if proc.returncode != 0 or "<html" not in dom:
        raise AssertionError(f"chromium exited with {proc.returncode}\nstdout:\n{dom[:2000]}\nstderr:\n{err.decode(errors='replace')[-4000:]}")
    return dom


def page_result(dom: str) -> Dict[str, Any]:
    match = RESULT_RE.search(html.unescape(dom))
    assert match, f"the page wrote no result (still pending?):\n{dom[:3000]}"
    return json.loads(match.group(1))


def access_lines(server: Server, run: str) -> List[str]:
    """The API's access-log lines of one page load, in order: 'METHOD PATH STATUS ENCODING'."""
    lines = []
    for line in server.log().splitlines():
        match = re.match(r'\S+ "(\w+) ([^"]*)" (\d{3}) (\S+) (\S+)$', line)
        if match and f"run={run}" in match.group(2):
            method, path, status, _length, encoding = match.groups()
            lines.append(f"{method} {path.split('?')[0]} {status} {encoding}")
    return lines


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("browser")
    page = start_server(
        "page",
        asok_fast_command() + ["serve", "server_apps:browser_page", "--host", "127.0.0.1", "--port", "0", "--no-cors"],
        workdir / "page",
        ready_path="/cors-test",
    )
    try:
        api = start_server(
            "api",
            asok_fast_command() + [
                "serve", "server_apps:app", "--host", "127.0.0.1", "--port", "0",
                "--gzip", "--min-size", "200",  # the default codings: zstd, br, gzip
                "--cors-origin", f"http://127.0.0.1:{page.port}",
                "--cors-expose-headers", "ETag, Content-Encoding",
                "--access-log",
            ],
            workdir / "api",
        )
        try:
            yield page, api
        finally:
            api.stop()
    finally:
        page.stop()


def test_what_chromium_offers_over_plain_http(servers, tmp_path: Path) -> None:
    _, api = servers
    dom = html.unescape(run_chromium(f"http://127.0.0.1:{api.port}/accept-encoding", tmp_path / "profile"))
    match = re.search(r'<pre id="offered">(.*?)</pre>', dom, re.S)
    assert match, dom[:2000]
    offered = match.group(1)
    tokens = [t.strip() for t in offered.strip("'").split(",")]
    # Chromium 156: 'gzip, deflate, br, zstd'.  The zstd tests below need zstd offered here.
    assert "zstd" in tokens and "br" in tokens and "gzip" in tokens, offered


def test_allowed_origin_reads_zstd_json_passes_preflight_and_revalidates(servers, tmp_path: Path) -> None:
    page, api = servers
    run = uuid.uuid4().hex
    page_url = f"http://127.0.0.1:{page.port}/cors-test?api=http://localhost:{api.port}&run={run}"
    result = page_result(run_chromium(page_url, tmp_path / "profile"))

    assert result["origin"] == f"http://127.0.0.1:{page.port}"
    assert result["api"] == f"http://localhost:{api.port}"  # another origin: CORS applies
    get = result["get"]
    assert "error" not in get, get
    assert get["status"] == 200
    assert get["items"] == 30 and get["first"] == "item-0000"
    assert get["text"] == JSON_COMPACT  # the browser decoded the exact JSON from zstd
    assert get["encoding"] == "zstd"  # exposed through CORS_EXPOSE_HEADERS
    assert get["etag"] == ETAG_ZSTD

    put = result["put"]
    assert "error" not in put, put
    assert put["status"] == 200
    assert put["body"] == {"method": "PUT", "received": {"hello": "world", "n": 42}}

    again = result["revalidate"]
    assert "error" not in again, again
    assert again["status"] == 200  # a 304 reaches the script as the cached 200
    assert again["text"] == JSON_COMPACT
    assert again["etag"] == ETAG_ZSTD

    # What went over the wire, from the server's side.
    assert access_lines(api, run) == [
        "GET /json 200 zstd",
        "OPTIONS /echo 204 -",  # the preflight, answered by the middleware
        "PUT /echo 200 -",
        "GET /json 304 -",  # the browser sent If-None-Match with the tag it held
    ]


def test_disallowed_origin_fails_in_the_browser(servers, tmp_path: Path) -> None:
    page, api = servers
    run = uuid.uuid4().hex
    # Same page, other name: the origin http://localhost:PORT_A is not in CORS_ORIGINS.
    page_url = f"http://localhost:{page.port}/cors-test?api=http://localhost:{api.port}&run={run}"
    result = page_result(run_chromium(page_url, tmp_path / "profile"))

    assert result["origin"] == f"http://localhost:{page.port}"
    for step in ("get", "put", "revalidate"):
        assert result[step] == {"error": "TypeError: Failed to fetch"}, (step, result[step])
    lines = access_lines(api, run)
    # The server answered the simple GET (the browser then withheld it from the script);
    # the preflight got no Access-Control-* header, so the PUT itself was never sent.
    assert "OPTIONS /echo 204 -" in lines
    assert not [line for line in lines if line.startswith("PUT ")]


def test_demo_cors_page_works_in_a_browser(tmp_path: Path) -> None:
    """README's first command: `asok-fast serve`, then open the printed URL's /cors page."""
    demo = start_server(
        "demo", asok_fast_command() + ["serve", "--port", "0", "--access-log"], tmp_path / "demo", ready_path="/",
    )
    try:
        dom = html.unescape(run_chromium(f"{demo.url}/cors", tmp_path / "profile"))
        assert 'data-done="1"' in dom, dom[:3000]
        rows = dict(
            (name, (state, details))
            for name, state, details in re.findall(
                r'<tr id="result-([^"]+)"><td>[^<]*</td><td class="\w+">(ok|failed)</td><td>([^<]*)</td></tr>', dom
            )
        )
        assert set(rows) == {"GET", "PUT (after a preflight)", "GET again, cache: no-cache"}, dom[:3000]
        for name, (state, details) in rows.items():
            assert state == "ok", (name, details)
        assert "Content-Encoding: zstd" in rows["GET"][1]  # Chromium offers zstd; the first choice
        assert '"name":"renamed"' in rows["PUT (after a preflight)"][1]
        log = demo.log()
        assert '"OPTIONS /api/items" 204' in log
        assert '"GET /api/items" 304' in log
    finally:
        demo.stop()


# ---------------------------------------------------------------- the demo's pages, per coding


class _Text(HTMLParser):
    """The text a page shows: text nodes of ``<body>`` outside ``<script>`` and ``<style>``,
    whitespace runs collapsed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []
        self._body = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "body":
            self._body = True
        elif tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._body and not self._skip:
            self.parts.append(data)


def shown_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return " ".join("".join(parser.parts).split())


# The stream's lines carry the time each was made: the same for the browser's copy and ours.
_TIMES_RE = re.compile(r"at \d+\.\d\d s")

def plain_get(server: Server, path: str) -> Tuple[http.client.HTTPResponse, bytes]:
    """GET without Accept-Encoding; the body unframed (a stream comes chunked)."""
    conn = server.connection(timeout=20)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


DEMO_PAGES = ["/", "/big", "/api/items", "/stream?chunks=4&delay=0.05"]


@pytest.mark.parametrize(
    "flags,coding",
    [([], "zstd"), (["--compress-codings", "br,gzip"], "br")],
    ids=["default-codings", "without-zstd"],
)
def test_demo_pages_render_what_the_app_made(tmp_path: Path, flags: List[str], coding: str) -> None:
    """Each demo page reaches Chromium in ``coding`` (zstd by default: Chromium offers it and it
    is the server's first choice; br once zstd is left out of COMPRESS_CODINGS), and the
    text Chromium renders is the text of the app's own bytes (fetched without compression)."""
    demo = start_server(
        "demo", asok_fast_command() + ["serve", "--port", "0", "--access-log", *flags], tmp_path / "demo", ready_path="/",
    )
    try:
        for path in DEMO_PAGES:
            before = len(demo.log())
            rendered = shown_text(run_chromium(f"{demo.url}{path}", tmp_path / "profile"))
            # What went to the browser, from the server's side: the page in ``coding``.
            served = re.findall(r'^\S+ "GET (\S+)" 200 \S+ (\S+)$', demo.log()[before:], re.M)
            assert (path, coding) in served, (path, served)
            made, body = plain_get(demo, path)  # no Accept-Encoding: the app's bytes as they are
            assert made.status == 200 and made.getheader("Content-Encoding") is None
            text = body.decode("utf-8")
            if made.getheader("Content-Type").startswith("text/html"):
                expected = shown_text(text)
            else:  # JSON: Chromium shows it as the text of a <pre>
                expected = " ".join(text.split())
            assert expected, path
            if path.startswith("/stream"):
                rendered, expected = _TIMES_RE.sub("at T s", rendered), _TIMES_RE.sub("at T s", expected)
                assert expected.count("chunk ") == 4
            assert rendered == expected, path
    finally:
        demo.stop()


# ---------------------------------------------------------------- ASGI: the same calls through uvicorn
#
# The page comes from a stock uvicorn (``asgi_server_apps:browser_page``, an ASGI app); the API
# is ``asok-fast serve`` on its embedded uvicorn: the bare ASGI app wrapped from the flags
# (``--asgi``), or the FastAPI app of ``asgi_server_apps`` (detected as ASGI; the flags over the
# config of its ``ASGIMiddleware``).  Same page, same script, same expectations as above:
# the ASGI access log writes the same lines as the WSGI one.

ASGI_APIS = {"asgi": ["--asgi", "asgi_server_apps:raw_app"], "fastapi": ["asgi_server_apps:fastapi_app"]}


@pytest.fixture(scope="module", params=list(ASGI_APIS))
def asgi_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("uvicorn", reason="the ASGI browser tests serve with uvicorn")
    if request.param == "fastapi":
        pytest.importorskip("fastapi")
    workdir = tmp_path_factory.mktemp(f"browser-{request.param}")
    page = start_server(
        "page",
        python_m_uvicorn() + ["asgi_server_apps:browser_page", "--host", "127.0.0.1", "--port", "0"],
        workdir / "page",
        ready_path="/cors-test",
    )
    try:
        api = start_server(
            "api",
            python_m_asok_fast() + [
                "serve", *ASGI_APIS[request.param], "--host", "127.0.0.1", "--port", "0",
                "--gzip", "--min-size", "200",  # the default codings: zstd, br, gzip
                "--cors-origin", f"http://127.0.0.1:{page.port}",
                "--cors-expose-headers", "ETag, Content-Encoding",
                "--access-log",
            ],
            workdir / "api",
            ready_path="/__impl",
        )
        try:
            assert "on uvicorn" in api.log()
            yield page, api
        finally:
            api.stop()
    finally:
        page.stop()


def python_m_uvicorn() -> List[str]:
    return [sys.executable, "-m", "uvicorn"]


def test_asgi_allowed_origin_reads_zstd_json_passes_preflight_and_revalidates(asgi_servers, tmp_path: Path) -> None:
    page, api = asgi_servers
    run = uuid.uuid4().hex
    page_url = f"http://127.0.0.1:{page.port}/cors-test?api=http://localhost:{api.port}&run={run}"
    result = page_result(run_chromium(page_url, tmp_path / "profile"))

    assert result["origin"] == f"http://127.0.0.1:{page.port}"
    assert result["api"] == f"http://localhost:{api.port}"  # another origin: CORS applies
    get = result["get"]
    assert "error" not in get, get
    assert get["status"] == 200
    assert get["items"] == 30 and get["first"] == "item-0000"
    assert get["text"] == JSON_COMPACT  # the browser decoded the exact JSON from zstd
    assert get["encoding"] == "zstd"  # exposed through CORS_EXPOSE_HEADERS
    assert get["etag"] == ETAG_ZSTD

    put = result["put"]
    assert "error" not in put, put
    assert put["status"] == 200
    assert put["body"] == {"method": "PUT", "received": {"hello": "world", "n": 42}}

    again = result["revalidate"]
    assert "error" not in again, again
    assert again["status"] == 200  # a 304 reaches the script as the cached 200
    assert again["text"] == JSON_COMPACT
    assert again["etag"] == ETAG_ZSTD

    # What went over the wire, from the server's side (the ASGI access log).
    assert access_lines(api, run) == [
        "GET /json 200 zstd",
        "OPTIONS /echo 204 -",  # the preflight, answered by the middleware
        "PUT /echo 200 -",
        "GET /json 304 -",  # the browser sent If-None-Match with the tag it held
    ]


def test_asgi_disallowed_origin_fails_in_the_browser(asgi_servers, tmp_path: Path) -> None:
    page, api = asgi_servers
    run = uuid.uuid4().hex
    page_url = f"http://localhost:{page.port}/cors-test?api=http://localhost:{api.port}&run={run}"
    result = page_result(run_chromium(page_url, tmp_path / "profile"))

    assert result["origin"] == f"http://localhost:{page.port}"
    for step in ("get", "put", "revalidate"):
        assert result[step] == {"error": "TypeError: Failed to fetch"}, (step, result[step])
    lines = access_lines(api, run)
    assert "OPTIONS /echo 204 -" in lines
    assert not [line for line in lines if line.startswith("PUT ")]
