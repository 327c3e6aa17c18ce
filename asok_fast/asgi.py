"""The ASGI middleware: the ASGI plumbing, beside the WSGI one, over the same core.

``ASGIMiddleware`` answers preflights, calls the app with a ``send`` that
holds ``http.response.start`` until it can tell a finite body from a stream,
and hands the core (``_core.core``, compiled or pure) the same plain data as
the WSGI middleware does: a request tuple, a status line, a header list and a
body.  Every rule lives in the core; here are only the ASGI messages
(``more_body``, ``HEAD``, trailers, ``pathsend``/``zerocopysend``, a client
that goes away).

The request and the response headers are converted as a WSGI server would
give them: byte strings decoded as latin-1 (PEP 3333), a request header sent
more than once joined with ", ".  Response header names go out lower-cased,
as the ASGI specification asks.
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

# The request headers the core reads, by their ASGI (lower-case byte) names.
_ORIGIN = b"origin"
_ACCEPT_ENCODING = b"accept-encoding"
_IF_NONE_MATCH = b"if-none-match"
_IF_MODIFIED_SINCE = b"if-modified-since"
_REQUEST_METHOD = b"access-control-request-method"
_PRIVATE_NETWORK = b"access-control-request-private-network"
_WANTED = frozenset((_ORIGIN, _ACCEPT_ENCODING, _IF_NONE_MATCH, _IF_MODIFIED_SINCE, _REQUEST_METHOD, _PRIVATE_NETWORK))



def _end() -> Message:
    """A body message that ends the response (a fresh dict: a server may keep it)."""
    return {"type": "http.response.body", "body": b"", "more_body": False}


def _request_headers(raw: Any) -> Dict[bytes, str]:
    """The headers the core reads, as str; one sent twice is joined with ", ".

    ASGI servers give the names lower-cased (the specification requires it)."""
    found: Dict[bytes, str] = {}
    for name, value in raw:
        if name in _WANTED:
            text = value.decode("latin-1")
            found[name] = found[name] + ", " + text if name in found else text
    return found


def _to_str(headers: Any) -> List[Header]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


# Response header names as ASGI wants them (lower-case bytes), by the str the core
# wrote: a few dozen names recur on every response.
_NAMES: Dict[str, bytes] = {}
_NAMES_MAX = 512


def _name(name: str) -> bytes:
    raw = name.lower().encode("latin-1")
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = raw
    return raw


def _to_bytes(headers: List[Header]) -> List[Tuple[bytes, bytes]]:
    names = _NAMES
    return [(names.get(name) or _name(name), value.encode("latin-1")) for name, value in headers]


class _Response:
    """One response on its way out: the app's messages in, the middleware's out."""

    __slots__ = ("_core", "_settings", "_request", "_head", "_send", "_start", "_headers", "_held", "_state", "_encoder")

    # _state: what the next body message meets
    HOLD = 0  # start held, no body yet
    BUFFER = 1  # a declared length within BUFFER_MAX_SIZE: held whole
    STREAM = 2  # sent as it comes (compressed, or untouched)
    DONE = 3  # answered here (buffered, HEAD, 304): the app's further body and trailers are dropped
    PASSED = 4  # the app's stream ended: what follows (trailers) passes

    def __init__(self, core: ModuleType, settings: Settings, request: Request, head: bool, send: Send) -> None:
        self._core = core
        self._settings = settings
        self._request = request
        self._head = head
        self._send = send
        self._start: Optional[Message] = None
        self._headers: List[Header] = []
        self._held: List[bytes] = []
        self._state = self.HOLD
        self._encoder: Any = None

    def _start_message(self, status: str, headers: List[Header]) -> Message:
        assert self._start is not None
        message: Message = {"type": "http.response.start", "status": int(status[:3]), "headers": _to_bytes(headers)}
        if "trailers" in self._start:
            message["trailers"] = self._start["trailers"]
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
            self._headers = _to_str(message.get("headers", ()))
            if message.get("trailers"):
                await self._open_stream(may_compress=False)  # trailers follow the body: it passes untouched
            return
        if self._start is None:
            raise RuntimeError(f"{kind} sent before http.response.start")
        if kind == "http.response.body":
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if self._state == self.STREAM:
                await self._stream(body, more)
            elif self._state == self.BUFFER:
                self._held.append(body)
                if not more:
                    await self._respond(b"".join(self._held))
            elif self._state == self.HOLD:
                if not more:
                    await self._respond(body)
                elif self._core.buffer_length(self._headers, self._settings.buffer_max) >= 0:
                    self._state = self.BUFFER
                    self._held.append(body)
                else:
                    await self._open_stream(may_compress=True)
                    if self._state == self.STREAM:
                        await self._stream(body, more)
            return
        if kind in ("http.response.pathsend", "http.response.zerocopysend"):
            if self._state == self.HOLD:
                await self._open_stream(may_compress=False)  # the server sends the file: untouched
            if self._state == self.STREAM:
                if kind == "http.response.pathsend" or not message.get("more_body", False):
                    self._state = self.PASSED  # the server sends the rest: the body is complete
                await self._send(message)
            return
        if self._state != self.DONE or kind != "http.response.trailers":
            await self._send(message)

    async def _respond(self, body: bytes) -> None:
        status, headers, body = self._core.respond(self._settings, self._request, self._status(), self._headers, body)
        self._state = self.DONE
        await self._send(self._start_message(status, headers))
        await self._send({"type": "http.response.body", "body": b"" if self._head else body, "more_body": False})

    async def _open_stream(self, may_compress: bool) -> None:
        core = self._core
        status, headers, mode, coding = core.respond_stream(self._settings, self._request, self._status(), self._headers, may_compress)
        if mode == STREAM_EMPTY or self._head:
            self._state = self.DONE
            await self._send(self._start_message(status, headers))
            await self._send(_end())
            return
        if mode == STREAM_COMPRESS:
            self._encoder = core.open_stream(self._settings, coding)
        self._state = self.STREAM
        await self._send(self._start_message(status, headers))

    async def _stream(self, body: bytes, more: bool) -> None:
        encoder = self._encoder
        if encoder is not None:
            body = encoder.compress(body)
            if not more:
                self._encoder = None
                body += encoder.finish()
        if not more:
            self._state = self.PASSED
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    @property
    def unfinished(self) -> bool:
        """The app started a response and returned before its body ended."""
        return self._start is not None and self._state < self.DONE

    async def finish(self) -> None:
        """After the app returned: a response it left unfinished is finished
        with what it sent (a held start with no body: an empty one)."""
        if self._state == self.STREAM:
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
        fields = _request_headers(scope.get("headers", ()))
        get = fields.get
        if method == "OPTIONS" and settings.cors and _REQUEST_METHOD in fields and _ORIGIN in fields:
            headers = self._core.preflight(settings, get(_ORIGIN), get(_PRIVATE_NETWORK))
            await send({"type": "http.response.start", "status": 204, "headers": _to_bytes(headers)})
            await send(_end())
            return
        request: Request = (method, get(_ORIGIN), get(_ACCEPT_ENCODING), get(_IF_NONE_MATCH), get(_IF_MODIFIED_SINCE))
        head = method == "HEAD"
        # Run the app as for GET, so that HEAD gets exactly GET's headers.
        app_scope = dict(scope, method="GET") if head else scope
        response = _Response(self._core, settings, request, head, send)
        try:
            await self.app(app_scope, receive, response.send)
            if response.unfinished:
                await response.finish()
        finally:
            response.close()
