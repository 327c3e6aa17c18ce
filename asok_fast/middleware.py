"""The WSGI middleware: configuration and the body plumbing shared by both cores.

``ResponseMiddleware`` derives from the chosen core's ``MiddlewareBase``,
whose ``__call__`` answers preflights, calls the app and finishes the common
bodies itself (with the compiled core, in C: one-chunk lists, and iterables
of a known length).  Every other body comes back here: telling finite bodies
from streams, ``HEAD``, ``wsgi.file_wrapper``, ``close()`` exactly once and
``exc_info`` (PEP 3333).  Every decision about headers and
every byte of output comes from the core (``_core_py`` or its compiled twin
``_core_c``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from . import _core
from ._config import Config, Settings, build_settings, initial_values
from ._core_py import Capture, _header_pair, _not_bytes

Header = Tuple[str, str]
_END = object()  # next()'s default: the app's iterable is exhausted


class _Stream:
    """A streamed body: chunks pass through (or through a gzip stream) one by
    one as the app makes them; ``close()`` reaches the app's iterable once."""

    __slots__ = ("_pending", "_iterator", "_result", "_gzip", "_closed", "_done")

    def __init__(self, pending: List[bytes], iterator: Iterator[bytes], result: Any, gzip: Any) -> None:
        self._pending = pending
        self._iterator = iterator
        self._result = result
        self._gzip = gzip
        self._closed = False
        self._done = False

    def __iter__(self) -> "_Stream":
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        if self._pending:
            chunk = self._pending.pop(0)
        else:
            try:
                chunk = next(self._iterator)
            except StopIteration:
                if self._pending:  # write() during the last next(): send that first
                    self._iterator = iter(())
                    return self.__next__()
                self._done = True
                gzip = self._gzip
                if gzip is None:
                    raise
                self._gzip = None
                return gzip.finish()
            if type(chunk) is not bytes:
                raise _not_bytes(chunk)
            if self._pending:
                # write() while this chunk was made: its bytes come out first
                # (PEP 3333: written data counts as if yielded, in order).
                self._pending.append(chunk)
                chunk = self._pending.pop(0)
        gzip = self._gzip
        # PEP 3333: one value out for every value in, b"" included.
        return chunk if gzip is None else gzip.compress(chunk)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._done = True
        gzip, self._gzip = self._gzip, None
        if gzip is not None:
            gzip.close()  # hand the compressor state back
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _check_started(capture: Capture) -> None:
    if capture.status is None:
        raise AssertionError("the WSGI application returned without calling start_response")


def _buffer_hints(headers: List[Header]) -> Tuple[int, bool]:
    """(the app's ``Content-Length``, -1 when absent or unreadable; whether it
    is ``text/event-stream``), with the same header checks as the core."""
    length = -1
    event_stream = False
    seen_length = seen_type = False
    for header in headers:
        name, value = _header_pair(header)
        lname = name.lower()
        if lname == "content-length" and not seen_length:
            seen_length = True
            value = value.strip()
            # More digits than any body could have counts as unreadable (and
            # int() would refuse over sys.get_int_max_str_digits() digits).
            if value.isdigit() and value.isascii() and len(value) <= 18:
                length = int(value)
        elif lname == "content-type" and not seen_type:
            seen_type = True
            event_stream = value.partition(";")[0].strip(" \t").lower() == "text/event-stream"
    return length, event_stream


class ResponseMiddleware(_core.core.MiddlewareBase):
    """Give a WSGI app CORS (with preflight answers), gzip and MD5 ETags with ``304``.

    ``config`` overrides the defaults and any of these keys found in the app's
    own ``config`` dict (an Asok app has one).  ``.config`` holds every key;
    assigning one takes effect on the next request.

    Where the app's ``config`` turns Asok's own ``GZIP`` on, the middleware
    takes compression over (the app's ``GZIP`` is set to ``False``), so a body
    is compressed once, here.
    """

    def __new__(cls, app: Any = None, config: Any = None, *, _core_module: Optional[ModuleType] = None) -> "ResponseMiddleware":
        # The private seam for tests and benches: an instance bound to the
        # core that is not the default is one of a subclass whose __call__ is
        # that core's handle().
        if _core_module is not None and _core_module is not getattr(cls, "_bound_core", _core.core):
            cls = _bound_class(cls, _core_module)
        return super().__new__(cls)

    def __init__(self, app: Callable[..., Iterable[bytes]], config: Optional[Mapping[str, Any]] = None, *, _core_module: Optional[ModuleType] = None) -> None:
        if not callable(app):
            raise TypeError(f"ResponseMiddleware needs a WSGI callable, got {app!r}")
        self.app = app
        self._core = _core.core if _core_module is None else _core_module
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
        if name.startswith("__") or name == "app":
            raise AttributeError(name)
        return getattr(self.app, name)

    @property
    def implementation(self) -> str:
        """``"compiled"`` or ``"python"``: the core this instance runs."""
        return "python" if self._core.__name__.endswith("_core_py") else "compiled"

    def _rebuild(self) -> Settings:
        config = self._config
        version = config.version  # read before the copy: a later change rebuilds again
        # Validate a snapshot (one C-level copy, atomic under the GIL), not the
        # live dict: a concurrent update() must not leave half-old, half-new
        # settings (or a spurious "*"+credentials error) for this request.
        settings = build_settings(dict(config))
        self._state = (version, settings)
        return settings

    # __call__ is MiddlewareBase's: the core's per-request entry (in C with
    # the compiled core).  It reads app, _config and _state, and calls
    # _rebuild() and _finish().

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _enable_vectorcall(cls)  # a subclass keeping __call__ keeps the fast entry

    def _finish(self, settings: Settings, environ: dict, head: bool, capture: Capture, result: Any) -> Iterable[bytes]:
        """Buffer or stream ``result``, closing it exactly once on every path.

        Called by the core's ``handle()`` for every response but the one-chunk
        list bodies it finishes itself.
        """
        core = self._core
        if isinstance(result, (list, tuple)):  # subclasses too (SPEC: "a list or tuple")
            try:
                _check_started(capture)
                body = self._join(capture.written, result)
            finally:
                _close(result)
            return self._send(settings, core, environ, head, capture, body)

        pending = capture.written
        try:
            iterator = iter(result)
            file_wrapper = environ.get("wsgi.file_wrapper")
            if file_wrapper is not None and isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
                _check_started(capture)
                may_compress = False
                buffer = False
            else:
                # PEP 3333 lets an app call start_response as late as its first chunk.
                while capture.status is None:
                    chunk = next(iterator, _END)
                    if chunk is _END:
                        _check_started(capture)
                        break  # start_response called, then no chunk: an empty body
                    if type(chunk) is not bytes:
                        raise _not_bytes(chunk)
                    pending.append(chunk)
                may_compress = True
                headers = capture.headers
                length, event_stream = _buffer_hints(headers)
                buffer = 0 <= length <= settings.buffer_max and not event_stream
                if buffer:
                    for chunk in iterator:
                        if type(chunk) is not bytes:
                            raise _not_bytes(chunk)
                        pending.append(chunk)
        except BaseException:
            _close(result)
            raise
        if buffer:
            _close(result)
            return self._send(settings, core, environ, head, capture, b"".join(pending))
        return self._stream(settings, core, environ, head, capture, result, iterator, pending, may_compress)

    @staticmethod
    def _join(written: List[bytes], result: Any) -> bytes:
        if len(result) == 1 and not written:
            body = result[0]
            if type(body) is not bytes:
                raise _not_bytes(body)
            return body
        for chunk in result:
            if type(chunk) is not bytes:
                raise _not_bytes(chunk)
        return b"".join(written + list(result)) if written else b"".join(result)

    @staticmethod
    def _send(settings: Settings, core: ModuleType, environ: dict, head: bool, capture: Capture, body: bytes) -> List[bytes]:
        status, headers, body = core.respond(settings, environ, capture.status, capture.headers, body)
        capture.send(status, headers)
        if head or not body:
            return []
        return [body]

    @staticmethod
    def _stream(
        settings: Settings,
        core: ModuleType,
        environ: dict,
        head: bool,
        capture: Capture,
        result: Any,
        iterator: Iterator[bytes],
        pending: List[bytes],
        may_compress: bool,
    ) -> Iterable[bytes]:
        try:
            status, headers, mode = core.respond_stream(settings, environ, capture.status, capture.headers, may_compress)
            gzip = core.GzipStream(settings.gzip_level) if mode == core.STREAM_GZIP and not head else None
        except BaseException:
            _close(result)
            raise
        if head or mode == core.STREAM_EMPTY:
            try:
                capture.send(status, headers)
            finally:
                _close(result)  # closed unread: no body byte goes out
            return []
        if mode == core.STREAM_PASS and not pending and not may_compress:
            try:
                capture.send(status, headers)
            except BaseException:
                _close(result)
                raise
            return result  # wsgi.file_wrapper: the server keeps its zero-copy path
        stream = _Stream(pending, iterator, result, gzip)
        try:
            capture.send(status, headers)
        except BaseException:
            stream.close()
            raise
        return stream


# The compiled core calls ResponseMiddleware without an argument tuple (PEP 590).
_enable_vectorcall: Callable[[type], None] = getattr(_core.core, "_enable_vectorcall", lambda cls: None)
_enable_vectorcall(ResponseMiddleware)

_BOUND: Dict[Tuple[type, ModuleType], type] = {}


def _bound_class(cls: type, core: ModuleType) -> type:
    """``cls`` with ``core.handle`` as its ``__call__`` (one class per pair, cached)."""
    key = (cls, core)
    bound = _BOUND.get(key)
    if bound is None:
        if cls.__call__ is not _core.core.MiddlewareBase.__call__:
            # Its __call__ would be bypassed, or would reach the default core
            # through super(): neither runs the core asked for.
            raise TypeError(f"{cls.__qualname__} overrides __call__: it can only run the default core")
        namespace = {"__call__": core.handle, "_bound_core": core, "__module__": cls.__module__, "__doc__": cls.__doc__}
        bound = type(cls.__name__, (cls,), namespace)
        bound.__qualname__ = cls.__qualname__
        _BOUND[key] = bound
    return bound
