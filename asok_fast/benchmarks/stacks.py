"""What the benchmarks measure: stacks, each able to serve the workloads and prove it did its work.

A *stack* is a WSGI callable (or, for the floor, a piece of bare C work) plus
what it claims to do.  Each stack but the bare ones names its ``bare`` stack (the
same framework's app without the features), and its overhead is its time minus
that bare stack's time on the same workload:

=============================  =========  ================================================
stack id                       framework  what it is
=============================  =========  ================================================
``bare``                       wsgi       :func:`.workloads.bare_app`, a route table
``floor``                      wsgi       the C work through Python's bindings:
                                          ``hashlib.md5`` of the body, plus
                                          ``zlib.compressobj(6, DEFLATED, 31)`` compress +
                                          flush where the workload compresses (the
                                          gzip-6 floor the targets divide by)
``floor-zstd``                 wsgi       the same with zstd level 3 through one reused
                                          ``ZstdCompressor`` (the binding's cheapest way)
``floor-br``                   wsgi       the same with ``brotli.compress(quality=4)``
``compiled`` / ``python``      wsgi       ``ResponseMiddleware(bare_app)`` bound to
                                          ``_core_c`` / ``_core_py`` (default codings:
                                          zstd, br, gzip)
``compiled-gzip``              wsgi       ``compiled`` with ``COMPRESS_CODINGS = ["gzip"]``
                                          (Asok's behaviour, and asok_fast's before zstd)
``compiled-nocache``           wsgi       ``compiled`` with ``COMPRESS_CACHE_SIZE = 0``:
                                          the compressed-body cache off (``compiled``
                                          and ``python`` have it on, the default)
``compiled-isal``              wsgi       ``compiled`` with ``GZIP_ENGINE = "isal"``
                                          (``ISAL_LEVEL`` 1) and the cache off, so that
                                          ISA-L compresses every request; gzip-only
                                          clients (W10..W13) only
``flask``                      flask      a bare Flask app serving the same routes
``flask+ext``                  flask      + Flask-Compress (its default codings zstd, br,
                                          gzip, deflate: zstd for a browser), Flask-CORS
                                          and Werkzeug's ``add_etag`` + ``make_conditional``
``flask+asok_fast``            flask      the bare Flask app wrapped by ResponseMiddleware
``django``                     django     a bare Django project (CommonMiddleware only,
                                          as ``startproject`` leaves it)
``django+mw``                  django     + CorsMiddleware, GZipMiddleware,
                                          ConditionalGetMiddleware
``django+asok_fast``           django     the bare Django app wrapped by ResponseMiddleware
``django-nocommon``            django     a Django project without any middleware: its
                                          bodies carry no Content-Length
``django-nocommon+asok_fast``  django     that app wrapped by ResponseMiddleware
``asok``                       asok       a real Asok 0.8 project (``asok create``), GZIP
                                          and CORS_ORIGINS off
``asok+gzip+cors``             asok       the same project with GZIP and CORS_ORIGINS on
=============================  =========  ================================================

The ``*+asok_fast`` stacks run the core the package selects
(``asok_fast.IMPLEMENTATION``: what a user of that framework gets); ``compiled``
and ``python`` put the two twins side by side.  Anchors are built only when their
packages import (the ``bench`` extra).
Before a stack is timed on a workload, :meth:`Stack.prepare` sends the request
once and checks the answer for what the stack claims (a coding the request
accepts, the one asok_fast's negotiation picks for its stacks, that decodes to
the bare body; an ETag, a ``304`` on W2, the CORS headers): a stack that
silently skips work would look fast.  On W7..W9 it sends the request twice and
checks that the two bodies differ: a stack that served a remembered body would
look fast too.

The compressed-body cache is on by default, so ``compiled``, ``python`` and the
``*+asok_fast`` stacks serve W1, W3, W10 and W11 (the same body every time)
from it after the body's second appearance (the check's request and the
calibration's warm-up make it so before timing starts); W7..W9, W12 and W13
never hit it.
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import importlib
import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

try:  # Python 3.14
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    try:
        from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef]
    except ImportError:
        _zstd = None
try:
    import brotli as _brotli
except ImportError:
    _brotli = None

from .. import _core, _core_py
from .._shared import CODINGS as DEFAULT_CODINGS
from ..middleware import ResponseMiddleware
from . import workloads as wl
from .workloads import ALL_WORKLOADS, BROTLI_LEVEL, CONFIG, GZIP_LEVEL, ORIGIN, ZSTD_LEVEL, Workload

__all__ = [
    "CheckFailed",
    "FLOORS",
    "check",
    "decode",
    "gzip6",
    "Cell",
    "Response",
    "Stack",
    "FRAMEWORK_STACKS",
    "WRAPPED",
    "build_stacks",
    "fetch",
    "isal_stack",
    "ISAL_CONFIG",
    "NOCACHE_CONFIG",
    "load_frameworks",
    "middleware_stack",
    "set_clock",
    "twins",
    "why_unavailable",
    "wrapped_stack",
]

WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Features a stack can claim (what its check demands).
COMPRESS, ETAG, CORS = "compress", "etag", "cors"
ALL_FEATURES: FrozenSet[str] = frozenset({COMPRESS, ETAG, CORS})

#: Floor stack id -> the coding it compresses with (the C-work floors).
FLOORS: Dict[str, str] = {"floor": "gzip", "floor-zstd": "zstd", "floor-br": "br"}


def decode(coding: str, data: bytes) -> bytes:
    """``data`` decoded from ``coding`` by the reference decoders."""
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "zstd":
        if _zstd is None:
            raise CheckFailed("zstd body, and no zstd module to decode it")
        return _zstd.decompress(data)  # type: ignore[no-any-return]
    if coding == "br":
        if _brotli is None:
            raise CheckFailed("br body, and no brotli module to decode it")
        return _brotli.decompress(data)  # type: ignore[no-any-return]
    raise CheckFailed(f"unexpected Content-Encoding {coding!r}")


def gzip6(data: bytes) -> bytes:
    """``data`` as the gzip-6 floor compresses it (the size the targets compare with)."""
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def accepted_codings(accept_encoding: str) -> FrozenSet[str]:
    """The codings a request's ``Accept-Encoding`` does not refuse (enough for
    the workloads' plain lists: no ``*``, no ``q=0``)."""
    out = set()
    for item in accept_encoding.split(","):
        token = item.split(";", 1)[0].strip().lower()
        if token:
            out.add("gzip" if token == "x-gzip" else token)
    return frozenset(out)


class CheckFailed(AssertionError):
    """A stack's answer does not show the work it claims to do."""


# --- the two twins ------------------------------------------------------------------------


def twins() -> Tuple[Dict[str, types.ModuleType], Dict[str, str]]:
    """The cores to measure side by side, ``{"compiled": _core_c, "python": _core_py}``,
    and ``{"compiled": why it is missing}`` when it is.

    With ``ASOK_FAST_NO_EXTENSIONS`` set the compiled twin is not imported at all.
    """
    compiled, why = _core.find_compiled()
    if compiled is None:
        return {"python": _core_py}, {"compiled": f"compiled core not loaded ({why})"}
    return {"compiled": compiled, "python": _core_py}, {}


# --- calling a WSGI app once ------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """The header's values joined by ``", "`` (RFC 9110 5.3), or None."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> List[str]:
        value = self.header(name)
        return [t.strip().lower() for t in value.split(",")] if value else []


def fetch(app: WSGIApp, environ: Dict[str, Any]) -> Response:
    """One request through ``app``, as a server would run it."""
    captured: List[Any] = []

    def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured[:] = [status, list(headers)]
        return lambda data: None

    result = app(dict(environ), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not captured:
        raise CheckFailed("start_response was never called")
    return Response(int(captured[0].split()[0]), captured[1], body)


def _write(data: bytes) -> None:
    pass


def _discard(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return _write


#: The clock of every timer made from now on (see :func:`set_clock`).
_CLOCKS: Dict[str, Callable[[], int]] = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}
_clock: Callable[[], int] = time.perf_counter_ns


def set_clock(name: str) -> None:
    """``"cpu"``: the serving thread's CPU time (``CLOCK_THREAD_CPUTIME_ID``), which
    time slices lost to other processes on a shared machine do not inflate;
    ``"wall"``: ``perf_counter``.  Applies to cells prepared afterwards."""
    global _clock
    _clock = _CLOCKS[name]


def _wsgi_timer(app: WSGIApp, environ: Dict[str, Any], copy: bool) -> Callable[[int], int]:
    """``run(n)``: ns for ``n`` requests, each body iterated and closed as a server does.

    ``copy``: hand each request a fresh copy of the environ (frameworks write
    into it); the bare app and ResponseMiddleware do not, so they share one.
    """
    repeat = itertools.repeat
    perf = _clock
    start_response = _discard

    if copy:

        def run(n: int) -> int:
            t0 = perf()
            for _ in repeat(None, n):
                result = app(environ.copy(), start_response)
                for _chunk in result:
                    pass
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            return perf() - t0

    else:

        def run(n: int) -> int:
            t0 = perf()
            for _ in repeat(None, n):
                result = app(environ, start_response)
                for _chunk in result:
                    pass
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            return perf() - t0

    return run


def _compressor(coding: str) -> Callable[[bytes], bytes]:
    """One body in ``coding`` through the binding's cheapest call (the floors)."""
    if coding == "gzip":
        compressobj = zlib.compressobj
        deflated = zlib.DEFLATED

        def gzip_6(body: bytes) -> bytes:
            c = compressobj(GZIP_LEVEL, deflated, 31)
            return c.compress(body) + c.flush()

        return gzip_6
    if coding == "zstd":
        if _zstd is None:
            raise LookupError("no zstd module (pip install backports.zstd)")
        reused = _zstd.ZstdCompressor(level=ZSTD_LEVEL)  # a context made once, as asok_fast pools them
        frame = _zstd.ZstdCompressor.FLUSH_FRAME

        def zstd_3(body: bytes) -> bytes:
            return reused.compress(body, frame)  # type: ignore[no-any-return]

        return zstd_3
    if coding == "br":
        if _brotli is None:
            raise LookupError("no brotli module (pip install brotli)")
        compress = _brotli.compress

        def brotli_4(body: bytes) -> bytes:
            return compress(body, quality=BROTLI_LEVEL)  # type: ignore[no-any-return]

        return brotli_4
    raise ValueError(f"no floor for coding {coding!r}")


def _floor_timer(body: bytes, compresses: bool, coding: str = "gzip") -> Callable[[int], int]:
    """``run(n)``: ns for ``n`` times the C work through Python's own bindings."""
    repeat = itertools.repeat
    perf = _clock
    md5 = hashlib.md5

    if compresses:
        squeeze = _compressor(coding)

        def run(n: int) -> int:
            t0 = perf()
            for _ in repeat(None, n):
                md5(body).hexdigest()
                squeeze(body)
            return perf() - t0

    else:

        def run(n: int) -> int:
            t0 = perf()
            for _ in repeat(None, n):
                md5(body).hexdigest()
            return perf() - t0

    return run


def _wsgi_caller(app: WSGIApp, environ: Dict[str, Any], copy: bool) -> Callable[[], None]:
    """One request, as :func:`_wsgi_timer` makes them, untimed."""
    start_response = _discard

    def call() -> None:
        result = app(environ.copy() if copy else environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()

    return call


def _floor_caller(body: bytes, compresses: bool, coding: str = "gzip") -> Callable[[], None]:
    md5 = hashlib.md5
    squeeze = _compressor(coding) if compresses else None

    def call() -> None:
        md5(body).hexdigest()
        if squeeze is not None:
            squeeze(body)

    return call


# --- stacks and cells -------------------------------------------------------------------------


@dataclass
class Cell:
    """One stack on one workload, checked and ready to time."""

    stack: "Stack"
    workload: Workload
    run: Callable[[int], int]  # run(n) -> ns for n requests
    call: Callable[[], None]  # one request, untimed (for pytest-benchmark)
    environ: Optional[Dict[str, Any]] = None
    response: Optional[Response] = None
    info: Dict[str, Any] = field(default_factory=dict)  # bytes_out, coding, gzip6_out

    @property
    def key(self) -> Tuple[str, str]:
        return (self.stack.id, self.workload.id)


@dataclass
class Stack:
    """A WSGI stack (or the floor) and what it claims to do."""

    id: str
    framework: str  # "wsgi", "flask", "django", "asok"
    role: str  # "bare", "floor", "middleware", "anchor"
    label: str
    app: Optional[WSGIApp] = None
    claims: FrozenSet[str] = frozenset()
    copy_environ: bool = True
    skip: Dict[str, str] = field(default_factory=dict)  # workload id -> why not measured
    bare: Optional["Stack"] = None  # the same framework's bare app (None for a bare one)
    # asok_fast's COMPRESS_CODINGS for its stacks (the check then demands the
    # coding its negotiation picks); None: any coding the request accepts.
    codings: Optional[Tuple[str, ...]] = None
    _prepared: Dict[str, Cell] = field(default_factory=dict, repr=False)

    def not_applicable(self, workload: Workload) -> Optional[str]:
        if self.role == "floor" and not (workload.hashes or workload.compresses):
            return "no C work: a preflight hashes and compresses nothing"
        if self.role == "floor" and self.id != "floor" and not workload.compresses:
            return "nothing to compress: the MD5 floor is floor's"
        return self.skip.get(workload.id)

    def environ(self, workload: Workload) -> Dict[str, Any]:
        """The request this stack is timed on (W2: carrying its own W1 tag)."""
        if not workload.revalidate:
            return wl.environ_for(workload)
        return wl.environ_for(workload, if_none_match=self._w1_tag())

    def _w1_tag(self) -> str:
        w1 = wl.by_id("W1")
        if self.role == "bare" or self.app is None:
            # Bare apps ignore it; send what asok_fast would have given.
            return f'"{hashlib.md5(w1.body).hexdigest()}-zstd"'
        tag = fetch(self.app, wl.environ_for(w1)).header("ETag")
        if tag is None:
            raise CheckFailed(f"{self.id}: no ETag on W1, so W2 has no tag to send")
        return tag

    def prepare(self, workload: Workload) -> Cell:
        """Check this stack on ``workload`` and return its timed cell (cached)."""
        cell = self._prepared.get(workload.id)
        if cell is not None:
            return cell
        reason = self.not_applicable(workload)
        if reason:
            raise LookupError(reason)
        if self.role == "floor":
            cell = self._prepare_floor(workload)
        else:
            assert self.app is not None
            environ = self.environ(workload)
            response = fetch(self.app, environ)
            try:
                decoded = self._check(workload, response)
                if workload.fresh is not None:
                    again = fetch(self.app, environ)
                    if self._check(workload, again) == decoded:
                        raise CheckFailed("two requests gave the same body: the workload needs a new one every time")
            except CheckFailed as exc:
                raise CheckFailed(f"{self.id} on {workload.id}: {exc}") from None
            cell = Cell(
                self,
                workload,
                _wsgi_timer(self.app, environ, self.copy_environ),
                _wsgi_caller(self.app, environ, self.copy_environ),
                environ,
                response,
            )
            cell.info["bytes_out"] = len(response.body)
            coding = (response.header("Content-Encoding") or "identity").lower()
            if coding != "identity" and decoded is not None:
                # The gzip-6 floor's size for the very body this answer carries.
                cell.info["coding"] = coding
                cell.info["gzip6_out"] = len(gzip6(decoded))
        self._prepared[workload.id] = cell
        return cell

    def _prepare_floor(self, workload: Workload) -> Cell:
        body = workload.body
        coding = FLOORS.get(self.id, "gzip")
        cell = Cell(self, workload, _floor_timer(body, workload.compresses, coding), _floor_caller(body, workload.compresses, coding))
        if workload.compresses:
            compressed = _compressor(coding)(body)
            if decode(coding, compressed) != body:
                raise CheckFailed(f"{self.id}: {coding} output does not decode to the body")
            cell.info["bytes_out"] = len(compressed)
            cell.info["coding"] = coding
            cell.info["gzip6_out"] = len(gzip6(body))
        return cell

    # -- checks --------------------------------------------------------------------------

    def reference_body(self, workload: Workload) -> bytes:
        """What the bare app of this framework sends for ``workload`` (W2: for W1)."""
        if self.bare is None:
            return workload.body
        source = wl.by_id("W1") if workload.revalidate else workload
        return fetch(self.bare.app, wl.environ_for(source)).body  # type: ignore[arg-type]

    def expected_coding(self, workload: Workload) -> Optional[str]:
        """The coding asok_fast's negotiation picks for ``workload`` (asok_fast stacks only)."""
        if self.codings is None:
            return None
        return _core_py.negotiate(workload.accept_encoding, self.codings)

    def _check(self, workload: Workload, response: Response) -> Optional[bytes]:
        reference = None
        if self.role != "bare" and workload.method != "OPTIONS" and not workload.revalidate and workload.fresh is None:
            reference = self.reference_body(workload)
        return check(
            workload,
            response,
            self.claims,
            reference,
            bare=self.role == "bare",
            exact_body=self.framework != "asok",
            coding=self.expected_coding(workload),
        )


def check(
    workload: Workload,
    response: Response,
    claims: FrozenSet[str],
    reference: Optional[bytes],
    bare: bool = False,
    exact_body: bool = True,
    coding: Optional[str] = None,
) -> Optional[bytes]:
    """Raise :class:`CheckFailed` unless ``response`` shows the work ``claims`` says;
    return the body as the app sent it (decoded), or None where there is none.

    ``reference``: the body the same framework's bare app sends (what a
    compressed body must decode to; None: the workload's, any version of it on
    W7..W9); ``bare``: only check that a bare app served the workload
    (``exact_body``: byte for byte; Asok rewrites HTML, so not for Asok);
    ``coding``: the coding the answer must carry (else any the request accepts).
    """
    if bare:
        return _check_bare(workload, response, exact_body)
    if workload.method == "OPTIONS":
        _check_preflight(response)
        return None
    expected_status = 304 if workload.revalidate else 200
    if response.status != expected_status:
        raise CheckFailed(f"status {response.status}, expected {expected_status}")
    if ETAG in claims and workload.etag and not response.header("ETag"):
        raise CheckFailed("no ETag")
    if CORS in claims and workload.cors:
        if response.header("Access-Control-Allow-Origin") != ORIGIN:
            raise CheckFailed(f"Access-Control-Allow-Origin is {response.header('Access-Control-Allow-Origin')!r}")
    if workload.revalidate:
        if response.body:
            raise CheckFailed(f"a 304 with {len(response.body)} body bytes")
        return None

    def same(body: bytes) -> bool:
        if reference is not None:
            return body == reference
        if not exact_body:  # Asok rewrites HTML (a CSRF <meta>, a page id): find the request number
            return workload.fresh is not None and workload.fresh.appears_in(body)
        return workload.body_ok(body)

    encoding = (response.header("Content-Encoding") or "identity").lower()
    if workload.compressed and COMPRESS in claims:
        accepted = accepted_codings(workload.accept_encoding)
        if coding is not None and encoding != coding:
            raise CheckFailed(f"Content-Encoding {encoding!r}, expected {coding}")
        if encoding not in accepted:
            raise CheckFailed(f"Content-Encoding {encoding!r}, not one of the request's {', '.join(sorted(accepted))}")
        if "accept-encoding" not in response.tokens("Vary"):
            raise CheckFailed(f"{encoding} without Vary: Accept-Encoding")
        try:
            decoded = decode(encoding, response.body)
        except CheckFailed:
            raise
        except Exception as exc:
            raise CheckFailed(f"the {encoding} body does not decode: {exc}") from None
        if not same(decoded):
            raise CheckFailed(f"the {encoding} body does not decode to the bare app's body")
        return decoded
    if encoding != "identity":
        raise CheckFailed(f"Content-Encoding {encoding!r} on a body that must pass as is")
    if not same(response.body):
        raise CheckFailed("the body differs from the bare app's body")
    return response.body


def _check_bare(workload: Workload, response: Response, exact_body: bool) -> Optional[bytes]:
    if workload.method == "OPTIONS":
        if not 200 <= response.status < 300:
            raise CheckFailed(f"bare OPTIONS answered {response.status}")
        return None
    if response.status != 200:
        raise CheckFailed(f"status {response.status}, expected 200")
    if (response.header("Content-Encoding") or "identity").lower() != "identity":
        raise CheckFailed("a bare app compressed its body")
    if exact_body and not workload.body_ok(response.body):
        raise CheckFailed("the bare app does not send the workload's body")
    if not response.body:
        raise CheckFailed("empty body")
    return response.body


def _check_preflight(response: Response) -> None:
    if not 200 <= response.status < 300:
        raise CheckFailed(f"preflight answered {response.status}")
    if response.header("Access-Control-Allow-Origin") != ORIGIN:
        raise CheckFailed(f"preflight Access-Control-Allow-Origin is {response.header('Access-Control-Allow-Origin')!r}")
    methods = response.tokens("Access-Control-Allow-Methods")
    if "put" not in methods and "*" not in methods:
        raise CheckFailed(f"preflight does not allow PUT: {methods}")
    allowed = response.tokens("Access-Control-Allow-Headers")
    if "content-type" not in allowed and "*" not in allowed:
        raise CheckFailed(f"preflight does not allow content-type: {allowed}")
    body = response.body
    encoding = (response.header("Content-Encoding") or "identity").lower()
    if body and encoding != "identity":
        body = decode(encoding, body)  # Flask-Compress compresses the empty preflight body
    if body:
        raise CheckFailed("preflight with a body")


# --- Flask ------------------------------------------------------------------------------------


def _flask_app(full: bool) -> WSGIApp:
    from flask import Flask, request
    from flask import Response as FlaskResponse

    app = Flask(f"asok_fast_bench_flask_{'full' if full else 'bare'}")
    for path, (ctype, body) in wl.ROUTES.items():

        def view(_body: bytes = body, _ctype: str = ctype) -> Any:
            return FlaskResponse(_body, content_type=_ctype)

        app.add_url_rule(path, endpoint=path, view_func=view)  # GET (+ HEAD, automatic OPTIONS)
    for path, (ctype, make) in wl.FRESH_ROUTES.items():

        def fresh_view(_make: wl.FreshBody = make, _ctype: str = ctype) -> Any:
            return FlaskResponse(_make(), content_type=_ctype)

        app.add_url_rule(path, endpoint=path, view_func=fresh_view)
    if full:
        from flask_compress import Compress
        from flask_cors import CORS as FlaskCORS

        # Its default codings (zstd, br, gzip, deflate: zstd for a browser, at
        # level 3, br at 4), as a user who adds it gets them.
        app.config.update(COMPRESS_LEVEL=GZIP_LEVEL, COMPRESS_MIN_SIZE=wl.GZIP_MIN_SIZE)
        Compress(app)
        FlaskCORS(app, origins=list(wl.ORIGINS))

        # Registered last, so it runs first (Flask runs after_request hooks in
        # reverse): the ETag is the uncompressed body's; Flask-Compress then
        # derives "tag:zstd" (or the coding it sends) and answers If-None-Match itself.
        @app.after_request
        def etag(response: Any) -> Any:
            if request.method not in ("GET", "HEAD"):
                return response
            response.add_etag()
            return response.make_conditional(request)

    return app


# --- Django -----------------------------------------------------------------------------------

_DJANGO_URLCONF = "asok_fast_bench_django_urls"
# Bare Django keeps CommonMiddleware, as every `startproject` does: it is what
# sets Content-Length.  Without it (``django-nocommon``) a Django body has no
# declared length and iterates over its list of chunks, which ResponseMiddleware
# holds whole all the same (SPEC "Bodies").  The order of the full stack is the
# one Django's documentation gives.
_DJANGO_BARE_MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
_DJANGO_NOCOMMON_MIDDLEWARE: List[str] = []
_DJANGO_MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
    "django.middleware.common.CommonMiddleware",
]


def _django_apps() -> Tuple[WSGIApp, WSGIApp, WSGIApp]:
    """(bare handler, handler with the three middleware, handler with no middleware
    at all), from one settings module."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path as url_path

    def make_view(ctype: str, body: Any) -> Callable[[Any], Any]:
        """A view of ``body`` (bytes, or a FreshBody called per request)."""

        def view(request: Any) -> Any:
            if request.method == "OPTIONS":
                response = HttpResponse(status=204)
                response["Allow"] = wl.ALLOW
                return response
            return HttpResponse(body() if callable(body) else body, content_type=ctype)

        return view

    urls = types.ModuleType(_DJANGO_URLCONF)
    routes: Dict[str, Tuple[str, Any]] = {**wl.ROUTES, **wl.FRESH_ROUTES}
    urls.urlpatterns = [  # type: ignore[attr-defined]
        url_path(route.lstrip("/"), make_view(ctype, body)) for route, (ctype, body) in routes.items()
    ]
    sys.modules[_DJANGO_URLCONF] = urls
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="asok-fast-bench-" + "x" * 40,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=_DJANGO_URLCONF,
            INSTALLED_APPS=["corsheaders"],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
            CORS_ALLOWED_ORIGINS=list(wl.ORIGINS),
            LOGGING_CONFIG=None,
        )
        django.setup(set_prefix=False)
    settings.ROOT_URLCONF = _DJANGO_URLCONF
    handlers = []
    for middleware in (_DJANGO_BARE_MIDDLEWARE, _DJANGO_MIDDLEWARE, _DJANGO_NOCOMMON_MIDDLEWARE):
        settings.MIDDLEWARE = list(middleware)
        handlers.append(WSGIHandler())  # reads MIDDLEWARE now
    return handlers[0], handlers[1], handlers[2]


# --- Asok -------------------------------------------------------------------------------------

_ASOK_JSON_PAGE = '''\
from asok_fast.benchmarks.workloads import JSON_BODY

_TEXT = JSON_BODY.decode("ascii")


def render(request):
    request.content_type = "application/json"
    return _TEXT
'''

_ASOK_HTML_PAGE = '''\
from asok_fast.benchmarks.workloads import HTML_BODY

_TEXT = HTML_BODY.decode("ascii")


def render(request):
    request.content_type = "text/html; charset=utf-8"
    return _TEXT
'''

_ASOK_FRESH_PAGE = '''\
from asok_fast.benchmarks.workloads import FRESH_ROUTES

_CTYPE, _MAKE = FRESH_ROUTES[{path!r}]


def render(request):
    request.content_type = _CTYPE
    return _MAKE().decode("ascii")
'''

_ASOK_BASE = {
    "RATE_LIMIT": False,  # Asok's default limiter allows 100 requests a minute
    "HTML_MINIFY": False,  # keep the HTML as served by the others (and the bare time sane)
}
_ASOK_ON = {"GZIP": True, "GZIP_MIN_SIZE": wl.GZIP_MIN_SIZE, "CORS_ORIGINS": list(wl.ORIGINS)}
_ASOK_OFF = {"GZIP": False, "CORS_ORIGINS": None}


def _asok_scaffold(parent: Path) -> Path:
    """``asok create`` (the real CLI, answering no to its three questions) + our pages."""
    proc = subprocess.run(
        [sys.executable, "-m", "asok", "create", "benchproj"],
        cwd=str(parent),
        input="n\nn\nn\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    root = parent / "benchproj"
    if proc.returncode != 0 or not (root / "wsgi.py").is_file():
        raise RuntimeError(f"`asok create` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    pages = root / "src" / "pages"
    pages_source = [(wl.API_PATH, _ASOK_JSON_PAGE), (wl.HTML_PATH, _ASOK_HTML_PAGE)]
    pages_source += [(path, _ASOK_FRESH_PAGE.format(path=path)) for path in wl.FRESH_ROUTES]
    for route, source in pages_source:
        page = pages.joinpath(*route.strip("/").split("/"))
        page.mkdir(parents=True, exist_ok=True)
        (page / "page.py").write_text(source, encoding="utf-8")
    # Production mode (no live reload, no debug toolbar), and no INFO line per
    # request on stderr (Asok's default LOG_LEVEL is DEBUG).
    env = root / ".env"
    lines = [
        line
        for line in env.read_text(encoding="utf-8").splitlines()
        if not line.startswith(("DEBUG=", "LOG_LEVEL="))
    ]
    env.write_text("DEBUG=false\nLOG_LEVEL=WARNING\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return root


def _asok_load(root: Path, config: Dict[str, Any]) -> Any:
    """Write ``config`` into the project's wsgi.py, import it in-process, undo the side effects."""
    wsgi = root / "wsgi.py"
    source = wsgi.read_text(encoding="utf-8")
    if "app = Asok()" not in source:
        raise RuntimeError(f"unexpected wsgi.py from `asok create`:\n{source}")
    settings = "".join(f"app.config[{key!r}] = {value!r}\n" for key, value in config.items())
    wsgi.write_text(source.rstrip("\n") + "\n" + settings, encoding="utf-8")
    name = f"_asok_fast_bench_{uuid.uuid4().hex}"
    saved = (os.getcwd(), list(sys.path), dict(os.environ), set(sys.modules))
    realroot = os.path.realpath(root)
    try:
        os.chdir(realroot)
        os.environ["ASOK_ENV_OVERRIDE"] = "true"  # the project's .env wins
        spec = importlib.util.spec_from_file_location(name, wsgi)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        app = module.app
    finally:
        os.chdir(saved[0])
        sys.path[:] = saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
        for mod in set(sys.modules) - saved[3]:
            path = getattr(sys.modules.get(mod), "__file__", None) or ""
            if mod == name or os.path.realpath(path).startswith(realroot + os.sep):
                sys.modules.pop(mod, None)
    return app


def _asok_apps() -> Tuple[WSGIApp, WSGIApp]:
    """(Asok with GZIP and CORS_ORIGINS off, the same project with them on)."""
    tmp = Path(tempfile.mkdtemp(prefix="asok-fast-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    template = _asok_scaffold(tmp)
    apps = []
    for suffix, config in (("off", _ASOK_OFF), ("on", _ASOK_ON)):
        root = tmp / f"asok-{suffix}"
        shutil.copytree(template, root, symlinks=True)
        apps.append(_asok_load(root, {**_ASOK_BASE, **config}))
    return apps[0], apps[1]


# --- building everything ---------------------------------------------------------------------------

_ASOK_SKIP = {
    "W2": "Asok 0.8 sends no ETag and no 304 for page responses",
    "W5": "Asok 0.8 adds no ETag to page responses (nothing to compare)",
    "W6": "Asok 0.8 adds no ETag to page responses (nothing to compare)",
}

#: Workloads whose client accepts no gzip, for stacks that compress with gzip alone.
_GZIP_ONLY_SKIP = {w.id: f"gzip only, and W9's client accepts only {wl.BR_ONLY}" for w in ALL_WORKLOADS if "gzip" not in accepted_codings(w.accept_encoding) and w.compresses}
#: For a client that accepts only gzip, ``compiled-gzip`` does what ``compiled`` does.
_GZIP_CLIENT_SKIP = {w.id: "a gzip-only client: compiled-gzip is compiled there" for w in wl.GZIP_CLIENT_WORKLOADS}
#: Workloads that compress nothing: the cache and the gzip engine are idle there.
_NO_COMPRESSION_SKIP = {w.id: "nothing compressed: the cache and the gzip engine are not used" for w in ALL_WORKLOADS if not w.compresses}
#: Where asok_fast's default codings do not pick gzip: the ISA-L engine is idle there.
_NOT_GZIP_SKIP = {
    w.id: f"asok_fast sends {_core_py.negotiate(w.accept_encoding, DEFAULT_CODINGS)} to this client: ISA-L makes gzip only"
    for w in ALL_WORKLOADS
    if w.compresses and _core_py.negotiate(w.accept_encoding, DEFAULT_CODINGS) != "gzip"
}

#: The configs of the issue-16 stacks beside ``compiled`` (its cache on, the default).
NOCACHE_CONFIG: Dict[str, Any] = {**CONFIG, "COMPRESS_CACHE_SIZE": 0}
ISAL_CONFIG: Dict[str, Any] = {**CONFIG, "GZIP_ENGINE": "isal", "ISAL_LEVEL": 1, "COMPRESS_CACHE_SIZE": 0}


#: The stacks each anchor framework's builder makes (``--anchors`` names the builders).
FRAMEWORK_STACKS: Dict[str, Tuple[str, ...]] = {
    "flask": ("flask", "flask+ext", "flask+asok_fast"),
    "django": ("django", "django+mw", "django+asok_fast", "django-nocommon", "django-nocommon+asok_fast"),
    "asok": ("asok", "asok+gzip+cors"),
}


#: The bare framework stacks that also run wrapped by asok_fast (``<id>+asok_fast``).
WRAPPED: Tuple[str, ...] = ("flask", "django", "django-nocommon")


def why_unavailable(stack_id: str, unavailable: Dict[str, str]) -> Optional[str]:
    """Why ``stack_id`` was not built, from :func:`build_stacks`' second value."""
    if stack_id in unavailable:
        return unavailable[stack_id]
    for framework, ids in FRAMEWORK_STACKS.items():
        if stack_id in ids:
            return unavailable.get(framework)
    return None


def load_frameworks() -> Dict[str, str]:
    """Import the anchor frameworks (so every measurement runs in a process that
    has loaded them); return ``{name: why it is unavailable}``."""
    missing: Dict[str, str] = {}
    groups = {
        "flask": ("flask", "flask_compress", "flask_cors"),
        "django": ("django", "corsheaders"),
        "asok": ("asok",),
    }
    for name, modules in groups.items():
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                missing[name] = f"{module} not importable ({type(exc).__name__}: {exc}); pip install 'asok-fast[bench]'"
                break
    return missing


def build_stacks(anchors: Iterable[str] = tuple(FRAMEWORK_STACKS)) -> Tuple[List[Stack], Dict[str, str]]:
    """All stacks that can be built here, and ``{stack or framework: why not}``."""
    stacks: List[Stack] = []
    bare = Stack("bare", "wsgi", "bare", "bare WSGI app", wl.bare_app, copy_environ=False)
    stacks.append(bare)
    stacks.extend(floor_stacks())
    cores, unavailable = twins()
    for name, core in cores.items():
        stacks.append(middleware_stack(name, core, bare))
    if "compiled" in cores:
        stacks.append(middleware_stack("compiled-gzip", cores["compiled"], bare, wl.GZIP_ONLY_CONFIG))
        stacks.append(middleware_stack("compiled-nocache", cores["compiled"], bare, NOCACHE_CONFIG))
        isal = isal_stack(cores["compiled"], bare)
        if isal is None:
            unavailable["compiled-isal"] = "the isal package is not installed (pip install 'asok_fast[isal]')"
        else:
            stacks.append(isal)

    wanted = set(anchors)
    missing = load_frameworks()
    builders = {"flask": _flask_stacks, "django": _django_stacks, "asok": _asok_stacks}
    for name, builder in builders.items():
        if name not in wanted:
            unavailable[name] = "not asked for"
            continue
        if name in missing:
            unavailable[name] = missing[name]
            continue
        try:
            stacks.extend(builder())
        except Exception as exc:  # a broken install must not hide the other results
            unavailable[name] = f"could not build ({type(exc).__name__}: {exc})"
    return stacks, unavailable


_FLOOR_LABELS = {
    "floor": "C-work floor (hashlib.md5 + zlib.compressobj level 6, gzip)",
    "floor-zstd": f"C-work floor, zstd (hashlib.md5 + a reused ZstdCompressor, level {ZSTD_LEVEL})",
    "floor-br": f"C-work floor, br (hashlib.md5 + brotli.compress, quality {BROTLI_LEVEL})",
}


def floor_stacks() -> List[Stack]:
    """The C-work floors whose binding imports here (``floor``, gzip-6, always)."""
    out = []
    for stack_id, coding in FLOORS.items():
        skip: Dict[str, str] = {}
        try:
            _compressor(coding)
        except LookupError as exc:
            skip = {w.id: str(exc) for w in ALL_WORKLOADS if w.compresses}
        out.append(Stack(stack_id, "wsgi", "floor", _FLOOR_LABELS[stack_id], skip=skip))
    return out


def _codings(config: Dict[str, Any]) -> Tuple[str, ...]:
    return tuple(config.get("COMPRESS_CODINGS", DEFAULT_CODINGS))


def middleware_stack(core_name: str, core: types.ModuleType, bare: Stack, config: Optional[Dict[str, Any]] = None) -> Stack:
    """``ResponseMiddleware(bare_app, config)`` (default :data:`CONFIG`) bound to
    ``core``, as stack ``core_name``."""
    config = dict(CONFIG if config is None else config)
    app = ResponseMiddleware(wl.bare_app, dict(config), _core_module=core)
    kind = core_name.split("-", 1)[0]
    label = f"asok_fast ({kind} core)"
    for key in ("COMPRESS_CODINGS", "GZIP_ENGINE", "ISAL_LEVEL", "COMPRESS_CACHE_SIZE"):
        if key in config:
            value = config[key]
            label += f", {key} = {list(value) if isinstance(value, (list, tuple)) else repr(value)}"
    codings = _codings(config)
    skip: Dict[str, str] = {}
    if codings == ("gzip",):
        skip.update(_GZIP_CLIENT_SKIP)
        skip.update(_GZIP_ONLY_SKIP)
    if config.get("COMPRESS_CACHE_SIZE") == 0 or config.get("GZIP_ENGINE") == "isal":
        skip.update(_NO_COMPRESSION_SKIP)
    if config.get("GZIP_ENGINE") == "isal":
        skip.update(_NOT_GZIP_SKIP)
    return Stack(core_name, "wsgi", "middleware", label, app, ALL_FEATURES, False, skip=skip, bare=bare, codings=codings)


def isal_stack(core: types.ModuleType, bare: Stack, core_name: str = "compiled") -> Optional[Stack]:
    """``<core_name>-isal``: :data:`ISAL_CONFIG` bound to ``core``, or None
    without the isal package."""
    from .._codecs import isal_missing

    if isal_missing():
        return None
    return middleware_stack(f"{core_name}-isal", core, bare, ISAL_CONFIG)


def wrapped_stack(bare: Stack, core: Optional[types.ModuleType] = None) -> Stack:
    """``bare``'s app wrapped by ResponseMiddleware, bound to ``core`` (default: the
    core the package selected, as a user gets it), as stack ``<bare>+asok_fast``."""
    app = ResponseMiddleware(bare.app, dict(CONFIG), _core_module=core)  # type: ignore[arg-type]
    label = f"{bare.label} + asok_fast ({app.implementation} core)"
    return Stack(f"{bare.id}+asok_fast", bare.framework, "middleware", label, app, ALL_FEATURES, bare=bare, codings=_codings(CONFIG))


def _flask_stacks() -> List[Stack]:
    bare = Stack("flask", "flask", "bare", "bare Flask", _flask_app(full=False))
    full = Stack("flask+ext", "flask", "anchor", "Flask + Flask-Compress + Flask-CORS + add_etag/make_conditional", _flask_app(full=True), ALL_FEATURES, bare=bare)
    return [bare, full, wrapped_stack(bare)]


def _django_stacks() -> List[Stack]:
    bare_app, full_app, nocommon_app = _django_apps()
    bare = Stack("django", "django", "bare", "bare Django", bare_app)
    full = Stack("django+mw", "django", "anchor", "Django + CorsMiddleware + GZipMiddleware + ConditionalGetMiddleware", full_app, ALL_FEATURES, bare=bare, skip=dict(_GZIP_ONLY_SKIP))
    nocommon = Stack("django-nocommon", "django", "bare", "bare Django without CommonMiddleware", nocommon_app)
    return [bare, full, wrapped_stack(bare), nocommon, wrapped_stack(nocommon)]


def _asok_stacks() -> List[Stack]:
    off, on = _asok_apps()
    bare = Stack("asok", "asok", "bare", "Asok 0.8, GZIP and CORS_ORIGINS off", off, skip=dict(_ASOK_SKIP))
    full = Stack("asok+gzip+cors", "asok", "anchor", "Asok 0.8, GZIP and CORS_ORIGINS on", on, frozenset({COMPRESS, CORS}), skip={**_ASOK_SKIP, **_GZIP_ONLY_SKIP}, bare=bare)
    return [bare, full]


def gunicorn_app(name: str) -> WSGIApp:
    """A WSGI app for ``gunicorn 'asok_fast.benchmarks.stacks:gunicorn_app("NAME")'``.

    ``flask``, ``flask+asok_fast`` (the selected core; its cache on, the
    default), ``flask+asok_fast-nocache`` (``COMPRESS_CACHE_SIZE = 0``),
    ``flask+ext``, ``bare``, ``compiled``, ``python``, ``compiled-gzip``,
    ``compiled-nocache``, ``compiled-isal``.
    """
    if name == "bare":
        return wl.bare_app
    configs = {"compiled": CONFIG, "python": CONFIG, "compiled-gzip": wl.GZIP_ONLY_CONFIG,
               "compiled-nocache": NOCACHE_CONFIG, "compiled-isal": ISAL_CONFIG}
    if name in configs:
        kind = name.split("-", 1)[0]
        cores, unavailable = twins()
        if kind not in cores:
            raise RuntimeError(unavailable[kind])
        return ResponseMiddleware(wl.bare_app, dict(configs[name]), _core_module=cores[kind])
    if name == "flask":
        return _flask_app(full=False)
    if name == "flask+ext":
        return _flask_app(full=True)
    if name == "flask+asok_fast":
        return ResponseMiddleware(_flask_app(full=False), dict(CONFIG))
    if name == "flask+asok_fast-nocache":
        return ResponseMiddleware(_flask_app(full=False), dict(NOCACHE_CONFIG))
    raise ValueError(f"unknown app {name!r}")


WORKLOAD_IDS = tuple(w.id for w in ALL_WORKLOADS)
