"""CORS: actual responses, preflights, origin matching, Vary, and how CORS meets gzip and 304.

Every test runs on both cores through ``make_mw`` and checks the exact status and the whole
header list.  Expected values are written out here (the MD5 tag is computed with hashlib), never
taken from the package, so a wrong default or a reordered header fails the test.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Dict, List, Optional, Tuple

import pytest

from wsgi_helpers import call, gzip_reference, make_app

Header = Tuple[str, str]

BODY = b"hello"
TEXT = "text/plain; charset=utf-8"
TAG = '"' + hashlib.md5(BODY).hexdigest() + '"'
# What the app's small GET response carries once the middleware has buffered it (ETag on).
BASE: List[Header] = [("Content-Type", TEXT), ("Content-Length", "5"), ("ETag", TAG)]

METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"  # SPEC default of CORS_ALLOW_METHODS
ALLOW_HEADERS = "Content-Type, X-CSRF-Token, Authorization"  # SPEC default of CORS_ALLOW_HEADERS
MAX_AGE = "86400"

TRUSTED = "https://trusted.com"
LIST = {"CORS_ORIGINS": [TRUSTED]}
VARY_ORIGIN: Header = ("Vary", "Origin")


def acao(origin: str) -> List[Header]:
    """The headers an allowed actual response gets with the default settings."""
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", METHODS),
        ("Access-Control-Allow-Headers", ALLOW_HEADERS),
    ]


def preflight_ok(origin: str, max_age: Optional[str] = MAX_AGE) -> List[Header]:
    out = acao(origin)
    if max_age is not None:
        out.append(("Access-Control-Max-Age", max_age))
    return out


def text_app(**kwargs: Any) -> Any:
    kwargs.setdefault("body", BODY)
    kwargs.setdefault("content_type", TEXT)
    return make_app(**kwargs)


def get(mw: Any, origin: Optional[str] = None, method: str = "GET", **headers: str) -> Any:
    h: Dict[str, str] = {k.replace("_", "-"): v for k, v in headers.items()}
    if origin is not None:
        h["Origin"] = origin
    return call(mw, method, headers=h)


def preflight(mw: Any, origin: Optional[str], request_method: str = "PUT", **headers: str) -> Any:
    h: Dict[str, str] = {k.replace("_", "-"): v for k, v in headers.items()}
    h["Access-Control-Request-Method"] = request_method
    if origin is not None:
        h["Origin"] = origin
    return call(mw, "OPTIONS", headers=h)


def no_cors_headers(headers: List[Header]) -> bool:
    return not any(name.lower().startswith("access-control-") for name, _ in headers)


def assert_preflight_204(r: Any, app: Any, expected: List[Header], calls: int = 0) -> None:
    """``calls``: how many times the app ran before (for actual requests made earlier)."""
    assert r.status == "204 No Content"
    assert r.headers == expected
    assert r.chunks == []
    assert app.calls == calls, "a preflight must be answered without calling the app"


# ------------------------------------------------------------------ CORS off


def test_cors_off_by_default_adds_nothing(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app)
    r = get(mw, TRUSTED)
    assert r.status == "200 OK"
    assert r.headers == BASE
    assert r.body == BODY


def test_cors_off_options_preflight_reaches_the_app(make_mw: Any) -> None:
    app = text_app(status="200 OK")
    mw = make_mw(app)
    r = preflight(mw, TRUSTED)
    assert app.calls == 1
    assert app.environs[0]["REQUEST_METHOD"] == "OPTIONS"
    assert r.status == "200 OK"
    # Not GET/HEAD: no ETag; nothing CORS, no Vary.
    assert r.headers == [("Content-Type", TEXT), ("Content-Length", "5")]
    assert r.body == BODY


@pytest.mark.parametrize("value", [None, [], (), "", set()])
def test_empty_origins_mean_off(make_mw: Any, value: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": value})
    r = get(mw, TRUSTED)
    assert (r.status, r.headers) == ("200 OK", BASE)
    r = preflight(mw, TRUSTED)
    assert app.calls == 2
    assert r.headers == [("Content-Type", TEXT), ("Content-Length", "5")]


# ------------------------------------------------------------------ wildcard


@pytest.mark.parametrize("origin", [TRUSTED, None, "null", "https://anything.example"])
def test_wildcard_on_every_response_without_vary(make_mw: Any, origin: Optional[str]) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": "*"})
    r = get(mw, origin)
    assert r.status == "200 OK"
    assert r.headers == BASE + acao("*")
    assert r.body == BODY


@pytest.mark.parametrize("origins", [["https://a.com", "*"], ("*",), {"*"}, " * "])
def test_star_inside_a_list_means_wildcard(make_mw: Any, origins: Any) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": origins})
    r = get(mw, "https://unlisted.example")
    assert r.headers == BASE + acao("*")


def test_wildcard_preflight(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": "*"})
    r = preflight(mw, "https://anything.example")
    assert_preflight_204(r, app, preflight_ok("*"))


def test_wildcard_preflight_origin_null(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": "*"})
    assert_preflight_204(preflight(mw, "null"), app, preflight_ok("*"))


# ------------------------------------------------------------------ a list of origins


def test_listed_origin_is_echoed_with_vary(make_mw: Any) -> None:
    mw = make_mw(text_app(), LIST)
    r = get(mw, TRUSTED)
    assert r.status == "200 OK"
    assert r.headers == BASE + [VARY_ORIGIN] + acao(TRUSTED)
    assert r.body == BODY


def test_unlisted_origin_gets_vary_only(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = get(mw, "https://evil.net")
    assert r.status == "200 OK"
    assert r.headers == BASE + [VARY_ORIGIN]
    assert r.body == BODY
    assert app.calls == 1


def test_no_origin_gets_vary_only(make_mw: Any) -> None:
    mw = make_mw(text_app(), LIST)
    r = get(mw)
    assert (r.status, r.headers) == ("200 OK", BASE + [VARY_ORIGIN])


LOOK_ALIKES = [
    "https://trusted.com.evil.net",
    "https://evil-trusted.com",
    "https://eviltrusted.com",
    "http://trusted.com",  # other scheme
    "https://trusted.com:8443",  # other port
    "https://trusted.com:443",  # compared as sent: browsers never send a default port
    "https://trusted.com/",  # with a path
    "https://trusted.com/x",
    "https://trusted.com.",  # trailing-dot host
    "HTTPS://TRUSTED.COM",  # upper case, as sent
    "https://Trusted.com",
    "null",
    "",
    " https://trusted.com",
    "https://trusted.com ",
    "https://trusted.com, https://trusted.com",
    "https://trusted.com,https://evil.net",
    "https://trusted.com\r\nSet-Cookie: a=b",
    "https://trusted.com\n",
    "https://trusted.com\t",
    "https://trusted.com\x00",
    "https://trusted.com\x7f",
    "https://trüsted.com",
    "https://trusted.com\u00e9",
    "https://user@trusted.com",
    "*",
]


@pytest.mark.parametrize("origin", LOOK_ALIKES, ids=repr)
def test_look_alike_origin_refused(make_mw: Any, origin: str) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = get(mw, origin)
    assert r.status == "200 OK"
    assert r.headers == BASE + [VARY_ORIGIN]
    assert r.body == BODY


@pytest.mark.parametrize("origin", LOOK_ALIKES, ids=repr)
def test_look_alike_origin_refused_on_preflight(make_mw: Any, origin: str) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = preflight(mw, origin)
    assert_preflight_204(r, app, [VARY_ORIGIN])


# Origins of every length from 8 to 40 bytes ("http://" plus a host): the
# compiled core compares a few listed origins by length and then eight bytes at
# a time, and a long list by hash; 8 and 9 entries sit either side of that.
_SPREAD = ["http://" + "abcdefghij"[k % 10] * k for k in range(1, 34)]


def _one_byte_off(origin: str) -> List[str]:
    """Same length, one byte changed: at the start, the end, each 8-byte edge."""
    positions = {0, len(origin) - 1, len(origin) // 2} | {i for i in (7, 8, 15, 16, 23, 24) if i < len(origin)}
    return [origin[:i] + ("Z" if origin[i] != "Z" else "Y") + origin[i + 1 :] for i in sorted(positions)]


@pytest.mark.parametrize("count", [1, 2, 8, 9, 33])
def test_every_listed_origin_and_no_near_miss(make_mw: Any, count: int) -> None:
    listed = _SPREAD[:count]
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": listed})
    for origin in _SPREAD:
        allowed = origin in listed
        expected_get = BASE + [VARY_ORIGIN] + (acao(origin) if allowed else [])
        assert get(mw, origin).headers == expected_get, origin
        r = preflight(mw, origin)
        assert r.status == "204 No Content"
        assert r.headers == [VARY_ORIGIN] + (preflight_ok(origin) if allowed else []), origin
        for near in _one_byte_off(origin) + [origin + "x", origin[:-1]]:
            assert get(mw, near).headers == BASE + [VARY_ORIGIN], near
            assert preflight(mw, near).headers == [VARY_ORIGIN], near
    # Only the GETs reach the app: every preflight is answered by the middleware.
    assert app.calls == len(_SPREAD) + sum(len(_one_byte_off(o)) + 2 for o in _SPREAD)


def test_null_allowed_only_when_listed(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED, "null"]})
    r = get(mw, "null")
    assert r.headers == BASE + [VARY_ORIGIN] + acao("null")
    r = get(mw, TRUSTED)
    assert r.headers == BASE + [VARY_ORIGIN] + acao(TRUSTED)
    r = preflight(mw, "null")
    assert_preflight_204(r, app, [VARY_ORIGIN] + preflight_ok("null"), calls=2)


@pytest.mark.parametrize(
    "entry, sent, allowed",
    [
        ("HTTPS://Trusted.COM:443/", "https://trusted.com", True),
        ("https://trusted.com/", "https://trusted.com", True),
        ("  https://trusted.com  ", "https://trusted.com", True),
        ("http://x.com:80", "http://x.com", True),
        ("http://x.com:443", "http://x.com:443", True),  # 443 is not http's default
        ("http://x.com:443", "http://x.com", False),
        ("https://x.com:80", "https://x.com:80", True),
        ("https://a.com:8443", "https://a.com:8443", True),
        ("https://a.com:8443", "https://a.com", False),
        ("https://a.com", "https://a.com:8443", False),
        ("http://[::1]:8000", "http://[::1]:8000", True),
        ("http://localhost:3000", "http://localhost:3000", True),
        ("http://localhost:3000", "http://localhost", False),
    ],
)
def test_entry_normalisation(make_mw: Any, entry: str, sent: str, allowed: bool) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": [entry]})
    r = get(mw, sent)
    assert r.status == "200 OK"
    assert r.headers == BASE + [VARY_ORIGIN] + (acao(sent) if allowed else [])


@pytest.mark.parametrize(
    "value",
    [
        "https://a.com, https://b.com",
        "https://a.com,https://b.com",
        "https://a.com, https://b.com,",
        "https://a.com, , https://b.com",
        ("https://a.com", "https://b.com"),
        {"https://a.com", "https://b.com"},
        frozenset({"https://a.com", "https://b.com"}),
        ["https://a.com", "https://b.com", "https://a.com"],
    ],
    ids=repr,
)
def test_list_forms(make_mw: Any, value: Any) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": value})
    for origin in ("https://a.com", "https://b.com"):
        r = get(mw, origin)
        assert r.headers == BASE + [VARY_ORIGIN] + acao(origin)
    r = get(mw, "https://c.com")
    assert r.headers == BASE + [VARY_ORIGIN]
    # The whole configured string is not an origin either.
    r = get(mw, "https://a.com, https://b.com")
    assert r.headers == BASE + [VARY_ORIGIN]


def test_listed_origin_preflight(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = preflight(mw, TRUSTED, "DELETE", Access_Control_Request_Headers="Content-Type, X-Custom")
    assert_preflight_204(r, app, [VARY_ORIGIN] + preflight_ok(TRUSTED))


def test_disallowed_origin_preflight_has_no_cors_header(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = preflight(mw, "https://evil.net")
    assert_preflight_204(r, app, [VARY_ORIGIN])
    assert no_cors_headers(r.headers)


def test_preflight_response_has_no_body_headers(make_mw: Any) -> None:
    """204 from the middleware: no Content-Length, no Content-Type, no ETag."""
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": "*"})
    r = preflight(mw, TRUSTED)
    names = {name.lower() for name, _ in r.headers}
    assert not names & {"content-length", "content-type", "etag", "content-encoding"}
    assert_preflight_204(r, app, preflight_ok("*"))


def test_options_without_request_method_reaches_app(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = get(mw, TRUSTED, method="OPTIONS")
    assert app.calls == 1
    assert r.status == "200 OK"
    # Actual-response CORS headers (no Max-Age); OPTIONS gets no ETag.
    assert r.headers == [("Content-Type", TEXT), ("Content-Length", "5"), VARY_ORIGIN] + acao(TRUSTED)
    assert r.body == BODY


def test_options_with_request_method_but_no_origin_reaches_app(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": "*"})
    r = preflight(mw, None)
    assert app.calls == 1
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", TEXT), ("Content-Length", "5")] + acao("*")


# ------------------------------------------------------------------ regex


@pytest.mark.parametrize(
    "regex",
    [r"https://.*\.example\.com", re.compile(r"https://.*\.example\.com")],
    ids=["string", "compiled"],
)
@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("https://a.example.com", True),
        ("https://a.b.example.com", True),
        ("https://a.example.com.evil.net", False),  # full match only
        ("https://example.com", False),
        ("http://a.example.com", False),
        ("xhttps://a.example.com", False),
        ("https://a.example.com/", False),
        ("https://a.example.com, https://b.example.com", False),  # never a list
        ("https://a .example.com", False),  # never a space
        ("https://a\r\n.example.com", False),  # never a control character
        ("https://é.example.com", False),  # never non-ASCII
    ],
    ids=repr,
)
def test_regex_alone_turns_cors_on_full_match_only(make_mw: Any, regex: Any, origin: str, allowed: bool) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGIN_REGEX": regex})
    r = get(mw, origin)
    assert r.status == "200 OK"
    assert r.headers == BASE + [VARY_ORIGIN] + (acao(origin) if allowed else [])
    r = preflight(mw, origin)
    assert_preflight_204(r, app, [VARY_ORIGIN] + (preflight_ok(origin) if allowed else []), calls=1)


def test_regex_and_list_together(make_mw: Any) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": [TRUSTED], "CORS_ORIGIN_REGEX": r"https://[a-z]+\.example\.com"})
    for origin in (TRUSTED, "https://app.example.com"):
        assert get(mw, origin).headers == BASE + [VARY_ORIGIN] + acao(origin)
    assert get(mw, "https://evil.net").headers == BASE + [VARY_ORIGIN]
    assert get(mw).headers == BASE + [VARY_ORIGIN]


def test_regex_flags_of_a_compiled_pattern_are_kept(make_mw: Any) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGIN_REGEX": re.compile(r"https://app\.example\.com", re.IGNORECASE)})
    # The origin is echoed exactly as sent.
    assert get(mw, "https://APP.example.com").headers == BASE + [VARY_ORIGIN] + acao("https://APP.example.com")


# ------------------------------------------------------------------ credentials


def test_credentials_with_a_list(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED], "CORS_ALLOW_CREDENTIALS": True})
    cred = [("Access-Control-Allow-Credentials", "true")]
    r = get(mw, TRUSTED)
    assert r.headers == BASE + [VARY_ORIGIN] + acao(TRUSTED) + cred
    r = get(mw, "https://evil.net")
    assert r.headers == BASE + [VARY_ORIGIN]
    r = preflight(mw, TRUSTED)
    assert_preflight_204(r, app, [VARY_ORIGIN] + acao(TRUSTED) + cred + [("Access-Control-Max-Age", MAX_AGE)], calls=2)


@pytest.mark.parametrize("origins", ["*", ["*"], [TRUSTED, "*"]], ids=repr)
def test_credentials_with_wildcard_refused_at_construction(make_mw: Any, origins: Any) -> None:
    app = text_app()
    with pytest.raises(ValueError) as info:
        make_mw(app, {"CORS_ORIGINS": origins, "CORS_ALLOW_CREDENTIALS": True})
    assert "CORS_ORIGINS" in str(info.value)
    assert "CORS_ALLOW_CREDENTIALS" in str(info.value)
    assert app.calls == 0


@pytest.mark.parametrize("first", ["origins", "credentials"])
def test_credentials_with_wildcard_refused_at_runtime(make_mw: Any, first: str) -> None:
    app = text_app()
    if first == "origins":
        mw = make_mw(app, {"CORS_ALLOW_CREDENTIALS": True, "CORS_ORIGINS": [TRUSTED]})
        mw.config["CORS_ORIGINS"] = "*"
    else:
        mw = make_mw(app, {"CORS_ORIGINS": "*"})
        mw.config["CORS_ALLOW_CREDENTIALS"] = True
    for _ in range(2):  # refused on every request until fixed, never silently served
        with pytest.raises(ValueError) as info:
            get(mw, TRUSTED)
        assert "CORS_ORIGINS" in str(info.value)
        assert "CORS_ALLOW_CREDENTIALS" in str(info.value)
    assert app.calls == 0
    mw.config["CORS_ALLOW_CREDENTIALS"] = False
    r = get(mw, TRUSTED)
    assert r.status == "200 OK"
    assert r.headers == BASE + acao("*")


# ------------------------------------------------------------------ expose / methods / headers / max-age


def test_expose_headers_on_actual_responses_only(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED], "CORS_EXPOSE_HEADERS": ["X-Total-Count", "X-Request-Id"]})
    expose = [("Access-Control-Expose-Headers", "X-Total-Count, X-Request-Id")]
    assert get(mw, TRUSTED).headers == BASE + [VARY_ORIGIN] + acao(TRUSTED) + expose
    assert get(mw, "https://evil.net").headers == BASE + [VARY_ORIGIN]
    assert_preflight_204(preflight(mw, TRUSTED), app, [VARY_ORIGIN] + preflight_ok(TRUSTED), calls=2)


def test_expose_headers_string_with_wildcard_and_credentials_order(make_mw: Any) -> None:
    mw = make_mw(
        text_app(),
        {"CORS_ORIGINS": [TRUSTED], "CORS_EXPOSE_HEADERS": "X-Total-Count", "CORS_ALLOW_CREDENTIALS": True},
    )
    assert get(mw, TRUSTED).headers == BASE + [VARY_ORIGIN] + acao(TRUSTED) + [
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", "X-Total-Count"),
    ]


def test_methods_and_headers_as_lists(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(
        app,
        {
            "CORS_ORIGINS": "*",
            "CORS_ALLOW_METHODS": ["GET", "POST"],
            "CORS_ALLOW_HEADERS": ("X-A", "X-B", "Content-Type"),
        },
    )
    cors = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, POST"),
        ("Access-Control-Allow-Headers", "X-A, X-B, Content-Type"),
    ]
    assert get(mw, TRUSTED).headers == BASE + cors
    assert_preflight_204(preflight(mw, TRUSTED), app, cors + [("Access-Control-Max-Age", MAX_AGE)], calls=1)


def test_methods_and_headers_as_strings(make_mw: Any) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": "*", "CORS_ALLOW_METHODS": "GET", "CORS_ALLOW_HEADERS": "X-Token"})
    assert get(mw).headers == BASE + [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET"),
        ("Access-Control-Allow-Headers", "X-Token"),
    ]


@pytest.mark.parametrize("max_age, expected", [(600, "600"), (0, "0"), (None, None)])
def test_max_age(make_mw: Any, max_age: Optional[int], expected: Optional[str]) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED], "CORS_MAX_AGE": max_age})
    assert_preflight_204(preflight(mw, TRUSTED), app, [VARY_ORIGIN] + preflight_ok(TRUSTED, expected))
    # Never on actual responses.
    assert get(mw, TRUSTED).headers == BASE + [VARY_ORIGIN] + acao(TRUSTED)


# ------------------------------------------------------------------ private network


PNA = ("Access-Control-Allow-Private-Network", "true")


@pytest.mark.parametrize("asked", ["true", "TRUE", " true "])
def test_private_network_allowed(make_mw: Any, asked: str) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED], "CORS_ALLOW_PRIVATE_NETWORK": True})
    r = preflight(mw, TRUSTED, Access_Control_Request_Private_Network=asked)
    assert_preflight_204(r, app, [VARY_ORIGIN] + preflight_ok(TRUSTED) + [PNA])


def test_private_network_with_wildcard(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": "*", "CORS_ALLOW_PRIVATE_NETWORK": True})
    r = preflight(mw, TRUSTED, Access_Control_Request_Private_Network="true")
    assert_preflight_204(r, app, preflight_ok("*") + [PNA])


def test_private_network_off_by_default(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, LIST)
    r = preflight(mw, TRUSTED, Access_Control_Request_Private_Network="true")
    assert_preflight_204(r, app, [VARY_ORIGIN] + preflight_ok(TRUSTED))


def test_private_network_refused_for_a_disallowed_origin(make_mw: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED], "CORS_ALLOW_PRIVATE_NETWORK": True})
    r = preflight(mw, "https://evil.net", Access_Control_Request_Private_Network="true")
    assert_preflight_204(r, app, [VARY_ORIGIN])


@pytest.mark.parametrize("asked", ["false", "", "1", "yes", "true, true"])
def test_private_network_needs_true(make_mw: Any, asked: str) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": [TRUSTED], "CORS_ALLOW_PRIVATE_NETWORK": True})
    r = preflight(mw, TRUSTED, Access_Control_Request_Private_Network=asked)
    assert_preflight_204(r, app, [VARY_ORIGIN] + preflight_ok(TRUSTED))


def test_private_network_not_on_actual_responses(make_mw: Any) -> None:
    mw = make_mw(text_app(), {"CORS_ORIGINS": [TRUSTED], "CORS_ALLOW_PRIVATE_NETWORK": True})
    r = get(mw, TRUSTED, Access_Control_Request_Private_Network="true")
    assert r.headers == BASE + [VARY_ORIGIN] + acao(TRUSTED)


# ------------------------------------------------------------------ the app's own CORS headers


OWN = ("Access-Control-Allow-Origin", "https://own.example")


@pytest.mark.parametrize("name", ["Access-Control-Allow-Origin", "access-control-allow-origin"])
def test_app_own_allow_origin_wildcard_config(make_mw: Any, name: str) -> None:
    mw = make_mw(text_app(headers=[(name, "https://own.example")]), {"CORS_ORIGINS": "*"})
    r = get(mw, TRUSTED)
    assert r.headers == [("Content-Type", TEXT), (name, "https://own.example"), ("Content-Length", "5"), ("ETag", TAG)]


def test_app_own_allow_origin_list_config_keeps_vary(make_mw: Any) -> None:
    mw = make_mw(text_app(headers=[OWN]), LIST)
    r = get(mw, TRUSTED)
    assert r.headers == [("Content-Type", TEXT), OWN, ("Content-Length", "5"), ("ETag", TAG), VARY_ORIGIN]
    assert len(r.get_all("Access-Control-Allow-Origin")) == 1
    assert r.get_all("Access-Control-Allow-Methods") == []


# ------------------------------------------------------------------ Vary


@pytest.mark.parametrize(
    "app_vary, merged",
    [
        ([("Vary", "Cookie")], "Cookie, Origin"),
        ([("Vary", "origin")], "origin"),
        ([("Vary", "Cookie, ORIGIN")], "Cookie, ORIGIN"),
        ([("Vary", "Cookie"), ("Vary", "Accept-Language")], "Cookie, Accept-Language, Origin"),
        ([("Vary", "Cookie"), ("Vary", "cookie")], "Cookie, Origin"),
    ],
    ids=repr,
)
def test_vary_origin_merged_into_one_line(make_mw: Any, app_vary: List[Header], merged: str) -> None:
    mw = make_mw(text_app(headers=app_vary), LIST)
    for origin, cors in ((TRUSTED, acao(TRUSTED)), ("https://evil.net", []), (None, [])):
        r = get(mw, origin)
        assert r.headers == BASE + [("Vary", merged)] + cors


def test_vary_star_left_alone(make_mw: Any) -> None:
    mw = make_mw(text_app(headers=[("Vary", "*")]), LIST)
    r = get(mw, TRUSTED)
    assert r.headers == BASE + [("Vary", "*")] + acao(TRUSTED)


def test_wildcard_keeps_app_vary_unchanged(make_mw: Any) -> None:
    mw = make_mw(text_app(headers=[("Vary", "Cookie")]), {"CORS_ORIGINS": "*"})
    r = get(mw, TRUSTED)
    assert r.headers == BASE + [("Vary", "Cookie")] + acao("*")


BIG = b"<p>" + b"compressible text " * 60 + b"</p>"  # > 500 bytes
BIG_TAG = '"' + hashlib.md5(BIG).hexdigest() + '-gzip"'
BIG_PLAIN_TAG = '"' + hashlib.md5(BIG).hexdigest() + '"'
GZ = gzip_reference(BIG)


def test_vary_one_line_with_gzip_and_origin(make_mw: Any) -> None:
    mw = make_mw(text_app(body=BIG, headers=[("Vary", "Cookie")]), {"CORS_ORIGINS": [TRUSTED], "GZIP": True})
    r = get(mw, TRUSTED, Accept_Encoding="gzip")
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", TEXT),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(GZ))),
        ("ETag", BIG_TAG),
        ("Vary", "Cookie, Accept-Encoding, Origin"),
    ] + acao(TRUSTED)
    assert r.body == GZ
    assert r.gunzip() == BIG
    assert len(r.get_all("Vary")) == 1

    # Not accepting gzip, unlisted origin: still one line with both tokens.
    r = get(mw, "https://evil.net")
    assert r.headers == [
        ("Content-Type", TEXT),
        ("Content-Length", str(len(BIG))),
        ("ETag", BIG_PLAIN_TAG),
        ("Vary", "Cookie, Accept-Encoding, Origin"),
    ]
    assert r.body == BIG


def test_vary_gzip_with_wildcard_has_no_origin(make_mw: Any) -> None:
    mw = make_mw(text_app(body=BIG), {"CORS_ORIGINS": "*", "GZIP": True})
    r = get(mw, TRUSTED, Accept_Encoding="gzip")
    assert r.headers == [
        ("Content-Type", TEXT),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(GZ))),
        ("ETag", BIG_TAG),
        ("Vary", "Accept-Encoding"),
    ] + acao("*")


# ------------------------------------------------------------------ error responses, 304, HEAD, streams


@pytest.mark.parametrize("status", ["404 Not Found", "500 Internal Server Error", "403 Forbidden"])
@pytest.mark.parametrize("config", ["*", [TRUSTED]], ids=["wildcard", "list"])
def test_cors_on_error_responses(make_mw: Any, status: str, config: Any) -> None:
    mw = make_mw(text_app(status=status, body=b"nope"), {"CORS_ORIGINS": config})
    r = get(mw, TRUSTED)
    assert r.status == status
    vary = [] if config == "*" else [VARY_ORIGIN]
    # No ETag: only 200 gets one.
    assert r.headers == [("Content-Type", TEXT), ("Content-Length", "4")] + vary + acao("*" if config == "*" else TRUSTED)
    assert r.body == b"nope"


@pytest.mark.parametrize("config", ["*", [TRUSTED]], ids=["wildcard", "list"])
def test_304_carries_the_same_cors_headers_as_200(make_mw: Any, config: Any) -> None:
    app = text_app()
    mw = make_mw(app, {"CORS_ORIGINS": config})
    ok = get(mw, TRUSTED)
    r = get(mw, TRUSTED, If_None_Match=TAG)
    assert r.status == "304 Not Modified"
    vary = [] if config == "*" else [VARY_ORIGIN]
    cors = acao("*" if config == "*" else TRUSTED)
    assert r.headers == [("ETag", TAG)] + vary + cors
    assert r.chunks == []
    assert r.headers == [h for h in ok.headers if h[0] not in ("Content-Type", "Content-Length")]


def test_304_for_an_unlisted_origin_has_vary_only(make_mw: Any) -> None:
    mw = make_mw(text_app(), LIST)
    r = get(mw, "https://evil.net", If_None_Match=TAG)
    assert r.status == "304 Not Modified"
    assert r.headers == [("ETag", TAG), VARY_ORIGIN]


def test_304_with_gzip_and_cors_one_vary(make_mw: Any) -> None:
    mw = make_mw(text_app(body=BIG, headers=[("Vary", "Cookie")]), {"CORS_ORIGINS": [TRUSTED], "GZIP": True})
    ok = get(mw, TRUSTED, Accept_Encoding="gzip")
    r = get(mw, TRUSTED, Accept_Encoding="gzip", If_None_Match=BIG_TAG)
    assert r.status == "304 Not Modified"
    assert r.headers == [("ETag", BIG_TAG), ("Vary", "Cookie, Accept-Encoding, Origin")] + acao(TRUSTED)
    dropped = ("Content-Type", "Content-Length", "Content-Encoding")
    assert r.headers == [h for h in ok.headers if h[0] not in dropped]


def test_head_gets_the_cors_headers_of_get(make_mw: Any) -> None:
    mw = make_mw(text_app(), LIST)
    r = get(mw, TRUSTED, method="HEAD")
    assert r.status == "200 OK"
    assert r.headers == BASE + [VARY_ORIGIN] + acao(TRUSTED)
    assert r.body == b""


@pytest.mark.parametrize("config", ["*", [TRUSTED]], ids=["wildcard", "list"])
def test_streamed_response_gets_cors(make_mw: Any, config: Any) -> None:
    app = text_app(chunks=[b"a", b"b"], stream=True)
    mw = make_mw(app, {"CORS_ORIGINS": config})
    r = get(mw, TRUSTED)
    vary = [] if config == "*" else [VARY_ORIGIN]
    assert r.status == "200 OK"
    assert r.headers == [("Content-Type", TEXT)] + vary + acao("*" if config == "*" else TRUSTED)
    assert r.chunks == [b"a", b"b"]


def test_post_gets_cors_and_no_etag(make_mw: Any) -> None:
    mw = make_mw(text_app(status="201 Created"), LIST)
    r = get(mw, TRUSTED, method="POST")
    assert r.status == "201 Created"
    assert r.headers == [("Content-Type", TEXT), ("Content-Length", "5"), VARY_ORIGIN] + acao(TRUSTED)


def test_204_from_app_gets_cors_and_no_length(make_mw: Any) -> None:
    mw = make_mw(text_app(status="204 No Content", body=b"", content_type=None), LIST)
    r = get(mw, TRUSTED, method="DELETE")
    assert r.status == "204 No Content"
    assert r.headers == [VARY_ORIGIN] + acao(TRUSTED)
    assert r.chunks == []
