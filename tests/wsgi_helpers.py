"""A tiny in-process WSGI client and configurable apps for the tests."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from wsgiref.util import setup_testing_defaults

Header = Tuple[str, str]


@dataclass
class Result:
    status: str
    headers: List[Header]
    chunks: List[bytes]
    exc_info: Any = None
    closed: int = 0

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def code(self) -> int:
        return int(self.status[:3])

    def get_all(self, name: str) -> List[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def get(self, name: str) -> Optional[str]:
        values = self.get_all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {self.headers}"
        return values[0] if values else None

    def names(self) -> List[str]:
        return [k for k, _ in self.headers]

    def gunzip(self) -> bytes:
        return gzip.decompress(self.body)


def environ(method: str = "GET", path: str = "/", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Dict[str, Any]:
    """A PEP 3333 environ; ``headers`` by their HTTP names (``Accept-Encoding``)."""
    env: Dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        env[key] = value
    env.update(extra)
    setup_testing_defaults(env)
    return env


def call(app: Callable[..., Iterable[bytes]], method: str = "GET", path: str = "/", headers: Optional[Dict[str, str]] = None, **extra: Any) -> Result:
    """Run one request through ``app`` as a server would: iterate, then close."""
    captured: Dict[str, Any] = {}

    def start_response(status: str, response_headers: List[Header], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"] = status
        captured["headers"] = list(response_headers)
        captured["exc_info"] = exc_info
        return lambda data: None

    iterable = app(environ(method, path, headers, **extra), start_response)
    chunks: List[bytes] = []
    try:
        for chunk in iterable:
            chunks.append(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return Result(captured["status"], captured["headers"], chunks, captured["exc_info"])


def gzip_reference(data: bytes, level: int = 6) -> bytes:
    """What the spec says compressed bytes are: zlib framing with window bits 31."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


class ClosingList(list):
    """A list body (buffered) that counts close() calls."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


def make_app(
    body: bytes = b"",
    content_type: Optional[str] = "text/html; charset=utf-8",
    status: str = "200 OK",
    headers: Sequence[Header] = (),
    chunks: Optional[Sequence[bytes]] = None,
    stream: bool = False,
) -> Callable[..., Iterable[bytes]]:
    """A WSGI app returning ``body`` (a list) or ``chunks`` from a generator when ``stream``.

    ``app.calls`` counts calls; ``app.environs`` keeps what the app saw.
    """

    def app(env: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        app.calls += 1  # type: ignore[attr-defined]
        app.environs.append(env)  # type: ignore[attr-defined]
        response_headers = []
        if content_type is not None:
            response_headers.append(("Content-Type", content_type))
        response_headers.extend(headers)
        start_response(status, response_headers)
        if stream:
            return iter(list(chunks if chunks is not None else [body]))
        return list(chunks) if chunks is not None else [body]

    app.calls = 0  # type: ignore[attr-defined]
    app.environs = []  # type: ignore[attr-defined]
    return app
