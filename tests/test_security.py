"""Security properties, checked explicitly on both cores and on every kind of response.

* an origin that is not allowed (look-alikes, another scheme or port, ``null``,
  a path, a trailing dot, control characters...) never gets
  ``Access-Control-Allow-Origin`` -- nor any other ``Access-Control-*`` header;
* credentials never go with a literal ``*``;
* ``Vary: Origin`` on every response whose CORS headers depend on the origin
  (a list or a regex), and on none where they do not (``*``);
* private-network access only when configured, only on a preflight, only for
  an allowed origin;
* the header values the middleware writes never contain CR or LF (nor any
  other control character), whatever the request or the configuration held.

"Every kind of response": a buffered 200 (gzipped and not), its 304, a
stream, ``HEAD``, an error status, a 204 from the app, a response whose
status line the middleware does not parse, and the preflight it answers
itself.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from asok_fast import ResponseMiddleware

from wsgi_helpers import Result, call

Header = Tuple[str, str]
BODY = b"<html>" + b"<p>security property check</p>\n" * 60 + b"</html>"
LISTED = ["https://a.example", "http://localhost:3000", "https://b.example:8443"]
REGEX = r"https://[a-z0-9-]+\.r\.example"

# Origins that must be refused by a config listing LISTED (and REGEX).
UNLISTED = [
    # look-alikes
    "https://a.example.evil", "https://a.examplex", "https://xa.example", "https://evil-a.example",
    "https://a-example", "https://aexample", "https://a.example.evil.com", "https://evil.com/https://a.example",
    "https://a.example@evil.com", "https://evil.com#https://a.example", "https://evil.com?https://a.example",
    "https://\u0430.example",  # Cyrillic a
    "https://xn--80a.example",
    # another scheme, port or case than listed
    "http://a.example", "wss://a.example", "https://a.example:8443", "https://a.example:443",
    "https://a.example:", "http://localhost:3001", "http://localhost", "https://localhost:3000",
    "https://b.example", "https://b.example:443", "HTTPS://A.EXAMPLE", "https://A.example",
    # null, a path, a trailing dot or slash
    "null", "NULL", "https://a.example/", "https://a.example/path", "https://a.example.", "https://a.example./",
    # lists, spaces, control characters, wildcard, empty
    "https://a.example, https://evil.com", "https://a.example https://evil.com", " https://a.example",
    "https://a.example ", "https://a.example\t", "https://a.example\r\nSet-Cookie: x=1", "https://a.example\n",
    "https://a.example\x00", "https://a.example\x7f", "*", "", "https://*.example",
    # regex look-alikes
    "https://x.r.example.evil", "https://x.r.example/", "https://x.r.example.", "http://x.r.example",
    "https://x.y.r.example", "https://.r.example", "https://X.r.example", "https://x.r.examplé",
    "https://x.r.example\nx",
]
ALLOWED = LISTED + ["https://x.r.example", "https://a-1.r.example"]


class App:
    """A WSGI app with one response shape per path."""

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        html = [("Content-Type", "text/html; charset=utf-8")]
        if path == "/stream":
            start_response("200 OK", html)
            return (chunk for chunk in (BODY[:700], BODY[700:]))
        if path == "/missing":
            start_response("404 Not Found", html)
            return [b"not found"]
        if path == "/empty":
            start_response("204 No Content", [])
            return []
        if path == "/odd-status":
            start_response("2OO OK", html)
            return [BODY]
        if path == "/private":
            start_response("200 OK", html + [("Cache-Control", "no-store")])
            return [BODY]
        start_response("200 OK", html)
        return [BODY]


def shapes(origin: Optional[str], etag_of: Dict[str, str]) -> List[Tuple[str, str, str, Dict[str, str]]]:
    """(label, method, path, request headers) of every response kind for ``origin``."""
    base = {"Accept-Encoding": "gzip"}
    if origin is not None:
        base["Origin"] = origin
    plain = {k: v for k, v in base.items() if k != "Accept-Encoding"}
    return [
        ("200-gzip", "GET", "/", base),
        ("200-identity", "GET", "/", plain),
        ("304", "GET", "/", {**base, "If-None-Match": etag_of.get("tag", '"x"')}),
        ("stream", "GET", "/stream", base),
        ("head", "HEAD", "/", base),
        ("post", "POST", "/", base),
        ("404", "GET", "/missing", base),
        ("204", "GET", "/empty", base),
        ("no-store", "GET", "/private", base),
        ("preflight", "OPTIONS", "/", {**base, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Private-Network": "true"}),
        ("options-no-acrm", "OPTIONS", "/", base),
    ]


def run_all(mw: Any, origin: Optional[str]) -> List[Tuple[str, Result]]:
    tag = call(mw, "GET", "/", {"Accept-Encoding": "gzip"}).get("ETag") or '"x"'
    return [(label, call(mw, method, path, headers)) for label, method, path, headers in shapes(origin, {"tag": tag})]


def access_control(result: Result) -> List[Header]:
    return [(k, v) for k, v in result.headers if k.lower().startswith("access-control-")]


def vary_tokens(result: Result) -> List[str]:
    values = result.get_all("Vary")
    assert len(values) <= 1, f"{len(values)} Vary lines: {result.headers}"
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


LIST_CONFIGS = [
    ("list", {"CORS_ORIGINS": LISTED}),
    ("list-string", {"CORS_ORIGINS": ", ".join(LISTED)}),
    ("list+regex", {"CORS_ORIGINS": LISTED, "CORS_ORIGIN_REGEX": REGEX}),
    ("regex+credentials", {"CORS_ORIGINS": LISTED, "CORS_ORIGIN_REGEX": re.compile(REGEX), "CORS_ALLOW_CREDENTIALS": True}),
    ("list+private+gzip", {"CORS_ORIGINS": LISTED, "CORS_ALLOW_PRIVATE_NETWORK": True, "GZIP": True, "GZIP_MIN_SIZE": 100}),
]


# --- unlisted origins ------------------------------------------------------------------


@pytest.mark.parametrize("label,config", LIST_CONFIGS, ids=[c[0] for c in LIST_CONFIGS])
def test_unlisted_origin_never_gets_access_control_headers(make_mw: Any, label: str, config: Dict[str, Any]) -> None:
    mw = make_mw(App(), config)
    failures = []
    for origin in UNLISTED:
        for shape, result in run_all(mw, origin):
            if access_control(result):
                failures.append(f"{origin!r} {shape}: {access_control(result)}")
            if shape != "options-no-acrm" and "origin" not in vary_tokens(result):
                failures.append(f"{origin!r} {shape}: no Vary: Origin in {result.headers}")
    assert not failures, "\n".join(failures[:40])


@pytest.mark.parametrize("label,config", LIST_CONFIGS, ids=[c[0] for c in LIST_CONFIGS])
def test_allowed_origin_is_echoed_exactly(make_mw: Any, label: str, config: Dict[str, Any]) -> None:
    """The positive control of the test above: the same grid lets allowed origins in."""
    mw = make_mw(App(), config)
    regex = "CORS_ORIGIN_REGEX" in config
    for origin in ALLOWED:
        if not regex and origin.endswith(".r.example"):
            continue
        for shape, result in run_all(mw, origin):
            if shape == "options-no-acrm":  # no preflight: the app's answer
                continue
            assert result.get("Access-Control-Allow-Origin") == origin, (origin, shape, result.headers)
            assert "origin" in vary_tokens(result), (origin, shape, result.headers)
            creds = result.get("Access-Control-Allow-Credentials")
            assert creds == ("true" if config.get("CORS_ALLOW_CREDENTIALS") else None)


def test_no_origin_gets_no_access_control_but_vary(make_mw: Any) -> None:
    mw = make_mw(App(), {"CORS_ORIGINS": LISTED, "CORS_ORIGIN_REGEX": REGEX})
    for shape, result in run_all(mw, None):
        assert access_control(result) == [], (shape, result.headers)
        if shape != "options-no-acrm":
            assert "origin" in vary_tokens(result), (shape, result.headers)


def test_unparsed_status_line_gets_nothing_from_the_middleware(make_mw: Any) -> None:
    """A status the middleware cannot read passes untouched: no header added at all."""
    mw = make_mw(App(), {"CORS_ORIGINS": LISTED, "GZIP": True})
    for origin in ("https://a.example", "https://evil.example"):
        result = call(mw, "GET", "/odd-status", {"Origin": origin, "Accept-Encoding": "gzip"})
        assert result.headers == [("Content-Type", "text/html; charset=utf-8")]


@pytest.mark.parametrize("origin", ["null", "https://a.example.", "https://a.example:444", "http://a.example", "https://a.example/x"])
def test_null_and_near_misses_refused_with_credentials(make_mw: Any, origin: str) -> None:
    mw = make_mw(App(), {"CORS_ORIGINS": ["https://a.example"], "CORS_ALLOW_CREDENTIALS": True})
    for shape, result in run_all(mw, origin):
        assert access_control(result) == [], (shape, result.headers)


def test_null_allowed_only_when_listed(make_mw: Any) -> None:
    mw = make_mw(App(), {"CORS_ORIGINS": ["null"]})
    result = call(mw, "GET", "/", {"Origin": "null"})
    assert result.get("Access-Control-Allow-Origin") == "null"
    assert call(mw, "GET", "/", {"Origin": "https://a.example"}).get("Access-Control-Allow-Origin") is None


# --- credentials never with "*" ----------------------------------------------------------


@pytest.mark.parametrize("origins", ["*", " * ", ["*"], ["https://a.example", "*"], ("*",), {"*"}])
def test_wildcard_with_credentials_refused_at_construction(make_mw: Any, origins: Any) -> None:
    with pytest.raises(ValueError) as raised:
        make_mw(App(), {"CORS_ORIGINS": origins, "CORS_ALLOW_CREDENTIALS": True})
    assert "CORS_ORIGINS" in str(raised.value) and "CORS_ALLOW_CREDENTIALS" in str(raised.value)


@pytest.mark.parametrize("change", [("CORS_ALLOW_CREDENTIALS", True), ("CORS_ORIGINS", "*")])
def test_wildcard_with_credentials_refused_at_runtime(make_mw: Any, change: Tuple[str, Any]) -> None:
    start = {"CORS_ORIGINS": "*"} if change[0] == "CORS_ALLOW_CREDENTIALS" else {"CORS_ORIGINS": LISTED, "CORS_ALLOW_CREDENTIALS": True}
    mw = make_mw(App(), start)
    call(mw, "GET", "/", {"Origin": "https://a.example"})
    mw.config[change[0]] = change[1]
    for shape, method, path, headers in shapes("https://a.example", {}):
        with pytest.raises(ValueError, match="CORS_ALLOW_CREDENTIALS"):
            call(mw, method, path, headers)


def test_wildcard_responses_never_carry_credentials(make_mw: Any) -> None:
    mw = make_mw(App(), {"CORS_ORIGINS": "*", "GZIP": True, "GZIP_MIN_SIZE": 100})
    for origin in [None, "https://a.example", "null", "*", "https://evil.example"]:
        for shape, result in run_all(mw, origin):
            if shape == "options-no-acrm":
                continue
            assert result.get("Access-Control-Allow-Origin") == "*", (origin, shape, result.headers)
            assert result.get("Access-Control-Allow-Credentials") is None
            assert "origin" not in vary_tokens(result), (origin, shape, result.headers)


def test_credentials_echo_the_origin_never_star(make_mw: Any) -> None:
    mw = make_mw(App(), {"CORS_ORIGINS": LISTED + ["null"], "CORS_ALLOW_CREDENTIALS": True})
    for origin in LISTED + ["null", "*"]:
        for shape, result in run_all(mw, origin):
            acao = result.get("Access-Control-Allow-Origin")
            assert acao != "*", (origin, shape, result.headers)
            if acao is not None:
                assert acao == origin and result.get("Access-Control-Allow-Credentials") == "true"


# --- private network access -----------------------------------------------------------------

PNA = "Access-Control-Allow-Private-Network"


@pytest.mark.parametrize("asked", ["true", "TRUE", " true\t"])
def test_private_network_only_when_configured(make_mw: Any, asked: str) -> None:
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Private-Network": asked}
    for config in ({"CORS_ORIGINS": LISTED}, {"CORS_ORIGINS": "*"}, {"CORS_ORIGINS": LISTED, "CORS_ALLOW_PRIVATE_NETWORK": False}):
        result = call(make_mw(App(), config), "OPTIONS", "/", preflight)
        assert result.code == 204 and result.get(PNA) is None, (config, result.headers)
    for config in ({"CORS_ORIGINS": LISTED, "CORS_ALLOW_PRIVATE_NETWORK": True}, {"CORS_ORIGINS": "*", "CORS_ALLOW_PRIVATE_NETWORK": True}):
        mw = make_mw(App(), config)
        assert call(mw, "OPTIONS", "/", preflight).get(PNA) == "true"
        # never on an actual response, never for an unlisted origin or without the ask
        actual = call(mw, "GET", "/", preflight)
        assert actual.get(PNA) is None
        if config["CORS_ORIGINS"] != "*":
            refused = call(mw, "OPTIONS", "/", {**preflight, "Origin": "https://evil.example"})
            assert refused.get(PNA) is None and access_control(refused) == []
        for other in ("false", "", "yes", "1", "true\r\n", "truee", "true, true"):
            assert call(mw, "OPTIONS", "/", {**preflight, "Access-Control-Request-Private-Network": other}).get(PNA) is None


# --- CR / LF never written --------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_nasty = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x0b", "\x7f", "\x85", "\u2028", " ", "\t", ",", "*", "é"])
_origin_text = st.one_of(
    st.sampled_from(ALLOWED + UNLISTED),
    st.tuples(st.sampled_from(ALLOWED), _nasty, st.text(max_size=12)).map("".join),
    st.text(max_size=30),
)
_config_text = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=8), st.sampled_from(["GET", "X-Token", "Content-Type"]), _nasty), max_size=4).map("".join),
)
# Regexes that match anything, CR and LF included: only the origin check stands
# between them and a header value.
_regex = st.sampled_from([None, REGEX, r"(?s).*", r"(?s)https://a\.example.*", r"[\s\S]+"])


@st.composite
def hostile_config(draw: Any) -> Dict[str, Any]:
    config: Dict[str, Any] = {
        "CORS_ORIGINS": draw(st.one_of(st.just(LISTED), st.lists(_origin_text, max_size=3), st.just("*"), _origin_text)),
        "CORS_ORIGIN_REGEX": draw(_regex),
        "CORS_ALLOW_PRIVATE_NETWORK": draw(st.booleans()),
        "GZIP": True,
        "GZIP_MIN_SIZE": 10,
    }
    for key in ("CORS_ALLOW_METHODS", "CORS_ALLOW_HEADERS", "CORS_EXPOSE_HEADERS"):
        if draw(st.booleans()):
            config[key] = draw(st.one_of(_config_text, st.lists(_config_text, max_size=3)))
    if draw(st.booleans()):
        config["GZIP_TYPES"] = draw(st.lists(_config_text, max_size=2))
    return config


_request_value = st.one_of(st.text(max_size=40), st.tuples(st.text(max_size=5), _nasty, st.text(max_size=5)).map("".join))


def _clean(result: Result, where: str) -> None:
    for name, value in result.headers:
        assert not _CONTROL.search(value), f"{where}: {name}: {value!r}"
        assert not _CONTROL.search(name), f"{where}: {name!r}"


@SETTINGS
@given(config=hostile_config(), origin=_origin_text, extra=st.dictionaries(
    st.sampled_from(["Accept-Encoding", "If-None-Match", "If-Modified-Since", "Access-Control-Request-Private-Network", "Access-Control-Request-Method"]),
    _request_value,
))
@example(config={"CORS_ORIGINS": LISTED, "CORS_ORIGIN_REGEX": r"(?s).*"}, origin="https://a.example\r\nSet-Cookie: a=1", extra={})
@example(config={"CORS_ORIGINS": "*", "CORS_ALLOW_METHODS": "GET\r\nX: y"}, origin="https://a.example", extra={})
@example(config={"CORS_ORIGINS": ["https://a.example\r\n"]}, origin="https://a.example", extra={})
@example(config={"CORS_ORIGINS": LISTED, "CORS_EXPOSE_HEADERS": ["ETag", "X\nY"]}, origin="https://a.example", extra={})
def test_no_control_character_in_any_header_written(core: Any, config: Dict[str, Any], origin: str, extra: Dict[str, str]) -> None:
    """Clean app headers in, whatever config and request: either the config is
    refused (ValueError/TypeError naming the key, at construction) or no header
    value that leaves holds CR, LF or another control character."""
    try:
        mw = ResponseMiddleware(App(), config, _core_module=core)
    except (ValueError, TypeError) as exc:
        assert any(key in str(exc) for key in config), exc
        return
    for shape, method, path, headers in shapes(origin, {}):
        result = call(mw, method, path, {**headers, **extra})
        _clean(result, f"{shape} origin={origin!r}")
        acao = result.get("Access-Control-Allow-Origin")
        if acao is not None and acao != "*":
            assert acao == origin and origin.isascii() and origin.isprintable() and " " not in origin


@SETTINGS
@given(key=st.sampled_from(["CORS_ALLOW_METHODS", "CORS_ALLOW_HEADERS", "CORS_EXPOSE_HEADERS", "CORS_ORIGINS", "GZIP_TYPES"]), value=_config_text)
def test_bad_runtime_config_raises_naming_the_key_never_writes_it(core: Any, key: str, value: str) -> None:
    mw = ResponseMiddleware(App(), {"CORS_ORIGINS": LISTED}, _core_module=core)
    mw.config[key] = value
    try:
        result = call(mw, "GET", "/", {"Origin": "https://a.example"})
    except (ValueError, TypeError) as exc:
        assert key in str(exc)
        return
    _clean(result, f"{key}={value!r}")
