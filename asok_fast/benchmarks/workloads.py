"""The benchmark workloads W1..W6: bodies, requests and configuration, defined once.

Every stack (the bare app, asok_fast on either core, the Flask, Django and Asok
anchors, the pytest-benchmark files and the wrk script) serves these bodies for
these requests, so their times compare.  Bodies are deterministic: they are
built from fixed seeds with no dependence on the Python version, so two runs
(and two machines) hash and compress the same bytes.

==  ============  ==========================================================
W1  api-json      GET, ~1.4 KB JSON list of 20 objects, allowed ``Origin``:
                  CORS + ETag + gzip
W2  revalidate    W1 plus ``If-None-Match`` with the tag the stack returned
                  for W1: ``304``
W3  html-140k     GET, ~140 KB HTML listing, no ``Origin``: gzip + ETag
W4  preflight     OPTIONS with ``Origin`` and ``Access-Control-Request-*``
W5  small-text    GET, 100 B ``text/plain`` (below ``GZIP_MIN_SIZE``): ETag only
W6  png-20k       GET, 20 KB ``image/png`` of random bytes: ETag, never gzip
==  ============  ==========================================================
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = [
    "ACCEPT_ENCODING",
    "CONFIG",
    "GZIP_LEVEL",
    "ORIGIN",
    "ORIGINS",
    "ROUTES",
    "WORKLOADS",
    "Workload",
    "bare_app",
    "by_id",
    "environ_for",
    "request_headers",
]

# --- configuration (one for every workload and every stack) ---------------------

ORIGINS: Tuple[str, str] = ("https://app.example.com", "https://admin.example.com")
ORIGIN = ORIGINS[0]  # the allowed origin W1, W2 and W4 send
ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what a current browser sends
GZIP_LEVEL = 6
GZIP_MIN_SIZE = 500

#: asok_fast's config in every stack that uses it (Asok's keys, Asok's names).
CONFIG: Dict[str, Any] = {
    "CORS_ORIGINS": list(ORIGINS),
    "GZIP": True,
    "GZIP_LEVEL": GZIP_LEVEL,
    "GZIP_MIN_SIZE": GZIP_MIN_SIZE,
    "ETAG": True,
}

# A valid Asok CSRF token, sent back as its cookie on W3 so that Asok renders the
# same HTML bytes on every request (see stacks.py); other stacks ignore it.
ASOK_CSRF_TOKEN = "0123456789abcdef" * 4


# --- deterministic bodies -------------------------------------------------------------


def _noise(size: int, seed: bytes) -> bytes:
    """``size`` incompressible bytes: SHA-256 in counter mode (stable everywhere)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


class _Lcg:
    """A tiny linear congruential generator: the same sequence on every Python."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFF

    def next(self, bound: int) -> int:
        self.state = (1103515245 * self.state + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % bound


def _api_json() -> bytes:
    """W1: a JSON list of 20 small objects, ~1.4 KB, compact separators."""
    rng = _Lcg(1)
    items = [
        {
            "id": i,
            "name": f"Product {i:03d}",
            "price": rng.next(10000) / 100,
            "stock": rng.next(250),
            "active": rng.next(4) != 0,
        }
        for i in range(1, 21)
    ]
    return json.dumps(items, separators=(",", ":")).encode("ascii")


_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
    "widget gadget sprocket bracket flange gasket bearing spindle lever valve"
).split()
_CATEGORIES = ("hardware", "garden", "kitchen", "office", "outdoor", "tools", "lighting")


def _html_listing(target: int = 140_000) -> bytes:
    """W3: an HTML product listing of ~140 KB (rows until ``target`` bytes)."""
    rng = _Lcg(3)
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Catalogue</title>\n</head>\n<body>\n<main>\n<h1>Catalogue</h1>\n"
        '<table class="listing">\n<thead><tr><th>#</th><th>Product</th><th>Category</th>'
        "<th>Price</th><th>Stock</th></tr></thead>\n<tbody>\n"
    )
    tail = "</tbody>\n</table>\n</main>\n</body>\n</html>\n"
    rows: List[str] = []
    size = len(head) + len(tail)
    i = 0
    while True:
        i += 1
        name = f"{_WORDS[rng.next(len(_WORDS))].title()} {_WORDS[rng.next(len(_WORDS))]} {rng.next(1000)}"
        stock = rng.next(120)
        row = (
            f'<tr id="p{i}"><td>{i}</td><td><a href="/products/{i}">{name}</a></td>'
            f"<td>{_CATEGORIES[rng.next(len(_CATEGORIES))]}</td>"
            f"<td>{rng.next(100000) / 100:.2f}</td>"
            f'<td class="{"in" if stock else "out"}">{stock or "sold out"}</td></tr>\n'
        )
        if size + len(row) > target:
            break
        rows.append(row)
        size += len(row)
    return (head + "".join(rows) + tail).encode("ascii")


def _small_text() -> bytes:
    """W5: exactly 100 bytes of text/plain."""
    text = "User-agent: *\nDisallow: /admin/\nDisallow: /api/\nSitemap: https://app.example.com/sitemap.xml\n"
    return (text + "#" * 100)[:99].encode("ascii") + b"\n"


def _png_noise(size: int = 20 * 1024) -> bytes:
    """W6: 20 KB served as image/png: a PNG signature and random bytes."""
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + _noise(size - len(signature), b"asok_fast W6")


JSON_BODY = _api_json()
HTML_BODY = _html_listing()
TEXT_BODY = _small_text()
PNG_BODY = _png_noise()

API_PATH = "/api/items"
HTML_PATH = "/catalogue"
TEXT_PATH = "/robots.txt"
PNG_PATH = "/img/noise.png"

#: path -> (Content-Type, body): what every app serves.
ROUTES: Dict[str, Tuple[str, bytes]] = {
    API_PATH: ("application/json", JSON_BODY),
    HTML_PATH: ("text/html; charset=utf-8", HTML_BODY),
    TEXT_PATH: ("text/plain; charset=utf-8", TEXT_BODY),
    PNG_PATH: ("image/png", PNG_BODY),
}
ALLOW = "GET, HEAD, OPTIONS"


# --- workloads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One request shape and what a stack doing its job must do with it."""

    id: str
    name: str
    description: str
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)  # request headers, HTTP names
    # What the answer must show (the anchors' checks read these):
    status: int = 200
    gzip: bool = False  # gzip-encoded, decoding to the bare app's body
    etag: bool = True  # carries an ETag
    cors: bool = False  # carries Access-Control-Allow-Origin for ORIGIN
    revalidate: bool = False  # W2: If-None-Match is added per stack from its W1 tag
    # The C-work floor: what the core must do in C for this request.
    hashes: bool = True
    compresses: bool = False

    @property
    def label(self) -> str:
        return f"{self.id} {self.name}"

    @property
    def content_type(self) -> str:
        return ROUTES[self.path][0]

    @property
    def body(self) -> bytes:
        """The body the app sends (the bare answer; empty for a preflight)."""
        return b"" if self.method == "OPTIONS" else ROUTES[self.path][1]


_BROWSER = {"Accept-Encoding": ACCEPT_ENCODING}

WORKLOADS: Tuple[Workload, ...] = (
    Workload(
        "W1",
        "api-json",
        f"GET {API_PATH}: {len(JSON_BODY)} B application/json, allowed Origin: CORS + ETag + gzip",
        "GET",
        API_PATH,
        {**_BROWSER, "Accept": "application/json", "Origin": ORIGIN},
        gzip=True,
        cors=True,
        compresses=True,
    ),
    Workload(
        "W2",
        "revalidate",
        "W1 + If-None-Match with the tag the stack returned for W1: 304",
        "GET",
        API_PATH,
        {**_BROWSER, "Accept": "application/json", "Origin": ORIGIN},
        status=304,
        cors=True,
        revalidate=True,
    ),
    Workload(
        "W3",
        "html-140k",
        f"GET {HTML_PATH}: {len(HTML_BODY)} B text/html, no Origin: gzip + ETag",
        "GET",
        HTML_PATH,
        {**_BROWSER, "Accept": "text/html", "Cookie": f"asok_csrf={ASOK_CSRF_TOKEN}"},
        gzip=True,
        compresses=True,
    ),
    Workload(
        "W4",
        "preflight",
        f"OPTIONS {API_PATH}, Origin, Access-Control-Request-Method: PUT, -Headers: content-type",
        "OPTIONS",
        API_PATH,
        {
            **_BROWSER,
            "Accept": "*/*",
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
        status=204,
        etag=False,
        cors=True,
        hashes=False,
    ),
    Workload(
        "W5",
        "small-text",
        f"GET {TEXT_PATH}: {len(TEXT_BODY)} B text/plain (below GZIP_MIN_SIZE): ETag only",
        "GET",
        TEXT_PATH,
        {**_BROWSER, "Accept": "text/plain"},
    ),
    Workload(
        "W6",
        "png-20k",
        f"GET {PNG_PATH}: {len(PNG_BODY)} B image/png of random bytes: ETag, never gzip",
        "GET",
        PNG_PATH,
        {**_BROWSER, "Accept": "image/png"},
    ),
)


def by_id(workload_id: str) -> Workload:
    for workload in WORKLOADS:
        if workload.id == workload_id.upper():
            return workload
    raise KeyError(f"no workload {workload_id!r}; known: {', '.join(w.id for w in WORKLOADS)}")


def request_headers(workload: Workload, if_none_match: Optional[str] = None) -> Dict[str, str]:
    """The request headers as HTTP names (for wrk and http.client)."""
    headers = dict(workload.headers)
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    return headers


def environ_for(workload: Workload, if_none_match: Optional[str] = None) -> Dict[str, Any]:
    """A complete PEP 3333 environ for one request of ``workload``."""
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": workload.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": workload.path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),  # GET/OPTIONS: nothing is read
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request_headers(workload, if_none_match).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


# --- the bare app -------------------------------------------------------------------------

_ROUTE_HEADERS = {path: (ctype, body, str(len(body))) for path, (ctype, body) in ROUTES.items()}


def bare_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The bare WSGI app every asok_fast stack wraps: a route table, nothing else.

    ``OPTIONS`` is answered ``204`` with ``Allow`` (what a framework does when
    no CORS layer intercepts the preflight).
    """
    route = _ROUTE_HEADERS.get(environ["PATH_INFO"])
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]
    if environ["REQUEST_METHOD"] == "OPTIONS":
        start_response("204 No Content", [("Allow", ALLOW)])
        return []
    ctype, body, length = route
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", length)])
    return [body]
