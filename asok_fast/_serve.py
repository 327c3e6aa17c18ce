"""``asok-fast serve [MODULE:APP]``: serve a WSGI or ASGI app wrapped by asok_fast.

Without an app it serves the built-in demo (:mod:`asok_fast._demo`).  The app is
imported the way gunicorn does it (``module:attribute``, the current directory
first on ``sys.path``).  A WSGI app is wrapped by
:class:`~asok_fast.ResponseMiddleware` (an app that already is one, such as an
Asok project's ``wsgi:app`` after the two-line drop-in, is used as it is, with
the flags applied to its ``config``) and served by

* waitress (the default; one process, ``--threads`` threads), or
* gunicorn (``--workers N`` with N > 1, or ``--server gunicorn``), driven through
  its Python API: N pre-forked worker processes, ``sync`` or ``gthread``.

An ASGI app (``--asgi``, or detected: a coroutine function, or an object whose
``__call__`` is one, taking ``scope, receive, send``) is wrapped by
:class:`~asok_fast.ASGIMiddleware` (one already wrapped is used as it is) and
served by uvicorn, embedded: one process, one event loop.  An Asok app speaks
both; it is served as WSGI unless ``--asgi`` is given.

The servers come with the ``serve`` extra (``pip install 'asok-fast[serve]'``) and
are imported only here, only when used.

Every configuration key has a flag; a flag not given leaves the key to the app's
own config (Asok's ``app.config``), then to the default.  Values are validated by
the middleware itself before anything listens: a bad one fails with exit status
2 and a message naming the key.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import logging
import os
import re
import signal
import socket
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from ._config import DEFAULTS

PROG = "asok-fast serve"
SERVE_EXTRA_HINT = "pip install 'asok-fast[serve]'"

# key -> the flag that sets it (for messages and the coverage test)
FLAG_OF_KEY: Dict[str, str] = {
    "CORS_ORIGINS": "--cors-origin",
    "GZIP": "--gzip",
    "GZIP_MIN_SIZE": "--min-size",
    "ETAG": "--etag",
    "CORS_ALLOW_METHODS": "--cors-allow-methods",
    "CORS_ALLOW_HEADERS": "--cors-allow-headers",
    "CORS_ALLOW_CREDENTIALS": "--cors-allow-credentials",
    "CORS_EXPOSE_HEADERS": "--cors-expose-headers",
    "CORS_MAX_AGE": "--cors-max-age",
    "CORS_ORIGIN_REGEX": "--cors-origin-regex",
    "CORS_ALLOW_PRIVATE_NETWORK": "--cors-allow-private-network",
    "GZIP_LEVEL": "--gzip-level",
    "GZIP_TYPES": "--gzip-type",
    "COMPRESS_CODINGS": "--compress-codings",
    "ZSTD_LEVEL": "--zstd-level",
    "BROTLI_LEVEL": "--brotli-level",
    "COMPRESS_RANDOM_PADDING": "--compress-random-padding",
    "GZIP_ENGINE": "--gzip-engine",
    "ISAL_LEVEL": "--isal-level",
    "COMPRESS_CACHE_SIZE": "--cache-size",
    "COMPRESS_CACHE_BACKEND": "--cache-redis",
    "BUFFER_MAX_SIZE": "--buffer-max-size",
}


class ServeError(Exception):
    """A problem the user can fix: printed as ``asok-fast serve: error: ...``, exit 2."""


# --------------------------------------------------------------------------- flags


def _redis_client(url: str) -> Any:
    """``--cache-redis URL``: a ``redis.Redis`` client for the URL (it connects on first use)."""
    if url.strip().lower() == "none":
        return None
    try:
        import redis
    except ImportError:
        raise argparse.ArgumentTypeError(
            "COMPRESS_CACHE_BACKEND: --cache-redis needs the redis client: pip install 'asok-fast[redis]'"
        ) from None
    try:
        return redis.Redis.from_url(url.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"COMPRESS_CACHE_BACKEND: {exc}") from None


def _int_of(key: str, allow_none: bool = False) -> Callable[[str], Optional[int]]:
    def convert(text: str) -> Optional[int]:
        if allow_none and text.strip().lower() == "none":
            return None
        try:
            return int(text.strip(), 10)
        except ValueError:
            extra = " or 'none'" if allow_none else ""
            raise argparse.ArgumentTypeError(f"{key} must be an integer{extra}, got {text!r}") from None

    convert.__name__ = f"{key} value"
    return convert


def _str_or_none(text: str) -> Optional[str]:
    return None if text.strip().lower() == "none" else text


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "middleware configuration",
        "One flag per configuration key (SPEC.md). A flag not given leaves the key to the "
        "app's own config (an Asok app's app.config), then to its default; the demo starts "
        "from its own (compression on, CORS for loopback origins). 'none' means None where a key allows it.",
    )
    sup = argparse.SUPPRESS
    g.add_argument(
        "--cors-origin", dest="CORS_ORIGINS", action="append", default=sup, metavar="ORIGIN",
        help="CORS_ORIGINS: an allowed origin such as https://app.example.com (repeat it, or "
        "separate with commas); '*' allows any origin; 'none' turns CORS off",
    )
    g.add_argument(
        "--no-cors", dest="no_cors", action="store_true", default=False,
        help="no CORS at all: CORS_ORIGINS and CORS_ORIGIN_REGEX set to None",
    )
    g.add_argument(
        "--cors-origin-regex", dest="CORS_ORIGIN_REGEX", type=_str_or_none, default=sup, metavar="PATTERN",
        help="CORS_ORIGIN_REGEX: origins matching PATTERN in full are allowed too",
    )
    g.add_argument(
        "--cors-allow-methods", dest="CORS_ALLOW_METHODS", default=sup, metavar="LIST",
        help="CORS_ALLOW_METHODS (default %r)" % DEFAULTS["CORS_ALLOW_METHODS"],
    )
    g.add_argument(
        "--cors-allow-headers", dest="CORS_ALLOW_HEADERS", default=sup, metavar="LIST",
        help="CORS_ALLOW_HEADERS (default %r)" % DEFAULTS["CORS_ALLOW_HEADERS"],
    )
    g.add_argument(
        "--cors-allow-credentials", dest="CORS_ALLOW_CREDENTIALS", action=argparse.BooleanOptionalAction,
        default=sup, help="CORS_ALLOW_CREDENTIALS: send Access-Control-Allow-Credentials: true",
    )
    g.add_argument(
        "--cors-expose-headers", dest="CORS_EXPOSE_HEADERS", type=_str_or_none, default=sup, metavar="LIST",
        help="CORS_EXPOSE_HEADERS: Access-Control-Expose-Headers on actual responses",
    )
    g.add_argument(
        "--cors-max-age", dest="CORS_MAX_AGE", type=_int_of("CORS_MAX_AGE", allow_none=True), default=sup,
        metavar="SECONDS", help="CORS_MAX_AGE: Access-Control-Max-Age of preflight answers (default 86400)",
    )
    g.add_argument(
        "--cors-allow-private-network", dest="CORS_ALLOW_PRIVATE_NETWORK",
        action=argparse.BooleanOptionalAction, default=sup,
        help="CORS_ALLOW_PRIVATE_NETWORK: answer Private Network Access preflights",
    )
    g.add_argument(
        "--gzip", dest="GZIP", action=argparse.BooleanOptionalAction, default=sup,
        help="GZIP: compress responses (the switch for every coding of --compress-codings)",
    )
    g.add_argument(
        "--min-size", "--gzip-min-size", dest="GZIP_MIN_SIZE", type=_int_of("GZIP_MIN_SIZE"), default=sup,
        metavar="BYTES", help="GZIP_MIN_SIZE: compress only bodies larger than this (default 500)",
    )
    g.add_argument(
        "--gzip-level", dest="GZIP_LEVEL", type=_int_of("GZIP_LEVEL"), default=sup, metavar="1-9",
        help="GZIP_LEVEL: zlib level (default 6)",
    )
    g.add_argument(
        "--gzip-type", dest="GZIP_TYPES", action="append", default=sup, metavar="MEDIA/TYPE",
        help="GZIP_TYPES: one more media type to compress (repeat it, or separate with commas)",
    )
    g.add_argument(
        "--compress-codings", dest="COMPRESS_CODINGS", action="append", default=sup, metavar="LIST",
        help="COMPRESS_CODINGS: the codings offered, in the server's order of preference, from "
        "zstd, br and gzip (repeat it, or separate with commas; default %s)"
        % ",".join(DEFAULTS["COMPRESS_CODINGS"]),
    )
    g.add_argument(
        "--zstd-level", dest="ZSTD_LEVEL", type=_int_of("ZSTD_LEVEL"), default=sup, metavar="1-19",
        help="ZSTD_LEVEL: zstd level (default %d)" % DEFAULTS["ZSTD_LEVEL"],
    )
    g.add_argument(
        "--brotli-level", dest="BROTLI_LEVEL", type=_int_of("BROTLI_LEVEL"), default=sup, metavar="0-11",
        help="BROTLI_LEVEL: brotli quality (default %d)" % DEFAULTS["BROTLI_LEVEL"],
    )
    g.add_argument(
        "--compress-random-padding", dest="COMPRESS_RANDOM_PADDING", action=argparse.BooleanOptionalAction,
        default=sup, help="COMPRESS_RANDOM_PADDING: pad compressed bodies with 0 to 99 random bytes "
        "(against BREACH); off keeps the bytes deterministic",
    )
    g.add_argument(
        "--gzip-engine", dest="GZIP_ENGINE", choices=("zlib", "isal"), default=sup,
        help="GZIP_ENGINE: what makes gzip bytes: zlib (default) or isal (Intel ISA-L, several times "
        "faster, somewhat larger; pip install 'asok-fast[isal]')",
    )
    g.add_argument(
        "--isal-level", dest="ISAL_LEVEL", type=_int_of("ISAL_LEVEL"), default=sup, metavar="0-3",
        help="ISAL_LEVEL: ISA-L level with --gzip-engine isal (default %d)" % DEFAULTS["ISAL_LEVEL"],
    )
    g.add_argument(
        "--cache-size", dest="COMPRESS_CACHE_SIZE", type=_int_of("COMPRESS_CACHE_SIZE"), default=sup,
        metavar="BYTES", help="COMPRESS_CACHE_SIZE: compressed bytes kept per process for reuse "
        "(default 8 MiB; 0 turns the cache off)",
    )
    g.add_argument(
        "--cache-redis", dest="COMPRESS_CACHE_BACKEND", type=_redis_client, default=sup, metavar="URL",
        help="COMPRESS_CACHE_BACKEND: a Redis server shared by workers and machines, e.g. "
        "redis://127.0.0.1:6379/0 ('none': no shared tier; pip install 'asok-fast[redis]')",
    )
    g.add_argument(
        "--etag", dest="ETAG", action=argparse.BooleanOptionalAction, default=sup,
        help="ETAG: add MD5 ETags and answer 304 Not Modified (on by default)",
    )
    g.add_argument(
        "--buffer-max-size", dest="BUFFER_MAX_SIZE", type=_int_of("BUFFER_MAX_SIZE"), default=sup,
        metavar="BYTES", help="BUFFER_MAX_SIZE: the largest declared Content-Length held whole (default 4 MiB)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "app", nargs="?", metavar="MODULE:APP",
        help="the WSGI or ASGI app to serve, e.g. wsgi:app (an Asok project), myproject.wsgi:application "
        "or main:app (FastAPI, Starlette); "
        "MODULE alone means MODULE:application, else MODULE:app; MODULE:factory() calls a factory. "
        "Imported with the current directory first on sys.path. Default: the built-in demo",
    )
    s = parser.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="the port to listen on (default 8000; 0: any free port)")
    s.add_argument(
        "--server", choices=("waitress", "gunicorn", "uvicorn"), default=None,
        help="waitress (the default) or gunicorn (the default with --workers > 1) for a WSGI app; "
        "uvicorn for an ASGI app (the same as --asgi)",
    )
    s.add_argument(
        "--asgi", action="store_true",
        help="MODULE:APP is an ASGI app: wrap it in ASGIMiddleware and serve it on uvicorn (one process). "
        "An ASGI app (an async callable taking scope, receive, send: Starlette, FastAPI) is detected "
        "without it; an Asok app speaks both and is served as WSGI unless --asgi is given",
    )
    s.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="N gunicorn worker processes (N > 1 selects gunicorn); about 2 per core",
    )
    s.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="threads per process (waitress: default 4; gunicorn: N > 1 means gthread workers)",
    )
    s.add_argument(
        "--worker-class", choices=("sync", "gthread"), default=None,
        help="gunicorn worker class (default sync, gthread when --threads > 1)",
    )
    s.add_argument(
        "--preload", action="store_true",
        help="gunicorn: import and wrap the app once in the master, before the workers fork",
    )
    s.add_argument("--timeout", type=int, default=30, metavar="SECONDS", help="gunicorn worker timeout (default 30)")
    s.add_argument("--chdir", metavar="DIR", help="change to DIR before importing the app (an Asok project's root)")
    s.add_argument(
        "--access-log", action="store_true",
        help="print one line per response: client, request, status, Content-Length, Content-Encoding",
    )
    s.add_argument(
        "--check", action="store_true",
        help="import and wrap the app, print the banner and the active config, and exit without serving",
    )
    _add_config_flags(parser)


def _split_commas(values: List[str]) -> List[str]:
    out = []
    for value in values:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def config_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The config keys set by flags (only those given), as the middleware takes them."""
    config: Dict[str, Any] = {}
    if getattr(args, "no_cors", False):
        config["CORS_ORIGINS"] = None
        config["CORS_ORIGIN_REGEX"] = None
    for key in DEFAULTS:
        if not hasattr(args, key):
            continue
        value = getattr(args, key)
        if key == "CORS_ORIGINS":
            if any(v.strip().lower() == "none" for v in value):
                value = None
            else:
                value = _split_commas(value)
                if value == ["*"]:
                    value = "*"
        elif key == "GZIP_TYPES":
            value = None if any(v.strip().lower() == "none" for v in value) else _split_commas(value)
        elif key == "COMPRESS_CODINGS":
            value = _split_commas(value)  # in the order given: the server's preference
        config[key] = value
    return config


# --------------------------------------------------------------------------- app


def _empty_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    start_response("204 No Content", [])
    return []


def _config_error(exc: Exception, given: Dict[str, Any]) -> ServeError:
    message = str(exc)
    flags = [
        f"{FLAG_OF_KEY[key]} ({key})"
        for key in given
        if key in FLAG_OF_KEY and re.search(rf"\b{key}\b", message)
    ]
    hint = f" [set by {', '.join(flags)}]" if flags else ""
    return ServeError(f"invalid configuration: {message}{hint}")


def validate_flags(given: Dict[str, Any]) -> None:
    """Check the flag values through the middleware itself (over the defaults)."""
    from .middleware import ResponseMiddleware

    try:
        ResponseMiddleware(_empty_app, given)
    except (ValueError, TypeError) as exc:
        raise _config_error(exc, given) from None


def _ensure_cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path[:1]:
        sys.path.insert(0, cwd)


def _split_target(target: str) -> Tuple[str, str]:
    module_name, _, attr = target.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or (":" in target and not attr):
        raise ServeError(f"{target!r} is not MODULE:APP (for example wsgi:app)")
    return module_name, attr


def check_importable(target: str) -> None:
    """Fail early (in gunicorn's master) when the app's module cannot be found."""
    module_name, _ = _split_target(target)
    _ensure_cwd_on_path()
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ServeError(f"cannot import {module_name!r}: {exc}") from None
    if spec is None:
        raise ServeError(f"no module named {module_name!r} (looked in {os.getcwd()} and sys.path)")


def import_app(target: str) -> Any:
    """``module:attr`` -> the object, as gunicorn resolves it (cwd on sys.path)."""
    module_name, attr = _split_target(target)
    _ensure_cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ServeError(f"no module named {module_name!r} (looked in {os.getcwd()} and sys.path)") from None
        raise
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    if not attr:
        names = [name for name in ("application", "app") if hasattr(module, name)]
        if not names:
            raise ServeError(f"module {module_name!r} has neither 'application' nor 'app'; name one: {module_name}:NAME")
        attr = names[0]
    obj: Any = module
    for part in attr.split("."):
        if not part.isidentifier():
            raise ServeError(f"{target!r}: {attr!r} is not an attribute name")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ServeError(f"module {module_name!r} has no attribute {attr!r}") from None
    if call:
        obj = obj()
    if not callable(obj):
        raise ServeError(f"{target!r} is {type(obj).__name__}, not a WSGI callable")
    return obj


def is_asgi_app(obj: Any) -> bool:
    """Whether ``obj`` is an ASGI 3 app: a coroutine function, or an object whose
    ``__call__`` is one, taking ``(scope, receive, send)``.  An Asok app, whose
    ``__call__`` serves both interfaces, is not one by this test (it is WSGI
    unless ``--asgi`` says otherwise)."""
    from .asgi import ASGIMiddleware

    if isinstance(obj, ASGIMiddleware):
        return True
    if inspect.isclass(obj):  # ASGI 2 style classes are not served
        return False
    # a function (or functools.partial of one), else the object's own __call__
    if not inspect.iscoroutinefunction(obj) and not inspect.iscoroutinefunction(getattr(obj, "__call__", None)):
        return False
    try:
        inspect.signature(obj).bind(None, None, None)
    except (TypeError, ValueError):
        return False
    return True


def _wrap_wsgi(app: Any, given: Dict[str, Any]) -> Any:
    from .middleware import ResponseMiddleware

    try:
        if isinstance(app, ResponseMiddleware):
            # Already wrapped (the Asok drop-in): the flags override its config.
            ResponseMiddleware(_empty_app, {**app.config, **given})  # validate first
            if given:
                app.config.update(given)
            return app
        return ResponseMiddleware(app, given)
    except (ValueError, TypeError) as exc:
        raise _config_error(exc, given) from None


def _wrap_asgi(app: Any, given: Dict[str, Any]) -> Any:
    from .asgi import ASGIMiddleware
    from .middleware import ResponseMiddleware

    try:
        if isinstance(app, ASGIMiddleware):
            # Already wrapped (the ASGI drop-in): the flags override its config.
            ResponseMiddleware(_empty_app, {**app.config, **given})  # validate first
            if given:
                app.config.update(given)
            return app
        if isinstance(app, ResponseMiddleware):
            # The WSGI drop-in around an app that speaks both (an Asok project's
            # wsgi:app, served with --asgi): its app, with its config.
            return ASGIMiddleware(app.app, {**app.config, **given})
        declared = _declared_middleware(app, ASGIMiddleware)
        if declared is not None:
            # Starlette/FastAPI's add_middleware(ASGIMiddleware, config=...): the app
            # builds it on its first request; the flags go into what it is given.
            config = {**(declared.kwargs.get("config") or {}), **given}
            probe = ASGIMiddleware(_empty_asgi, config)  # validates; the banner shows it
            declared.kwargs["config"] = config
            return _Declared(app, probe)
        return ASGIMiddleware(app, given)
    except (ValueError, TypeError) as exc:
        raise _config_error(exc, given) from None


async def _empty_asgi(scope: Any, receive: Any, send: Any) -> None:
    """What the config is checked against when the framework builds the middleware itself."""


def _declared_middleware(app: Any, cls: type) -> Any:
    """The ``Middleware(cls, ...)`` entry of a Starlette-style ``user_middleware`` list, if any."""
    for entry in getattr(app, "user_middleware", None) or ():
        if getattr(entry, "cls", None) is cls and isinstance(getattr(entry, "kwargs", None), dict) and not getattr(entry, "args", ()):
            return entry
    return None


class _Declared:
    """A framework app that wraps itself in ASGIMiddleware: served as it is, and
    reporting (``config``, ``implementation``) what its middleware is built with."""

    def __init__(self, app: Any, probe: Any) -> None:
        self.app = app
        self.config = probe.config
        self.implementation = probe.implementation

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def load_app(target: Optional[str], given: Dict[str, Any], asgi: bool = False) -> Tuple[bool, Any]:
    """Import (or make the demo) and wrap: ``(is_asgi, middleware)``.  ASGI with
    ``asgi`` true, or when the imported object is an ASGI app."""
    if target is None:
        if asgi:
            raise ServeError("--asgi serves MODULE:APP (the built-in demo is a WSGI app)")
        from . import _demo

        try:
            return False, _demo.make_application(given)
        except (ValueError, TypeError) as exc:
            raise _config_error(exc, given) from None
    app = import_app(target)
    if asgi or is_asgi_app(app):
        return True, _wrap_asgi(app, given)
    return False, _wrap_wsgi(app, given)


def build_app(target: Optional[str], given: Dict[str, Any]) -> Any:
    """Import (or make the demo) and wrap: the ResponseMiddleware that will serve
    (a WSGI server's path: an ASGI app is refused, naming --asgi)."""
    asgi, middleware = load_app(target, given)
    if asgi:
        raise ServeError(f"{target} is an ASGI app: serve it on uvicorn (--asgi), not on a WSGI server")
    return middleware


class AccessLog:
    """``--access-log``: one line per response, written when the status is set.

    Outside the middleware, so it shows what the client gets (``304``, ``204``,
    ``Content-Encoding``); the body iterable is returned as it is (a
    ``wsgi.file_wrapper`` keeps the server's zero-copy path).
    """

    def __init__(self, app: Any, stream: Optional[TextIO] = None) -> None:
        self.app = app
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def logging_start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            self._log(environ, status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, logging_start_response)

    def _log(self, environ: Dict[str, Any], status: str, headers: List[Tuple[str, str]]) -> None:
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        line = _access_line(
            environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD", "-"), path,
            status.split(" ", 1)[0], headers,
        )
        stream = self.stream or sys.stdout
        with self._lock:
            stream.write(line)
            stream.flush()


def _access_line(client: str, method: str, path: str, status: str, headers: Any) -> str:
    """``client "METHOD path" status Content-Length Content-Encoding`` (``-`` where absent)."""
    length = encoding = "-"
    for name, value in headers:
        if isinstance(name, bytes):  # ASGI: byte pairs
            name, value = name.decode("latin-1"), value.decode("latin-1")
        lower = name.lower()
        if lower == "content-length":
            length = value
        elif lower == "content-encoding":
            encoding = value
    return f'{client} "{method} {path}" {status} {length} {encoding}\n'


class ASGIAccessLog:
    """``--access-log`` for an ASGI app: the same line, written when ``http.response.start``
    goes out (outside the middleware: what the client gets)."""

    def __init__(self, app: Any, stream: Optional[TextIO] = None) -> None:
        self.app = app
        self.stream = stream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def logging_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self._log(scope, message)
            await send(message)

        await self.app(scope, receive, logging_send)

    def _log(self, scope: Any, message: Any) -> None:
        path = scope.get("path", "")
        query = scope.get("query_string", b"")
        if query:
            path += "?" + bytes(query).decode("latin-1")
        client = scope.get("client") or ("-",)
        line = _access_line(str(client[0]), scope.get("method", "-"), path, str(message["status"]), message.get("headers", ()))
        stream = self.stream or sys.stdout
        stream.write(line)  # one event loop thread: no lock
        stream.flush()


# --------------------------------------------------------------------------- output


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def format_config(config: Dict[str, Any], indent: str = "  ") -> str:
    width = max(len(key) for key in config)
    return "\n".join(f"{indent}{key:<{width}} = {value!r}" for key, value in config.items())


def print_banner(
    *, url: Optional[str], listen: Optional[str], server: str, app_name: str, implementation: str,
    middleware: Any, out: TextIO,
) -> None:
    import asok_fast

    lines = [f"asok-fast {asok_fast.__version__}: serving {app_name} on {server}"]
    if listen:
        lines.append(f"  listening on   {listen}")
    if url:
        lines.append(f"  URL            {url}")
    lines.append(f"  implementation {implementation}")
    if middleware is not None:
        lines.append("  config:")
        lines.append(format_config(dict(middleware.config), indent="    "))
    else:
        lines.append("  config:        printed by each worker as it loads the app (no --preload)")
    if url and app_name.startswith("the demo"):
        base = url.rstrip("/")
        lines.append(f"  try            {base}/api/items  {base}/big  {base}/stream  {base}/cors")
    out.write("\n".join(lines) + "\n")
    out.flush()


# --------------------------------------------------------------------------- servers


def _choose_server(args: argparse.Namespace, asgi: bool = False) -> str:
    if asgi:
        return _check_uvicorn_options(args)
    if args.workers < 1:
        raise ServeError(f"--workers must be at least 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ServeError(f"--threads must be at least 1, got {args.threads}")
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port must be from 0 to 65535, got {args.port}")
    server = args.server or ("gunicorn" if args.workers > 1 else "waitress")
    if server == "waitress":
        if args.workers > 1:
            raise ServeError("--workers > 1 runs gunicorn; waitress is one process (use --threads)")
        if args.preload or args.worker_class:
            raise ServeError("--preload and --worker-class are gunicorn options (add --server gunicorn or --workers N)")
    return server


def _check_uvicorn_options(args: argparse.Namespace) -> str:
    """An ASGI app is served by one uvicorn process: the WSGI servers' options do not apply."""
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port must be from 0 to 65535, got {args.port}")
    if args.server in ("waitress", "gunicorn"):
        raise ServeError(f"an ASGI app is served on uvicorn; --server {args.server} is a WSGI server")
    wsgi_only = [
        flag for flag, used in (
            ("--workers", args.workers != 1), ("--threads", args.threads is not None),
            ("--worker-class", args.worker_class is not None), ("--preload", args.preload),
        ) if used
    ]
    if wsgi_only:
        raise ServeError(
            f"{', '.join(wsgi_only)}: waitress and gunicorn options; an ASGI app is served by one "
            "uvicorn process (one event loop)"
        )
    return "uvicorn"


def _import_server(module: str) -> Any:
    package = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ServeError(
            f"{package} is not installed ({exc}); it comes with the serve extra: {SERVE_EXTRA_HINT}"
        ) from None


def _app_name(target: Optional[str]) -> str:
    return "the demo app (built in)" if target is None else target


def _serve_waitress(args: argparse.Namespace, wsgi: Any, middleware: Any, out: TextIO) -> int:
    waitress_server = _import_server("waitress.server")
    threads = args.threads or 4
    logging.basicConfig()  # waitress reports its warnings through logging
    try:
        server = waitress_server.create_server(
            wsgi, host=args.host, port=args.port, threads=threads, ident="asok-fast (waitress)"
        )
    except OSError as exc:
        raise ServeError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    port = server.effective_port
    host = server.effective_host
    print_banner(
        url=f"http://{_display_host(host)}:{port}/",
        listen=f"{host}:{port}",
        server=f"waitress ({threads} threads)",
        app_name=_app_name(args.app),
        implementation=middleware.implementation,
        middleware=middleware,
        out=out,
    )

    try:
        _until_stopped(server.run)
    finally:
        server.close()
    return 0


def _until_stopped(run: Callable[[], object]) -> None:
    """Run a server until it returns, is interrupted (Ctrl-C) or gets SIGTERM (exit status 0)."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that the banner can name the port (``--port 0``)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


def _serve_uvicorn(args: argparse.Namespace, asgi: Any, middleware: Any, out: TextIO) -> int:
    uvicorn = _import_server("uvicorn")
    sock = _bind(args.host, args.port)
    try:
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            asgi,
            interface="asgi3",
            lifespan="auto",  # an app that handles lifespan (Asok, Starlette) gets it; others are left alone
            access_log=False,  # --access-log is ours: it shows what the client got
            log_level="info",
            timeout_graceful_shutdown=10,
        )
        print_banner(
            url=f"http://{_display_host(host)}:{port}/",
            listen=f"{host}:{port}",
            server="uvicorn (one process, ASGI)",
            app_name=_app_name(args.app),
            implementation=middleware.implementation,
            middleware=middleware,
            out=out,
        )

        # uvicorn takes SIGTERM and SIGINT while it runs, shuts down gracefully, then
        # raises the signal again with the handlers it found: ours ends with status 0.
        _until_stopped(lambda: uvicorn.Server(config).run(sockets=[sock]))
    finally:
        sock.close()
    return 0


def _serve_gunicorn(args: argparse.Namespace, given: Dict[str, Any], out: TextIO) -> int:
    if sys.platform == "win32":
        raise ServeError("gunicorn does not run on Windows; serve with waitress (--workers 1, --threads N)")
    base = _import_server("gunicorn.app.base")
    import asok_fast

    threads = args.threads or (4 if args.worker_class == "gthread" else 1)
    worker_class = args.worker_class or ("gthread" if threads > 1 else "sync")
    target = args.app
    access_log = args.access_log
    state: Dict[str, Any] = {"middleware": None}

    def load() -> Any:
        try:
            middleware = build_app(target, given)
        except ServeError as exc:
            # In a worker: say why, and exit as a boot error (gunicorn then stops).
            sys.stderr.write(f"{PROG}: error: {exc}\n")
            sys.stderr.flush()
            sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR
        if state["middleware"] is None:
            # In a worker (no --preload): say what this worker runs.
            out.write(
                f"[worker {os.getpid()}] asok_fast {middleware.implementation}, config: "
                f"{dict(middleware.config)!r}\n"
            )
            out.flush()
        return AccessLog(middleware) if access_log else middleware

    preloaded: Optional[Any] = None
    if args.preload:
        middleware = build_app(target, given)
        state["middleware"] = middleware
        preloaded = AccessLog(middleware) if access_log else middleware

    def when_ready(arbiter: Any) -> None:
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
        mw = state["middleware"]
        print_banner(
            url=f"http://{_display_host(host)}:{port}/",
            listen=f"{host}:{port}",
            server=f"gunicorn ({args.workers} {worker_class} worker{'s' if args.workers > 1 else ''}"
            + (f", {threads} threads each" if worker_class == "gthread" else "")
            + (", preloaded" if args.preload else "")
            + ")",
            app_name=_app_name(target),
            implementation=mw.implementation if mw is not None else asok_fast.IMPLEMENTATION,
            middleware=mw,
            out=out,
        )

    host = args.host
    bind = f"[{host}]:{args.port}" if ":" in host and not host.startswith("[") else f"{host}:{args.port}"
    options: Dict[str, Any] = {
        "bind": [bind],
        "workers": args.workers,
        "threads": threads,
        "worker_class": worker_class,
        "preload_app": bool(args.preload),
        "timeout": args.timeout,
        "when_ready": when_ready,
        "proc_name": "asok-fast",
        # gunicorn >= 25.1 opens a control socket at a fixed per-user path by
        # default; two servers would fight over it.
        "control_socket_disable": True,
    }

    class _Application(base.BaseApplication):  # type: ignore[misc, name-defined]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return preloaded if preloaded is not None else load()

    _Application().run()
    return 0


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    out = out or sys.stdout
    try:
        return _run(args, out)
    except ServeError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2


def _run(args: argparse.Namespace, out: TextIO) -> int:
    given = config_from_args(args)
    validate_flags(given)  # before importing anything: a bad flag fails fast
    asgi = bool(args.asgi) or args.server == "uvicorn"
    server = _choose_server(args, asgi)
    if args.chdir:
        try:
            os.chdir(args.chdir)
        except OSError as exc:
            raise ServeError(f"--chdir {args.chdir}: {exc}") from None
        # the new directory is where MODULE:APP is looked for
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)

    if server == "gunicorn" and not args.check:
        if args.app is not None and not args.preload:
            check_importable(args.app)
        return _serve_gunicorn(args, given, out)
    is_asgi, middleware = load_app(args.app, given, asgi)
    if is_asgi and server != "uvicorn":
        # Detected: an ASGI app served without --asgi.
        if args.server is not None:
            raise ServeError(f"{args.app} is an ASGI app: serve it on uvicorn (--asgi), not on {args.server}")
        server = _check_uvicorn_options(args)
    if args.check:
        print_banner(
            url=None, listen=f"{args.host}:{args.port} (not listening: --check)", server=server,
            app_name=_app_name(args.app), implementation=middleware.implementation,
            middleware=middleware, out=out,
        )
        return 0
    if server == "uvicorn":
        app = ASGIAccessLog(middleware, out) if args.access_log else middleware
        return _serve_uvicorn(args, app, middleware, out)
    wsgi = AccessLog(middleware, out) if args.access_log else middleware
    return _serve_waitress(args, wsgi, middleware, out)
