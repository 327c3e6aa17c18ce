"""The traffic a profile-guided build of the compiled core learns from.

``setup.py`` builds ``asok_fast._core_c`` twice under GCC: once instrumented,
then, after this module has served its requests through that build, again with
``-fprofile-use``.  GCC then knows which branches a server takes: it lays the
hot path out contiguously and moves the rarely taken ones out of line, so the
per-request code touches fewer instruction-cache lines (callgrind with
``--cache-sim=yes``, ``PYTHONHASHSEED=0``, W5: 270 -> 154 L1i misses and
8,968 -> 8,639 instructions per request).  Behaviour does not change; the
profile only steers code layout and inlining.

The mix is the benchmark workloads W1..W6 (a JSON API answer, its 304, a large
HTML page, a preflight, a small text, an image) weighted like an API's traffic,
plus the other common paths, fewer times each: ``HEAD``, a client without
gzip, an origin that is not allowed, ``If-Modified-Since``, a framework-style
body with a declared length, a compressible stream, a wildcard CORS config and
a middleware with every feature off.  Paths it never takes are optimised as in
a plain build (``-fprofile-partial-training``).

    python -m asok_fast.benchmarks.training   # exits 1 unless the compiled core is in use
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from . import workloads as wl
from .stacks import _discard, _write


def _serve(app: Any, environ: Dict[str, Any], times: int) -> Tuple[str, List[Tuple[str, str]], int]:
    """``times`` requests as a server makes them; the first one's status, headers
    and body length."""
    seen: List[Any] = []

    def start_response(status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        seen[:] = [status, list(headers)]
        return _write

    length = 0
    for i in range(times):
        first = i == 0
        result = app(dict(environ) if first else environ, start_response if first else _discard)
        for chunk in result:
            if first:
                length += len(chunk)
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen[0], seen[1], length


class _Sized:
    """A body of known length that is not a list (Werkzeug's and Django's kind)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        pass


def _framework_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    ctype, body = wl.ROUTES[wl.by_id("W1").path]
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")])
    return _Sized(body)


def _stream_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    _, body = wl.ROUTES[wl.by_id("W3").path]
    return (body[i : i + 8192] for i in range(0, 65536, 8192))


def _dated_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    ctype, body = wl.ROUTES[wl.by_id("W1").path]
    start_response("200 OK", [("Content-Type", ctype), ("Last-Modified", "Tue, 24 Nov 2026 10:00:00 GMT")])
    return [body]


def train(scale: int = 1) -> Dict[str, Tuple[str, List[Tuple[str, str]], int]]:
    """Serve the mix; for each part, the first response's status, headers and
    body length (tests check that each part takes the path it is there for)."""
    from .. import ResponseMiddleware

    config = dict(wl.CONFIG)
    mw = ResponseMiddleware(wl.bare_app, config)
    w1 = wl.environ_for(wl.by_id("W1"))
    tag = dict(_serve(mw, w1, 1)[1]).get("ETag")
    parts = [
        # the six workloads, weighted like an API's traffic
        ("W1", mw, w1, 1500),
        ("W2", mw, wl.environ_for(wl.by_id("W2"), tag), 3000),
        ("W3", mw, wl.environ_for(wl.by_id("W3")), 20),
        ("W4", mw, wl.environ_for(wl.by_id("W4")), 3000),
        ("W5", mw, wl.environ_for(wl.by_id("W5")), 3000),
        ("W6", mw, wl.environ_for(wl.by_id("W6")), 100),
        # the other common paths
        ("head", mw, dict(w1, REQUEST_METHOD="HEAD"), 300),
        ("no gzip", mw, {k: v for k, v in w1.items() if k != "HTTP_ACCEPT_ENCODING"}, 300),
        ("other origin", mw, dict(w1, HTTP_ORIGIN="https://elsewhere.example.net"), 300),
        ("no origin", mw, {k: v for k, v in w1.items() if k != "HTTP_ORIGIN"}, 300),
        ("sized body", ResponseMiddleware(_framework_app, config), w1, 600),
        ("stream", ResponseMiddleware(_stream_app, config), w1, 30),
        ("if-modified-since", ResponseMiddleware(_dated_app, config),
         dict(w1, HTTP_IF_MODIFIED_SINCE="Wed, 25 Nov 2026 10:00:00 GMT"), 300),
        ("wildcard preflight", ResponseMiddleware(wl.bare_app, dict(config, CORS_ORIGINS="*")),
         wl.environ_for(wl.by_id("W4")), 300),
        ("wildcard", ResponseMiddleware(wl.bare_app, dict(config, CORS_ORIGINS="*")), w1, 300),
        ("features off", ResponseMiddleware(wl.bare_app, {"ETAG": False}), wl.environ_for(wl.by_id("W5")), 300),
    ]
    return {name: _serve(app, environ, times * scale) for name, app, environ, times in parts}


def main(argv: Optional[List[str]] = None) -> int:
    from .. import IMPLEMENTATION

    if IMPLEMENTATION != "compiled":
        print("asok_fast.benchmarks.training: the compiled core is not in use; nothing to train", file=sys.stderr)
        return 1
    parts = train()
    print(f"trained on {len(parts)} kinds of request through the compiled core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
