"""The WSGI middleware: every piece of WSGI plumbing, written once, over the core.

``ResponseMiddleware`` answers preflights, calls the app with a recording
``start_response``, tells finite bodies from streams, and hands the core
(``_core.core``: the compiled twin or the pure one) plain data: a request
tuple, a status line, a header list and a body.  What comes back goes to the
server.  ``HEAD``, ``wsgi.file_wrapper``, the legacy ``write()``, ``close()``
exactly once and ``exc_info`` (PEP 3333) are handled here and nowhere else.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional

from . import _core
from ._config import Configured, Settings
from ._shared import STREAM_COMPRESS, STREAM_EMPTY, STREAM_PASS, Header, Request, not_bytes

__all__ = ["ResponseMiddleware"]

_END = object()  # next()'s default: the app's iterable is exhausted
# Iterators over chunks that are already in memory: such a body is finite
# (Django's HttpResponse iterates over its list of chunks), so it is held whole.
_IN_MEMORY = (type(iter([])), type(iter(())))


class _Capture:
    """The ``start_response`` handed to the app: it records, the middleware sends later."""

    __slots__ = ("status", "headers", "exc_info", "written", "sent", "server")

    def __init__(self, server: Callable[..., object]) -> None:
        self.status: Optional[str] = None
        self.headers: Any = None  # set with status
        self.exc_info: Any = None
        self.written: List[bytes] = []  # what the legacy write() was given
        self.sent = False
        self.server = server

    def __call__(self, status: str, headers: List[Header], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.sent:
                # Our headers are committed to the server, even if it has not
                # written them yet: re-raise, as PEP 3333 says a server must.
                try:
                    raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            try:
                self.status, self.headers, self.exc_info = status, headers, exc_info
            finally:
                exc_info = None  # no traceback cycle
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
        else:
            self.status = status
            self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()``: its bytes come first in the body (PEP 3333)."""
        if type(data) is not bytes:
            raise not_bytes(data)
        self.written.append(data)

    def send(self, status: str, headers: List[Header]) -> None:
        """Hand the final status and headers to the server's ``start_response``."""
        self.sent = True
        if self.exc_info:
            self.server(status, headers, self.exc_info)
        else:
            self.server(status, headers)

    def started(self) -> None:
        if self.status is None:
            raise AssertionError("the WSGI application returned without calling start_response")


class _Stream:
    """A streamed body: chunks pass through (or through the coding's stream
    compressor) one by one as the app makes them; ``close()`` reaches the app's
    iterable once."""

    __slots__ = ("_pending", "_iterator", "_result", "_encoder", "_closed", "_done")

    def __init__(self, pending: List[bytes], iterator: Iterator[bytes], result: Any, encoder: Any) -> None:
        self._pending = pending
        self._iterator = iterator
        self._result = result
        self._encoder = encoder
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
                encoder = self._encoder
                if encoder is None:
                    raise
                self._encoder = None
                return encoder.finish()  # type: ignore[no-any-return]
            if type(chunk) is not bytes:
                raise not_bytes(chunk)
            if self._pending:
                # write() while this chunk was made: its bytes come out first
                # (PEP 3333: written data counts as if yielded, in order).
                self._pending.append(chunk)
                chunk = self._pending.pop(0)
        encoder = self._encoder
        # PEP 3333: one value out for every value in, b"" included.
        return chunk if encoder is None else encoder.compress(chunk)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._done = True
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            encoder.close()  # hand the compressor state back
        _close(self._result)


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _join(written: List[bytes], result: Any) -> bytes:
    """A list or tuple body (after what ``write()`` got) as one bytes."""
    if len(result) == 1 and not written:
        body = result[0]
        if type(body) is not bytes:
            raise not_bytes(body)
        return body  # type: ignore[no-any-return]
    for chunk in result:
        if type(chunk) is not bytes:
            raise not_bytes(chunk)
    return b"".join(written + list(result)) if written else b"".join(result)


def _start(capture: _Capture, iterator: Iterator[bytes], pending: List[bytes]) -> None:
    """PEP 3333 lets an app call start_response as late as its first chunk:
    take chunks into ``pending`` until it has."""
    while capture.status is None:
        chunk = next(iterator, _END)
        if chunk is _END:
            capture.started()  # raises unless that last next() started it
            return  # started, then no chunk: an empty body
        if type(chunk) is not bytes:
            raise not_bytes(chunk)
        pending.append(chunk)


def _is_file_wrapper(environ: Any, result: Any) -> bool:
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper is not None and isinstance(wrapper, type) and isinstance(result, wrapper)


class ResponseMiddleware(Configured):
    """Give a WSGI app CORS (with preflight answers), compression (zstd, br, gzip) and MD5 ETags with ``304``.

    ``config`` overrides the defaults and any of these keys found in the app's
    own ``config`` dict (an Asok app has one).  ``.config`` holds every key;
    assigning one takes effect on the next request.  Where the app's
    ``config`` turns Asok's own ``GZIP`` on, the middleware takes compression
    over, so a body is compressed once, here.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        config: Optional[Mapping[str, Any]] = None,
        *,
        _core_module: Optional[ModuleType] = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"ResponseMiddleware needs a WSGI callable, got {app!r}")
        super().__init__(app, config, _core.core if _core_module is None else _core_module)

    def __call__(self, environ: Any, start_response: Callable[..., object]) -> Iterable[bytes]:
        version, settings = self._state
        if self._config.version != version:
            settings = self._settings()
        get = environ.get
        method = get("REQUEST_METHOD")
        if not settings.active:
            if method == "HEAD":
                return self._head_as_is(environ, start_response)
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if (
            method == "OPTIONS"
            and settings.cors
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
            and "HTTP_ORIGIN" in environ
        ):
            headers = self._core.preflight(settings, get("HTTP_ORIGIN"), get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"))
            start_response("204 No Content", headers)
            return ()  # no body; a shared empty tuple costs no allocation
        request: Request = (
            method,
            get("HTTP_ORIGIN"),
            get("HTTP_ACCEPT_ENCODING"),
            get("HTTP_IF_NONE_MATCH"),
            get("HTTP_IF_MODIFIED_SINCE"),
        )
        head = method == "HEAD"
        app_environ = environ
        if head:
            # Run the app as for GET, so that HEAD gets exactly GET's headers
            # (Content-Length, ETag, Content-Encoding); the body is dropped.
            app_environ = environ.copy()
            app_environ["REQUEST_METHOD"] = "GET"
        capture = _Capture(start_response)
        result = self.app(app_environ, capture)
        # The common case first: a one-chunk list (what most apps return for a
        # buffered page); a plain list has no close() to call.
        if type(result) is list and len(result) == 1 and capture.status is not None and not capture.written:
            body = result[0]
            if type(body) is bytes:
                return self._send(settings, request, head, capture, body)
        return self._finish(settings, environ, request, head, capture, result)

    def _finish(self, settings: Settings, environ: Any, request: Request, head: bool, capture: _Capture, result: Any) -> Iterable[bytes]:
        """Buffer or stream ``result``, closing it exactly once on every path."""
        if isinstance(result, (list, tuple)):  # subclasses too (SPEC: "a list or tuple")
            try:
                capture.started()
                body = _join(capture.written, result)
            finally:
                _close(result)
            return self._send(settings, request, head, capture, body)

        pending = capture.written
        may_compress = buffer = False
        try:
            iterator = iter(result)
            if _is_file_wrapper(environ, result):
                capture.started()
            else:
                if capture.status is None:
                    _start(capture, iterator, pending)
                may_compress = True
                buffer = type(iterator) in _IN_MEMORY or self._core.buffer_length(capture.headers, settings.buffer_max) >= 0
                if buffer:
                    for chunk in iterator:
                        if type(chunk) is not bytes:
                            raise not_bytes(chunk)
                        pending.append(chunk)
        except BaseException:
            _close(result)
            raise
        if buffer:
            _close(result)
            return self._send(settings, request, head, capture, pending[0] if len(pending) == 1 else b"".join(pending))
        return self._stream(settings, request, head, capture, result, iterator, pending, may_compress)

    def _send(self, settings: Settings, request: Request, head: bool, capture: _Capture, body: bytes) -> List[bytes]:
        status, headers, body = self._core.respond(settings, request, capture.status, capture.headers, body)
        capture.send(status, headers)
        if head or not body:
            return []
        return [body]

    def _stream(
        self,
        settings: Settings,
        request: Request,
        head: bool,
        capture: _Capture,
        result: Any,
        iterator: Iterator[bytes],
        pending: List[bytes],
        may_compress: bool,
    ) -> Iterable[bytes]:
        core = self._core
        try:
            status, headers, mode, coding = core.respond_stream(settings, request, capture.status, capture.headers, may_compress)
            encoder = core.open_stream(settings, coding) if mode == STREAM_COMPRESS and not head else None
        except BaseException:
            _close(result)
            raise
        if head or mode == STREAM_EMPTY:
            try:
                capture.send(status, headers)
            finally:
                _close(result)  # closed unread: no body byte goes out
            return []
        if mode == STREAM_PASS and not pending and not may_compress:
            try:
                capture.send(status, headers)
            except BaseException:
                _close(result)
                raise
            return result  # type: ignore[no-any-return]  # wsgi.file_wrapper: the server keeps its zero-copy path
        stream = _Stream(pending, iterator, result, encoder)
        try:
            capture.send(status, headers)
        except BaseException:
            stream.close()
            raise
        return stream

    def _head_as_is(self, environ: Any, start_response: Callable[..., object]) -> List[bytes]:
        """``HEAD`` with every feature off: the app's status and headers as
        they are, and no body byte (its body is closed unread)."""
        capture = _Capture(start_response)
        result = self.app(environ, capture)
        try:
            if not _is_file_wrapper(environ, result):
                _start(capture, iter(result), [])
            capture.started()
            capture.send(capture.status, capture.headers)  # type: ignore[arg-type]
        finally:
            _close(result)
        return []
