"""A real browser (headless Chromium) calling an app wrapped by asok_fast from another origin.

Two servers, both ``asok-fast serve`` on waitress:

* the page server, ``server_apps:browser_page`` on ``http://127.0.0.1:PORT_A``;
* the API, ``server_apps:app`` on ``http://localhost:PORT_B``, gzip on, CORS allowing the
  page's origin ``http://127.0.0.1:PORT_A`` only, ``--access-log`` on, so the test reads
  what the browser sent and what it got back (``204`` preflight, ``304``).

The page's script (``server_apps.BROWSER_PAGE``) runs a ``GET`` (gzipped JSON), a ``PUT``
with ``Content-Type: application/json`` (preflighted), and a second ``GET`` with
``cache: 'no-cache'`` (the browser revalidates its cached copy with ``If-None-Match``), then
writes what it read into the DOM.  Chromium runs with ``--dump-dom`` and a virtual time
budget, and the test parses the dumped DOM.  Loaded from ``http://localhost:PORT_A``
instead, the page's origin is not allowed and every call fails in the browser.

The demo's own ``/cors`` page is loaded too: what a person sees after README's first command.

Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped, saying so, when it is absent.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, List

import pytest

from server_apps import json_body
from servers import Server, asok_fast_command, start_server, stop_process_group

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
ETAG_GZIP = f'"{hashlib.md5(JSON).hexdigest()}-gzip"'
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
                "--gzip", "--min-size", "200",
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


def test_allowed_origin_reads_gzip_json_passes_preflight_and_revalidates(servers, tmp_path: Path) -> None:
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
    assert get["text"] == JSON_COMPACT  # the browser gunzipped the exact JSON
    assert get["encoding"] == "gzip"  # exposed through CORS_EXPOSE_HEADERS
    assert get["etag"] == ETAG_GZIP

    put = result["put"]
    assert "error" not in put, put
    assert put["status"] == 200
    assert put["body"] == {"method": "PUT", "received": {"hello": "world", "n": 42}}

    again = result["revalidate"]
    assert "error" not in again, again
    assert again["status"] == 200  # a 304 reaches the script as the cached 200
    assert again["text"] == JSON_COMPACT
    assert again["etag"] == ETAG_GZIP

    # What went over the wire, from the server's side.
    assert access_lines(api, run) == [
        "GET /json 200 gzip",
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
        assert "Content-Encoding: gzip" in rows["GET"][1]
        assert '"name":"renamed"' in rows["PUT (after a preflight)"][1]
        log = demo.log()
        assert '"OPTIONS /api/items" 204' in log
        assert '"GET /api/items" 304' in log
    finally:
        demo.stop()
