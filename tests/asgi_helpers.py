"""The in-process ASGI client of the tests, and ASGI apps answering like the WSGI test apps.

:func:`asgi_call` runs one ``http`` request through an ASGI application with
asyncio and returns an :class:`AsgiResult`: the messages sent, and the status,
headers and body they make.  :func:`asgi_app` answers every request with a
given status, headers and body (one message, or several with ``more_body``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

Header = Tuple[str, str]


@dataclass
class AsgiResult:
    messages: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> Dict[str, Any]:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> List[Header]:
        return [(bytes(n).decode("latin-1"), bytes(v).decode("latin-1")) for n, v in self.start["headers"]]

    @property
    def chunks(self) -> List[bytes]:
        return [bytes(m.get("body", b"")) for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def get(self, name: str) -> Optional[str]:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(values) <= 1, (name, self.headers)
        return values[0] if values else None

    def ended(self) -> bool:
        """The last body message says the body is complete (ASGI)."""
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False) and all(m.get("more_body", False) for m in bodies[:-1])


def scope(method: str = "GET", path: str = "/", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Dict[str, Any]:
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    base = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    base.update(extra)
    return base


async def _run(app: Any, the_scope: Dict[str, Any], result: AsgiResult, send_fails_at: Optional[int]) -> None:
    requested = False

    async def receive() -> Dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # a client that stays: no disconnect
        raise AssertionError("unreachable")

    async def send(message: Dict[str, Any]) -> None:
        if send_fails_at is not None and len(result.messages) >= send_fails_at:
            raise OSError("the client went away")
        result.messages.append(dict(message))

    await app(the_scope, receive, send)


def asgi_call(
    app: Any,
    method: str = "GET",
    path: str = "/",
    headers: Optional[Dict[str, str]] = None,
    send_fails_at: Optional[int] = None,
    **extra: Any,
) -> AsgiResult:
    """One request through ``app``; ``send_fails_at``: the server's ``send`` raises
    (a client that went away) from that message on."""
    result = AsgiResult()
    asyncio.run(_run(app, scope(method, path, headers, **extra), result, send_fails_at))
    return result


def asgi_app(
    body: bytes = b"",
    content_type: Optional[str] = "text/html; charset=utf-8",
    status: int = 200,
    headers: Sequence[Header] = (),
    chunks: Optional[Sequence[bytes]] = None,
) -> Any:
    """An ASGI app answering ``status`` with ``body`` in one message, or ``chunks``
    as one message each (``more_body`` true until a last, empty one).

    ``app.calls`` counts calls; ``app.scopes`` keeps the scopes it saw."""

    async def app(the_scope: Dict[str, Any], receive: Any, send: Any) -> None:
        app.calls += 1  # type: ignore[attr-defined]
        app.scopes.append(the_scope)  # type: ignore[attr-defined]
        raw = []
        if content_type is not None:
            raw.append((b"content-type", content_type.encode("latin-1")))
        raw.extend((n.encode("latin-1"), v.encode("latin-1")) for n, v in headers)
        await send({"type": "http.response.start", "status": status, "headers": raw})
        if chunks is None:
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    app.calls = 0  # type: ignore[attr-defined]
    app.scopes = []  # type: ignore[attr-defined]
    return app
