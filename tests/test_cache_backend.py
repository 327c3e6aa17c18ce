"""The shared tier of the compressed-body cache, ``COMPRESS_CACHE_BACKEND`` (SPEC "Compressed-body cache").

Against a real Redis (Debian's ``redis-server``, started per session or per test by
tests/redis_server.py and stopped by its pid), through a ``redis.Redis`` client, Django's
cache API (``RedisCache``) and Flask-Caching (``RedisCache``), on both cores:

* a first middleware compresses and fills the backend, under a key that names the coding, the
  library and its version, the level and the body's SHA-256, with exactly the compressed bytes;
  a second middleware (and a real second process) serves the same body from it *without
  compressing*, byte for byte what compressing anew gives;
* ``no-store`` and ``private`` responses are never written; keys differ per coding and level,
  and a level change never meets the old level's bytes;
* faults: Redis killed mid-run, Redis paused (``SIGSTOP``) and resumed, a backend that raises,
  one that answers with something other than bytes.  Every response stays exact (status,
  headers, decoded bytes) and is answered within ``BACKEND_TIMEOUT`` plus a 0.5 s margin
  (a bound, not a benchmark); the log says so once.

Compressions are counted by wrapping ``asok_fast._codecs.Encoders.encode``, the one place
both cores compress a buffered body through.  The in-process cache is off
(``COMPRESS_CACHE_SIZE`` 0) so only the shared tier can spare a compression.

Outside the fault tests the tier's read deadline is raised to 2 s: what they show is what a
hit serves, and this machine is noisy enough that a first connection can take longer than
50 ms; the fault tests run with the real deadline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import brotli
import pytest

import asok_fast
from asok_fast import _cache, _codecs
from redis_server import HOST, RedisServer, redis_server_binary
from wsgi_helpers import (
    HTML,
    Result,
    brotli_reference,
    call,
    decode,
    gzip_reference,
    md5_tag,
    zstd,
    zstd_reference,
)

redis = pytest.importorskip("redis")

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed")

TESTS_DIR = Path(__file__).resolve().parent


# --- bodies, clients, references ------------------------------------------------------------


def _page(title: str, rows: int) -> bytes:
    """A deterministic HTML report page (about 140 KB for 1800 rows)."""
    head = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head><body><h1>{title}</h1><table>\n"
    )
    body = "".join(
        f"<tr class=\"r{i % 7}\"><td>{i}</td><td>order {i * 7919 % 100003:06d}</td>"
        f"<td>{['pending', 'shipped', 'returned', 'paid'][i % 4]}</td><td>{(i * 37) % 1000 / 10:.2f} EUR</td></tr>\n"
        for i in range(rows)
    )
    return (head + body + "</table></body></html>\n").encode()


PAGE = _page("Orders", 1800)
OTHER = _page("Returns", 1500)
assert len(PAGE) > 130_000 and len(OTHER) >= _codecs.SHARED_MIN_SIZE

GZIP_ONLY = "gzip"  # curl --compressed, API clients
BROWSER = "gzip, deflate, br, zstd"  # a current Chromium: zstd comes first in COMPRESS_CODINGS
BR_ONLY = "br"
#: (Accept-Encoding, the coding the middleware sends)
CLIENTS = [(GZIP_ONLY, "gzip"), (BROWSER, "zstd"), (BR_ONLY, "br")]
CLIENT_IDS = ["gzip-only", "browser", "br-only"]

DEFAULT_LEVELS = {"gzip": 6, "zstd": 3, "br": 4}
LEVEL_KEYS = {"gzip": "GZIP_LEVEL", "zstd": "ZSTD_LEVEL", "br": "BROTLI_LEVEL"}

#: A response may take the tier's read deadline plus this margin, at most.
MARGIN = 0.5


def reference(coding: str, body: bytes, level: Optional[int] = None) -> bytes:
    """SPEC's bytes for ``body`` in ``coding`` (the libraries called directly)."""
    level = DEFAULT_LEVELS[coding] if level is None else level
    if coding == "gzip":
        return gzip_reference(body, level)
    if coding == "zstd":
        return zstd_reference(body, level)
    return brotli_reference(body, level)


def library(coding: str) -> str:
    """The library and version SPEC's key names, from the libraries themselves."""
    if coding == "gzip":
        return f"zlib-{zlib.ZLIB_RUNTIME_VERSION}"
    if coding == "zstd":
        return f"zstd-{zstd.zstd_version}"
    return f"brotli-{brotli.__version__}"


def shared_key(coding: str, body: bytes, level: Optional[int] = None, form: str = "") -> str:
    """``asok_fast:<coding>:<library-version>:<level>[-paddable]:<sha256 hex of the body>``."""
    level = DEFAULT_LEVELS[coding] if level is None else level
    return f"asok_fast:{coding}:{library(coding)}:{level}{form}:{hashlib.sha256(body).hexdigest()}"


KEY_RE = re.compile(r"asok_fast:(gzip|zstd|br):(zlib|zstd|brotli)-[0-9][0-9A-Za-z.\-]*:[0-9]{1,2}(-paddable)?:[0-9a-f]{64}")


def check(result: Result, coding: str, body: bytes, level: Optional[int] = None, exact: bool = True) -> None:
    """An exact compressed response: status, headers, the bytes SPEC gives (``exact``) and
    what they decode to."""
    assert result.status == "200 OK"
    assert result.one("Content-Type") == HTML
    assert result.one("Content-Encoding") == coding
    assert result.one("Content-Length") == str(len(result.body))
    if "no-store" in (result.get("Cache-Control") or "").lower():
        assert not result.has("ETag")  # SPEC "ETag and 304"
    else:
        assert result.one("ETag") == md5_tag(body, f"-{coding}")
    assert "accept-encoding" in result.vary_tokens()
    assert decode(coding, result.body) == body
    if exact:
        assert result.body == reference(coding, body, level)


def page_app(cache_control: Optional[str] = None) -> Callable[..., Any]:
    """A WSGI app: ``/other`` answers OTHER, every other path PAGE; a fresh list each call."""

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        headers = [("Content-Type", HTML)]
        if cache_control is not None:
            headers.append(("Cache-Control", cache_control))
        start_response("200 OK", headers)
        return [OTHER if env["PATH_INFO"] == "/other" else PAGE]

    return app


def config(backend: Any, **extra: Any) -> Dict[str, Any]:
    """Compression on, the in-process cache off: only the shared tier can spare work."""
    return {"GZIP": True, "COMPRESS_CACHE_SIZE": 0, "COMPRESS_CACHE_BACKEND": backend, **extra}


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is true (writes to the tier are not waited for)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def timed_call(app: Callable[..., Any], path: str, accept_encoding: str) -> Tuple[Result, float]:
    start = time.monotonic()
    result = call(app, path=path, headers={"Accept-Encoding": accept_encoding})
    return result, time.monotonic() - start


def backend_warnings(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [
        r for r in caplog.records
        if r.name == "asok_fast" and r.levelno == logging.WARNING and "COMPRESS_CACHE_BACKEND" in r.getMessage()
    ]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the session's non-fault tests (each starts with it flushed)."""
    server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
    assert not server.alive()


@pytest.fixture
def rclient(redis_server: RedisServer) -> Iterator[Any]:
    """A ``redis.Redis`` client of the session's server, whose database starts empty."""
    client = redis.Redis(host=HOST, port=redis_server.port)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, for the tests that kill or pause it."""
    server = RedisServer.start(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
    assert not server.alive()


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The codings of every compression of a whole body, in order (both cores call
    ``Encoders.encode`` for it, the compiled one included, when the shared tier is
    consulted: every body here is at least ``SHARED_MIN_SIZE``)."""
    calls: List[str] = []
    encode = _codecs.Encoders.encode

    def counting(self: Any, settings: Any, coding: str, data: bytes) -> bytes:
        calls.append(coding)
        return encode(self, settings, coding, data)

    monkeypatch.setattr(_codecs.Encoders, "encode", counting)
    return calls


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 s read deadline (see the module's docstring)."""
    monkeypatch.setattr(_cache, "BACKEND_TIMEOUT", 2.0)


def asok_keys(client: Any, pattern: str = "*asok_fast:*") -> List[str]:
    return sorted(k.decode() for k in client.keys(pattern))


# --- redis.Redis as the backend ------------------------------------------------------------


@pytest.mark.parametrize(("accept_encoding", "coding"), CLIENTS, ids=CLIENT_IDS)
def test_redis_client_first_middleware_fills_second_serves_without_compressing(
    make_mw: Any, rclient: Any, redis_server: RedisServer, made: List[str], patient: None,
    accept_encoding: str, coding: str,
) -> None:
    first = make_mw(page_app(), config(rclient))
    r1 = call(first, headers={"Accept-Encoding": accept_encoding})
    check(r1, coding, PAGE)
    assert made == [coding]

    key = shared_key(coding, PAGE)
    assert KEY_RE.fullmatch(key)
    wait_for(lambda: rclient.exists(key), what=f"{key} in Redis")
    assert asok_keys(rclient) == [key]
    assert rclient.get(key) == reference(coding, PAGE)

    # A fresh middleware with its own client, as another worker has: served from Redis.
    other_client = redis.Redis(host=HOST, port=redis_server.port)
    try:
        second = make_mw(page_app(), config(other_client))
        for _ in range(3):
            r2 = call(second, headers={"Accept-Encoding": accept_encoding})
            assert (r2.status, r2.headers, r2.body) == (r1.status, r1.headers, r1.body)
        # The first middleware too: its in-process cache is off, Redis has the bytes.
        assert call(first, headers={"Accept-Encoding": accept_encoding}).body == r1.body
    finally:
        other_client.close()
    assert made == [coding]
    assert asok_keys(rclient) == [key]


_CHILD = r"""
import importlib, json, sys
from pathlib import Path

import redis

from asok_fast import ResponseMiddleware, _cache, _codecs
from wsgi_helpers import call

core_name, port, out_path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
bodies = {"/": Path(sys.argv[4]).read_bytes(), "/other": Path(sys.argv[5]).read_bytes()}
_cache.BACKEND_TIMEOUT = 2.0  # as in the parent (tests/test_cache_backend.py's docstring)
made = []
encode = _codecs.Encoders.encode

def counting(self, settings, coding, data):
    made.append(coding)
    return encode(self, settings, coding, data)

_codecs.Encoders.encode = counting

def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [bodies[env["PATH_INFO"]]]

client = redis.Redis(host="127.0.0.1", port=port)
mw = ResponseMiddleware(
    app, {"GZIP": True, "COMPRESS_CACHE_SIZE": 0, "COMPRESS_CACHE_BACKEND": client},
    _core_module=importlib.import_module(core_name),
)
answers = {}
for path in ("/", "/other"):
    for accept_encoding in json.loads(sys.argv[6]):
        before = len(made)
        r = call(mw, path=path, headers={"Accept-Encoding": accept_encoding})
        answers[path + " " + accept_encoding] = {
            "status": r.status, "headers": r.headers, "body": r.body.hex(), "made": made[before:],
        }
# The tier's writes go out on daemon threads, which exit with the process
# unjoined: wait until Redis holds both bodies' entries before exiting.
import time
deadline = time.monotonic() + 10
while len(client.keys("asok_fast:*")) < 2 * len(json.loads(sys.argv[6])) and time.monotonic() < deadline:
    time.sleep(0.01)
out_path.write_text(json.dumps(answers))
"""


def test_redis_shared_with_another_process(
    core: Any, make_mw: Any, rclient: Any, redis_server: RedisServer, made: List[str], patient: None,
    tmp_path: Path,
) -> None:
    """PAGE compressed here is served by a real second process without compressing; OTHER,
    compressed there, is served here without compressing."""
    mw = make_mw(page_app(), config(rclient))
    ours = {}
    for accept_encoding, coding in CLIENTS:
        ours[accept_encoding] = call(mw, headers={"Accept-Encoding": accept_encoding})
        check(ours[accept_encoding], coding, PAGE)
    assert made == ["gzip", "zstd", "br"]
    page_keys = sorted(shared_key(coding, PAGE) for _, coding in CLIENTS)
    wait_for(lambda: asok_keys(rclient) == page_keys, what="PAGE's three keys")

    (tmp_path / "page.html").write_bytes(PAGE)
    (tmp_path / "other.html").write_bytes(OTHER)
    out = tmp_path / "answers.json"
    package_root = str(Path(asok_fast.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR), package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, core.__name__, str(redis_server.port), str(out),
         str(tmp_path / "page.html"), str(tmp_path / "other.html"), json.dumps([a for a, _ in CLIENTS])],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, child.stderr
    answers = json.loads(out.read_text())
    for accept_encoding, coding in CLIENTS:
        theirs = answers["/ " + accept_encoding]
        assert theirs["made"] == []  # served from Redis
        assert theirs["status"] == ours[accept_encoding].status
        assert [tuple(h) for h in theirs["headers"]] == ours[accept_encoding].headers
        assert bytes.fromhex(theirs["body"]) == ours[accept_encoding].body
        assert answers["/other " + accept_encoding]["made"] == [coding]  # new to everyone

    # OTHER, compressed by the child, is served here without compressing.
    other_keys = sorted(shared_key(coding, OTHER) for _, coding in CLIENTS)
    wait_for(lambda: asok_keys(rclient) == sorted(page_keys + other_keys), what="OTHER's keys")
    made.clear()
    for accept_encoding, coding in CLIENTS:
        r = call(mw, path="/other", headers={"Accept-Encoding": accept_encoding})
        check(r, coding, OTHER)
        assert r.body == bytes.fromhex(answers["/other " + accept_encoding]["body"])
    assert made == []


@pytest.mark.parametrize(
    "cache_control", ["no-store", "private", "private, max-age=60", "max-age=0, No-Store", 'private="Set-Cookie"']
)
def test_no_store_and_private_responses_are_never_written(
    make_mw: Any, rclient: Any, made: List[str], patient: None, cache_control: str
) -> None:
    mw = make_mw(page_app(cache_control), config(rclient))
    for round_ in range(2):
        for accept_encoding, coding in CLIENTS:
            r = call(mw, headers={"Accept-Encoding": accept_encoding})
            check(r, coding, PAGE)
            assert r.one("Cache-Control") == cache_control
    assert made == ["gzip", "zstd", "br"] * 2  # nothing to reuse: compressed every time

    # A cacheable response, sent afterwards, is written: once its key is there, the
    # writes sent before it have had their turn too.
    public = make_mw(page_app("public, max-age=60"), config(rclient))
    check(call(public, path="/other", headers={"Accept-Encoding": GZIP_ONLY}), "gzip", OTHER)
    key = shared_key("gzip", OTHER)
    wait_for(lambda: rclient.exists(key), what="the public response's key")
    time.sleep(0.2)
    assert asok_keys(rclient) == [key]


def test_keys_differ_per_coding_and_level_and_a_level_change_never_serves_old_bytes(
    make_mw: Any, rclient: Any, made: List[str], patient: None
) -> None:
    mw = make_mw(page_app(), config(rclient))
    for accept_encoding, coding in CLIENTS:
        check(call(mw, headers={"Accept-Encoding": accept_encoding}), coding, PAGE)
    old_keys = {coding: shared_key(coding, PAGE) for _, coding in CLIENTS}
    assert len(set(old_keys.values())) == 3
    wait_for(lambda: asok_keys(rclient) == sorted(old_keys.values()), what="three keys")

    new_levels = {"gzip": 9, "zstd": 10, "br": 7}
    for coding, level in new_levels.items():
        mw.config[LEVEL_KEYS[coding]] = level  # takes effect on the next request
    made.clear()
    for accept_encoding, coding in CLIENTS:
        r = call(mw, headers={"Accept-Encoding": accept_encoding})
        check(r, coding, PAGE, new_levels[coding])
        assert r.body != reference(coding, PAGE)
    assert made == ["gzip", "zstd", "br"]  # the old level's entries did not answer
    new_keys = {coding: shared_key(coding, PAGE, level) for coding, level in new_levels.items()}
    wait_for(lambda: len(asok_keys(rclient)) == 6, what="six keys")
    assert asok_keys(rclient) == sorted(list(old_keys.values()) + list(new_keys.values()))
    for coding in new_levels:
        assert rclient.get(old_keys[coding]) == reference(coding, PAGE)
        assert rclient.get(new_keys[coding]) == reference(coding, PAGE, new_levels[coding])

    # Each level is served its own bytes from Redis, without compressing.
    made.clear()
    back = make_mw(page_app(), config(rclient))
    for accept_encoding, coding in CLIENTS:
        check(call(back, headers={"Accept-Encoding": accept_encoding}), coding, PAGE)
        check(call(mw, headers={"Accept-Encoding": accept_encoding}), coding, PAGE, new_levels[coding])
    assert made == []


def test_padding_keeps_its_own_br_entries(make_mw: Any, rclient: Any, made: List[str], patient: None) -> None:
    """With COMPRESS_RANDOM_PADDING, br bytes are made in a paddable form, named so; an
    unpadded middleware never gets them, and every padded response is padded afresh."""
    padded = make_mw(page_app(), config(rclient, COMPRESS_RANDOM_PADDING=True))
    key = shared_key("br", PAGE, form="-paddable")
    assert KEY_RE.fullmatch(key)
    bodies = set()
    for i in range(6):
        r = call(padded, headers={"Accept-Encoding": BR_ONLY})
        check(r, "br", PAGE, exact=False)
        bodies.add(r.body)
        if i == 0:  # the write is not waited for: the hits start once it landed
            wait_for(lambda: rclient.exists(key), what="the paddable key")
    assert len(bodies) > 1  # padding of random length, fresh per response, hit or miss
    assert made == ["br"]
    assert brotli.decompress(rclient.get(key)) == PAGE

    plain = make_mw(page_app(), config(rclient))
    check(call(plain, headers={"Accept-Encoding": BR_ONLY}), "br", PAGE)  # exactly brotli_reference
    assert made == ["br", "br"]
    wait_for(lambda: len(asok_keys(rclient)) == 2, what="the plain br key")
    assert asok_keys(rclient) == sorted([key, shared_key("br", PAGE)])


# --- Django's and Flask-Caching's caches ---------------------------------------------------


def _django_caches(url: str) -> Dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "django-tests",
        }
    }


@pytest.fixture
def django_cache(redis_server: RedisServer) -> Iterator[Any]:
    """``django.core.cache.cache``, a RedisCache of the session's server.

    Settings are process-wide: the first test to need Django configures them (as
    wsgi_helpers.django_app does, whose later calls keep them); this test's CACHES are
    set with ``override_settings``, which also resets Django's cache handler around it."""
    pytest.importorskip("django")
    import django
    from django.conf import settings
    from django.test import override_settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="asok-fast-tests-" + "x" * 40,
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
            LOGGING_CONFIG=None,
            CACHES=_django_caches(redis_server.url),
        )
        django.setup(set_prefix=False)
    with override_settings(CACHES=_django_caches(redis_server.url)):
        from django.core.cache import cache

        yield cache


@pytest.mark.parametrize(("accept_encoding", "coding"), CLIENTS, ids=CLIENT_IDS)
def test_django_cache_backend(
    make_mw: Any, rclient: Any, django_cache: Any, made: List[str], patient: None, accept_encoding: str, coding: str
) -> None:
    from django.core.cache import caches

    first = make_mw(page_app(), config(django_cache))
    r1 = call(first, headers={"Accept-Encoding": accept_encoding})
    check(r1, coding, PAGE)
    key = shared_key(coding, PAGE)
    stored = f"django-tests:1:{key}"  # Django's key: prefix, version, ours
    wait_for(lambda: rclient.exists(stored), what=stored)
    assert asok_keys(rclient) == [stored]
    assert django_cache.get(key) == reference(coding, PAGE)

    # Another middleware through another RedisCache object (as another worker has).
    second = make_mw(page_app(), config(caches.create_connection("default")))
    r2 = call(second, headers={"Accept-Encoding": accept_encoding})
    assert (r2.status, r2.headers, r2.body) == (r1.status, r1.headers, r1.body)
    assert made == [coding]

    # no-store and private: compressed, never written.
    for cache_control in ("no-store", "private"):
        mw = make_mw(page_app(cache_control), config(django_cache))
        check(call(mw, path="/other", headers={"Accept-Encoding": accept_encoding}), coding, OTHER)
    assert made == [coding] * 3
    check(call(second, path="/", headers={"Accept-Encoding": accept_encoding}), coding, PAGE)
    time.sleep(0.2)
    assert asok_keys(rclient) == [stored]


@pytest.fixture
def flask_cache(redis_server: RedisServer) -> Callable[[], Any]:
    """A Flask app wrapped in nothing yet, with a Flask-Caching RedisCache of the session's
    server; each call makes a new app and Cache (as each worker has)."""
    pytest.importorskip("flask_caching")
    from flask import Flask, request
    from flask_caching import Cache

    def make() -> Any:
        app = Flask("asok_fast_cache_tests")
        cache = Cache(app, config={
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_HOST": HOST,
            "CACHE_REDIS_PORT": redis_server.port,
            "CACHE_KEY_PREFIX": "flask-tests:",
        })

        @app.route("/")
        @app.route("/other")
        def page() -> Any:
            response = app.response_class(OTHER if request.path == "/other" else PAGE, content_type=HTML)
            cache_control = request.args.get("cc")
            if cache_control:
                response.headers["Cache-Control"] = cache_control
            return response

        return app, cache

    return make


@pytest.mark.parametrize(("accept_encoding", "coding"), CLIENTS, ids=CLIENT_IDS)
def test_flask_caching_backend(
    make_mw: Any, rclient: Any, flask_cache: Callable[[], Any], made: List[str], patient: None,
    accept_encoding: str, coding: str,
) -> None:
    app1, cache1 = flask_cache()
    first = make_mw(app1, config(cache1))
    r1 = call(first, headers={"Accept-Encoding": accept_encoding})
    check(r1, coding, PAGE)
    key = shared_key(coding, PAGE)
    stored = f"flask-tests:{key}"
    wait_for(lambda: rclient.exists(stored), what=stored)
    assert asok_keys(rclient) == [stored]
    assert cache1.get(key) == reference(coding, PAGE)

    app2, cache2 = flask_cache()
    second = make_mw(app2, config(cache2))
    r2 = call(second, headers={"Accept-Encoding": accept_encoding})
    assert (r2.status, r2.headers, r2.body) == (r1.status, r1.headers, r1.body)
    assert made == [coding]

    for cache_control in ("no-store", "private, max-age=0"):
        r = call(second, path="/other", headers={"Accept-Encoding": accept_encoding}, QUERY_STRING=f"cc={cache_control}")
        check(r, coding, OTHER)
        assert r.one("Cache-Control") == cache_control
    assert made == [coding] * 3
    check(call(first, headers={"Accept-Encoding": accept_encoding}), coding, PAGE)
    time.sleep(0.2)
    assert asok_keys(rclient) == [stored]


# --- faults ---------------------------------------------------------------------------------

#: The requests of a fault test, in turn: every client, both bodies.
BODIES = {"/": PAGE, "/other": OTHER}
ROUND = [(path, accept_encoding, coding) for path in BODIES for accept_encoding, coding in CLIENTS]


def exact_and_timely(app: Callable[..., Any], path: str, accept_encoding: str, coding: str) -> Result:
    result, elapsed = timed_call(app, path, accept_encoding)
    check(result, coding, BODIES[path])
    bound = _cache.BACKEND_TIMEOUT + MARGIN
    assert elapsed <= bound, f"{path} {accept_encoding}: {elapsed:.3f} s > {bound:.3f} s"
    return result


def fill(app: Callable[..., Any], client: Any) -> None:
    """Every (body, coding) of ROUND compressed once and in Redis.

    Set-up, not the fault under test: with the 2 s deadline, since one slow first answer
    would rest the tier and skip the writes that follow it."""
    deadline = _cache.BACKEND_TIMEOUT
    _cache.BACKEND_TIMEOUT = 2.0
    try:
        for path, accept_encoding, coding in ROUND:
            exact_and_timely(app, path, accept_encoding, coding)
    finally:
        _cache.BACKEND_TIMEOUT = deadline
    keys = sorted(shared_key(coding, BODIES[path]) for path, _, coding in ROUND)
    wait_for(lambda: asok_keys(client) == keys, what="every key of ROUND")


def served_from_tier(app: Callable[..., Any], made: List[str], timeout: float = 15.0) -> None:
    """Wait until a request is answered from the tier (no compression), every response
    exact and timely meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        before = len(made)
        exact_and_timely(app, "/", GZIP_ONLY, "gzip")
        if len(made) == before:
            return
        assert time.monotonic() < deadline, "the shared tier never answered again"
        time.sleep(0.05)


def test_redis_killed_mid_run(
    make_mw: Any, own_server: RedisServer, tmp_path: Path, made: List[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_cache, "BACKEND_RETRY", 0.3)
    caplog.set_level(logging.WARNING, logger="asok_fast")
    client = redis.Redis(host=HOST, port=own_server.port)  # redis-py's defaults: it retries
    mw = make_mw(page_app(), config(client))
    fill(mw, client)
    served_from_tier(mw, made)

    made.clear()
    for i in range(60):
        if i == 8:
            own_server.kill()  # mid-run, requests keep coming
        path, accept_encoding, coding = ROUND[i % len(ROUND)]
        exact_and_timely(mw, path, accept_encoding, coding)
        time.sleep(0.01)
    assert not own_server.alive()
    assert len(made) >= 60 - 8 - 1  # after the kill, every response was compressed here
    assert len(backend_warnings(caplog)) == 1  # many failures, one line

    # A new, empty Redis on the same port: the tier comes back after its rest, refills,
    # and serves again, with no second warning.
    restarted = RedisServer.start(tmp_path / "redis-again", port=own_server.port)
    try:
        served_from_tier(mw, made)
        assert len(backend_warnings(caplog)) == 1
    finally:
        restarted.stop()
    client.close()


def test_redis_paused_then_resumed(
    make_mw: Any, own_server: RedisServer, made: List[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_cache, "BACKEND_RETRY", 0.3)
    caplog.set_level(logging.WARNING, logger="asok_fast")
    # No socket timeout: a call to a paused server hangs until it is resumed.
    client = redis.Redis(host=HOST, port=own_server.port, socket_timeout=None, socket_connect_timeout=None)
    mw = make_mw(page_app(), config(client))
    fill(mw, client)
    served_from_tier(mw, made)

    own_server.pause()
    try:
        made.clear()
        started = time.monotonic()
        n = 0
        # Longer than several rests: the tier tries again, hangs again, and gives up in time.
        while time.monotonic() - started < 1.5 or n < 2 * len(ROUND):
            path, accept_encoding, coding = ROUND[n % len(ROUND)]
            exact_and_timely(mw, path, accept_encoding, coding)
            n += 1
            time.sleep(0.02)
        assert len(made) == n  # a paused Redis answers nothing: each response compressed here
    finally:
        own_server.resume()
    served_from_tier(mw, made)
    for path, accept_encoding, coding in ROUND:
        exact_and_timely(mw, path, accept_encoding, coding)
    assert len(backend_warnings(caplog)) == 1
    client.close()


class Refusing:
    """A backend whose ``get`` and/or ``set`` raise (a cache server refusing)."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.gets = 0
        self.sets: List[Tuple[str, bytes]] = []

    def get(self, key: str) -> Optional[bytes]:
        self.gets += 1
        if self.failing in ("get", "both"):
            raise ConnectionRefusedError("the cache refuses reads")
        return None

    def set(self, key: str, value: bytes) -> None:
        self.sets.append((key, value))
        if self.failing in ("set", "both"):
            raise OSError("the cache refuses writes")

    def __repr__(self) -> str:
        return f"<Refusing {self.failing}>"


@pytest.mark.parametrize("failing", ["get", "set", "both"])
def test_backend_that_raises(
    make_mw: Any, made: List[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setattr(_cache, "BACKEND_RETRY", 0.05)
    caplog.set_level(logging.WARNING, logger="asok_fast")
    backend = Refusing(failing)
    mw = make_mw(page_app(), config(backend))
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 0.6 or n < 2 * len(ROUND):
        path, accept_encoding, coding = ROUND[n % len(ROUND)]
        exact_and_timely(mw, path, accept_encoding, coding)
        n += 1
        time.sleep(0.01)
    assert len(made) == n
    assert backend.gets > 1  # tried again after each rest
    if failing == "set":  # a failed write rests the tier too; after each rest it writes again
        assert len(backend.sets) > 1
    for key, value in backend.sets:  # what was offered is right, whatever became of it
        coding = key.split(":")[1]
        body = PAGE if key == shared_key(coding, PAGE) else OTHER
        assert key == shared_key(coding, body) and value == reference(coding, body)
    wait_for(lambda: backend_warnings(caplog), timeout=5, what="the warning")  # writes fail on the tier's threads
    warnings = backend_warnings(caplog)
    assert len(warnings) == 1
    assert repr(backend) in warnings[0].getMessage()


class Odd:
    """A backend that answers every read with ``value`` (not bytes) and records writes."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.sets: List[Tuple[str, bytes]] = []

    gets = 0

    def get(self, key: str) -> Any:
        self.gets += 1
        return self.value

    def set(self, key: str, value: bytes) -> None:
        self.sets.append((key, value))


@pytest.mark.parametrize(
    "value",
    ["text", 42, {"body": b"x"}, bytearray(b"\x1f\x8b"), memoryview(b"\x1f\x8b"), [b"x"]],
    ids=["str", "int", "dict", "bytearray", "memoryview", "list"],
)
def test_backend_returning_non_bytes_is_a_miss(
    make_mw: Any, made: List[str], caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="asok_fast")
    backend = Odd(value)
    mw = make_mw(page_app(), config(backend))
    for round_ in range(2):
        for path, accept_encoding, coding in ROUND:
            exact_and_timely(mw, path, accept_encoding, coding)
    assert len(made) == 2 * len(ROUND)  # never served: compressed every time
    # The first odd answer is trouble (a decoding client would never hit): said once,
    # and the tier rests, asked no more.
    assert backend.gets == 1
    warnings = backend_warnings(caplog)
    assert len(warnings) == 1
    assert f"get() returned {type(value).__name__}, not bytes" in warnings[0].getMessage()

