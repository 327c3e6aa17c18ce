"""The ASGI middleware: the ASGI plumbing, beside the WSGI one, over the same core.

``ASGIMiddleware`` answers preflights, calls the app with a ``send`` that
holds ``http.response.start`` until it can tell a finite body from a stream,
and hands the core (``_core.core``, compiled or pure) the same plain data as
the WSGI middleware does: a request tuple, a status line, a header list and a
body.  Every rule lives in the core; here are only the ASGI messages
(``more_body``, ``HEAD``, trailers, ``pathsend``/``zerocopysend``, a client
that goes away).

The request and the response headers are converted by the core's
``raw_request_fields``, ``decode_pairs`` and ``encode_pairs`` as a WSGI
server would give them: byte strings decoded as latin-1 (PEP 3333), a
request header sent more than once joined with ", ".  Response header names
go out lower-cased, as the ASGI specification asks.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Tuple

from . import _core
from ._config import Configured, Settings
from ._shared import STREAM_COMPRESS, STREAM_EMPTY, Header, Request

__all__ = ["ASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

def _end() -> Message:
    """A body message that ends the response (a fresh dict: a server may keep it)."""
    return {"type": "http.response.body", "body": b"", "more_body": False}


# _Response._state: what the next body message meets.
_HOLD = 0  # start held, no body yet
_BUFFER = 1  # a declared length within BUFFER_MAX_SIZE: held whole
_STREAM = 2  # sent as it comes (compressed, or untouched)
_DONE = 3  # answered here (buffered, HEAD, 304): the app's further body and trailers are dropped
_PASSED = 4  # the app's stream ended: what follows (trailers) passes


class _Response:
    """One response on its way out: the app's messages in, the middleware's out."""

    __slots__ = ("_core", "_settings", "_request", "_head", "_send", "_start", "_headers", "_held", "_state", "_encoder")

    def __init__(self, core: ModuleType, settings: Settings, request: Request, head: bool, send: Send) -> None:
        self._core = core
        self._settings = settings
        self._request = request
        self._head = head
        self._send = send
        self._start: Optional[Message] = None
        self._headers: List[Header] = []
        self._held: List[bytes] = []
        self._state = _HOLD
        self._encoder: Any = None

    def _start_message(self, status: str, headers: List[Header]) -> Message:
        start = self._start
        assert start is not None
        message: Message = {"type": "http.response.start", "status": int(status[:3]), "headers": self._core.encode_pairs(headers)}
        if "trailers" in start:
            message["trailers"] = start["trailers"]
        return message

    def _status(self) -> str:
        assert self._start is not None
        return f"{self._start['status']} "  # the core reads the code of a status line

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._start is not None:
                raise RuntimeError("http.response.start sent twice")
            self._start = message
            self._headers = self._core.decode_pairs(message.get("headers", ()))
            if message.get("trailers"):
                await self._open_stream(may_compress=False)  # trailers follow the body: it passes untouched
            return
        if self._start is None:
            raise RuntimeError(f"{kind} sent before http.response.start")
        if kind == "http.response.body":
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if self._state == _STREAM:
                await self._stream(body, more)
            elif self._state == _BUFFER:
                self._held.append(body)
                if not more:
                    await self._respond(b"".join(self._held))
            elif self._state == _HOLD:
                if not more:  # the common case: one message, the whole body
                    start, end = self._answer(body)
                    await self._send(start)
                    await self._send(end)
                elif self._core.buffer_length(self._headers, self._settings.buffer_max) >= 0:
                    self._state = _BUFFER
                    self._held.append(body)
                else:
                    await self._open_stream(may_compress=True)
                    if self._state == _STREAM:
                        await self._stream(body, more)
            return
        if kind in ("http.response.pathsend", "http.response.zerocopysend"):
            if self._state == _HOLD:
                await self._open_stream(may_compress=False)  # the server sends the file: untouched
            if self._state == _STREAM:
                if kind == "http.response.pathsend" or not message.get("more_body", False):
                    self._state = _PASSED  # the server sends the rest: the body is complete
                await self._send(message)
            return
        if self._state != _DONE or kind != "http.response.trailers":
            await self._send(message)

    async def _respond(self, body: bytes) -> None:
        start, end = self._answer(body)
        await self._send(start)
        await self._send(end)

    def _answer(self, body: bytes) -> Tuple[Message, Message]:
        """The two messages that answer with a whole body."""
        assert self._start is not None
        # The core reads the code of a status line.
        status, headers, body = self._core.respond(self._settings, self._request, f"{self._start['status']} ", self._headers, body)
        self._state = _DONE
        return self._start_message(status, headers), {"type": "http.response.body", "body": b"" if self._head else body, "more_body": False}

    async def _open_stream(self, may_compress: bool) -> None:
        core = self._core
        status, headers, mode, coding = core.respond_stream(self._settings, self._request, self._status(), self._headers, may_compress)
        if mode == STREAM_EMPTY or self._head:
            self._state = _DONE
            await self._send(self._start_message(status, headers))
            await self._send(_end())
            return
        if mode == STREAM_COMPRESS:
            self._encoder = core.open_stream(self._settings, coding)
        self._state = _STREAM
        await self._send(self._start_message(status, headers))

    async def _stream(self, body: bytes, more: bool) -> None:
        encoder = self._encoder
        if encoder is not None:
            body = encoder.compress(body)
            if not more:
                self._encoder = None
                body += encoder.finish()
        if not more:
            self._state = _PASSED
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def finish(self) -> None:
        """After the app returned: a response it left unfinished is finished
        with what it sent (a held start with no body: an empty one)."""
        if self._state == _STREAM:
            await self._stream(b"", False)
        else:
            await self._respond(b"".join(self._held))

    def close(self) -> None:
        """Release the compressor of an unfinished stream (the client left, the app failed)."""
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            encoder.close()


class _HeadAsIs:
    """``HEAD`` with every feature off: the app's start as it is, no body byte."""

    __slots__ = ("_send", "_ended")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._ended = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._send(message)
        elif not self._ended and kind in ("http.response.body", "http.response.pathsend", "http.response.zerocopysend"):
            self._ended = True
            await self._send(_end())
        elif kind not in ("http.response.body", "http.response.pathsend", "http.response.zerocopysend", "http.response.trailers"):
            await self._send(message)


class ASGIMiddleware(Configured):
    """Give an ASGI app CORS (with preflight answers), compression (zstd, br, gzip) and MD5 ETags with ``304``.

    The keys, ``.config`` behaviour and errors of :class:`~asok_fast.ResponseMiddleware`,
    and for the same request and app response the same answer, decided by the
    same core.  ``http`` scopes only: ``websocket`` and ``lifespan`` pass
    through untouched.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], config: Optional[Any] = None, *, _core_module: Optional[ModuleType] = None) -> None:
        if not callable(app):
            raise TypeError(f"ASGIMiddleware needs an ASGI application, got {app!r}")
        super().__init__(app, config, _core.core if _core_module is None else _core_module)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        version, settings = self._state
        if self._config.version != version:
            settings = self._settings()
        method = scope["method"]
        if not settings.active:
            if method == "HEAD":
                await self.app(scope, receive, _HeadAsIs(send).send)
            else:
                await self.app(scope, receive, send)
            return
        core = self._core
        origin, accept_encoding, if_none_match, if_modified_since, request_method, private_network = core.raw_request_fields(
            scope.get("headers", ())
        )
        if method == "OPTIONS" and settings.cors and request_method is not None and origin is not None:
            headers = core.encode_pairs(core.preflight(settings, origin, private_network))
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send(_end())
            return
        request: Request = (method, origin, accept_encoding, if_none_match, if_modified_since)
        head = method == "HEAD"
        # Run the app as for GET, so that HEAD gets exactly GET's headers.
        app_scope = dict(scope, method="GET") if head else scope
        response = _Response(core, settings, request, head, send)
        try:
            await self.app(app_scope, receive, response.send)
            if response._state < _DONE and response._start is not None:
                await response.finish()  # the app returned before its body ended
        finally:
            if response._encoder is not None:
                response.close()
