"""The benchmark workloads W1..W9: bodies, requests and configuration, defined once.

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
W7  json-fresh    W1 with a body different on every request
W8  html-fresh    W3 with a body different on every request
W9  html-fresh-br W8 for a client that accepts only ``br``
W10 api-json-gz   W1 for a client that accepts only ``gzip`` (repeated body)
W11 html-gz       W3 for a client that accepts only ``gzip`` (repeated body)
W12 json-fresh-gz W7 for a client that accepts only ``gzip`` (distinct bodies)
W13 html-fresh-gz W8 for a client that accepts only ``gzip`` (distinct bodies)
==  ============  ==========================================================

:data:`WORKLOADS` holds W1..W6 (the soak and load tests compare every answer
with the first of its kind), :data:`FRESH_WORKLOADS` W7..W9,
:data:`GZIP_CLIENT_WORKLOADS` W10..W13, and :data:`ALL_WORKLOADS` all of them:
what ``asok-fast bench`` and ``bench/`` run.

The browser's ``Accept-Encoding`` (``gzip, deflate, br, zstd``) makes asok_fast
send zstd with its default ``COMPRESS_CODINGS``; W9 shows brotli.

Why W7..W9: the cache of compressed bodies (on by default, SPEC
"Compressed-body cache") serves W1 and W3, whose body never changes, from
memory: on asok_fast's stacks they measure cache hits, not the coding.  A *fresh* body is the same page with a request number of fixed width
written into it (:class:`FreshBody`): the same size and shape every time, never
twice the same bytes, in every stack (the bare apps make it too, so it is not
part of anyone's overhead).

Why W10..W13 (issue 16): a client that takes only gzip (API clients, ``curl
--compressed``, many HTTP libraries) gets gzip from asok_fast's default
``COMPRESS_CODINGS``; the repeated bodies (W10, W11) measure the cache's hits
against the gzip-6 floor, the distinct ones (W12, W13) its misses against the
same stack with the cache off, and the ISA-L engine's gzip (W11, cache off).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = [
    "ACCEPT_ENCODING",
    "ALL_WORKLOADS",
    "FRESH_WORKLOADS",
    "GZIP_CLIENT_WORKLOADS",
    "GZIP_ONLY",
    "BR_ONLY",
    "CONFIG",
    "FRESH_ROUTES",
    "FreshBody",
    "GZIP_LEVEL",
    "GZIP_ONLY_CONFIG",
    "ZSTD_LEVEL",
    "BROTLI_LEVEL",
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
BR_ONLY = "br"  # W9: a client that takes brotli and nothing else
GZIP_ONLY = "gzip"  # W10..W13: a client that takes gzip and nothing else
GZIP_LEVEL = 6
ZSTD_LEVEL = 3  # asok_fast's defaults (and Flask-Compress's)
BROTLI_LEVEL = 4
GZIP_MIN_SIZE = 500

#: asok_fast's config in every stack that uses it (Asok's keys, Asok's names;
#: ``COMPRESS_CODINGS``, ``ZSTD_LEVEL`` and ``BROTLI_LEVEL`` at their defaults).
CONFIG: Dict[str, Any] = {
    "CORS_ORIGINS": list(ORIGINS),
    "GZIP": True,
    "GZIP_LEVEL": GZIP_LEVEL,
    "GZIP_MIN_SIZE": GZIP_MIN_SIZE,
    "ETAG": True,
}

#: The same with gzip alone: Asok's own behaviour, and asok_fast's before zstd and br.
GZIP_ONLY_CONFIG: Dict[str, Any] = {**CONFIG, "COMPRESS_CODINGS": ["gzip"]}

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


class FreshBody:
    """A body made anew for every call: ``head``, a request number of
    :attr:`DIGITS` decimal digits, ``tail``.  Always the same length; never the
    same bytes twice in a process (one counter, shared by every stack and
    thread: ``next()`` on an ``itertools.count`` is atomic under the GIL).
    """

    DIGITS = 12

    __slots__ = ("head", "tail", "length", "_counter")

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head = head
        self.tail = tail
        self.length = len(head) + self.DIGITS + len(tail)
        self._counter = itertools.count(1)

    def __call__(self) -> bytes:
        return b"%s%012d%s" % (self.head, next(self._counter), self.tail)

    def sample(self, number: int = 0) -> bytes:
        """The body with a given request number (the floors compress number 0)."""
        return b"%s%012d%s" % (self.head, number, self.tail)

    def matches(self, body: bytes) -> bool:
        """Whether ``body`` is one of this body's versions."""
        digits = body[len(self.head) : len(self.head) + self.DIGITS]
        return (
            len(body) == self.length
            and body.startswith(self.head)
            and body.endswith(self.tail)
            and digits.isdigit()
        )

    def appears_in(self, body: bytes) -> bool:
        """Whether ``body`` carries a request number between this body's
        neighbouring bytes (for a framework that rewrites the page around it)."""
        before, after = self.head[-24:], self.tail[:2]
        at = body.find(before)
        if at < 0:
            return False
        start = at + len(before)
        digits = body[start : start + self.DIGITS]
        return digits.isdigit() and body[start + self.DIGITS :].startswith(after) and body.endswith(self.tail[-64:])


def _fresh_json() -> FreshBody:
    """W7: W1's list with one more object, ``{"request":"<12 digits>"}``, at its end."""
    return FreshBody(_api_json()[:-1] + b',{"request":"', b'"}]')


def _fresh_html() -> FreshBody:
    """W8, W9: W3's page with the request number in a ``<meta>`` of its head."""
    page = _html_listing()
    cut = page.index(b"</head>")
    return FreshBody(page[:cut] + b'<meta name="request" content="', b'">\n' + page[cut:])


JSON_BODY = _api_json()
HTML_BODY = _html_listing()
TEXT_BODY = _small_text()
PNG_BODY = _png_noise()
FRESH_JSON = _fresh_json()
FRESH_HTML = _fresh_html()

API_PATH = "/api/items"
HTML_PATH = "/catalogue"
TEXT_PATH = "/robots.txt"
PNG_PATH = "/img/noise.png"
FRESH_API_PATH = "/api/items-fresh"
FRESH_HTML_PATH = "/catalogue-fresh"

#: path -> (Content-Type, body): what every app serves.
ROUTES: Dict[str, Tuple[str, bytes]] = {
    API_PATH: ("application/json", JSON_BODY),
    HTML_PATH: ("text/html; charset=utf-8", HTML_BODY),
    TEXT_PATH: ("text/plain; charset=utf-8", TEXT_BODY),
    PNG_PATH: ("image/png", PNG_BODY),
}
#: path -> (Content-Type, FreshBody): the routes whose body is new on every request.
FRESH_ROUTES: Dict[str, Tuple[str, FreshBody]] = {
    FRESH_API_PATH: ("application/json", FRESH_JSON),
    FRESH_HTML_PATH: ("text/html; charset=utf-8", FRESH_HTML),
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
    compressed: bool = False  # sent in a content coding the request accepts, decoding to the bare app's body
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
        return (ROUTES.get(self.path) or FRESH_ROUTES[self.path])[0]

    @property
    def fresh(self) -> Optional[FreshBody]:
        """The body maker of a workload whose body changes on every request (W7..W9)."""
        route = FRESH_ROUTES.get(self.path)
        return None if route is None or self.method == "OPTIONS" else route[1]

    @property
    def body(self) -> bytes:
        """The body the app sends (the bare answer; empty for a preflight; for a
        fresh workload, its version number 0: what the floors compress)."""
        if self.method == "OPTIONS":
            return b""
        fresh = self.fresh
        return fresh.sample() if fresh is not None else ROUTES[self.path][1]

    @property
    def accept_encoding(self) -> str:
        return self.headers.get("Accept-Encoding", "")

    def body_ok(self, body: bytes) -> bool:
        """Whether ``body`` is what the bare app sends (any version, when fresh)."""
        fresh = self.fresh
        return fresh.matches(body) if fresh is not None else body == self.body


_BROWSER = {"Accept-Encoding": ACCEPT_ENCODING}

WORKLOADS: Tuple[Workload, ...] = (
    Workload(
        "W1",
        "api-json",
        f"GET {API_PATH}: {len(JSON_BODY)} B application/json, allowed Origin: CORS + ETag + gzip",
        "GET",
        API_PATH,
        {**_BROWSER, "Accept": "application/json", "Origin": ORIGIN},
        compressed=True,
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
        compressed=True,
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

#: W7..W9: a new body on every request, so two answers are never equal (kept
#: apart from :data:`WORKLOADS`, whose users compare each answer with the first).
FRESH_WORKLOADS: Tuple[Workload, ...] = (
    Workload(
        "W7",
        "json-fresh",
        f"GET {FRESH_API_PATH}: W1 with a new request number in its body every time ({FRESH_JSON.length} B)",
        "GET",
        FRESH_API_PATH,
        {**_BROWSER, "Accept": "application/json", "Origin": ORIGIN},
        compressed=True,
        cors=True,
        compresses=True,
    ),
    Workload(
        "W8",
        "html-fresh",
        f"GET {FRESH_HTML_PATH}: W3 with a new request number in its body every time ({FRESH_HTML.length} B)",
        "GET",
        FRESH_HTML_PATH,
        {**_BROWSER, "Accept": "text/html", "Cookie": f"asok_csrf={ASOK_CSRF_TOKEN}"},
        compressed=True,
        compresses=True,
    ),
    Workload(
        "W9",
        "html-fresh-br",
        f"W8 for a client that sends Accept-Encoding: {BR_ONLY}",
        "GET",
        FRESH_HTML_PATH,
        {"Accept-Encoding": BR_ONLY, "Accept": "text/html", "Cookie": f"asok_csrf={ASOK_CSRF_TOKEN}"},
        compressed=True,
        compresses=True,
    ),
)


def _for_gzip_client(source: Workload, new_id: str, name: str, what: str) -> Workload:
    """``source`` as a client that sends ``Accept-Encoding: gzip`` asks for it."""
    return Workload(
        new_id,
        name,
        f"{source.id} for a client that sends Accept-Encoding: {GZIP_ONLY} ({what})",
        source.method,
        source.path,
        {**source.headers, "Accept-Encoding": GZIP_ONLY},
        status=source.status,
        compressed=source.compressed,
        etag=source.etag,
        cors=source.cors,
        revalidate=source.revalidate,
        hashes=source.hashes,
        compresses=source.compresses,
    )


#: W10..W13: W1, W3, W7 and W8 for a client that accepts only gzip (issue 16:
#: the compressed-body cache's hits on the repeated bodies, its misses on the
#: distinct ones, the ISA-L engine).
GZIP_CLIENT_WORKLOADS: Tuple[Workload, ...] = (
    _for_gzip_client(WORKLOADS[0], "W10", "api-json-gz", "the same body every time: cache hits"),
    _for_gzip_client(WORKLOADS[2], "W11", "html-gz", "the same body every time: cache hits"),
    _for_gzip_client(FRESH_WORKLOADS[0], "W12", "json-fresh-gz", "a new body every time: cache misses"),
    _for_gzip_client(FRESH_WORKLOADS[1], "W13", "html-fresh-gz", "a new body every time: cache misses"),
)

#: Every workload the benchmarks run.
ALL_WORKLOADS: Tuple[Workload, ...] = WORKLOADS + FRESH_WORKLOADS + GZIP_CLIENT_WORKLOADS


def by_id(workload_id: str) -> Workload:
    for workload in ALL_WORKLOADS:
        if workload.id == workload_id.upper():
            return workload
    raise KeyError(f"no workload {workload_id!r}; known: {', '.join(w.id for w in ALL_WORKLOADS)}")


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
_FRESH_HEADERS = {path: (ctype, make, str(make.length)) for path, (ctype, make) in FRESH_ROUTES.items()}


def bare_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The bare WSGI app every asok_fast stack wraps: a route table, nothing else
    (a fresh route makes its body per request).

    ``OPTIONS`` is answered ``204`` with ``Allow`` (what a framework does when
    no CORS layer intercepts the preflight).
    """
    route = _ROUTE_HEADERS.get(environ["PATH_INFO"])
    if route is None:
        fresh = _FRESH_HEADERS.get(environ["PATH_INFO"])
        if fresh is None:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
            return [b"not found"]
        if environ["REQUEST_METHOD"] == "OPTIONS":
            start_response("204 No Content", [("Allow", ALLOW)])
            return []
        ctype, make, length = fresh
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", length)])
        return [make()]
    if environ["REQUEST_METHOD"] == "OPTIONS":
        start_response("204 No Content", [("Allow", ALLOW)])
        return []
    ctype, body, length = route
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", length)])
    return [body]
