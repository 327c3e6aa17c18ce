"""Configuration: defaults, validation and the precomputed per-config settings.

Shared by both implementations.  Every per-request decision reads a
:class:`Settings` object built here, so that the cores never look at the raw
config dict and never repeat work that only depends on the configuration.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional, Pattern, Tuple

from ._cache import BodyCache, SharedTier
from ._codecs import isal_missing, missing, variant
from ._shared import CODINGS

Header = Tuple[str, str]

DEFAULTS: Dict[str, Any] = {
    # Documented by Asok.
    "CORS_ORIGINS": None,
    "GZIP": False,
    "GZIP_MIN_SIZE": 500,
    "ETAG": True,
    # Beyond Asok's page.
    "CORS_ALLOW_METHODS": "GET, POST, PUT, DELETE, PATCH, OPTIONS",
    "CORS_ALLOW_HEADERS": "Content-Type, X-CSRF-Token, Authorization",
    "CORS_ALLOW_CREDENTIALS": False,
    "CORS_EXPOSE_HEADERS": None,
    "CORS_MAX_AGE": 86400,
    "CORS_ORIGIN_REGEX": None,
    "CORS_ALLOW_PRIVATE_NETWORK": False,
    "GZIP_LEVEL": 6,
    "GZIP_TYPES": None,
    "COMPRESS_CODINGS": CODINGS,
    "ZSTD_LEVEL": 3,
    "BROTLI_LEVEL": 4,
    "COMPRESS_RANDOM_PADDING": False,
    "GZIP_ENGINE": "zlib",
    "ISAL_LEVEL": 1,
    "COMPRESS_CACHE_SIZE": 8 * 1024 * 1024,
    "COMPRESS_CACHE_BACKEND": None,
    "BUFFER_MAX_SIZE": 4 * 1024 * 1024,
}

KEYS = frozenset(DEFAULTS)

# Values of Settings.cors.
CORS_OFF = 0
CORS_ANY = 1  # "*": the same headers for every request, no Vary: Origin
CORS_LIST = 2  # a list and/or a regex: the origin is echoed, Vary: Origin

# scheme "://" host [":" port]; the host may be a bracketed IPv6 literal.
_ORIGIN_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]@?#,]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# A header value we write must be visible ASCII and spaces/tabs only: never CR,
# LF or any other control character (response splitting).
_SAFE_VALUE_RE = re.compile(r"[\t\x20-\x7e]*")
_MEDIA_TYPE_RE = re.compile(r"[a-z0-9!#$&^_.+\-]+/[a-z0-9!#$&^_.+\-]+")


class Settings:
    """Everything a core needs for one request, derived once per config change.

    Immutable by convention: a config change builds a new object and the
    middleware swaps the reference, so a request in flight keeps the settings
    it started with.
    """

    __slots__ = (
        "active",
        "cors",
        "origins",
        "origin_regex",
        "cors_headers",
        "preflight_headers",
        "private_network",
        "gzip",
        "gzip_min_size",
        "gzip_level",
        "gzip_types",
        "codings",
        "zstd_level",
        "brotli_level",
        "padding",
        "gzip_engine",
        "isal_level",
        "variants",
        "cache",
        "shared_tier",
        "etag",
        "buffer_max",
        "compiled",
    )

    def __init__(self, values: Mapping[str, Any], previous: Optional["Settings"] = None) -> None:
        origins, wildcard = _origins(values["CORS_ORIGINS"])
        regex = _regex(values["CORS_ORIGIN_REGEX"])
        credentials = _bool(values, "CORS_ALLOW_CREDENTIALS")
        if wildcard and credentials:
            raise ValueError(
                "CORS_ORIGINS='*' cannot be combined with CORS_ALLOW_CREDENTIALS=True: "
                "the Fetch standard forbids a wildcard with credentials; list the "
                "allowed origins in CORS_ORIGINS (or use CORS_ORIGIN_REGEX) instead"
            )
        if wildcard:
            self.cors = CORS_ANY
        elif origins or regex is not None:
            self.cors = CORS_LIST
        else:
            self.cors = CORS_OFF
        self.origins: FrozenSet[str] = frozenset(origins)
        self.origin_regex: Optional[Pattern[str]] = regex

        methods = _header_list(values, "CORS_ALLOW_METHODS", allow_none=False)
        allow_headers = _header_list(values, "CORS_ALLOW_HEADERS", allow_none=False)
        expose = _header_list(values, "CORS_EXPOSE_HEADERS", allow_none=True)
        max_age = values["CORS_MAX_AGE"]
        if max_age is not None:
            _check_int(max_age, "CORS_MAX_AGE")
        self.private_network = _bool(values, "CORS_ALLOW_PRIVATE_NETWORK")

        # The headers that follow Access-Control-Allow-Origin, in this order.
        common = []
        if methods:
            common.append(("Access-Control-Allow-Methods", methods))
        if allow_headers:
            common.append(("Access-Control-Allow-Headers", allow_headers))
        if credentials:
            common.append(("Access-Control-Allow-Credentials", "true"))
        actual = list(common)
        if expose:
            actual.append(("Access-Control-Expose-Headers", expose))
        preflight = list(common)
        if max_age is not None:
            preflight.append(("Access-Control-Max-Age", str(max_age)))
        self.cors_headers: Tuple[Header, ...] = tuple(actual)
        self.preflight_headers: Tuple[Header, ...] = tuple(preflight)

        self.gzip = _bool(values, "GZIP")
        self.gzip_min_size = _check_int(values["GZIP_MIN_SIZE"], "GZIP_MIN_SIZE")
        self.gzip_level = _level(values, "GZIP_LEVEL", 1, 9)
        # zstd's levels 20 to 22 ("ultra") use windows of 32 to 128 MiB, beyond
        # the 8 MiB a client need decode (RFC 9659); 1 to 19 stay within it.
        self.zstd_level = _level(values, "ZSTD_LEVEL", 1, 19)
        self.brotli_level = _level(values, "BROTLI_LEVEL", 0, 11)
        self.gzip_types: FrozenSet[str] = _gzip_types(values["GZIP_TYPES"])
        self.codings: Tuple[str, ...] = _codings(values["COMPRESS_CODINGS"])
        self.padding = _bool(values, "COMPRESS_RANDOM_PADDING")
        self.gzip_engine = _engine(values["GZIP_ENGINE"])
        self.isal_level = _level(values, "ISAL_LEVEL", 0, 3)
        gzip_level = self.isal_level if self.gzip_engine == "isal" else self.gzip_level
        levels = {"gzip": gzip_level, "zstd": self.zstd_level, "br": self.brotli_level}
        # What makes each coding's bytes, as the caches' keys name it: a change
        # of engine, level, library or padding form never meets older bytes.
        self.variants: Dict[str, str] = {
            coding: variant(coding, self.gzip_engine, levels[coding], self.padding) for coding in self.codings
        }
        cache_size = _check_int(values["COMPRESS_CACHE_SIZE"], "COMPRESS_CACHE_SIZE")
        self.cache: Optional[BodyCache] = None
        if cache_size:
            # Kept across config changes of other keys: its keys carry the variants.
            old = previous.cache if previous is not None else None
            self.cache = old if old is not None and old.max_bytes == cache_size else BodyCache(cache_size)
        self.shared_tier: Optional[SharedTier] = _shared_tier(values["COMPRESS_CACHE_BACKEND"], previous)
        self.etag = _bool(values, "ETAG")
        self.buffer_max = _check_int(values["BUFFER_MAX_SIZE"], "BUFFER_MAX_SIZE")
        # With every feature off the middleware is a plain pass-through.
        self.active = bool(self.cors or self.gzip or self.etag)
        # The compiled core's typed copy of these settings, made on first use.
        self.compiled: object = None


def build_settings(values: Mapping[str, Any], previous: Optional[Settings] = None) -> Settings:
    """Validate a complete config mapping and derive its :class:`Settings`
    (``previous``: the settings it replaces, whose caches it may keep)."""
    unknown = [key for key in values if key not in KEYS]
    if unknown:
        raise ValueError(
            f"unknown asok_fast config key {min(unknown, key=repr)!r}; known keys: "
            + ", ".join(sorted(KEYS))
        )
    # A key deleted from .config (del, pop, clear) means its default again, as an
    # absent key does in Asok; not a bare KeyError on every later request.
    return Settings({**DEFAULTS, **values}, previous)


_VERSIONS = itertools.count()


class Config(dict):
    """The middleware's ``.config``: a dict that notices assignments.

    Every mutating call bumps ``version``; the middleware compares it on each
    request and rebuilds its settings when it moved, so a change takes effect
    on the next request and a bad value raises there.  A list changed in place
    is not noticed (assign a new one), as with Asok.
    """

    __slots__ = ("version",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = next(_VERSIONS)

    def _changed(self) -> None:
        # Unique across instances: a Config assigned to replace another never
        # shares a version with it.
        self.version = next(_VERSIONS)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        value = super().pop(key, *default)
        self._changed()
        return value

    def popitem(self) -> Tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def __ior__(self, other: Any) -> "Config":  # type: ignore[override]
        self.update(other)
        return self


class Configured:
    """What both interfaces share: the config (``.config``, the keys found in an
    Asok app's own ``config``, settings rebuilt on a change), the core that
    decides, and the wrapped app's attributes reachable through the middleware.

    Where the app's ``config`` turns Asok's own ``GZIP`` on, the middleware
    takes compression over (the app's ``GZIP`` is set to ``False``), so a body
    is compressed once.
    """

    def __init__(self, app: Any, config: Optional[Mapping[str, Any]], core: Any) -> None:
        self.app = app
        # The core module that decides: the selected one, or (the private seam
        # for tests and benches) the one a subclass was handed.
        self._core = core
        values = initial_values(app, config)
        settings = build_settings(values)
        self._config = Config(values)
        # (config version, settings built from it): one attribute, so that a
        # thread never pairs one version with another version's settings.
        self._state: Tuple[int, Settings] = (self._config.version, settings)
        app_config = getattr(app, "config", None)
        if isinstance(app_config, dict) and app_config.get("GZIP") is True:
            app_config["GZIP"] = False  # compress once, here

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, values: Mapping[str, Any]) -> None:
        self._config = Config(initial_values(None, values))  # validated on the next request

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the middleware lacks: the wrapped app's own
        # attributes stay reachable through it, so a drop-in keeps working
        # where a framework expects its app (Asok's `asok build` calls Asok
        # methods on `wsgi.app`).
        if name.startswith("__") or name in ("app", "_core", "_config", "_state"):
            raise AttributeError(name)
        return getattr(self.app, name)

    @property
    def implementation(self) -> str:
        """``"compiled"`` or ``"python"``: the core this instance runs."""
        return "python" if self._core.__name__.endswith("_core_py") else "compiled"

    def _settings(self) -> Settings:
        """The settings of the current config, rebuilt when it changed."""
        version, settings = self._state
        config = self._config
        if config.version == version:
            return settings
        version = config.version  # read before the copy: a later change rebuilds again
        # Validate a snapshot (one C-level copy, atomic under the GIL), not the
        # live dict: a concurrent update() must not leave half-old, half-new
        # settings (or a spurious "*"+credentials error) for this request.
        settings = build_settings(dict(config), self._state[1])
        self._state = (version, settings)
        return settings


def initial_values(app: Any, config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Defaults, then the keys found in ``app.config`` (Asok), then ``config=``."""
    values = dict(DEFAULTS)
    app_config = getattr(app, "config", None)
    if isinstance(app_config, dict):
        for key in KEYS:
            if key in app_config:
                values[key] = app_config[key]
    if config is not None:
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        values.update(config)
    return values


# --- validation helpers -------------------------------------------------------


def _bool(values: Mapping[str, Any], key: str) -> bool:
    value = values[key]
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be True or False, got {value!r}")
    return value


def _check_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{key} must not be negative, got {value!r}")
    return value


def _level(values: Mapping[str, Any], key: str, low: int, high: int) -> int:
    level = _check_int(values[key], key)
    if not low <= level <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}, got {level!r}")
    return level


def _engine(value: Any) -> str:
    if value not in ("zlib", "isal"):
        raise ValueError(f"GZIP_ENGINE must be 'zlib' or 'isal', got {value!r}")
    if value == "isal" and isal_missing():
        raise ValueError("GZIP_ENGINE 'isal' needs the isal package: pip install 'asok_fast[isal]'")
    return value  # type: ignore[no-any-return]


def _shared_tier(backend: Any, previous: Optional[Settings]) -> Optional[SharedTier]:
    if backend is None:
        return None
    if not callable(getattr(backend, "get", None)) or not callable(getattr(backend, "set", None)):
        raise TypeError(
            f"COMPRESS_CACHE_BACKEND must have get(key) and set(key, value) (a Django or "
            f"Flask-Caching cache, a redis.Redis client), got {backend!r}"
        )
    old = previous.shared_tier if previous is not None else None
    return old if old is not None and old.backend is backend else SharedTier(backend)


def _codings(value: Any) -> Tuple[str, ...]:
    # The default offers what this install can send (brotli and the zstd module
    # are dependencies, so normally all three); a coding listed by the user whose
    # library is missing is an error.
    explicit = value is not CODINGS
    result: list = []
    for item in _split(value, "COMPRESS_CODINGS"):
        if not isinstance(item, str):
            raise TypeError(f"COMPRESS_CODINGS entries must be strings, got {item!r}")
        coding = item.strip(" \t").lower()
        if not coding:
            continue
        if coding not in CODINGS:
            raise ValueError(
                f"COMPRESS_CODINGS entry {item!r} is not a coding asok_fast sends; use "
                + ", ".join(repr(c) for c in CODINGS)
            )
        package = missing(coding)
        if package is not None and not explicit:
            continue
        if package is not None:
            raise ValueError(f"COMPRESS_CODINGS lists {coding!r}, whose library is not installed: pip install {package}")
        if coding not in result:
            result.append(coding)
    if not result:
        raise ValueError(
            "COMPRESS_CODINGS must name at least one of " + ", ".join(repr(c) for c in CODINGS)
            + " (GZIP=False turns compression off)"
        )
    return tuple(result)


def _split(value: Any, key: str) -> Iterable[Any]:
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    raise TypeError(
        f"{key} must be a string or a list, tuple or set of strings, got {type(value).__name__}"
    )


def _header_list(values: Mapping[str, Any], key: str, allow_none: bool) -> str:
    value = values[key]
    if value is None:
        if allow_none:
            return ""
        raise TypeError(f"{key} must be a string or a list of strings, got None")
    items = []
    for item in _split(value, key):
        if not isinstance(item, str):
            raise TypeError(f"{key} entries must be strings, got {item!r}")
        item = item.strip(" \t")
        if not _SAFE_VALUE_RE.fullmatch(item):
            raise ValueError(f"{key} entry {item!r} contains a character not allowed in a header")
        if item:
            items.append(item)
    return ", ".join(items)


def normalize_origin(origin: str) -> str:
    """``HTTPS://Example.COM:443/`` -> ``https://example.com`` (as browsers send it)."""
    trimmed = origin.strip(" \t")
    if trimmed == "null":
        return trimmed
    if trimmed.endswith("/"):
        trimmed = trimmed[:-1]
    match = _ORIGIN_RE.fullmatch(trimmed) if trimmed.isascii() else None
    if match is None:
        raise ValueError(
            f"CORS_ORIGINS entry {origin!r} is not an origin such as 'https://example.com' "
            "(scheme://host[:port], no path; write international hosts in punycode)"
        )
    scheme = match.group("scheme").lower()
    host = match.group("host").lower()
    port = match.group("port")
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origins(value: Any) -> Tuple[Tuple[str, ...], bool]:
    if value is None:
        return (), False
    if isinstance(value, str) and value.strip() == "*":
        return (), True
    result = []
    for item in _split(value, "CORS_ORIGINS"):
        if not isinstance(item, str):
            raise TypeError(f"CORS_ORIGINS entries must be strings, got {item!r}")
        if not item.strip(" \t"):
            continue  # "a, , b" and a trailing comma, as Asok's split allows
        if item.strip(" \t") == "*":
            return (), True
        origin = normalize_origin(item)
        if origin not in result:
            result.append(origin)
    return tuple(result), False


def _regex(value: Any) -> Optional[Pattern[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return re.compile(value)
        except re.error as exc:
            raise ValueError(f"CORS_ORIGIN_REGEX is not a valid regular expression: {exc}") from None
    if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
        return value
    raise TypeError(f"CORS_ORIGIN_REGEX must be a string or a compiled str pattern, got {value!r}")


def _gzip_types(value: Any) -> FrozenSet[str]:
    if value is None:
        return frozenset()
    result = set()
    for item in _split(value, "GZIP_TYPES"):
        if not isinstance(item, str):
            raise TypeError(f"GZIP_TYPES entries must be strings, got {item!r}")
        media_type = item.strip(" \t").lower()
        if not media_type:
            continue
        if not _MEDIA_TYPE_RE.fullmatch(media_type):
            raise ValueError(f"GZIP_TYPES entry {item!r} is not a media type such as 'text/csv'")
        result.add(media_type)
    return frozenset(result)
