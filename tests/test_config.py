"""Configuration: defaults, run-time changes, the wrapped app's own config, and validation.

Every behaviour test runs on both cores through ``make_mw`` and checks the exact status and
the whole header list.  Expected defaults are written out from SPEC.md's tables, not imported.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from wsgi_helpers import call, gzip_reference, make_app, md5_tag as tag

Header = Tuple[str, str]

# SPEC.md, "Configuration keys": both tables, names and defaults.
SPEC_DEFAULTS: Dict[str, Any] = {
    "CORS_ORIGINS": None,
    "GZIP": False,
    "GZIP_MIN_SIZE": 500,
    "ETAG": True,
    "CORS_ALLOW_METHODS": "GET, POST, PUT, DELETE, PATCH, OPTIONS",
    "CORS_ALLOW_HEADERS": "Content-Type, X-CSRF-Token, Authorization",
    "CORS_ALLOW_CREDENTIALS": False,
    "CORS_EXPOSE_HEADERS": None,
    "CORS_MAX_AGE": 86400,
    "CORS_ORIGIN_REGEX": None,
    "CORS_ALLOW_PRIVATE_NETWORK": False,
    "GZIP_LEVEL": 6,
    "GZIP_TYPES": None,
    "COMPRESS_CODINGS": ("zstd", "br", "gzip"),
    "ZSTD_LEVEL": 3,
    "BROTLI_LEVEL": 4,
    "COMPRESS_RANDOM_PADDING": False,
    "GZIP_ENGINE": "zlib",
    "ISAL_LEVEL": 1,
    "COMPRESS_CACHE_SIZE": 8388608,
    "COMPRESS_CACHE_BACKEND": None,
    "BUFFER_MAX_SIZE": 4194304,
}

TEXT = "text/html; charset=utf-8"
TRUSTED = "https://trusted.com"
METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-CSRF-Token, Authorization"


def body_of(size: int) -> bytes:
    """``size`` bytes of compressible HTML."""
    unit = b"<p>asok_fast config test</p>\n"
    return (unit * (size // len(unit) + 1))[:size]


BODY = body_of(600)  # above the default GZIP_MIN_SIZE
GZ = gzip_reference(BODY)

PLAIN: List[Header] = [("Content-Type", TEXT), ("Content-Length", "600"), ("ETag", tag(BODY))]
PLAIN_VARY: List[Header] = PLAIN + [("Vary", "Accept-Encoding")]
GZIPPED: List[Header] = [
    ("Content-Type", TEXT),
    ("Content-Encoding", "gzip"),
    ("Content-Length", str(len(GZ))),
    ("ETag", tag(BODY, "-gzip")),
    ("Vary", "Accept-Encoding"),
]


def acao(origin: str) -> List[Header]:
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", METHODS),
        ("Access-Control-Allow-Headers", ALLOW_HEADERS),
    ]


def get(mw: Any, origin: Optional[str] = None, gzip: bool = True, **headers: str) -> Any:
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    if gzip:
        h["Accept-Encoding"] = "gzip"
    if origin is not None:
        h["Origin"] = origin
    return call(mw, "GET", headers=h)


def names_key(key: str) -> str:
    """A regex matching ``key`` as a whole word (``GZIP`` must not match ``GZIP_LEVEL``)."""
    return rf"(?<![A-Z_]){re.escape(key)}(?![A-Z_])"


class AsokLike:
    """A WSGI app with a ``config`` dict, as an Asok application has."""

    def __init__(self, config: Dict[str, Any], body: bytes = BODY) -> None:
        self.config = config
        self.inner = make_app(body)

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> Any:
        return self.inner(environ, start_response)


# ------------------------------------------------------------------ defaults


def test_config_holds_every_key_with_spec_defaults(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY))
    assert isinstance(mw.config, dict)
    assert dict(mw.config) == SPEC_DEFAULTS
    # Same types too (86400 the int, not "86400"; False, not 0).
    for key, value in SPEC_DEFAULTS.items():
        assert type(mw.config[key]) is type(value), key


def test_defaults_behaviour(make_mw: Any) -> None:
    """GZIP off, ETAG on, no CORS."""
    mw = make_mw(make_app(BODY))
    r = get(mw, TRUSTED)
    assert (r.status, r.headers, r.body) == ("200 OK", PLAIN, BODY)


def test_config_argument_overrides_defaults_and_keeps_the_rest(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), {"GZIP": True, "GZIP_LEVEL": 9})
    assert dict(mw.config) == {**SPEC_DEFAULTS, "GZIP": True, "GZIP_LEVEL": 9}


def test_config_argument_is_not_mutated_or_aliased(make_mw: Any) -> None:
    given = {"GZIP": True}
    mw = make_mw(make_app(BODY), given)
    assert given == {"GZIP": True}
    given["GZIP"] = False  # the caller's dict is not the live config
    r = get(mw)
    assert r.headers == GZIPPED


# ------------------------------------------------------------------ run-time changes


def test_gzip_switched_on_and_off_at_runtime(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY))
    assert get(mw).headers == PLAIN
    mw.config["GZIP"] = True
    r = get(mw)
    assert (r.status, r.headers, r.body) == ("200 OK", GZIPPED, GZ)
    mw.config["GZIP"] = False
    r = get(mw)
    assert (r.status, r.headers, r.body) == ("200 OK", PLAIN, BODY)


def test_gzip_min_size_at_runtime(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), {"GZIP": True})
    assert get(mw).headers == GZIPPED
    mw.config["GZIP_MIN_SIZE"] = 600  # "more than" 600: a 600-byte body stays plain
    r = get(mw)
    assert (r.headers, r.body) == (PLAIN, BODY)
    mw.config["GZIP_MIN_SIZE"] = 599
    r = get(mw, gzip=False)  # would be compressed for another client
    assert (r.headers, r.body) == (PLAIN_VARY, BODY)
    mw.config["GZIP_MIN_SIZE"] = 599
    assert get(mw).headers == GZIPPED


def test_gzip_level_at_runtime(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), {"GZIP": True})
    mw.config["GZIP_LEVEL"] = 1
    r = get(mw)
    gz1 = gzip_reference(BODY, 1)
    assert r.headers[:3] == [("Content-Type", TEXT), ("Content-Encoding", "gzip"), ("Content-Length", str(len(gz1)))]
    assert r.body == gz1


def test_cors_origins_replaced_at_runtime(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), {"CORS_ORIGINS": [TRUSTED]})
    assert get(mw, TRUSTED, gzip=False).headers == PLAIN + [("Vary", "Origin")] + acao(TRUSTED)
    mw.config["CORS_ORIGINS"] = ["https://other.com"]
    assert get(mw, TRUSTED, gzip=False).headers == PLAIN + [("Vary", "Origin")]
    r = get(mw, "https://other.com", gzip=False)
    assert r.headers == PLAIN + [("Vary", "Origin")] + acao("https://other.com")
    mw.config["CORS_ORIGINS"] = "*"
    assert get(mw, TRUSTED, gzip=False).headers == PLAIN + acao("*")
    mw.config["CORS_ORIGINS"] = None
    assert get(mw, TRUSTED, gzip=False).headers == PLAIN


def test_etag_switched_off_at_runtime(make_mw: Any) -> None:
    app = make_app(BODY)
    mw = make_mw(app)
    r = get(mw, gzip=False, If_None_Match=tag(BODY))
    assert (r.status, r.headers, r.chunks) == ("304 Not Modified", [("ETag", tag(BODY))], [])
    mw.config["ETAG"] = False
    r = get(mw, gzip=False, If_None_Match=tag(BODY))
    # Every feature off: a plain pass-through, the app's headers untouched.
    assert (r.status, r.headers, r.body) == ("200 OK", [("Content-Type", TEXT)], BODY)
    assert app.calls == 2
    mw.config["ETAG"] = True
    assert get(mw, gzip=False, If_None_Match=tag(BODY)).status == "304 Not Modified"


def test_update_and_ior(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY))
    mw.config.update({"GZIP": True, "CORS_ORIGINS": "*"})
    assert get(mw).headers == GZIPPED + acao("*")
    mw.config.update(GZIP=False)
    assert get(mw).headers == PLAIN + acao("*")
    mw.config |= {"CORS_ORIGINS": None, "ETAG": False}
    assert get(mw).headers == [("Content-Type", TEXT)]  # all off: pass-through
    mw.config.setdefault("GZIP", True)  # present: no change of value
    assert get(mw).headers == [("Content-Type", TEXT)]
    mw.config.setdefault("ETAG", True)
    assert get(mw).headers == [("Content-Type", TEXT)]
    mw.config.update(ETAG=True)
    assert get(mw).headers == PLAIN


@pytest.mark.parametrize("how", ["del", "pop", "popitem-all", "clear"])
def test_removed_key_falls_back_to_its_default(make_mw: Any, how: str) -> None:
    """A key removed from ``.config`` means its default again (as Asok reads an absent key)."""
    app = make_app(BODY)
    mw = make_mw(app, {"GZIP": True, "ETAG": False})
    assert get(mw).headers == [h for h in GZIPPED if h[0] != "ETag"]
    if how == "del":
        del mw.config["GZIP"]
        del mw.config["ETAG"]
    elif how == "pop":
        assert mw.config.pop("GZIP") is True
        assert mw.config.pop("ETAG") is False
    elif how == "popitem-all":
        while mw.config:
            mw.config.popitem()
    else:
        mw.config.clear()
    r = get(mw)
    assert (r.status, r.headers, r.body) == ("200 OK", PLAIN, BODY)
    # And assigning again works on the next request.
    mw.config["GZIP"] = True
    assert get(mw).headers == GZIPPED


def test_in_place_list_change_then_new_list(make_mw: Any) -> None:
    """SPEC: a list changed in place need not be noticed; assigning a new one is."""
    origins = [TRUSTED]
    mw = make_mw(make_app(BODY), {"CORS_ORIGINS": origins})
    mw.config["CORS_ORIGINS"] = origins + ["https://b.com"]
    r = get(mw, "https://b.com", gzip=False)
    assert r.headers == PLAIN + [("Vary", "Origin")] + acao("https://b.com")


def test_assign_a_whole_new_dict(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY), {"CORS_ORIGINS": "*", "ETAG": False})
    mw.config = {"GZIP": True}
    # Keys not given are back at their defaults.
    assert dict(mw.config) == {**SPEC_DEFAULTS, "GZIP": True}
    r = get(mw, TRUSTED)
    assert (r.status, r.headers, r.body) == ("200 OK", GZIPPED, GZ)
    # The new .config keeps noticing changes.
    mw.config["GZIP"] = False
    assert get(mw, TRUSTED).headers == PLAIN


def test_assign_a_whole_new_dict_with_a_bad_value(make_mw: Any) -> None:
    app = make_app(BODY)
    mw = make_mw(app)
    mw.config = {"GZIP": "yes"}
    with pytest.raises(TypeError, match=names_key("GZIP")):
        get(mw)
    assert app.calls == 0
    mw.config = {"GZIP": True}
    assert get(mw).headers == GZIPPED


def test_assign_a_non_mapping(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY))
    with pytest.raises(TypeError):
        mw.config = [("GZIP", True)]  # type: ignore[assignment]
    assert get(mw).headers == PLAIN


# ------------------------------------------------------------------ the wrapped app's config


def test_starting_values_from_the_app_config(make_mw: Any) -> None:
    app = AsokLike({"GZIP": True, "GZIP_MIN_SIZE": 100, "CORS_ORIGINS": [TRUSTED], "SECRET_KEY": "s3cret"})
    mw = make_mw(app)
    assert dict(mw.config) == {**SPEC_DEFAULTS, "GZIP": True, "GZIP_MIN_SIZE": 100, "CORS_ORIGINS": [TRUSTED]}
    assert "SECRET_KEY" not in mw.config
    # The middleware takes compression over: the app must not compress again.
    assert app.config == {"GZIP": False, "GZIP_MIN_SIZE": 100, "CORS_ORIGINS": [TRUSTED], "SECRET_KEY": "s3cret"}
    small = body_of(200)
    app.inner = make_app(small)
    r = get(mw, TRUSTED)
    gz = gzip_reference(small)
    assert r.status == "200 OK"
    assert r.headers == [
        ("Content-Type", TEXT),
        ("Content-Encoding", "gzip"),
        ("Content-Length", str(len(gz))),
        ("ETag", tag(small, "-gzip")),
        ("Vary", "Accept-Encoding, Origin"),
    ] + acao(TRUSTED)
    assert r.body == gz


def test_config_argument_overrides_the_app_config(make_mw: Any) -> None:
    app = AsokLike({"GZIP": True, "GZIP_MIN_SIZE": 100, "ETAG": False})
    mw = make_mw(app, {"GZIP_MIN_SIZE": 1000, "ETAG": True})
    assert dict(mw.config) == {**SPEC_DEFAULTS, "GZIP": True, "GZIP_MIN_SIZE": 1000}
    assert app.config["GZIP"] is False
    r = get(mw)
    assert (r.headers, r.body) == (PLAIN, BODY)  # 600 bytes <= 1000: not compressed


def test_app_gzip_false_left_alone(make_mw: Any) -> None:
    app = AsokLike({"GZIP": False, "ETAG": True})
    mw = make_mw(app)
    assert app.config == {"GZIP": False, "ETAG": True}
    assert get(mw).headers == PLAIN


def test_app_config_change_after_construction_is_not_ours(make_mw: Any) -> None:
    """The starting values are copied; ``mw.config`` is the live one."""
    app = AsokLike({"GZIP_MIN_SIZE": 100})
    mw = make_mw(app, {"GZIP": True})
    app.config["GZIP_MIN_SIZE"] = 10_000
    assert get(mw).headers == GZIPPED
    mw.config["GZIP_MIN_SIZE"] = 10_000
    # Too small for any client: no Vary: Accept-Encoding either.
    assert get(mw).headers == PLAIN


@pytest.mark.parametrize("config", ["not a dict", None, 42])
def test_app_config_that_is_not_a_dict_is_ignored(make_mw: Any, config: Any) -> None:
    app = AsokLike({})
    app.config = config  # type: ignore[assignment]
    mw = make_mw(app)
    assert dict(mw.config) == SPEC_DEFAULTS
    assert app.config == config


def test_bad_value_in_the_app_config_raises_naming_the_key(make_mw: Any) -> None:
    app = AsokLike({"GZIP": True, "GZIP_MIN_SIZE": "500"})
    with pytest.raises(TypeError, match=names_key("GZIP_MIN_SIZE")):
        make_mw(app)


# ------------------------------------------------------------------ validation

BOOL_KEYS = ["GZIP", "ETAG", "CORS_ALLOW_CREDENTIALS", "CORS_ALLOW_PRIVATE_NETWORK", "COMPRESS_RANDOM_PADDING"]
INT_KEYS = ["GZIP_MIN_SIZE", "GZIP_LEVEL", "ZSTD_LEVEL", "BROTLI_LEVEL", "ISAL_LEVEL", "CORS_MAX_AGE", "BUFFER_MAX_SIZE", "COMPRESS_CACHE_SIZE"]

BAD: List[Tuple[str, Any, type]] = (
    [(key, value, TypeError) for key in BOOL_KEYS for value in (1, 0, "yes", "true", None, [])]
    + [(key, value, TypeError) for key in INT_KEYS for value in ("500", 1.5, 500.0, True, False, [500])]
    + [(key, None, TypeError) for key in INT_KEYS if key != "CORS_MAX_AGE"]
    + [(key, -1, ValueError) for key in INT_KEYS]
    + [
        ("GZIP_LEVEL", 0, ValueError),
        ("GZIP_LEVEL", 10, ValueError),
        ("GZIP_LEVEL", -5, ValueError),
        ("ZSTD_LEVEL", 0, ValueError),
        ("ZSTD_LEVEL", 20, ValueError),  # "ultra" levels: windows beyond 8 MiB (RFC 9659)
        ("ZSTD_LEVEL", 22, ValueError),
        ("BROTLI_LEVEL", 12, ValueError),
        ("COMPRESS_CODINGS", "deflate", ValueError),
        ("COMPRESS_CODINGS", ["zstd", "compress"], ValueError),
        ("COMPRESS_CODINGS", ["x-gzip"], ValueError),
        ("COMPRESS_CODINGS", ["identity"], ValueError),
        ("COMPRESS_CODINGS", [], ValueError),
        ("COMPRESS_CODINGS", "", ValueError),
        ("COMPRESS_CODINGS", " , ", ValueError),
        ("COMPRESS_CODINGS", None, TypeError),
        ("COMPRESS_CODINGS", 42, TypeError),
        ("COMPRESS_CODINGS", b"gzip", TypeError),
        ("COMPRESS_CODINGS", ["gzip", None], TypeError),
        ("ISAL_LEVEL", 4, ValueError),
        ("GZIP_ENGINE", "zlib-ng", ValueError),
        ("GZIP_ENGINE", None, ValueError),
        ("GZIP_ENGINE", "ISAL", ValueError),
        ("COMPRESS_CACHE_BACKEND", "redis://127.0.0.1:6379", TypeError),
        ("COMPRESS_CACHE_BACKEND", {"get": 1}, TypeError),
        ("COMPRESS_CACHE_BACKEND", 42, TypeError),
        ("CORS_ORIGINS", 42, TypeError),
        ("CORS_ORIGINS", True, TypeError),
        ("CORS_ORIGINS", b"https://a.com", TypeError),
        ("CORS_ORIGINS", {"https://a.com": True}, TypeError),
        ("CORS_ORIGINS", [42], TypeError),
        ("CORS_ORIGINS", ["https://a.com", None], TypeError),
        ("CORS_ORIGINS", [b"https://a.com"], TypeError),
        ("CORS_ORIGINS", "not-an-origin", ValueError),
        ("CORS_ORIGINS", "https://a.com/path", ValueError),
        ("CORS_ORIGINS", "https://a.com, /path", ValueError),
        ("CORS_ORIGINS", "*.example.com", ValueError),
        ("CORS_ORIGINS", "https://a.com?q=1", ValueError),
        ("CORS_ORIGINS", "https://user@a.com", ValueError),
        ("CORS_ORIGINS", "https://bücher.de", ValueError),
        ("CORS_ORIGINS", ["https://a.com\r\nX-Evil: 1"], ValueError),
        ("CORS_ORIGIN_REGEX", "(", ValueError),
        ("CORS_ORIGIN_REGEX", 42, TypeError),
        ("CORS_ORIGIN_REGEX", re.compile(b"https://a"), TypeError),
        ("CORS_ALLOW_METHODS", "GET\r\nX-Evil: 1", ValueError),
        ("CORS_ALLOW_METHODS", ["GET", "POST\n"], ValueError),
        ("CORS_ALLOW_METHODS", None, TypeError),
        ("CORS_ALLOW_METHODS", 42, TypeError),
        ("CORS_ALLOW_METHODS", ["GET", 1], TypeError),
        ("CORS_ALLOW_HEADERS", "X-A\rX-B", ValueError),
        ("CORS_ALLOW_HEADERS", "X-\x00", ValueError),
        ("CORS_ALLOW_HEADERS", None, TypeError),
        ("CORS_EXPOSE_HEADERS", "X-Total\r\n", ValueError),
        ("CORS_EXPOSE_HEADERS", 42, TypeError),
        ("CORS_EXPOSE_HEADERS", "X-Tötal", ValueError),
        ("GZIP_TYPES", "nonsense", ValueError),
        ("GZIP_TYPES", ["text/csv", "nonsense"], ValueError),
        ("GZIP_TYPES", 42, TypeError),
        ("GZIP_TYPES", [None], TypeError),
    ]
)


def _bad_id(case: Tuple[str, Any, type]) -> str:
    key, value, _ = case
    return f"{key}={value!r}"


@pytest.mark.parametrize("case", BAD, ids=[_bad_id(c) for c in BAD])
def test_bad_value_at_construction(make_mw: Any, case: Tuple[str, Any, type]) -> None:
    key, value, exc = case
    app = make_app(BODY)
    with pytest.raises(exc, match=names_key(key)):
        make_mw(app, {key: value})
    assert app.calls == 0


@pytest.mark.parametrize("case", BAD, ids=[_bad_id(c) for c in BAD])
def test_bad_value_at_runtime_raises_on_next_request_until_fixed(make_mw: Any, case: Tuple[str, Any, type]) -> None:
    key, value, exc = case
    app = make_app(BODY)
    mw = make_mw(app)
    assert get(mw).headers == PLAIN
    mw.config[key] = value  # SPEC: raised on the next request
    for _ in range(2):  # and on every one after, never a silent misbehaviour
        with pytest.raises(exc, match=names_key(key)):
            get(mw)
    assert app.calls == 1
    mw.config[key] = SPEC_DEFAULTS[key]
    r = get(mw)
    assert (r.status, r.headers, r.body) == ("200 OK", PLAIN, BODY)
    assert app.calls == 2


@pytest.mark.parametrize("typo", ["GZIP_MINSIZE", "gzip", "CORS_ORIGIN", "CORS_ALLOWED_ORIGINS", "ETAGS"])
def test_unknown_key_at_construction(make_mw: Any, typo: str) -> None:
    with pytest.raises(ValueError, match=names_key(typo) if typo.isupper() else re.escape(repr(typo))):
        make_mw(make_app(BODY), {typo: 1024})


@pytest.mark.parametrize("typo", ["GZIP_MINSIZE", "CORS_ORIGIN"])
def test_unknown_key_at_runtime(make_mw: Any, typo: str) -> None:
    app = make_app(BODY)
    mw = make_mw(app)
    mw.config[typo] = 1024
    for _ in range(2):
        with pytest.raises(ValueError, match=names_key(typo)):
            get(mw)
    assert app.calls == 0
    del mw.config[typo]
    assert get(mw).headers == PLAIN


def test_unknown_key_in_a_new_dict(make_mw: Any) -> None:
    mw = make_mw(make_app(BODY))
    mw.config = {"GZIP_MINSIZE": 10}
    with pytest.raises(ValueError, match=names_key("GZIP_MINSIZE")):
        get(mw)


def test_app_config_unknown_keys_are_not_ours(make_mw: Any) -> None:
    """An Asok app's config holds many other keys: they are not read, not refused."""
    app = AsokLike({"SECRET_KEY": "x", "GZIP_MINSIZE": 10, "DEBUG": True})
    mw = make_mw(app)
    assert dict(mw.config) == SPEC_DEFAULTS


@pytest.mark.parametrize(
    "key, value",
    [
        ("CORS_MAX_AGE", None),
        ("CORS_MAX_AGE", 0),
        ("GZIP_MIN_SIZE", 0),
        ("BUFFER_MAX_SIZE", 0),
        ("GZIP_LEVEL", 1),
        ("GZIP_LEVEL", 9),
        ("ISAL_LEVEL", 0),
        ("ISAL_LEVEL", 3),
        ("GZIP_ENGINE", "isal"),
        ("COMPRESS_CACHE_SIZE", 0),
        ("COMPRESS_CACHE_SIZE", 1),
        ("ZSTD_LEVEL", 1),
        ("ZSTD_LEVEL", 19),
        ("BROTLI_LEVEL", 0),
        ("BROTLI_LEVEL", 11),
        ("COMPRESS_CODINGS", ["gzip"]),
        ("COMPRESS_CODINGS", "br, gzip"),
        ("COMPRESS_CODINGS", ("GZIP", " Zstd ")),
        ("COMPRESS_CODINGS", ["gzip", "gzip", "br"]),
        ("COMPRESS_CODINGS", {"br"}),
        ("CORS_ORIGINS", ""),
        ("CORS_ORIGINS", []),
        ("CORS_ORIGINS", "null"),
        ("CORS_ORIGIN_REGEX", re.compile(r"https://a\.com")),
        ("CORS_ALLOW_METHODS", ""),
        ("CORS_EXPOSE_HEADERS", []),
        ("GZIP_TYPES", "text/csv, application/vnd.api+json"),
        ("GZIP_TYPES", ()),
    ],
    ids=repr,
)
def test_good_edge_values_accepted(make_mw: Any, key: str, value: Any) -> None:
    mw = make_mw(make_app(BODY), {key: value})
    assert mw.config[key] == value
    assert get(mw).status == "200 OK"


# ------------------------------------------------------------------ threads


CONFIG_A = {"GZIP": True, "CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": False, "ETAG": True, "GZIP_MIN_SIZE": 0}
CONFIG_B = {"GZIP": False, "CORS_ORIGINS": [TRUSTED], "CORS_ALLOW_CREDENTIALS": True, "ETAG": False, "GZIP_MIN_SIZE": 10_000}


def test_config_change_while_requests_run_never_mixes_settings(make_mw: Any) -> None:
    """Every response is exactly A's or exactly B's, never a blend, never a spurious error.

    A blend of the two (``"*"`` with credentials) would even be refused, so a request that
    reads half of an ``update()`` fails loudly here.
    """
    app = make_app(BODY)

    def outcome(r: Any) -> Tuple[str, Tuple[Header, ...], bytes]:
        return (r.status, tuple(r.headers), r.body)

    expected = {
        outcome(get(make_mw(app, CONFIG_A), TRUSTED)): "A",
        outcome(get(make_mw(app, CONFIG_B), TRUSTED)): "B",
    }
    assert len(expected) == 2

    mw = make_mw(app, CONFIG_A)
    stop = threading.Event()
    seen: List[str] = []
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            while not stop.is_set():
                got = outcome(get(mw, TRUSTED))
                seen.append(expected.get(got, repr(got)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    threads = [threading.Thread(target=worker) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        # Flip for a second, and on until the workers have met both (10 s at most).
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 1.0 or (not {"A", "B"} <= set(seen) and time.monotonic() - start < 10):
            mw.config.update(CONFIG_B if i % 2 == 0 else CONFIG_A)
            i += 1
        mw.config.update(CONFIG_A)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(old_interval)

    assert errors == []
    mixed = [s for s in seen if s not in ("A", "B")]
    assert mixed == []
    assert {"A", "B"} <= set(seen), "the workers should have seen both configurations"
    # After the last update (A), the next request is A's.
    assert expected[outcome(get(mw, TRUSTED))] == "A"


def test_wrapped_app_attributes_stay_reachable(make_mw: Any) -> None:
    """A drop-in keeps the framework's own attributes (Asok's build calls them on wsgi.app)."""

    class FrameworkApp:
        config = {"GZIP": False, "SECRET": "kept"}

        def __call__(self, environ: Any, start_response: Any) -> Any:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        def pre_generate_ssg_site(self) -> str:
            return "built"

    inner = FrameworkApp()
    mw = make_mw(inner)
    assert mw.pre_generate_ssg_site() == "built"
    assert mw.app is inner
    assert mw.config["GZIP"] is False and "SECRET" not in mw.config  # .config is the middleware's
    with pytest.raises(AttributeError):
        mw.no_such_attribute
    with pytest.raises(AttributeError):
        mw.__wrapped_dunder__
