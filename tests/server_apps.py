"""WSGI apps that the server tests serve over real sockets.

Imported by the server subprocesses (``PYTHONPATH`` = this directory) and by the
tests (for the expected bytes).  Standard library and ``asok_fast`` only.

* ``app``: the bare app; ``asok-fast serve server_apps:app`` wraps it, with the
  flags :data:`CLI_FLAGS` (the same configuration as :data:`CONFIG`).
* ``application``: ``app`` already wrapped by ResponseMiddleware with
  :data:`CONFIG`, for a stock ``gunicorn server_apps:application``.
* ``/accept-encoding`` (in ``app``): a page showing the ``Accept-Encoding`` the client sent.
* ``browser_page``: the page of the browser test (``/cors-test``), served from
  another origin than the API it calls.

Every response carries ``X-Worker-Pid`` (the process that answered).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple
from urllib.parse import parse_qs

import asok_fast
from asok_fast import ResponseMiddleware

ALLOWED_ORIGIN = "http://allowed.example"
MIN_SIZE = 200

CONFIG: Dict[str, Any] = {
    "GZIP": True,
    "GZIP_MIN_SIZE": MIN_SIZE,
    "CORS_ORIGINS": [ALLOWED_ORIGIN],
    "CORS_EXPOSE_HEADERS": "ETag, Content-Encoding",
}
CLI_FLAGS: List[str] = [
    "--gzip",
    "--min-size", str(MIN_SIZE),
    "--cors-origin", ALLOWED_ORIGIN,
    "--cors-expose-headers", "ETag, Content-Encoding",
]

# The directory where the tests open the gates of /gated streams (set by tests/servers.py).
GATES_ENV = "ASOK_FAST_TEST_GATES"
GATE_TIMEOUT = 15.0

LOADED_IN = os.getpid()  # the process that imported this module (the master under --preload)

Headers = List[Tuple[str, str]]


# ------------------------------------------------------------------ bodies (also used by the tests)


def json_body() -> bytes:
    items = [{"id": i, "name": f"item-{i:04d}", "score": (i * 7919) % 1000} for i in range(30)]
    return json.dumps({"items": items}).encode("utf-8")


def big_body() -> bytes:
    rows = "".join(
        f"<tr><td>{i}</td><td>row {i}</td><td>{hashlib.md5(str(i).encode()).hexdigest()}</td></tr>\n"
        for i in range(3000)
    )
    return f"<!DOCTYPE html>\n<html><body><table>\n{rows}</table></body></html>\n".encode("ascii")


def unique_body(n: int) -> bytes:
    """A body that differs per ``n`` (cross-talk between requests would show)."""
    return (f"response number {n}: " + f"{n:08d}" * 120 + "\n").encode("ascii")


SMALL_BODY = b"tiny body, below the gzip threshold\n"
FILE_BODY = b"".join(b"line %05d of a file served through wsgi.file_wrapper\n" % i for i in range(2000))
STREAM_CHUNKS = [
    b"first chunk: made before the gate opens\n" + b"." * 100 + b"\n",
    b"second chunk: made after the gate opened\n",
    b"third and last chunk\n",
]

_JSON = json_body()
_BIG = big_body()


# ------------------------------------------------------------------ the app


def _send(start_response: Callable[..., Any], status: str, content_type: str, body: bytes, extra: Headers = ()) -> List[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("X-Worker-Pid", str(os.getpid())),
        *extra,
    ]
    start_response(status, headers)
    return [body]


def _gated(gate: str) -> Iterator[bytes]:
    """Yield the first chunk, wait until the test creates the gate file, then the rest."""
    yield STREAM_CHUNKS[0]
    path = os.path.join(os.environ[GATES_ENV], gate)
    deadline = time.monotonic() + GATE_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            yield b"GATE TIMED OUT\n"
            return
        time.sleep(0.005)
    for chunk in STREAM_CHUNKS[1:]:
        yield chunk


def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/__impl":
        from asok_fast import _core

        info = {
            "implementation": asok_fast.IMPLEMENTATION,
            "core": _core.core.__name__,
            "asok_fast_file": asok_fast.__file__,
            "pid": os.getpid(),
            "loaded_in": LOADED_IN,
        }
        return _send(start_response, "200 OK", "application/json", json.dumps(info).encode(), [("Cache-Control", "no-store")])
    if path == "/json":
        return _send(start_response, "200 OK", "application/json", _JSON)
    if path == "/big":
        return _send(start_response, "200 OK", "text/html; charset=utf-8", _BIG)
    if path == "/small":
        return _send(start_response, "200 OK", "text/plain; charset=utf-8", SMALL_BODY)
    if path == "/unique":
        return _send(start_response, "200 OK", "text/plain; charset=utf-8", unique_body(int(query["n"][0])))
    if path == "/echo" and method in ("PUT", "POST"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        received = json.loads(environ["wsgi.input"].read(length) or b"null")
        body = json.dumps({"method": method, "received": received}).encode()
        return _send(start_response, "200 OK", "application/json", body)
    if path == "/file":
        # A file body through the server's wsgi.file_wrapper (zero-copy path): passed on untouched.
        import tempfile

        handle = tempfile.TemporaryFile()
        handle.write(FILE_BODY)
        handle.seek(0)
        start_response("200 OK", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(FILE_BODY))),
            ("X-Worker-Pid", str(os.getpid())),
        ])
        return environ["wsgi.file_wrapper"](handle, 8192)
    if path == "/accept-encoding":
        # What the client offered, shown as a page (the browser tests read it from the DOM).
        offered = environ.get("HTTP_ACCEPT_ENCODING")
        page = f'<!DOCTYPE html>\n<html><body><pre id="offered">{html.escape(repr(offered))}</pre></body></html>\n'
        return _send(start_response, "200 OK", "text/html; charset=utf-8", page.encode(), [("Cache-Control", "no-store")])
    if path == "/gated":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("X-Worker-Pid", str(os.getpid()))])
        return _gated(query["id"][0])
    return _send(start_response, "404 Not Found", "text/plain", b"not found\n")


# A stock WSGI server (gunicorn server_apps:application) serves this one.
application = ResponseMiddleware(app, CONFIG)


# ------------------------------------------------------------------ the browser test's page

BROWSER_PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>cross-origin test</title></head>
<body>
<pre id="result">pending</pre>
<script>
(async function () {
  var params = new URLSearchParams(location.search);
  var api = params.get("api");
  var run = "?run=" + encodeURIComponent(params.get("run") || "");
  var out = {origin: location.origin, api: api};
  async function step(name, fn) {
    try { out[name] = await fn(); } catch (e) { out[name] = {error: e.name + ": " + e.message}; }
  }
  await step("get", async function () {
    var r = await fetch(api + "/json" + run);
    var data = await r.json();
    return {status: r.status, items: data.items.length, first: data.items[0].name,
            encoding: r.headers.get("Content-Encoding"), etag: r.headers.get("ETag"),
            text: JSON.stringify(data)};
  });
  await step("put", async function () {
    var r = await fetch(api + "/echo" + run, {method: "PUT", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({hello: "world", n: 42})});
    return {status: r.status, body: await r.json()};
  });
  await step("revalidate", async function () {
    var r = await fetch(api + "/json" + run, {cache: "no-cache"});
    var data = await r.json();
    return {status: r.status, items: data.items.length, etag: r.headers.get("ETag"),
            text: JSON.stringify(data)};
  });
  document.getElementById("result").textContent = "RESULT:" + JSON.stringify(out) + ":END";
})();
</script>
</body></html>
""".encode("utf-8")


def browser_page(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    if environ.get("PATH_INFO") == "/cors-test":
        return _send(start_response, "200 OK", "text/html; charset=utf-8", BROWSER_PAGE, [("Cache-Control", "no-store")])
    return _send(start_response, "404 Not Found", "text/plain", b"not found\n")
