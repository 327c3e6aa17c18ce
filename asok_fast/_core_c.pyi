"""Type stub of the compiled core: the same API as ``asok_fast._core_py``."""

from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

from ._config import Settings

Header = Tuple[str, str]
Environ = Dict[str, object]

__all__ = [
    "Capture",
    "MiddlewareBase",
    "handle",
    "STREAM_PASS",
    "STREAM_GZIP",
    "STREAM_EMPTY",
    "GzipStream",
    "accepts_gzip",
    "gzip_compress",
    "is_compressible",
    "md5_hex",
    "origin_allowed",
    "parse_if_none_match",
    "preflight",
    "respond",
    "respond_stream",
]

STREAM_PASS: int
STREAM_GZIP: int
STREAM_EMPTY: int

def md5_hex(data: bytes) -> str: ...
def gzip_compress(data: bytes, level: int) -> bytes: ...

class GzipStream:
    def __init__(self, level: int) -> None: ...
    def compress(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...
    def close(self) -> None: ...

def accepts_gzip(accept_encoding: Optional[str]) -> bool: ...
def is_compressible(content_type: Optional[str], extra_types: FrozenSet[str]) -> bool: ...
def parse_if_none_match(value: str) -> Union[str, Tuple[str, ...], None]: ...
def origin_allowed(settings: Settings, origin: Optional[str]) -> bool: ...
def preflight(settings: Settings, environ: Environ) -> List[Header]: ...
def respond(
    settings: Settings, environ: Environ, status: str, headers: List[Header], body: bytes
) -> Tuple[str, List[Header], bytes]: ...
def respond_stream(
    settings: Settings, environ: Environ, status: str, headers: List[Header], may_compress: bool
) -> Tuple[str, List[Header], int]: ...
def zlib_version() -> str: ...
def _crc32(data: bytes, value: int = ..., clmul: bool = ...) -> int: ...

#: Whether setup.py built this module profile-guided (GCC, two passes).
BUILT_WITH_PGO: bool
#: Whether gzip's CRC-32 runs on carry-less multiplication (x86-64 PCLMULQDQ) here.
CRC32_CLMUL: bool

class Capture:
    status: Optional[str]
    headers: Optional[List[Header]]
    exc_info: Any
    written: List[bytes]
    sent: bool
    def __init__(self, server: Callable[..., object]) -> None: ...
    def __call__(self, status: str, headers: List[Header], exc_info: Any = ...) -> Callable[[bytes], None]: ...
    def write(self, data: bytes) -> None: ...
    def send(self, status: str, headers: List[Header]) -> None: ...

class MiddlewareBase:
    app: Any
    _config: Any
    _state: Tuple[int, Any]
    def __call__(self, environ: Environ, start_response: Callable[..., object]) -> Iterable[bytes]: ...

def handle(mw: Any, environ: Environ, start_response: Callable[..., object]) -> Iterable[bytes]: ...
