"""Gzip through ResponseMiddleware: negotiation, eligibility, bytes, Vary, HEAD.

Every test builds its middleware with ``make_mw`` so it runs against both cores.
Expected values come from SPEC.md and RFC 9110 (12.5.3 Accept-Encoding, 12.4.2
quality values, 12.5.5 Vary), never from reading the implementation back.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

import pytest

from wsgi_helpers import ClosingList, call, gzip_reference, make_app, md5_tag, sync_flush_reference

Header = Tuple[str, str]

HTML = "text/html; charset=utf-8"
# Compressible, well above the default GZIP_MIN_SIZE (500).
BIG = b"<p>asok_fast gzips this paragraph, again and again.</p>\n" * 30
AE_GZIP = {"Accept-Encoding": "gzip"}
# This file is about gzip: offered alone, as Asok does (COMPRESS_CODINGS ["gzip"]
# is Asok's exact behaviour); tests/test_codings.py covers zstd, br and the choice.
GZ = {"GZIP": True, "COMPRESS_CODINGS": ["gzip"]}


def tag(data: bytes, gzipped: bool = False) -> str:
    return md5_tag(data, "-gzip" if gzipped else "")


def gzipped_headers(body: bytes, level: int = 6, content_type: Optional[str] = HTML) -> List[Header]:
    """The headers of a plain 200 GET the middleware compressed."""
    ct = [("Content-Type", content_type)] if content_type is not None else []
    return ct + [
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(body, level)))),
        ("ETag", tag(body, True)),
        ("Vary", "Accept-Encoding"),
    ]


def plain_headers(body: bytes, vary: bool, content_type: Optional[str] = HTML) -> List[Header]:
    """The headers of a plain 200 GET the middleware left uncompressed."""
    ct = [("Content-Type", content_type)] if content_type is not None else []
    out = ct + [("Content-Length", str(len(body))), ("ETag", tag(body))]
    if vary:
        out.append(("Vary", "Accept-Encoding"))
    return out


def assert_gzipped(r: Any, body: bytes, level: int = 6, status: str = "200 OK") -> None:
    assert r.status == status
    assert r.body == gzip_reference(body, level)
    assert r.gunzip() == body
    assert int(r.get("Content-Length")) == len(r.body)


def text_body(size: int) -> bytes:
    """``size`` bytes of compressible text."""
    unit = b"<li>item of a long list</li>\n"
    return (unit * (size // len(unit) + 1))[:size]


# --- Accept-Encoding ---------------------------------------------------------------
#
# RFC 9110 12.5.3 / 12.4.2:
#   Accept-Encoding = #( codings [ weight ] ); codings = content-coding / "identity" / "*"
#   weight = OWS ";" OWS "q=" qvalue
#   qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
# Tokens are case-insensitive (8.4.1), so is the "q" parameter name (ABNF literals,
# RFC 5234 2.3; parameter names, 5.6.6).  "x-gzip" is gzip (8.4.1.3).  q=0 means
# "not acceptable".  An element that is not valid (junk q) gives no permission, and a
# non-ASCII value counts as absent (SPEC, "Bad input").

ACCEPT_ENCODING_TABLE = [
    ("gzip", True),
    ("GZIP", True),
    ("Gzip", True),
    ("x-gzip", True),
    ("X-GZIP", True),
    ("gzip;q=0", False),
    ("gzip;q=0.0", False),
    ("gzip;q=0.000", False),
    ("gzip;q=0.001", True),
    ("gzip;q=0.5", True),
    ("gzip; q=0.5", True),
    ("gzip ;q=0.5", True),
    ("gzip ; q=0.5", True),
    ("gzip\t;\tq=0.5", True),
    ("gzip;q=1", True),
    ("gzip;q=1.", True),
    ("gzip;q=1.000", True),
    ("gzip;Q=1", True),
    ("gzip;Q=0", False),
    ("*", True),
    ("*;q=0.5", True),
    ("*;q=0", False),
    ("gzip;q=0, *", False),
    ("*, gzip;q=0", False),
    ("x-gzip;q=0, *", False),
    ("identity", False),
    ("identity, *;q=0", False),
    ("deflate, br, zstd", False),
    ("gzip, deflate, br, zstd", True),
    ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
    ("deflate, gzip", True),
    (" , ,gzip, ", True),
    ("gzip;q=abc", False),
    ("gzip;q=0.a", False),
    ("gzip;q=0.5x", False),
    ("gzip;q=1.0x", False),
    ("gzip;q=0,5", False),
    ("gzip;q=1.5", False),
    ("gzip;q=2", False),
    ("gzip;q=0.0001", False),
    ("gzip;q=", False),
    ("gzip;q", False),
    ("gzip;q=-1", False),
    ("gzip;q=1.001", False),
    ("gzip;q = 1", False),
    ("gzipx", False),
    ("gz", False),
    ("gzip2", False),
    ("deflate;q=0.5, br", False),
    ("", False),
    ("   ", False),
    (",", False),
    ("g\xfczip", False),  # non-ASCII (latin-1 as a WSGI server decodes it)
    ("gzip, br\xe9", False),  # non-ASCII anywhere: the value counts as absent
    ("\xe9, *", False),
]


@pytest.mark.parametrize("value, expected", ACCEPT_ENCODING_TABLE)
def test_negotiate_gzip_alone(core: Any, value: str, expected: bool) -> None:
    assert core.negotiate(value, ("gzip",)) == ("gzip" if expected else None)


def test_negotiate_none_header(core: Any) -> None:
    assert core.negotiate(None, ("gzip",)) is None
    assert core.negotiate(None, ("zstd", "br", "gzip")) is None


@pytest.mark.parametrize("value, expected", ACCEPT_ENCODING_TABLE)
def test_accept_encoding_through_middleware(make_mw: Any, value: str, expected: bool) -> None:
    app = make_app(BIG)
    r = call(make_mw(app, GZ), headers={"Accept-Encoding": value})
    if expected:
        assert_gzipped(r, BIG)
        assert r.headers == gzipped_headers(BIG)
    else:
        # Compressible and large: only the client's refusal stopped us, so it varies.
        assert r.status == "200 OK"
        assert r.headers == plain_headers(BIG, vary=True)
        assert r.body == BIG


def test_no_accept_encoding_header(make_mw: Any) -> None:
    r = call(make_mw(make_app(BIG), GZ))
    assert r.status == "200 OK"
    assert r.headers == plain_headers(BIG, vary=True)
    assert r.body == BIG


def test_gzip_off_by_default(make_mw: Any) -> None:
    mw = make_mw(make_app(BIG))
    assert mw.config["GZIP"] is False
    r = call(mw, headers=AE_GZIP)
    assert r.status == "200 OK"
    # Never compressed for any client: no Vary either.
    assert r.headers == plain_headers(BIG, vary=False)
    assert r.body == BIG


def test_gzip_switched_on_and_off_at_run_time(make_mw: Any) -> None:
    mw = make_mw(make_app(BIG))
    assert call(mw, headers=AE_GZIP).headers == plain_headers(BIG, vary=False)
    mw.config["GZIP"] = True
    r = call(mw, headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG)
    assert_gzipped(r, BIG)
    mw.config["GZIP"] = False
    r = call(mw, headers=AE_GZIP)
    assert r.headers == plain_headers(BIG, vary=False)
    assert r.body == BIG


# --- size threshold ---------------------------------------------------------------


@pytest.mark.parametrize("size, compressed", [(0, False), (1, False), (499, False), (500, False), (501, True), (2000, True)])
def test_min_size_boundary_default(make_mw: Any, size: int, compressed: bool) -> None:
    body = text_body(size)
    r = call(make_mw(make_app(body), GZ), headers=AE_GZIP)
    if compressed:
        assert r.headers == gzipped_headers(body)
        assert_gzipped(r, body)
    else:
        # Too small to compress for any client: no Vary.
        assert r.status == "200 OK"
        assert r.headers == plain_headers(body, vary=False)
        assert r.body == body


@pytest.mark.parametrize("size", [500, 501])
def test_min_size_boundary_client_without_gzip(make_mw: Any, size: int) -> None:
    body = text_body(size)
    r = call(make_mw(make_app(body), GZ), headers={"Accept-Encoding": "br"})
    assert r.headers == plain_headers(body, vary=size > 500)
    assert r.body == body


def test_min_size_changed_at_run_time(make_mw: Any) -> None:
    bodies = {n: text_body(n) for n in (100, 101, 500)}

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        body = bodies[int(environ["PATH_INFO"][1:])]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    mw = make_mw(app, GZ)
    r = call(mw, path="/500", headers=AE_GZIP)
    assert r.headers == plain_headers(bodies[500], vary=False, content_type="text/plain")

    mw.config["GZIP_MIN_SIZE"] = 100
    r = call(mw, path="/100", headers=AE_GZIP)
    assert r.headers == plain_headers(bodies[100], vary=False, content_type="text/plain")
    assert r.body == bodies[100]
    r = call(mw, path="/101", headers=AE_GZIP)
    assert r.headers == gzipped_headers(bodies[101], content_type="text/plain")
    assert_gzipped(r, bodies[101])
    r = call(mw, path="/500", headers=AE_GZIP)
    assert r.headers == gzipped_headers(bodies[500], content_type="text/plain")
    assert_gzipped(r, bodies[500])


def test_min_size_zero(make_mw: Any) -> None:
    mw = make_mw(make_app(b"x", content_type="text/plain"), {"GZIP": True, "GZIP_MIN_SIZE": 0})
    r = call(mw, headers=AE_GZIP)
    assert r.headers == gzipped_headers(b"x", content_type="text/plain")
    assert_gzipped(r, b"x")
    mw2 = make_mw(make_app(b"", content_type="text/plain"), {"GZIP": True, "GZIP_MIN_SIZE": 0})
    r = call(mw2, headers=AE_GZIP)
    assert r.headers == plain_headers(b"", vary=False, content_type="text/plain")
    assert r.chunks == []


# --- levels and bytes ---------------------------------------------------------------


def _varied_text() -> bytes:
    rng = random.Random(20240607)
    words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(400)]
    return " ".join(rng.choice(words) for _ in range(4000)).encode()


VARIED = _varied_text()


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_level_gives_reference_bytes(make_mw: Any, level: int) -> None:
    # The levels really differ on this body, so a wrong level cannot pass.
    assert gzip_reference(VARIED, 1) != gzip_reference(VARIED, 9)
    config = {"GZIP": True} if level == 6 else {"GZIP": True, "GZIP_LEVEL": level}
    mw = make_mw(make_app(VARIED, content_type="text/plain"), config)
    r = call(mw, headers=AE_GZIP)
    assert r.headers == gzipped_headers(VARIED, level, content_type="text/plain")
    assert_gzipped(r, VARIED, level)


def test_gzip_level_changed_at_run_time(make_mw: Any) -> None:
    mw = make_mw(make_app(VARIED, content_type="text/plain"), {"GZIP": True, "GZIP_LEVEL": 9})
    assert_gzipped(call(mw, headers=AE_GZIP), VARIED, 9)
    mw.config["GZIP_LEVEL"] = 1
    r = call(mw, headers=AE_GZIP)
    assert r.headers == gzipped_headers(VARIED, 1, content_type="text/plain")
    assert_gzipped(r, VARIED, 1)


def test_gzip_header_is_deterministic(make_mw: Any) -> None:
    """RFC 1952 member, zlib framing: magic, CM=8, no flags, MTIME 0."""
    r = call(make_mw(make_app(BIG), GZ), headers=AE_GZIP)
    assert r.body[:8] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
    assert r.body == call(make_mw(make_app(BIG), GZ), headers=AE_GZIP).body


def test_multi_chunk_body_compressed_whole(make_mw: Any) -> None:
    chunks = [BIG[:100], BIG[100:101], b"", BIG[101:]]
    r = call(make_mw(make_app(chunks=chunks), GZ), headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG)
    assert_gzipped(r, BIG)
    assert len(r.chunks) == 1


# --- media types ----------------------------------------------------------------------

MEDIA_TYPES = [
    ("text/html; charset=utf-8", True),
    ("text/html", True),
    ("TEXT/PLAIN", True),
    ("Text/Plain; charset=UTF-8", True),
    ("text/css", True),
    ("text/csv", True),
    ("text/javascript", True),
    ("text/event-stream", False),
    ("TEXT/EVENT-STREAM; charset=utf-8", False),
    ("application/json", True),
    ("application/json; charset=utf-8", True),
    ("application/javascript", True),
    ("application/xml", True),
    ("application/xhtml+xml", True),
    ("application/problem+json", True),
    ("application/ld+json", True),
    ("application/atom+xml", True),
    ("application/rss+xml", True),
    ("image/svg+xml", True),
    ("application/wasm", True),
    ("application/x-ndjson", True),
    ("image/png", False),
    ("image/jpeg", False),
    ("application/octet-stream", False),
    ("application/zip", False),
    ("application/pdf", False),
    ("video/mp4", False),
    ("application/x-custom", False),
    ("application/jsonx", False),
    ("application/+json", False),
    ("text", False),
    ("", False),
]


@pytest.mark.parametrize("content_type, compressible", MEDIA_TYPES)
def test_media_types(make_mw: Any, content_type: str, compressible: bool) -> None:
    r = call(make_mw(make_app(BIG, content_type=content_type), GZ), headers=AE_GZIP)
    assert r.status == "200 OK"
    if compressible:
        assert r.headers == gzipped_headers(BIG, content_type=content_type)
        assert_gzipped(r, BIG)
    else:
        # Not compressible for any client: untouched, no Vary.
        assert r.headers == plain_headers(BIG, vary=False, content_type=content_type)
        assert r.body == BIG


def test_no_content_type_never_compressed(make_mw: Any) -> None:
    r = call(make_mw(make_app(BIG, content_type=None), GZ), headers=AE_GZIP)
    assert r.status == "200 OK"
    assert r.headers == plain_headers(BIG, vary=False, content_type=None)
    assert r.body == BIG


EXTRA_TYPES = ["application/x-custom", "application/csv"]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-custom", "Application/X-Custom; charset=utf-8", "application/csv", "application/csv;header=present"],
)
def test_gzip_types_adds_media_types(make_mw: Any, content_type: str) -> None:
    app = make_app(BIG, content_type=content_type)
    # Not compressed without GZIP_TYPES ...
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == plain_headers(BIG, vary=False, content_type=content_type)
    assert r.body == BIG
    # ... compressed with it.
    r = call(make_mw(app, {"GZIP": True, "GZIP_TYPES": EXTRA_TYPES}), headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG, content_type=content_type)
    assert_gzipped(r, BIG)


def test_gzip_types_keeps_builtin_list(make_mw: Any) -> None:
    r = call(make_mw(make_app(BIG, content_type="application/json"), {"GZIP": True, "GZIP_TYPES": EXTRA_TYPES}), headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG, content_type="application/json")
    r = call(make_mw(make_app(BIG, content_type="image/png"), {"GZIP": True, "GZIP_TYPES": EXTRA_TYPES}), headers=AE_GZIP)
    assert r.headers == plain_headers(BIG, vary=False, content_type="image/png")


def test_gzip_types_changed_at_run_time(make_mw: Any) -> None:
    mw = make_mw(make_app(BIG, content_type="application/x-custom"), GZ)
    assert call(mw, headers=AE_GZIP).headers == plain_headers(BIG, vary=False, content_type="application/x-custom")
    mw.config["GZIP_TYPES"] = ["application/x-custom"]
    r = call(mw, headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG, content_type="application/x-custom")
    assert_gzipped(r, BIG)


# --- Vary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "app_vary, merged",
    [
        ([("Vary", "Cookie")], "Cookie, Accept-Encoding"),
        ([("vary", "Cookie")], "Cookie, Accept-Encoding"),
        ([("Vary", "accept-encoding")], "accept-encoding"),
        ([("Vary", "Accept-Encoding")], "Accept-Encoding"),
        ([("Vary", "Cookie, ACCEPT-ENCODING")], "Cookie, ACCEPT-ENCODING"),
        ([("Vary", "Cookie"), ("Vary", "User-Agent")], "Cookie, User-Agent, Accept-Encoding"),
        ([("Vary", "Cookie"), ("Vary", "cookie, Accept-Language")], "Cookie, Accept-Language, Accept-Encoding"),
        ([("Vary", "Accept-Encoding"), ("Vary", "Accept-Encoding")], "Accept-Encoding"),
    ],
)
@pytest.mark.parametrize("accept", ["gzip", "br"])
def test_vary_merged_into_one_line(make_mw: Any, app_vary: List[Header], merged: str, accept: str) -> None:
    r = call(make_mw(make_app(BIG, headers=app_vary), GZ), headers={"Accept-Encoding": accept})
    assert r.status == "200 OK"
    if accept == "gzip":
        expected = gzipped_headers(BIG)[:-1]
        assert_gzipped(r, BIG)
    else:
        expected = plain_headers(BIG, vary=False)
        assert r.body == BIG
    assert r.headers == expected + [("Vary", merged)]


@pytest.mark.parametrize("accept", ["gzip", "br"])
def test_vary_star_left_alone(make_mw: Any, accept: str) -> None:
    r = call(make_mw(make_app(BIG, headers=[("Vary", "*")]), GZ), headers={"Accept-Encoding": accept})
    if accept == "gzip":
        assert r.headers == gzipped_headers(BIG)[:-1] + [("Vary", "*")]
        assert_gzipped(r, BIG)
    else:
        assert r.headers == plain_headers(BIG, vary=False) + [("Vary", "*")]
        assert r.body == BIG


def test_vary_app_lines_merged_even_without_gzip_token(make_mw: Any) -> None:
    # image/png: we add no token, but the app's two Vary lines still leave as one.
    app = make_app(BIG, content_type="image/png", headers=[("Vary", "Cookie"), ("Vary", "User-Agent")])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == plain_headers(BIG, vary=False, content_type="image/png") + [("Vary", "Cookie, User-Agent")]


def test_vary_app_line_kept_when_not_compressible(make_mw: Any) -> None:
    app = make_app(BIG, content_type="image/png", headers=[("Vary", "Cookie")])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == plain_headers(BIG, vary=False, content_type="image/png") + [("Vary", "Cookie")]
    assert r.body == BIG


def test_vary_merged_with_origin(make_mw: Any) -> None:
    config = {"GZIP": True, "CORS_ORIGINS": ["https://a.example"]}
    app = make_app(BIG, headers=[("Vary", "Cookie")])
    r = call(make_mw(app, config), headers={"Accept-Encoding": "gzip", "Origin": "https://a.example"})
    assert r.headers == gzipped_headers(BIG)[:-1] + [
        ("Vary", "Cookie, Accept-Encoding, Origin"),
        ("Access-Control-Allow-Origin", "https://a.example"),
        ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, PATCH, OPTIONS"),
        ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token, Authorization"),
    ]
    assert_gzipped(r, BIG)
    assert len(r.get_all("Vary")) == 1


def test_no_vary_on_small_or_incompressible(make_mw: Any) -> None:
    mw_png = make_mw(make_app(BIG, content_type="image/png"), GZ)
    mw_small = make_mw(make_app(b"tiny"), GZ)
    for accept in ("gzip", "br", None):
        headers = {"Accept-Encoding": accept} if accept else None
        r = call(mw_png, headers=headers)
        assert r.headers == plain_headers(BIG, vary=False, content_type="image/png")
        r = call(mw_small, headers=headers)
        assert r.headers == plain_headers(b"tiny", vary=False)
        assert r.body == b"tiny"


# --- what the app already decided -----------------------------------------------------------


@pytest.mark.parametrize("accept", ["gzip", "br"])
def test_app_content_encoding_left_alone(make_mw: Any, accept: str) -> None:
    encoded = bytes(range(256)) * 4  # pretend br bytes: must pass untouched
    app = make_app(encoded, content_type="text/html", headers=[("Content-Encoding", "br")])
    r = call(make_mw(app, GZ), headers={"Accept-Encoding": accept})
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", "text/html"),
        ("Content-Encoding", "br"),
        ("Content-Length", str(len(encoded))),
        ("ETag", tag(encoded)),
    ]
    assert r.body == encoded


@pytest.mark.parametrize("value", ["identity", "Identity", " identity "])
def test_app_content_encoding_identity_is_none(make_mw: Any, value: str) -> None:
    app = make_app(BIG, headers=[("Content-Encoding", value)])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG)
    assert_gzipped(r, BIG)
    r = call(make_mw(app, GZ), headers={"Accept-Encoding": "identity"})
    assert r.headers == plain_headers(BIG, vary=True)
    assert r.body == BIG


@pytest.mark.parametrize(
    "cache_control",
    ["no-transform", "No-Transform", "public, max-age=60, no-transform", "max-age=0,no-transform ,private"],
)
def test_no_transform_prevents_compression_and_vary(make_mw: Any, cache_control: str) -> None:
    app = make_app(BIG, headers=[("Cache-Control", cache_control)])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", HTML),
        ("Cache-Control", cache_control),
        ("Content-Length", str(len(BIG))),
        ("ETag", tag(BIG)),
    ]
    assert r.body == BIG


def test_no_transform_in_second_cache_control_line(make_mw: Any) -> None:
    app = make_app(BIG, headers=[("Cache-Control", "public"), ("Cache-Control", "no-transform")])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == [
        ("Content-Type", HTML),
        ("Cache-Control", "public"),
        ("Cache-Control", "no-transform"),
        ("Content-Length", str(len(BIG))),
        ("ETag", tag(BIG)),
    ]
    assert r.body == BIG


def test_other_cache_control_directives_allow_compression(make_mw: Any) -> None:
    # "no-transformer" is another directive, not no-transform.
    app = make_app(BIG, headers=[("Cache-Control", "public, max-age=60, no-transformer")])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == [("Content-Type", HTML), ("Cache-Control", "public, max-age=60, no-transformer")] + gzipped_headers(BIG)[1:]
    assert_gzipped(r, BIG)


def test_206_never_compressed(make_mw: Any) -> None:
    content_range = f"bytes 0-{len(BIG) - 1}/{len(BIG) * 2}"
    app = make_app(BIG, status="206 Partial Content", headers=[("Content-Range", content_range)])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.status == "206 Partial Content"
    assert r.headers == [("Content-Type", HTML), ("Content-Range", content_range), ("Content-Length", str(len(BIG)))]
    assert r.body == BIG


@pytest.mark.parametrize(
    "status, headers",
    [
        ("204 No Content", [("X-Request-Id", "7"), ("Content-Length", str(len(BIG)))]),
        ("304 Not Modified", [("ETag", '"v1"'), ("Content-Length", str(len(BIG))), ("Cache-Control", "max-age=5")]),
        ("103 Early Hints", [("Link", "</style.css>; rel=preload; as=style")]),
    ],
)
def test_bodiless_statuses_from_app(make_mw: Any, status: str, headers: List[Header]) -> None:
    body = ClosingList([BIG])
    calls = []

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        calls.append(environ["REQUEST_METHOD"])
        start_response(status, list(headers))
        return body

    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.status == status
    assert r.headers == [h for h in headers if h[0] != "Content-Length"]
    assert r.body == b""
    assert body.closed == 1
    assert calls == ["GET"]


def test_content_length_is_compressed_length_even_if_app_set_one(make_mw: Any) -> None:
    app = make_app(BIG, headers=[("Content-Length", str(len(BIG)))])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG)
    assert r.get("Content-Length") == str(len(gzip_reference(BIG)))
    assert int(r.get("Content-Length")) == len(r.body) < len(BIG)


# --- the app's ETag ---------------------------------------------------------------------


@pytest.mark.parametrize("app_tag, weakened", [('"v1"', 'W/"v1"'), ('W/"v1"', 'W/"v1"')])
def test_app_etag_weakened_when_compressed(make_mw: Any, app_tag: str, weakened: str) -> None:
    app = make_app(BIG, headers=[("ETag", app_tag)])
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == [
        ("Content-Type", HTML),
        ("ETag", weakened),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BIG)))),
        ("Vary", "Accept-Encoding"),
    ]
    assert_gzipped(r, BIG)


def test_app_etag_strong_when_not_compressed(make_mw: Any) -> None:
    app = make_app(BIG, headers=[("ETag", '"v1"')])
    r = call(make_mw(app, GZ), headers={"Accept-Encoding": "identity"})
    assert r.headers == [
        ("Content-Type", HTML),
        ("ETag", '"v1"'),
        ("Content-Length", str(len(BIG))),
        ("Vary", "Accept-Encoding"),
    ]
    assert r.body == BIG
    small = make_app(b"small", headers=[("ETag", '"v1"')])
    r = call(make_mw(small, GZ), headers=AE_GZIP)
    assert r.headers == [("Content-Type", HTML), ("ETag", '"v1"'), ("Content-Length", "5")]


# --- methods ------------------------------------------------------------------------------


def test_head_gets_get_headers_and_no_body(make_mw: Any) -> None:
    app = make_app(BIG)
    mw = make_mw(app, GZ)
    get = call(mw, "GET", headers=AE_GZIP)
    head = call(mw, "HEAD", headers=AE_GZIP)
    assert get.headers == gzipped_headers(BIG)
    assert head.status == "200 OK"
    assert head.headers == get.headers
    assert head.chunks == []
    assert [e["REQUEST_METHOD"] for e in app.environs] == ["GET", "GET"]


def test_head_for_app_that_sends_empty_body_to_head(make_mw: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Type", HTML)])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [BIG]

    r = call(make_mw(app, GZ), "HEAD", headers=AE_GZIP)
    assert r.headers == gzipped_headers(BIG)
    assert r.chunks == []
    r = call(make_mw(app, GZ), "HEAD", headers={"Accept-Encoding": "br"})
    assert r.headers == plain_headers(BIG, vary=True)
    assert r.chunks == []


def test_head_environ_of_caller_untouched(make_mw: Any) -> None:
    from wsgiref.util import setup_testing_defaults

    app = make_app(BIG)
    env: Dict[str, Any] = {"REQUEST_METHOD": "HEAD", "HTTP_ACCEPT_ENCODING": "gzip"}
    setup_testing_defaults(env)
    seen: List[Any] = []
    result = make_mw(app, GZ)(env, lambda s, h, e=None: seen.append((s, h)))
    assert list(result) == []
    assert env["REQUEST_METHOD"] == "HEAD"
    assert app.environs[0]["REQUEST_METHOD"] == "GET"
    assert seen == [("200 OK", gzipped_headers(BIG))]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_compressed_without_etag(make_mw: Any, method: str) -> None:
    app = make_app(BIG, content_type="application/json")
    r = call(make_mw(app, GZ), method, headers=AE_GZIP)
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BIG)))),
        ("Vary", "Accept-Encoding"),
    ]
    assert_gzipped(r, BIG)
    assert app.environs[0]["REQUEST_METHOD"] == method


def test_gzip_with_etag_off(make_mw: Any) -> None:
    r = call(make_mw(make_app(BIG), {"GZIP": True, "ETAG": False}), headers=AE_GZIP)
    assert r.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BIG)))),
        ("Vary", "Accept-Encoding"),
    ]
    assert_gzipped(r, BIG)


def test_other_statuses_compressed(make_mw: Any) -> None:
    app = make_app(BIG, status="404 Not Found")
    r = call(make_mw(app, GZ), headers=AE_GZIP)
    assert r.headers == [
        ("Content-Type", HTML),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gzip_reference(BIG)))),
        ("Vary", "Accept-Encoding"),
    ]
    assert_gzipped(r, BIG, status="404 Not Found")


# --- streams of unknown length ----------------------------------------------------------


def test_small_stream_counts_as_large_enough(make_mw: Any) -> None:
    chunks = [b"<p>one</p>", b"<p>two</p>"]
    r = call(make_mw(make_app(chunks=chunks, stream=True), GZ), headers=AE_GZIP)
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", HTML), ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
    assert r.chunks == sync_flush_reference(chunks)
    assert r.gunzip() == b"".join(chunks)


def test_stream_not_accepted_gets_vary_only(make_mw: Any) -> None:
    chunks = [b"<p>one</p>", b"<p>two</p>"]
    r = call(make_mw(make_app(chunks=chunks, stream=True), GZ), headers={"Accept-Encoding": "br"})
    assert r.headers == [("Content-Type", HTML), ("Vary", "Accept-Encoding")]
    assert r.chunks == chunks
