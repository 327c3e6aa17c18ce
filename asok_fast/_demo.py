"""The built-in demo served by ``asok-fast serve`` when no app is named.

A plain WSGI app (standard library only) whose pages each show one feature of
the middleware around it:

* ``/``           the index: what to look at, with links and ``curl`` commands;
* ``/api/items``  ~1.4 KB of JSON (zstd, br or gzip; ETag, ``304``); ``PUT``/``POST``/``PATCH``
  with a JSON body echo it back (a cross-origin ``PUT`` needs a preflight);
* ``/big``        a large HTML page (~150 KB before compression);
* ``/stream``     a slow stream of HTML chunks (compressed chunk by chunk, each
  flushed as it is made): ``?chunks=N&delay=SECONDS``;
* ``/cors``       a page whose script calls ``/api/items`` on the *other* loopback
  origin (``localhost`` when the page was opened on ``127.0.0.1``, and the other
  way round) and shows what the browser let it read.

:data:`DEMO_CONFIG` is the middleware configuration the demo is served with by
default; its ``CORS_ORIGIN_REGEX`` allows every loopback origin, so the
``/cors`` page works on whatever port the demo listens on.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs

from .middleware import ResponseMiddleware

__all__ = ["DEMO_CONFIG", "DemoApp", "ITEMS_JSON", "application", "make_application"]

# Loopback origins only (any port): the /cors page calls the demo's own API
# through the other name of the same machine.
LOOPBACK_ORIGIN_REGEX = r"http://(?:localhost|127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?"

DEMO_CONFIG: Dict[str, Any] = {
    "GZIP": True,
    "CORS_ORIGIN_REGEX": LOOPBACK_ORIGIN_REGEX,
    # Not CORS-safelisted response headers: expose them so that the /cors page's
    # script can show them.
    "CORS_EXPOSE_HEADERS": "ETag, Content-Encoding",
}

_ITEMS = [
    {
        "id": i,
        "name": f"demo item {i:02d}",
        "price": round(((i * 7919) % 10000) / 100, 2),
        "in_stock": i % 3 != 0,
    }
    for i in range(1, 21)
]
ITEMS_JSON: bytes = json.dumps({"items": _ITEMS, "count": len(_ITEMS)}, indent=None).encode("utf-8")

_MAX_BODY = 64 * 1024  # the largest JSON request body the echo endpoint reads

Headers = List[Tuple[str, str]]


def _page(title: str, body: str, script: str = "") -> bytes:
    script_tag = f"<script>\n{script}\n</script>" if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>\n"
        "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\n"
        "code,pre{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}\n"
        "pre{padding:.6rem;overflow-x:auto}\n"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}\n"
        ".ok{color:#176117}.fail{color:#a31515}\n"
        "</style>\n</head>\n<body>\n"
        f"{body}\n{script_tag}\n</body>\n</html>\n"
    ).encode("utf-8")


def _big_page() -> bytes:
    rows = "\n".join(
        f"<tr><td>{i}</td><td>SKU-{i:05d}</td><td>Deterministic row number {i}</td>"
        f"<td>{(i * 37) % 101}</td><td>{((i * 7919) % 10000) / 100:.2f}</td></tr>"
        for i in range(1500)
    )
    body = (
        "<h1>A large page</h1>\n"
        "<p>About 150 KB of HTML. With compression on, look at <code>Content-Length</code> in your "
        "browser's network panel (or <code>curl -sI --compressed</code>): it is a fraction of "
        "the page's size. Reload it: the browser sends <code>If-None-Match</code> and gets a "
        "<code>304</code> without a body.</p>\n"
        '<p><a href="/">back to the index</a></p>\n'
        "<table>\n<thead><tr><th>#</th><th>SKU</th><th>Name</th><th>Qty</th><th>Price</th></tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody>\n</table>"
    )
    return _page("asok_fast demo: a large page", body)


_BIG_PAGE = _big_page()

_CORS_SCRIPT = r"""
(function () {
  var here = location.hostname;
  var other = here === "localhost" ? "127.0.0.1" : (here === "127.0.0.1" ? "localhost" : null);
  var out = document.getElementById("results");
  function row(name, ok, text) {
    var tr = document.createElement("tr");
    tr.id = "result-" + name;
    tr.innerHTML = "<td></td><td></td><td></td>";
    tr.children[0].textContent = name;
    tr.children[1].textContent = ok ? "ok" : "failed";
    tr.children[1].className = ok ? "ok" : "fail";
    tr.children[2].textContent = text;
    out.appendChild(tr);
  }
  if (other === null) {
    document.getElementById("api").textContent =
      "(open this page as http://127.0.0.1:" + location.port + "/cors or http://localhost:" +
      location.port + "/cors: the demo calls its own API through the other loopback name)";
    return;
  }
  var api = location.protocol + "//" + other + (location.port ? ":" + location.port : "") + "/api/items";
  document.getElementById("api").textContent = api;
  async function run() {
    try {
      var r = await fetch(api);
      var data = await r.json();
      row("GET", r.ok, r.status + ", " + data.items.length + " items, Content-Encoding: " +
          r.headers.get("Content-Encoding") + ", ETag: " + r.headers.get("ETag"));
    } catch (e) { row("GET", false, String(e)); }
    try {
      var again = await fetch(api, {cache: "no-cache"});
      var body = await again.json();
      row("GET again, cache: no-cache", again.ok, again.status + ", " + body.items.length +
          " items (the browser revalidated with If-None-Match; the network panel shows 304)");
    } catch (e) { row("GET again, cache: no-cache", false, String(e)); }
    try {
      var p = await fetch(api, {method: "PUT", headers: {"Content-Type": "application/json"},
                                body: JSON.stringify({name: "renamed", price: 1.5})});
      var echoed = await p.json();
      row("PUT (after a preflight)", p.ok, p.status + ", server read " + JSON.stringify(echoed.received));
    } catch (e) { row("PUT (after a preflight)", false, String(e)); }
    document.body.setAttribute("data-done", "1");
  }
  run();
})();
"""


class DemoApp:
    """The demo's WSGI callable.  ``middleware`` (set by :func:`make_application`)
    is the ResponseMiddleware around it, whose live config the index shows."""

    def __init__(self) -> None:
        self.middleware: Optional[ResponseMiddleware] = None

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/api/items":
            return self._items(environ, method, start_response)
        if method not in ("GET", "HEAD"):
            return _send(start_response, "405 Method Not Allowed", "text/plain; charset=utf-8",
                         b"method not allowed\n", [("Allow", "GET, HEAD")])
        if path == "/":
            return _send(start_response, "200 OK", "text/html; charset=utf-8", self._index(environ))
        if path == "/big":
            return _send(start_response, "200 OK", "text/html; charset=utf-8", _BIG_PAGE)
        if path == "/stream":
            return _stream(environ, start_response)
        if path == "/cors":
            return _send(start_response, "200 OK", "text/html; charset=utf-8", _cors_page())
        return _send(start_response, "404 Not Found", "text/plain; charset=utf-8", b"not found\n")

    def _items(self, environ: Dict[str, Any], method: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if method in ("GET", "HEAD"):
            return _send(start_response, "200 OK", "application/json", ITEMS_JSON)
        if method in ("PUT", "POST", "PATCH"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= _MAX_BODY:
                return _send(start_response, "413 Content Too Large", "application/json",
                             b'{"error": "send a JSON body of at most 64 KB"}')
            raw = environ["wsgi.input"].read(length) if length else b""
            try:
                received = json.loads(raw.decode("utf-8")) if raw else None
            except (UnicodeDecodeError, ValueError):
                return _send(start_response, "400 Bad Request", "application/json",
                             b'{"error": "the body is not JSON"}')
            answer = {"ok": True, "method": method, "received": received}
            return _send(start_response, "200 OK", "application/json", json.dumps(answer).encode("utf-8"))
        if method == "DELETE":
            return _send(start_response, "200 OK", "application/json", b'{"ok": true, "method": "DELETE"}')
        if method == "OPTIONS":  # not a preflight (those the middleware answers)
            return _send(start_response, "204 No Content", None, b"",
                         [("Allow", "GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS")])
        return _send(start_response, "405 Method Not Allowed", "text/plain; charset=utf-8",
                     b"method not allowed\n", [("Allow", "GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS")])

    def _index(self, environ: Dict[str, Any]) -> bytes:
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}"
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        hostname, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(hostname, "localhost")
        other_origin = f"http://{other}:{port}" if port else f"http://{other}"
        mw = self.middleware
        if mw is not None:
            config_rows = "\n".join(
                f"<tr><td><code>{html.escape(key)}</code></td><td><code>{html.escape(repr(value))}</code></td></tr>"
                for key, value in mw.config.items()
            )
            config = f"<p>Implementation: <strong>{html.escape(mw.implementation)}</strong></p>\n<table>{config_rows}</table>"
        else:
            config = "<p>(served without <code>asok-fast serve</code>: the server printed its config)</p>"
        q = html.escape
        body = f"""<h1>asok_fast demo</h1>
<p>Every response here goes through <code>ResponseMiddleware</code>: CORS with preflight,
compression (zstd, br or gzip: the first of the server's order that your browser accepts)
and MD5 ETags with <code>304 Not Modified</code>. Open your browser's network panel
and follow the links.</p>
<ul>
<li><a href="/api/items">/api/items</a>: ~1.4 KB of JSON, compressed, with an <code>ETag</code>;
reload it and the answer is <code>304</code>.</li>
<li><a href="/big">/big</a>: a ~150 KB HTML page; compare <code>Content-Length</code> with the page's size.</li>
<li><a href="/stream">/stream</a>: a slow stream, compressed chunk by chunk and flushed as it is made:
the lines appear one by one.</li>
<li><a href="/cors">/cors</a>: a page whose script calls this API on another origin
(<code>{q(other_origin)}</code>): a <code>GET</code>, the same <code>GET</code> revalidated
(<code>304</code>), and a <code>PUT</code> with its preflight.</li>
</ul>
<h2>From a terminal</h2>
<pre>
curl -sI --compressed {q(base)}/api/items            # Content-Encoding: zstd (a curl built with zstd), ETag, Vary
curl -sI -H 'Accept-Encoding: gzip' {q(base)}/api/items   # a gzip-only client: Content-Encoding: gzip
curl -s -o /dev/null -w '%{{http_code}}\\n' \\
     -H 'If-None-Match: "&lt;the ETag&gt;"' --compressed {q(base)}/api/items   # 304
curl -sN --compressed {q(base)}/stream                 # chunks arrive one by one
curl -si -X OPTIONS -H 'Origin: {q(other_origin)}' \\
     -H 'Access-Control-Request-Method: PUT' {q(base)}/api/items   # the preflight: 204
</pre>
<h2>Active configuration</h2>
{config}"""
        return _page("asok_fast demo", body)


def _send(
    start_response: Callable[..., Any],
    status: str,
    content_type: Optional[str],
    body: bytes,
    extra: Optional[Headers] = None,
) -> List[bytes]:
    headers: Headers = []
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if not status.startswith(("204", "304")):
        headers.append(("Content-Length", str(len(body))))
    if extra:
        headers.extend(extra)
    start_response(status, headers)
    return [body] if body else []


def _number(query: Mapping[str, List[str]], name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(query[name][0])
    except (KeyError, IndexError, ValueError):
        return default
    return min(max(value, low), high) if value == value else default  # NaN -> default


def _stream(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    chunks = int(_number(query, "chunks", 10, 1, 200))
    delay = _number(query, "delay", 0.4, 0.0, 5.0)
    # No Content-Length: a stream, never buffered by the middleware.
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
    return _stream_body(chunks, delay)


def _stream_body(chunks: int, delay: float) -> Iterator[bytes]:
    start = time.monotonic()
    yield (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>asok_fast demo: a stream</title></head><body>\n"
        "<h1>A slow stream</h1>\n"
        f"<p>{chunks} chunks, one every {delay:g} s. Each is compressed and flushed as the app "
        "yields it, so each line shows up when it is made, not at the end.</p>\n"
        '<p><a href="/">back to the index</a></p>\n'
    ).encode("utf-8")
    for i in range(1, chunks + 1):
        time.sleep(delay)
        yield f"<p>chunk {i} of {chunks} at {time.monotonic() - start:.2f} s</p>\n".encode("utf-8")
    yield b"<p>done.</p>\n</body></html>\n"


def _cors_page() -> bytes:
    body = """<h1>Cross-origin calls</h1>
<p>This page's script calls <code id="api">...</code>: another origin than this page's,
so the browser applies CORS. The middleware answers the <code>PUT</code>'s preflight with
<code>204</code> and echoes this page's origin in <code>Access-Control-Allow-Origin</code>.</p>
<table><thead><tr><th>call</th><th>result</th><th>details</th></tr></thead>
<tbody id="results"></tbody></table>
<p><a href="/">back to the index</a></p>"""
    return _page("asok_fast demo: cross-origin calls", body, _CORS_SCRIPT)


def make_application(config: Optional[Mapping[str, Any]] = None) -> ResponseMiddleware:
    """The demo wrapped by ResponseMiddleware: :data:`DEMO_CONFIG`, then ``config``."""
    demo = DemoApp()
    middleware = ResponseMiddleware(demo, {**DEMO_CONFIG, **(config or {})})
    demo.middleware = middleware
    return middleware


# For any WSGI server: ``gunicorn asok_fast._demo:application``.
application = make_application()
