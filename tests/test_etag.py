"""MD5 ETags and 304 Not Modified through ResponseMiddleware.

Every test builds its middleware with ``make_mw`` so it runs against both cores.
Expected values come from SPEC.md and RFC 9110 (8.8.3 ETag, 13.1.2 If-None-Match,
13.1.3 If-Modified-Since, 15.4.5 304), never from reading the implementation back.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

from wsgi_helpers import ClosingList, Tracked, call, gzip_reference, make_app, wsgi_app

from asok_fast import _core_py

Header = Tuple[str, str]

HTML = "text/html; charset=utf-8"
BODY = b"<h1>ETag me</h1>\n<p>The same bytes give the same tag.</p>\n" * 20  # > 500 bytes
DIGEST = hashlib.md5(BODY).hexdigest()
TAG = f'"{DIGEST}"'
GZIP_TAG = f'"{DIGEST}-gzip"'
GZ = {"GZIP": True}
AE_GZIP = {"Accept-Encoding": "gzip"}

# RFC 9110 15.4.5 / SPEC: what a 304 leaves out.
NOT_IN_304 = {"content-type", "content-length", "content-encoding", "content-language", "content-range", "content-md5"}

LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def without_representation(headers: List[Header]) -> List[Header]:
    """The 304 a 200 with ``headers`` turns into: representation metadata dropped."""
    return [h for h in headers if h[0].lower() not in NOT_IN_304]


def assert_304(r: Any, expected_headers: List[Header]) -> None:
    assert r.status == "304 Not Modified"
    assert r.headers == expected_headers
    assert r.body == b""
    assert r.get("Content-Length") is None


def stream_app(chunks: Sequence[bytes], headers: Sequence[Header], status: str = "200 OK") -> Any:
    """A streamed body (no Content-Length of its own) in ``app.bodies``, tracked."""
    return wsgi_app(lambda: Tracked(chunks), status, headers)


# --- the tag itself ------------------------------------------------------------------


def test_200_get_gets_md5_etag(make_mw: Any) -> None:
    r = call(make_mw(make_app(BODY)))
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY
    assert TAG == '"' + hashlib.md5(r.body).hexdigest() + '"'


def test_etag_of_multi_chunk_body_and_write(make_mw: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first ")
        return [b"second ", b"", b"third"]

    r = call(make_mw(app))
    assert r.headers == [("Content-Type", "text/plain"), ("Content-Length", "18"), ("ETag", f'"{md5(b"first second third")}"')]
    assert r.body == b"first second third"


def test_etag_of_empty_body(make_mw: Any) -> None:
    r = call(make_mw(make_app(b"")))
    assert r.headers == [("Content-Type", HTML), ("Content-Length", "0"), ("ETag", '"d41d8cd98f00b204e9800998ecf8427e"')]
    assert r.body == b""


def test_etag_on_by_default(make_mw: Any) -> None:
    assert make_mw(make_app(BODY)).config["ETAG"] is True


def test_gzip_representation_gets_derived_tag(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), GZ)
    r = call(mw, headers=AE_GZIP)
    compressed = gzip_reference(BODY)
    assert r.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", GZIP_TAG),
        ("Vary", "Accept-Encoding"),
    ]
    assert r.body == compressed
    # The identity representation of the same resource keeps the plain tag.
    r = call(mw, headers={"Accept-Encoding": "identity"})
    assert r.headers == [
        ("Content-Type", HTML),
        ("Content-Length", str(len(BODY))),
        ("ETag", TAG),
        ("Vary", "Accept-Encoding"),
    ]
    assert r.body == BODY


def test_buffered_generator_with_content_length_gets_etag(make_mw: Any) -> None:
    app = stream_app([BODY[:10], BODY[10:]], [("Content-Type", HTML), ("Content-Length", str(len(BODY)))])
    r = call(make_mw(app))
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY
    assert app.bodies[0].closed == 1


# --- If-None-Match: every form of our tag ------------------------------------------------

INM_FORMS = [
    "{tag}",
    "{gzip_tag}",
    "W/{tag}",
    "W/{gzip_tag}",
    '"aaa", {tag}, "bbb"',
    '"aaa",W/{gzip_tag}',
    'W/"zzz", W/{tag}',
    " \t{tag}\t ",
    '"x" ,\t W/{gzip_tag} ,',
    ", {tag}",
    "{tag},",
    '"x", , {gzip_tag}',
    "*",
    " * ",
]


def _inm(form: str) -> str:
    return form.format(tag=TAG, gzip_tag=GZIP_TAG)


@pytest.mark.parametrize("form", INM_FORMS)
@pytest.mark.parametrize("accept", [None, "gzip", "br", "zstd", "deflate"])
def test_if_none_match_our_tag_gives_304(make_mw: Any, form: str, accept: Optional[str]) -> None:
    # The default codings: the gzip tag (or the identity one) revalidates every representation.
    mw = make_mw(make_app(BODY), GZ)
    request = {"Accept-Encoding": accept} if accept else {}
    full = call(mw, headers=request)
    assert full.status == "200 OK"
    tag = f'"{DIGEST}-{accept}"' if accept in ("gzip", "br", "zstd") else TAG
    assert full.get("ETag") == tag
    r = call(mw, headers={**request, "If-None-Match": _inm(form)})
    expected = [("ETag", tag), ("Vary", "Accept-Encoding")]
    assert without_representation(full.headers) == expected
    assert_304(r, expected)


@pytest.mark.parametrize("form", INM_FORMS)
def test_if_none_match_without_gzip_config(make_mw: Any, form: str) -> None:
    r = call(make_mw(make_app(BODY)), headers={"If-None-Match": _inm(form), "Accept-Encoding": "gzip"})
    assert_304(r, [("ETag", TAG)])


def test_304_with_gzip_accepted_carries_gzip_tag_and_vary(make_mw: Any) -> None:
    r = call(make_mw(make_app(BODY), GZ), headers={"Accept-Encoding": "gzip", "If-None-Match": TAG})
    assert_304(r, [("ETag", GZIP_TAG), ("Vary", "Accept-Encoding")])


def test_304_for_uncompressible_has_no_vary(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY, content_type="image/png"), GZ)
    full = call(mw, headers=AE_GZIP)
    assert full.headers == [("Content-Type", "image/png"), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert_304(call(mw, headers={"Accept-Encoding": "gzip", "If-None-Match": TAG}), [("ETag", TAG)])


APP_HEADERS: List[Header] = [
    ("Content-Type", HTML),
    ("Content-Language", "en"),
    ("Cache-Control", "max-age=60, must-revalidate"),
    ("Content-Location", "/doc.en.html"),
    ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ("Expires", "Sun, 06 Nov 1994 09:49:37 GMT"),
    ("Set-Cookie", "session=abc; Path=/; HttpOnly"),
    ("Content-Security-Policy", "default-src 'self'"),
    ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
    ("Content-Range", "bytes 0-9/10"),
    ("X-Frame-Options", "DENY"),
    ("Vary", "Cookie"),
]
ORIGIN = "https://a.example"
CORS_ECHO = [
    ("Access-Control-Allow-Origin", ORIGIN),
    ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token, Authorization"),
]


def _metadata_app() -> Any:
    return make_app(BODY, content_type=None, headers=APP_HEADERS)


def test_304_keeps_and_drops_the_right_headers_gzip_cors(make_mw: Any) -> None:
    mw = make_mw(_metadata_app(), {"GZIP": True, "CORS_ORIGINS": [ORIGIN]})
    request = {"Accept-Encoding": "gzip", "Origin": ORIGIN}
    full = call(mw, headers=request)
    assert full.status == "200 OK"
    compressed = gzip_reference(BODY)
    assert full.headers == [h for h in APP_HEADERS if h[0] != "Vary"] + [
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(compressed))),
        ("ETag", GZIP_TAG),
        ("Vary", "Cookie, Accept-Encoding, Origin"),
    ] + CORS_ECHO
    assert full.body == compressed

    for inm in (TAG, GZIP_TAG, "W/" + GZIP_TAG, "*"):
        r = call(mw, headers={**request, "If-None-Match": inm})
        expected = [
            ("Cache-Control", "max-age=60, must-revalidate"),
            ("Content-Location", "/doc.en.html"),
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("Expires", "Sun, 06 Nov 1994 09:49:37 GMT"),
            ("Set-Cookie", "session=abc; Path=/; HttpOnly"),
            ("Content-Security-Policy", "default-src 'self'"),
            ("X-Frame-Options", "DENY"),
            ("ETag", GZIP_TAG),
            ("Vary", "Cookie, Accept-Encoding, Origin"),
        ] + CORS_ECHO
        assert expected == without_representation(full.headers)
        assert_304(r, expected)


@pytest.mark.parametrize(
    "config, request_headers",
    [
        ({}, {}),
        ({"GZIP": True}, {"Accept-Encoding": "deflate"}),
        ({"GZIP": True}, {"Accept-Encoding": "gzip"}),
        ({"GZIP": True}, {"Accept-Encoding": "br"}),
        ({"GZIP": True}, {"Accept-Encoding": "gzip, deflate, br, zstd"}),
        ({"CORS_ORIGINS": "*"}, {}),
        ({"CORS_ORIGINS": "*", "GZIP": True}, {"Accept-Encoding": "gzip", "Origin": ORIGIN}),
        ({"CORS_ORIGINS": [ORIGIN]}, {"Origin": ORIGIN}),
        ({"CORS_ORIGINS": [ORIGIN]}, {"Origin": "https://evil.example"}),
        ({"CORS_ORIGINS": [ORIGIN]}, {}),
        ({"CORS_ORIGINS": [ORIGIN], "CORS_EXPOSE_HEADERS": ["X-Total"], "CORS_ALLOW_CREDENTIALS": True, "GZIP": True}, {"Origin": ORIGIN, "Accept-Encoding": "x-gzip"}),
    ],
)
def test_304_headers_are_the_200_headers_less_metadata(make_mw: Any, config: Dict[str, Any], request_headers: Dict[str, str]) -> None:
    mw = make_mw(_metadata_app(), config)
    full = call(mw, headers=request_headers)
    assert full.status == "200 OK"
    assert full.get("ETag") in (TAG, GZIP_TAG, f'"{DIGEST}-br"', f'"{DIGEST}-zstd"')
    assert len(full.get_all("Vary")) == 1
    r = call(mw, headers={**request_headers, "If-None-Match": full.get("ETag")})
    expected = without_representation(full.headers)
    assert {name for name, _ in expected if name.lower().startswith("content-")} == {"Content-Location", "Content-Security-Policy"}
    assert_304(r, expected)


def test_304_decided_before_compression(make_mw: Any, core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    level = 7
    if core is _core_py:
        calls: List[int] = []
        real = _core_py.compress
        monkeypatch.setattr(_core_py, "compress", lambda settings, coding, data, *rest: calls.append(len(data)) or real(settings, coding, data, *rest))

        def compressions() -> int:
            return len(calls)

    else:
        # The compiled core keeps deflate states in a pool per level: emptied for this
        # level, it holds one again only once a compression has given its state back.
        held = [core.GzipStream(level) for _ in range(core._pool_idle()[level])]
        del held

        def compressions() -> int:
            return core._pool_idle()[level]

    mw = make_mw(make_app(BODY), {"GZIP": True, "GZIP_LEVEL": level})
    assert compressions() == 0
    r = call(mw, headers={"Accept-Encoding": "gzip", "If-None-Match": GZIP_TAG})
    assert_304(r, [("ETag", GZIP_TAG), ("Vary", "Accept-Encoding")])
    r = call(mw, "HEAD", headers={"Accept-Encoding": "gzip", "If-Modified-Since": LAST_MODIFIED, "If-None-Match": "*"})
    assert_304(r, [("ETag", GZIP_TAG), ("Vary", "Accept-Encoding")])
    assert compressions() == 0
    full = call(mw, headers=AE_GZIP)
    assert full.body == gzip_reference(BODY, level)
    assert compressions() == 1  # the counter does see compression


# --- If-None-Match that matches nothing -------------------------------------------------------

NON_MATCHING_INM = [
    DIGEST,  # unquoted
    "abc",
    f"w/{TAG}",  # RFC 9110 8.8.3: weak = %s"W/", case-sensitive
    f"W/ {TAG}",  # no space allowed after W/
    f'"{DIGEST}',  # unterminated
    f'{DIGEST}"',
    f"{TAG} garbage",
    f"garbage {TAG}",
    f"{TAG} {TAG}",  # missing comma
    f"{TAG};{TAG}",
    f'"{DIGEST}\xe9"',  # non-ASCII inside the tag
    f'{TAG}, "\xe9"',  # non-ASCII anywhere
    f'"{DIGEST} x"',  # space is not an etagc
    f'"{DIGEST}-deflate"',  # well-formed, another tag (no coding of ours)
    f'"{DIGEST.upper()}"',  # opaque tags compare case-sensitively
    f'"{DIGEST}-GZIP"',
    f"'{DIGEST}'",
    '""',
    "**",
    "*, " + TAG,
    "",
    " ",
    ",",
    "W/",
]


@pytest.mark.parametrize("inm", NON_MATCHING_INM)
def test_if_none_match_without_match_gives_200(make_mw: Any, inm: str) -> None:
    r = call(make_mw(make_app(BODY)), headers={"If-None-Match": inm})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY


@pytest.mark.parametrize("inm", NON_MATCHING_INM)
def test_if_none_match_without_match_gives_gzip_200(make_mw: Any, inm: str) -> None:
    r = call(make_mw(make_app(BODY), GZ), headers={"If-None-Match": inm, "Accept-Encoding": "gzip"})
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BODY)))),
        ("ETag", GZIP_TAG),
        ("Vary", "Accept-Encoding"),
    ]
    assert r.body == gzip_reference(BODY)


def test_huge_if_none_match(make_mw: Any) -> None:
    inm = ", ".join(f'"{i:032x}"' for i in range(5000))
    mw = make_mw(make_app(BODY))
    r = call(mw, headers={"If-None-Match": inm})
    assert r.status == "200 OK"
    assert r.body == BODY
    assert_304(call(mw, headers={"If-None-Match": inm + ", " + TAG}), [("ETag", TAG)])


def test_if_none_match_core_parser(core: Any) -> None:
    assert core.parse_if_none_match("*") == "*"
    assert core.parse_if_none_match(f' W/{TAG} ,"b"') == (TAG, '"b"')
    assert core.parse_if_none_match(f"w/{TAG}") is None
    assert core.parse_if_none_match(f'"{DIGEST}') is None
    assert core.parse_if_none_match("") is None


# --- the app's own ETag -------------------------------------------------------------------


@pytest.mark.parametrize(
    "app_tag, inm",
    [
        ('"v1"', '"v1"'),
        ('"v1"', 'W/"v1"'),
        ('W/"v1"', '"v1"'),
        ('W/"v1"', 'W/"v1"'),
        ('"v1"', '"v0", "v1"'),
        ('"v1"', "*"),
    ],
)
def test_app_etag_kept_and_matched_weakly(make_mw: Any, app_tag: str, inm: str) -> None:
    app = make_app(BODY, headers=[("ETag", app_tag)])
    mw = make_mw(app)
    full = call(mw)
    assert full.headers == [("Content-Type", HTML), ("ETag", app_tag), ("Content-Length", str(len(BODY)))]
    assert full.body == BODY
    assert_304(call(mw, headers={"If-None-Match": inm}), [("ETag", app_tag)])


@pytest.mark.parametrize("inm", ['"v2"', TAG, '"V1"', 'W/"v1-gzip"'])
def test_app_etag_not_matched(make_mw: Any, inm: str) -> None:
    app = make_app(BODY, headers=[("ETag", '"v1"')])
    r = call(make_mw(app), headers={"If-None-Match": inm})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("ETag", '"v1"'), ("Content-Length", str(len(BODY)))]
    assert r.body == BODY


@pytest.mark.parametrize("inm", ['"v1"', 'W/"v1"'])
def test_app_etag_weakened_by_gzip_still_matches(make_mw: Any, inm: str) -> None:
    app = make_app(BODY, headers=[("ETag", '"v1"')])
    mw = make_mw(app, GZ)
    full = call(mw, headers=AE_GZIP)
    assert full.headers == [
        ("Content-Type", HTML),
        ("ETag", 'W/"v1"'),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BODY)))),
        ("Vary", "Accept-Encoding"),
    ]
    assert full.body == gzip_reference(BODY)
    assert_304(call(mw, headers={"Accept-Encoding": "gzip", "If-None-Match": inm}), [("ETag", 'W/"v1"'), ("Vary", "Accept-Encoding")])
    assert_304(call(mw, headers={"If-None-Match": inm}), [("ETag", '"v1"'), ("Vary", "Accept-Encoding")])


# --- when no tag is added -----------------------------------------------------------------


@pytest.mark.parametrize("cache_control", ["no-store", "private, No-Store", "max-age=0,no-store"])
def test_no_store_means_no_etag(make_mw: Any, cache_control: str) -> None:
    app = make_app(BODY, headers=[("Cache-Control", cache_control)])
    mw = make_mw(app)
    expected = [("Content-Type", HTML), ("Cache-Control", cache_control), ("Content-Length", str(len(BODY)))]
    r = call(mw)
    assert r.headers == expected
    assert r.body == BODY
    r = call(mw, headers={"If-None-Match": TAG})
    assert r.status == "200 OK"
    assert r.headers == expected
    assert r.body == BODY


CORS_ANY = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token, Authorization"),
]
# ETAG off alone turns every feature off: the middleware passes the app's response
# through untouched.  With CORS on it processes the response but adds no tag.
ETAG_OFF = [
    pytest.param({"ETAG": False}, False, id="all-off"),
    pytest.param({"ETAG": False, "CORS_ORIGINS": "*"}, True, id="cors-on"),
]


def _etag_off_expected(app_headers: List[Header], active: bool) -> List[Header]:
    if not active:
        return list(app_headers)
    return list(app_headers) + [("Content-Length", str(len(BODY)))] + CORS_ANY


@pytest.mark.parametrize("config, active", ETAG_OFF)
def test_etag_false_no_tag_no_304(make_mw: Any, config: Dict[str, Any], active: bool) -> None:
    mw = make_mw(make_app(BODY), config)
    expected = _etag_off_expected([("Content-Type", HTML)], active)
    for request in ({}, {"If-None-Match": TAG}, {"If-None-Match": "*"}):
        r = call(mw, headers=request)
        assert r.status == "200 OK"
        assert r.headers == expected
        assert r.body == BODY


@pytest.mark.parametrize("config, active", ETAG_OFF)
def test_etag_false_ignores_app_validators(make_mw: Any, config: Dict[str, Any], active: bool) -> None:
    app = make_app(BODY, headers=[("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED)])
    mw = make_mw(app, config)
    expected = _etag_off_expected([("Content-Type", HTML), ("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED)], active)
    for request in ({"If-None-Match": '"v1"'}, {"If-Modified-Since": LAST_MODIFIED}):
        r = call(mw, headers=request)
        assert r.status == "200 OK"
        assert r.headers == expected
        assert r.body == BODY


def test_etag_false_with_gzip(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), {"ETAG": False, "GZIP": True})
    r = call(mw, headers={"Accept-Encoding": "gzip", "If-None-Match": GZIP_TAG})
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BODY)))),
        ("Vary", "Accept-Encoding"),
    ]
    assert r.body == gzip_reference(BODY)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("inm", [TAG, "*", None])
def test_unsafe_methods_never_304_and_get_no_etag(make_mw: Any, method: str, inm: Optional[str]) -> None:
    app = make_app(BODY)
    request = {"If-None-Match": inm} if inm else {}
    r = call(make_mw(app), method, headers={**request, "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY)))]
    assert r.body == BODY
    assert app.calls == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_unsafe_methods_ignore_app_validators(make_mw: Any, method: str) -> None:
    app = make_app(BODY, headers=[("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED)])
    mw = make_mw(app)
    for request in ({"If-None-Match": '"v1"'}, {"If-Modified-Since": LAST_MODIFIED}):
        r = call(mw, method, headers=request)
        assert r.status == "200 OK"
        assert r.headers == [("Content-Type", HTML), ("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED), ("Content-Length", str(len(BODY)))]
        assert r.body == BODY


@pytest.mark.parametrize("status", ["201 Created", "203 Non-Authoritative Information", "404 Not Found", "500 Internal Server Error"])
def test_non_200_gets_no_etag_and_no_304(make_mw: Any, status: str) -> None:
    app = make_app(BODY, status=status, headers=[("Last-Modified", LAST_MODIFIED)])
    mw = make_mw(app)
    expected = [("Content-Type", HTML), ("Last-Modified", LAST_MODIFIED), ("Content-Length", str(len(BODY)))]
    for request in ({}, {"If-None-Match": TAG}, {"If-None-Match": "*"}, {"If-Modified-Since": LAST_MODIFIED}):
        r = call(mw, headers=request)
        assert r.status == status
        assert r.headers == expected
        assert r.body == BODY


# --- If-Modified-Since ----------------------------------------------------------------------

# LAST_MODIFIED is Sun, 06 Nov 1994 08:49:37 GMT; RFC 9110 5.6.7's three formats.
IMS_TABLE = [
    ("Sun, 06 Nov 1994 08:49:37 GMT", True),  # IMF-fixdate, equal
    ("Sunday, 06-Nov-94 08:49:37 GMT", True),  # rfc850, equal
    ("Sun Nov  6 08:49:37 1994", True),  # asctime, equal
    ("Sun Nov 06 08:49:37 1994", True),  # asctime, day = 2DIGIT
    ("Sun, 06 Nov 1994 08:49:38 GMT", True),  # later
    ("Sunday, 06-Nov-94 08:49:38 GMT", True),
    ("Sun Nov  6 08:49:38 1994", True),
    ("Thu, 01 Jan 2015 00:00:00 GMT", True),
    ("Thu Jan  1 00:00:00 2015", True),
    ("Mon, 07 Nov 1994 00:00:00 GMT", True),
    ("Sun, 06 Nov 1994 08:49:36 GMT", False),  # earlier
    ("Sunday, 06-Nov-94 08:49:36 GMT", False),
    ("Sun Nov  6 08:49:36 1994", False),
    ("Sat, 05 Nov 1994 08:49:37 GMT", False),
    ("Thu, 01 Jan 1970 00:00:00 GMT", False),
]

INVALID_DATES = [
    "yesterday",
    "",
    "0",
    "784111777",
    "1994-11-06T08:49:37Z",
    "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 06 Nov 1994 08:49:37",
    "sun, 06 nov 1994 08:49:37 gmt",  # HTTP-date is case-sensitive
    "Sun, 6 Nov 1994 08:49:37 GMT",
    "Sun, 32 Nov 1994 08:49:37 GMT",
    "Sun, 31 Nov 2015 08:49:37 GMT",
    "Sun, 06 Nov 2015 25:00:00 GMT",
    "Sun, 06 Foo 2015 08:49:37 GMT",
    "Sun, 06 Nov 2015 08:49:37 GMT\xe9",
    "Sun, 06 Nov 2015 08:49:37 GMT, Mon, 07 Nov 2015 08:49:37 GMT",
    "Sun, 06 Nov 2015 08:49:37 GMT" + " " * 100,
]


@pytest.mark.parametrize("ims, not_modified", IMS_TABLE)
def test_if_modified_since(make_mw: Any, ims: str, not_modified: bool) -> None:
    app = make_app(BODY, headers=[("Last-Modified", LAST_MODIFIED)])
    r = call(make_mw(app), headers={"If-Modified-Since": ims})
    if not_modified:
        assert_304(r, [("Last-Modified", LAST_MODIFIED), ("ETag", TAG)])
    else:
        assert r.status == "200 OK"
        assert r.headers == [("Content-Type", HTML), ("Last-Modified", LAST_MODIFIED), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
        assert r.body == BODY


@pytest.mark.parametrize("ims, not_modified", IMS_TABLE[:3] + IMS_TABLE[9:10])
def test_if_modified_since_with_gzip(make_mw: Any, ims: str, not_modified: bool) -> None:
    app = make_app(BODY, headers=[("Last-Modified", LAST_MODIFIED)])
    r = call(make_mw(app, GZ), headers={"If-Modified-Since": ims, "Accept-Encoding": "gzip"})
    if not_modified:
        assert_304(r, [("Last-Modified", LAST_MODIFIED), ("ETag", GZIP_TAG), ("Vary", "Accept-Encoding")])
    else:
        assert r.status == "200 OK"
        assert r.body == gzip_reference(BODY)
        assert r.get("ETag") == GZIP_TAG


@pytest.mark.parametrize("ims", INVALID_DATES)
def test_invalid_if_modified_since_ignored(make_mw: Any, ims: str) -> None:
    app = make_app(BODY, headers=[("Last-Modified", LAST_MODIFIED)])
    r = call(make_mw(app), headers={"If-Modified-Since": ims})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Last-Modified", LAST_MODIFIED), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY


@pytest.mark.parametrize("last_modified", ["garbage", "Sun, 06 Nov 1994 08:49:37 UTC", ""])
def test_invalid_last_modified_never_304(make_mw: Any, last_modified: str) -> None:
    app = make_app(BODY, headers=[("Last-Modified", last_modified)])
    r = call(make_mw(app), headers={"If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Last-Modified", last_modified), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY


def test_if_modified_since_without_last_modified(make_mw: Any) -> None:
    r = call(make_mw(make_app(BODY)), headers={"If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY


def test_if_none_match_makes_if_modified_since_ignored(make_mw: Any) -> None:
    """RFC 9110 13.1.3: a recipient MUST ignore If-Modified-Since when If-None-Match is present."""
    app = make_app(BODY, headers=[("Last-Modified", LAST_MODIFIED)])
    mw = make_mw(app)
    # A later date would give 304, but the tag does not match: 200.
    r = call(mw, headers={"If-None-Match": '"other"', "If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Last-Modified", LAST_MODIFIED), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert r.body == BODY
    # An earlier date would give 200, but the tag matches: 304.
    r = call(mw, headers={"If-None-Match": TAG, "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert_304(r, [("Last-Modified", LAST_MODIFIED), ("ETag", TAG)])


def test_if_modified_since_with_no_store(make_mw: Any) -> None:
    # no-store stops our tag, not the app's own Last-Modified validator.
    app = make_app(BODY, headers=[("Cache-Control", "no-store"), ("Last-Modified", LAST_MODIFIED)])
    mw = make_mw(app)
    assert_304(call(mw, headers={"If-Modified-Since": LAST_MODIFIED}), [("Cache-Control", "no-store"), ("Last-Modified", LAST_MODIFIED)])
    r = call(mw, headers={"If-Modified-Since": "Sat, 05 Nov 1994 08:49:37 GMT"})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Cache-Control", "no-store"), ("Last-Modified", LAST_MODIFIED), ("Content-Length", str(len(BODY)))]


# --- streamed responses -----------------------------------------------------------------------

CHUNKS = [b"<p>first</p>", b"<p>second</p>", b"<p>third</p>"]


def test_stream_gets_no_etag(make_mw: Any) -> None:
    app = stream_app(CHUNKS, [("Content-Type", HTML)])
    mw = make_mw(app)
    r = call(mw)
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML)]
    assert r.chunks == CHUNKS
    body = app.bodies[0]
    assert body.pulled > 0 and body.closed == 1
    # No tag of ours on a stream, so the digest of its content matches nothing.
    r = call(mw, headers={"If-None-Match": f'"{md5(b"".join(CHUNKS))}"'})
    assert r.status == "200 OK"
    assert r.chunks == CHUNKS


@pytest.mark.parametrize(
    "app_headers, request_headers, expected_304",
    [
        ([("ETag", '"s1"')], {"If-None-Match": '"s1"'}, [("ETag", '"s1"')]),
        ([("ETag", '"s1"')], {"If-None-Match": 'W/"s1"'}, [("ETag", '"s1"')]),
        ([("ETag", 'W/"s1"')], {"If-None-Match": '"x", "s1"'}, [("ETag", 'W/"s1"')]),
        ([("ETag", '"s1"')], {"If-None-Match": "*"}, [("ETag", '"s1"')]),
        ([("Last-Modified", LAST_MODIFIED)], {"If-Modified-Since": LAST_MODIFIED}, [("Last-Modified", LAST_MODIFIED)]),
        ([("Last-Modified", LAST_MODIFIED)], {"If-Modified-Since": "Sunday, 06-Nov-94 08:49:38 GMT"}, [("Last-Modified", LAST_MODIFIED)]),
        (
            [("ETag", '"s1"'), ("Last-Modified", LAST_MODIFIED), ("Cache-Control", "no-cache"), ("Content-Language", "en")],
            {"If-None-Match": '"s1"'},
            [("ETag", '"s1"'), ("Last-Modified", LAST_MODIFIED), ("Cache-Control", "no-cache")],
        ),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_stream_app_validators_honoured(
    make_mw: Any, app_headers: List[Header], request_headers: Dict[str, str], expected_304: List[Header], method: str
) -> None:
    headers = [("Content-Type", HTML)] + app_headers
    app = stream_app(CHUNKS, headers)
    mw = make_mw(app)
    full = call(mw)
    assert full.status == "200 OK"
    assert full.headers == headers
    assert full.chunks == CHUNKS
    assert without_representation(full.headers) == expected_304

    r = call(mw, method, headers=request_headers)
    assert_304(r, expected_304)
    assert r.chunks == []
    body = app.bodies[1]
    assert body.closed == 1
    assert body.pulled == 0  # closed unread
    assert app.environs[1]["REQUEST_METHOD"] == "GET"


@pytest.mark.parametrize("request_headers", [{"If-None-Match": '"s2"'}, {"If-Modified-Since": "Sat, 05 Nov 1994 08:49:37 GMT"}, {"If-None-Match": "s1"}])
def test_stream_app_validators_not_matched(make_mw: Any, request_headers: Dict[str, str]) -> None:
    headers = [("Content-Type", HTML), ("ETag", '"s1"'), ("Last-Modified", LAST_MODIFIED)]
    app = stream_app(CHUNKS, headers)
    r = call(make_mw(app), headers=request_headers)
    assert r.status == "200 OK"
    assert r.headers == headers
    assert r.chunks == CHUNKS
    assert app.bodies[0].closed == 1


def test_stream_gzip_304_is_the_same(make_mw: Any) -> None:
    headers = [("Content-Type", HTML), ("ETag", '"s1"')]
    app = stream_app(CHUNKS, headers)
    mw = make_mw(app, GZ)
    full = call(mw, headers=AE_GZIP)
    assert full.headers == [("Content-Type", HTML), ("ETag", 'W/"s1"'), ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
    assert full.gunzip() == b"".join(CHUNKS)
    for inm in ('W/"s1"', '"s1"'):
        r = call(mw, headers={"Accept-Encoding": "gzip", "If-None-Match": inm})
        assert_304(r, [("ETag", 'W/"s1"'), ("Vary", "Accept-Encoding")])
        assert app.bodies[-1].pulled == 0
        assert app.bodies[-1].closed == 1


def test_stream_etag_false_no_304(make_mw: Any) -> None:
    headers = [("Content-Type", HTML), ("ETag", '"s1"')]
    app = stream_app(CHUNKS, headers)
    r = call(make_mw(app, {"ETAG": False}), headers={"If-None-Match": '"s1"'})
    assert r.status == "200 OK"
    assert r.headers == headers
    assert r.chunks == CHUNKS


def test_stream_post_no_304(make_mw: Any) -> None:
    headers = [("Content-Type", HTML), ("ETag", '"s1"')]
    app = stream_app(CHUNKS, headers)
    r = call(make_mw(app), "POST", headers={"If-None-Match": '"s1"'})
    assert r.status == "200 OK"
    assert r.headers == headers
    assert r.chunks == CHUNKS
    assert app.bodies[0].closed == 1


# --- HEAD -----------------------------------------------------------------------------------


def test_head_gets_etag(make_mw: Any) -> None:
    app = make_app(BODY)
    mw = make_mw(app, GZ)
    for request in ({}, AE_GZIP):
        get = call(mw, headers=request)
        head = call(mw, "HEAD", headers=request)
        assert head.status == "200 OK"
        assert head.headers == get.headers
        assert head.get("ETag") == (GZIP_TAG if request else TAG)
        assert head.chunks == []
    assert [e["REQUEST_METHOD"] for e in app.environs] == ["GET"] * 4


@pytest.mark.parametrize("accept, tag", [(None, TAG), ("gzip", GZIP_TAG)])
def test_head_revalidation(make_mw: Any, accept: Optional[str], tag: str) -> None:
    body = ClosingList([BODY])

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        app.methods.append(environ["REQUEST_METHOD"])
        start_response("200 OK", [("Content-Type", HTML), ("Last-Modified", LAST_MODIFIED)])
        return body

    app.methods = []
    mw = make_mw(app, GZ)
    request = {"Accept-Encoding": accept} if accept else {}
    expected = [("Last-Modified", LAST_MODIFIED), ("ETag", tag), ("Vary", "Accept-Encoding")]
    get = call(mw, headers={**request, "If-None-Match": tag})
    assert_304(get, expected)
    head = call(mw, "HEAD", headers={**request, "If-None-Match": tag})
    assert_304(head, expected)
    assert head.chunks == []
    head = call(mw, "HEAD", headers={**request, "If-Modified-Since": LAST_MODIFIED})
    assert_304(head, expected)
    assert app.methods == ["GET", "GET", "GET"]
    assert body.closed == 3


# --- configuration at run time -------------------------------------------------------------


def test_etag_switched_at_run_time(make_mw: Any) -> None:
    app = make_app(BODY)
    mw = make_mw(app)
    assert_304(call(mw, headers={"If-None-Match": TAG}), [("ETag", TAG)])

    mw.config["ETAG"] = False
    r = call(mw, headers={"If-None-Match": TAG})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML)]  # every feature off: pass-through
    assert r.body == BODY
    mw.config["GZIP"] = True
    r = call(mw, headers={"If-None-Match": TAG})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("Vary", "Accept-Encoding")]
    assert r.body == BODY

    mw.config.update({"ETAG": True, "GZIP": False})
    r = call(mw)
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY))), ("ETag", TAG)]
    assert_304(call(mw, headers={"If-None-Match": TAG}), [("ETag", TAG)])


def test_etag_bad_value_at_run_time_names_key(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY))
    mw.config["ETAG"] = "yes"
    with pytest.raises(TypeError, match="ETAG"):
        call(mw)


def test_etag_from_app_config(make_mw: Any) -> None:
    app = make_app(BODY)
    app.config = {"ETAG": False, "CORS_ORIGINS": "*"}
    r = call(make_mw(app), headers={"If-None-Match": TAG})
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Length", str(len(BODY)))] + CORS_ANY
    r = call(make_mw(app, {"ETAG": True}), headers={"If-None-Match": TAG})
    assert_304(r, [("ETag", TAG)] + CORS_ANY)
