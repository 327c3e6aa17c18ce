"""ResponseMiddleware around a real Asok 0.8 application.

The project is scaffolded with the real ``asok create`` CLI (see ``tests/asok_project.py``) and
its settings live where an Asok user puts them: ``app.config[...]`` in the project's ``wsgi.py``.
The middleware's agreed behaviour with such an app:

* the SPEC keys found in ``app.config`` are the middleware's starting values, ``config=``
  overrides them;
* it takes gzip over: where ``app.config["GZIP"]`` was true it sets it to ``False`` (Asok would
  otherwise compress at level 9 itself) and compresses at its own ``GZIP_LEVEL`` (6);
* ``CORS_ORIGINS`` stays in ``app.config`` (Asok uses it for CSRF and redirect checks), so Asok
  sets ``Access-Control-Allow-Origin`` & co. on responses to allowed origins itself; the
  middleware then adds no CORS header (never two of one), only ``Vary: Origin``;
* preflights are answered by the middleware (204, app not called).

Deterministic bodies: Asok puts a CSRF token into HTML pages, random per request unless the
client sends back a valid ``asok_csrf`` cookie.  Requests here send ``Cookie: asok_csrf=<fixed>``
(what a browser does after its first visit), which makes the report page byte-identical across
requests; the page has no script/style tag, so no CSP nonce lands in the body.  Every expected
body is still taken from the bare (unwrapped) app for the same request, and the page's
determinism is itself asserted.  One test covers a first visit (random token in the body), where
the reference is the response's own decompressed content.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("asok", reason="the real-Asok tests need asok==0.8.0 installed")

from asok_fast import ResponseMiddleware  # noqa: E402

from wsgi_helpers import call, decode, gzip_reference, md5_tag  # noqa: E402
from asok_project import (  # noqa: E402
    CSRF_COOKIE,
    CSRF_TOKEN,
    JSON_PATH,
    PAGE_PATH,
    expected_json_body,
    make_asok_app,
)


ORIGINS = ["https://app.example.com", "https://admin.example.com"]
EVIL = "https://evil.example.net"
APP_GZIP_MIN_SIZE = 1000  # below both pages (report ~6 KB, JSON ~1.4 KB)

# What Asok itself sends on CORS responses (core/wsgi.py _CORS_HEADERS / _CORS_METHODS).
ASOK_ALLOW_HEADERS = "Content-Type, X-CSRF-Token, X-Block"
# The middleware's SPEC defaults.
MW_ALLOW_METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"
MW_ALLOW_HEADERS = "Content-Type, X-CSRF-Token, Authorization"

PATHS = [PAGE_PATH, JSON_PATH]


def request_headers(origin: str | None = ORIGINS[0], gzip_ok: bool = True, **extra) -> dict:
    headers = {"Cookie": CSRF_COOKIE}
    if gzip_ok:
        # What an HTTP library without brotli or zstd sends (curl --compressed,
        # urllib3 1.x): gzip is the coding both sides share.  A browser's header
        # is the subject of test_browser_codings_exactly_once.
        headers["Accept-Encoding"] = "gzip, deflate"
    if origin is not None:
        headers["Origin"] = origin
    for k, v in extra.items():
        headers[k.replace("_", "-")] = v
    return headers


def wrap(app, core, config=None) -> ResponseMiddleware:
    """The middleware around ``app`` (``config=`` as given), bound to the core under test:
    conftest's ``core`` fixture gives the compiled and the pure-Python one in turn."""
    return ResponseMiddleware(app, config, _core_module=core)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory, core):
    """One real Asok project for the module: GZIP on, two CORS origins, GZIP_MIN_SIZE 1000."""
    app = make_asok_app(
        tmp_path_factory.mktemp("asok_main"),
        GZIP=True,
        CORS_ORIGINS=list(ORIGINS),
        GZIP_MIN_SIZE=APP_GZIP_MIN_SIZE,
    )
    app_config_before = dict(app.config)
    mw = wrap(app, core)
    app_config_after = dict(app.config)
    yield SimpleNamespace(
        app=app, mw=mw, app_config_before=app_config_before, app_config_after=app_config_after
    )
    app.shutdown()


@pytest.fixture(scope="module")
def pages(project):
    """The uncompressed bodies the bare Asok app (GZIP now off) serves, per path."""
    out = {}
    for path in PATHS:
        first = call(project.app, path=path, headers=request_headers())
        second = call(project.app, path=path, headers=request_headers())
        assert first.code == 200, (path, first.status, first.body[:500])
        assert first.body == second.body, f"{path}: Asok page is not deterministic"
        out[path] = first.body
    return out


@pytest.fixture
def app_calls(project, monkeypatch):
    """Count the requests that reach the Asok app (Asok.__call__ -> self._wsgi_call)."""
    calls = []
    real = project.app._wsgi_call

    def counting(environ, start_response):
        calls.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO")))
        return real(environ, start_response)

    monkeypatch.setattr(project.app, "_wsgi_call", counting)
    return calls


# ---------------------------------------------------------------- config hand-over


def test_app_config_is_the_starting_config(project):
    mw, app = project.mw, project.app
    assert project.app_config_before["GZIP"] is True
    assert mw.config["GZIP"] is True
    assert list(mw.config["CORS_ORIGINS"]) == ORIGINS
    assert mw.config["GZIP_MIN_SIZE"] == APP_GZIP_MIN_SIZE
    # keys Asok does not have keep the SPEC defaults
    assert mw.config["ETAG"] is True
    assert mw.config["GZIP_LEVEL"] == 6
    assert mw.config["CORS_ALLOW_CREDENTIALS"] is False
    # gzip taken over from Asok; everything else of Asok's config left alone
    after = project.app_config_after
    assert after["GZIP"] is False
    assert app.config["GZIP"] is False
    assert after["CORS_ORIGINS"] == ORIGINS
    assert after["GZIP_MIN_SIZE"] == APP_GZIP_MIN_SIZE
    assert after["RATE_LIMIT"] is False
    assert {k: v for k, v in after.items() if k != "GZIP"} == {
        k: v for k, v in project.app_config_before.items() if k != "GZIP"
    }


@pytest.mark.parametrize("path", PATHS)
def test_bare_asok_no_longer_compresses(project, pages, path):
    bare = call(project.app, path=path, headers=request_headers())
    assert bare.code == 200
    assert not bare.has("Content-Encoding")
    assert bare.body == pages[path]
    assert not bare.body.startswith(b"\x1f\x8b")
    assert bare.one("Content-Length") == str(len(bare.body))


def test_pages_are_what_the_project_defines(pages):
    assert pages[JSON_PATH] == expected_json_body()
    assert 1300 < len(pages[JSON_PATH]) < 1500
    html = pages[PAGE_PATH]
    assert html.startswith(b"<!DOCTYPE html>")
    assert 4000 < len(html) < 20000
    assert b"SKU-00059" in html
    assert f'<meta name="csrf-token" content="{CSRF_TOKEN}">'.encode() in html


# ---------------------------------------------------------------- (a) gzip exactly once


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", ORIGINS)
def test_gzip_exactly_once_at_level_6(project, pages, path, origin):
    r = call(project.mw, path=path, headers=request_headers(origin))
    page = pages[path]
    assert r.status == "200 OK"
    assert r.get_all("Content-Encoding") == ["gzip"]
    assert r.body.startswith(b"\x1f\x8b")
    once = gzip.decompress(r.body)
    assert once == page  # one gunzip gives the page: compressed once, not twice
    assert not once.startswith(b"\x1f\x8b")
    assert r.body == gzip_reference(page, 6)  # asok_fast's level 6, not Asok's GzipFile level 9
    assert r.one("Content-Length") == str(len(r.body))
    tokens = r.vary_tokens()
    assert sorted(tokens) == ["accept-encoding", "origin"]
    expected_type = "application/json" if path == JSON_PATH else "text/html; charset=utf-8"
    assert r.one("Content-Type") == expected_type
    # Asok's own headers pass through once
    assert r.one("X-Content-Type-Options") == "nosniff"
    assert r.one("X-Frame-Options") == "DENY"
    assert "nonce-" in r.one("Content-Security-Policy")
    assert r.one("X-CSRF-Token") == CSRF_TOKEN
    assert any(v.startswith("asok_sid=") for v in r.get_all("Set-Cookie"))


BROWSER_ACCEPT_ENCODING = "gzip, deflate, br, zstd"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "accept, coding",
    [(BROWSER_ACCEPT_ENCODING, "zstd"), ("gzip, deflate, br", "br"), ("br;q=0.5, gzip", "gzip")],
)
def test_browser_codings_exactly_once(project, pages, path, accept, coding):
    """The drop-in with the default COMPRESS_CODINGS: the best coding the client
    takes, applied once, and every representation's tag revalidates."""
    page = pages[path]
    r = call(project.mw, path=path, headers=request_headers(Accept_Encoding=accept))
    assert r.status == "200 OK"
    assert r.get_all("Content-Encoding") == [coding]
    assert decode(coding, r.body) == page  # one decoding gives the page: compressed once
    assert r.one("Content-Length") == str(len(r.body))
    digest = hashlib.md5(page).hexdigest()
    assert r.one("ETag") == f'"{digest}-{coding}"'
    assert sorted(r.vary_tokens()) == ["accept-encoding", "origin"]
    for tag in (f'"{digest}"', f'"{digest}-gzip"', f'W/"{digest}-zstd"', f'"{digest}-br"'):
        nm = call(project.mw, path=path, headers=request_headers(Accept_Encoding=accept, If_None_Match=tag))
        assert nm.status == "304 Not Modified"
        assert nm.body == b""
        assert nm.one("ETag") == f'"{digest}-{coding}"'


def test_asok_exact_gzip_only_behaviour(tmp_path, core, pages):
    """COMPRESS_CODINGS = ["gzip"] in the project's config: a browser gets gzip, as from Asok."""
    app = make_asok_app(
        tmp_path, GZIP=True, CORS_ORIGINS=list(ORIGINS), GZIP_MIN_SIZE=APP_GZIP_MIN_SIZE, COMPRESS_CODINGS=["gzip"]
    )
    try:
        mw = wrap(app, core)
        assert mw.config["COMPRESS_CODINGS"] == ["gzip"]
        r = call(mw, path=PAGE_PATH, headers=request_headers(Accept_Encoding=BROWSER_ACCEPT_ENCODING))
        assert r.get_all("Content-Encoding") == ["gzip"]
        assert r.body == gzip_reference(pages[PAGE_PATH], 6)
    finally:
        app.shutdown()


# ---------------------------------------------------------------- (b) CORS headers once


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", ORIGINS)
def test_cors_headers_exactly_once(project, path, origin):
    r = call(project.mw, path=path, headers=request_headers(origin))
    assert r.code == 200
    names = r.cors_names()
    assert len(names) == len(set(names)), r.headers
    assert r.one("Access-Control-Allow-Origin") == origin
    assert r.one("Access-Control-Allow-Methods") == MW_ALLOW_METHODS
    # Asok set Access-Control-Allow-Origin itself, so the middleware added no CORS header:
    # the Allow-Headers value is Asok's, not the middleware's default.
    assert r.one("Access-Control-Allow-Headers") == ASOK_ALLOW_HEADERS
    assert set(names) == {
        "access-control-allow-origin",
        "access-control-allow-credentials",  # Asok's own, for listed origins
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",  # Asok exposes X-CSRF-Token
    }
    assert "origin" in r.vary_tokens()


# ---------------------------------------------------------------- (c) ETag and 304


@pytest.mark.parametrize("path", PATHS)
def test_gzip_etag_and_revalidation(project, pages, path):
    page = pages[path]
    digest = hashlib.md5(page).hexdigest()
    r = call(project.mw, path=path, headers=request_headers())
    assert r.get_all("Content-Encoding") == ["gzip"]
    etag = r.one("ETag")
    assert etag == f'"{digest}-gzip"'

    nm = call(project.mw, path=path, headers=request_headers(If_None_Match=etag))
    assert nm.status == "304 Not Modified"
    assert nm.body == b""
    assert nm.one("ETag") == etag
    for gone in ("Content-Encoding", "Content-Length", "Content-Type"):
        assert not nm.has(gone), (gone, nm.headers)
    assert nm.one("Vary") == r.one("Vary")
    assert nm.one("Access-Control-Allow-Origin") == ORIGINS[0]
    names = nm.cors_names()
    assert sorted(names) == sorted(r.cors_names())
    assert nm.one("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path", PATHS)
def test_identity_etag_and_revalidation(project, pages, path):
    page = pages[path]
    digest = hashlib.md5(page).hexdigest()
    r = call(project.mw, path=path, headers=request_headers(gzip_ok=False))
    assert r.status == "200 OK"
    assert not r.has("Content-Encoding")
    assert r.body == page
    assert r.one("Content-Length") == str(len(page))
    assert r.one("ETag") == f'"{digest}"'
    # compressible and large enough, only the client refused gzip: still varies on it
    assert sorted(r.vary_tokens()) == ["accept-encoding", "origin"]

    nm = call(project.mw, path=path, headers=request_headers(gzip_ok=False, If_None_Match=f'"{digest}"'))
    assert nm.status == "304 Not Modified"
    assert nm.body == b""
    assert nm.one("ETag") == f'"{digest}"'


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "tag_template",
    ['"{d}"', 'W/"{d}-gzip"', 'W/"{d}"', '"0000", "{d}-gzip"', "*"],
)
def test_other_tags_of_the_same_content_revalidate(project, pages, path, tag_template):
    digest = hashlib.md5(pages[path]).hexdigest()
    r = call(project.mw, path=path, headers=request_headers(If_None_Match=tag_template.format(d=digest)))
    assert r.status == "304 Not Modified"
    assert r.body == b""
    assert r.one("ETag") == f'"{digest}-gzip"'


@pytest.mark.parametrize("path", PATHS)
def test_stale_tag_gets_full_response(project, pages, path):
    r = call(project.mw, path=path, headers=request_headers(If_None_Match='"' + "0" * 32 + '-gzip"'))
    assert r.status == "200 OK"
    assert gzip.decompress(r.body) == pages[path]


@pytest.mark.parametrize("path", PATHS)
def test_head_has_get_headers_and_no_body(project, pages, path):
    get = call(project.mw, path=path, headers=request_headers())
    head = call(project.mw, "HEAD", path, headers=request_headers())
    assert head.status == "200 OK"
    assert head.body == b""
    assert head.get_all("Content-Encoding") == ["gzip"]
    assert head.one("ETag") == get.one("ETag") == md5_tag(pages[path], "-gzip")
    assert head.one("Content-Length") == str(len(get.body))
    assert sorted(head.vary_tokens()) == ["accept-encoding", "origin"]


def test_first_visit_with_random_csrf_token(project):
    """No asok_csrf cookie: Asok mints a token per request, so the body differs each time;
    each response's ETag and gzip bytes are still those of its own uncompressed body."""
    headers = {"Accept-Encoding": "gzip", "Origin": ORIGINS[1]}
    seen = set()
    for _ in range(2):
        r = call(project.mw, path=PAGE_PATH, headers=headers)
        assert r.status == "200 OK"
        assert r.get_all("Content-Encoding") == ["gzip"]
        page = gzip.decompress(r.body)
        assert r.body == gzip_reference(page, 6)
        assert r.one("ETag") == md5_tag(page, "-gzip")
        token = re.search(rb'<meta name="csrf-token" content="([0-9a-f]{64})">', page).group(1)
        assert f"asok_csrf={token.decode()};" in " ".join(r.get_all("Set-Cookie"))
        assert r.one("Access-Control-Allow-Origin") == ORIGINS[1]
        seen.add(r.one("ETag"))
    assert len(seen) == 2


# ---------------------------------------------------------------- (d) disallowed origin


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", [EVIL, "https://app.example.com.evil.net", "null"])
def test_disallowed_origin_gets_no_cors_header(project, pages, path, origin):
    r = call(project.mw, path=path, headers=request_headers(origin))
    assert r.status == "200 OK"
    assert r.cors_names() == [], r.headers
    assert sorted(r.vary_tokens()) == ["accept-encoding", "origin"]
    assert r.get_all("Content-Encoding") == ["gzip"]
    assert gzip.decompress(r.body) == pages[path]
    assert r.one("ETag") == md5_tag(pages[path], "-gzip")


@pytest.mark.parametrize("path", PATHS)
def test_no_origin_gets_no_allow_origin(project, pages, path):
    r = call(project.mw, path=path, headers=request_headers(origin=None))
    assert r.status == "200 OK"
    assert not r.has("Access-Control-Allow-Origin")
    names = r.cors_names()
    assert len(names) == len(set(names))
    assert "origin" in r.vary_tokens()
    assert gzip.decompress(r.body) == pages[path]


# ---------------------------------------------------------------- (e) preflight


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", ORIGINS)
def test_preflight_answered_by_middleware(project, app_calls, path, origin):
    r = call(
        project.mw,
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-csrf-token",
        },
    )
    assert app_calls == []
    assert r.status == "204 No Content"
    assert r.body == b""
    assert not r.has("Content-Length")
    names = r.cors_names()
    assert len(names) == len(set(names)), r.headers
    assert r.one("Access-Control-Allow-Origin") == origin
    assert r.one("Access-Control-Allow-Methods") == MW_ALLOW_METHODS
    assert r.one("Access-Control-Allow-Headers") == MW_ALLOW_HEADERS
    assert r.one("Access-Control-Max-Age") == "86400"
    assert not r.has("Access-Control-Allow-Credentials")
    assert "origin" in r.vary_tokens()


@pytest.mark.parametrize("origin", [EVIL, "not a url"])
def test_preflight_from_disallowed_origin(project, app_calls, origin):
    r = call(
        project.mw,
        "OPTIONS",
        JSON_PATH,
        headers={"Origin": origin, "Access-Control-Request-Method": "DELETE"},
    )
    assert app_calls == []
    assert r.status == "204 No Content"
    assert r.body == b""
    assert r.cors_names() == []


def test_counting_hook_sees_requests(project, app_calls):
    call(project.mw, path=JSON_PATH, headers=request_headers())
    assert app_calls == [("GET", JSON_PATH)]


def test_plain_options_reaches_asok(project, app_calls):
    """OPTIONS without Access-Control-Request-Method is no preflight: Asok answers it
    (its own 204 with its CORS headers) and the middleware adds no second set."""
    r = call(project.mw, "OPTIONS", JSON_PATH, headers={"Origin": ORIGINS[0]})
    assert app_calls == [("OPTIONS", JSON_PATH)]
    assert r.status == "204 No Content"
    assert r.body == b""
    names = r.cors_names()
    assert len(names) == len(set(names)), r.headers
    assert r.one("Access-Control-Allow-Origin") == ORIGINS[0]
    assert r.one("Access-Control-Allow-Headers") == ASOK_ALLOW_HEADERS


# ---------------------------------------------------------------- Asok's static files
#
# Asok serves src/partials/{css,js,images,uploads} itself, with its own ETag: the bare MD5 hex,
# unquoted (not an RFC 9110 entity-tag), and its own 304 when If-None-Match equals it exactly.
# The middleware quotes such a tag (and weakens it when it compresses), and answers the
# revalidation itself when Asok's exact comparison does not match the quoted form.


def _static_file(project, rel: str) -> bytes:
    return (Path(project.app.root_dir) / "src" / "partials" / rel).read_bytes()


@pytest.mark.parametrize("rel", ["css/base.css", "images/logo.svg"])
def test_small_static_file_passes_through_with_asok_etag(project, rel):
    content = _static_file(project, rel)
    assert len(content) <= APP_GZIP_MIN_SIZE  # too small for gzip in this project
    r = call(project.mw, path="/" + rel, headers=request_headers())
    assert r.status == "200 OK"
    assert not r.has("Content-Encoding")
    assert r.body == content
    assert r.one("Content-Length") == str(len(content))
    asok_tag = r.one("ETag")
    # Asok's own tag is the bare hex, which is no RFC 9110 entity-tag: the
    # middleware quotes it, so a client can send it back and match.
    assert asok_tag == md5_tag(content)
    assert r.one("Access-Control-Allow-Origin") == ORIGINS[0]  # the middleware's (Asok adds none here)
    assert r.one("Access-Control-Allow-Headers") == MW_ALLOW_HEADERS
    nm = call(project.mw, path="/" + rel, headers=request_headers(If_None_Match=asok_tag))
    assert nm.status == "304 Not Modified"
    assert nm.body == b""
    assert nm.one("ETag") == asok_tag


@pytest.fixture
def static_gzip(project):
    """Lower the middleware's GZIP_MIN_SIZE so that Asok's base.css (~800 B) is compressed."""
    project.mw.config["GZIP_MIN_SIZE"] = 500
    yield _static_file(project, "css/base.css")
    project.mw.config["GZIP_MIN_SIZE"] = APP_GZIP_MIN_SIZE


def test_compressed_static_file_weakens_asok_etag(project, static_gzip):
    content = static_gzip
    assert len(content) > 500
    r = call(project.mw, path="/css/base.css", headers=request_headers())
    assert r.status == "200 OK"
    assert r.get_all("Content-Encoding") == ["gzip"]
    assert r.body == gzip_reference(content, 6)
    assert r.one("Content-Length") == str(len(r.body))
    etag = r.one("ETag")
    assert etag == "W/" + md5_tag(content)
    assert sorted(r.vary_tokens()) == ["accept-encoding", "origin"]


def test_compressed_static_file_revalidates_with_the_tag_received(project, static_gzip):
    r = call(project.mw, path="/css/base.css", headers=request_headers())
    etag = r.one("ETag")
    nm = call(project.mw, path="/css/base.css", headers=request_headers(If_None_Match=etag))
    assert nm.status == "304 Not Modified"
    assert nm.body == b""
    assert nm.one("ETag") == etag


# ---------------------------------------------------------------- runtime changes


def test_runtime_gzip_off_means_no_compression_at_all(project, pages):
    """With the middleware's GZIP switched off, nobody compresses (Asok's stays off)."""
    mw = project.mw
    mw.config["GZIP"] = False
    try:
        r = call(mw, path=PAGE_PATH, headers=request_headers())
        assert not r.has("Content-Encoding")
        assert r.body == pages[PAGE_PATH]
        assert r.one("ETag") == md5_tag(pages[PAGE_PATH])
        assert project.app.config["GZIP"] is False
    finally:
        mw.config["GZIP"] = True
    r = call(mw, path=PAGE_PATH, headers=request_headers())
    assert r.get_all("Content-Encoding") == ["gzip"]


def test_runtime_min_size_change(project, pages):
    mw = project.mw
    mw.config["GZIP_MIN_SIZE"] = 5000  # between the JSON (~1.4 KB) and the page (~6 KB)
    try:
        j = call(mw, path=JSON_PATH, headers=request_headers())
        assert not j.has("Content-Encoding")
        assert j.body == pages[JSON_PATH]
        assert j.vary_tokens() == ["origin"]  # too small for gzip for any client
        p = call(mw, path=PAGE_PATH, headers=request_headers())
        assert p.get_all("Content-Encoding") == ["gzip"]
    finally:
        mw.config["GZIP_MIN_SIZE"] = APP_GZIP_MIN_SIZE


# ---------------------------------------------------------------- (g) config sources


def test_app_config_keys_picked_up_from_a_second_project(project, core, tmp_path):
    """A second project in the same session: its own wsgi.py settings (a comma-separated
    CORS_ORIGINS string, as Asok reads it, and GZIP_MIN_SIZE 2000) drive its middleware."""
    app2 = make_asok_app(
        tmp_path,
        GZIP=True,
        CORS_ORIGINS="https://one.example, https://two.example",
        GZIP_MIN_SIZE=2000,
        GZIP_LEVEL=9,
    )
    try:
        assert app2.root_dir != project.app.root_dir
        mw2 = wrap(app2, core)
        assert mw2.config["GZIP"] is True
        assert mw2.config["GZIP_MIN_SIZE"] == 2000
        assert mw2.config["GZIP_LEVEL"] == 9
        assert mw2.config["CORS_ORIGINS"] in (
            "https://one.example, https://two.example",  # as given
            ["https://one.example", "https://two.example"],  # or already split
        )
        assert app2.config["GZIP"] is False

        bare_page = call(app2, path=PAGE_PATH, headers=request_headers(None)).body
        page = call(mw2, path=PAGE_PATH, headers=request_headers("https://two.example"))
        assert page.get_all("Content-Encoding") == ["gzip"]
        assert page.body == gzip_reference(bare_page, 9)
        assert page.one("Access-Control-Allow-Origin") == "https://two.example"

        j = call(mw2, path=JSON_PATH, headers=request_headers("https://two.example"))
        assert not j.has("Content-Encoding")  # 1407 bytes <= 2000
        assert j.body == expected_json_body()
        assert j.one("ETag") == md5_tag(expected_json_body())

        pre = call(
            mw2,
            "OPTIONS",
            JSON_PATH,
            headers={"Origin": "https://one.example", "Access-Control-Request-Method": "PUT"},
        )
        assert pre.status == "204 No Content"
        assert pre.one("Access-Control-Allow-Origin") == "https://one.example"
        assert pre.one("Access-Control-Allow-Headers") == MW_ALLOW_HEADERS

        # the first project is unaffected by the second one's import
        r = call(project.mw, path=JSON_PATH, headers=request_headers())
        assert r.one("Access-Control-Allow-Origin") == ORIGINS[0]
        assert gzip.decompress(r.body) == expected_json_body()
    finally:
        app2.shutdown()


def test_config_argument_overrides_app_config(core, tmp_path):
    app3 = make_asok_app(
        tmp_path,
        GZIP=True,
        CORS_ORIGINS=list(ORIGINS),
        GZIP_MIN_SIZE=100000,
    )
    try:
        mw3 = wrap(
            app3,
            core,
            config={"GZIP_MIN_SIZE": 100, "CORS_ORIGINS": ["https://other.example"], "ETAG": False},
        )
        assert mw3.config["GZIP_MIN_SIZE"] == 100
        assert list(mw3.config["CORS_ORIGINS"]) == ["https://other.example"]
        assert mw3.config["ETAG"] is False
        assert mw3.config["GZIP"] is True  # not overridden: from the app
        assert app3.config["GZIP"] is False
        assert app3.config["GZIP_MIN_SIZE"] == 100000  # the app's own value is left alone

        j = call(mw3, path=JSON_PATH, headers=request_headers(None))
        assert j.get_all("Content-Encoding") == ["gzip"]  # 1407 > 100 (override), not > 100000
        assert gzip.decompress(j.body) == expected_json_body()
        assert j.body == gzip_reference(expected_json_body(), 6)
        assert not j.has("ETag")

        pre_new = call(
            mw3,
            "OPTIONS",
            JSON_PATH,
            headers={"Origin": "https://other.example", "Access-Control-Request-Method": "GET"},
        )
        assert pre_new.one("Access-Control-Allow-Origin") == "https://other.example"
        pre_old = call(
            mw3,
            "OPTIONS",
            JSON_PATH,
            headers={"Origin": ORIGINS[0], "Access-Control-Request-Method": "GET"},
        )
        assert pre_old.status == "204 No Content"
        assert pre_old.cors_names() == []
    finally:
        app3.shutdown()
