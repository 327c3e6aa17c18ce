"""The content codings beside gzip, and the random padding: shared by both cores.

zstd and brotli come from their Python bindings (``compression.zstd`` on
Python 3.14, its backport ``backports.zstd`` before; ``brotli``), called the
same way by the pure core and by the compiled one.  Why not a compiled twin
calling libzstd and libbrotlienc directly: the twins must give the same bytes,
and bytes depend on the library build; a second, system copy of each library
could be another version than the binding's.  The bindings already do the
one thing a twin would add, releasing the GIL while they compress (measured
on this machine, two threads on a 110 KB page: zstd 1.79x, brotli 1.9x one
thread's rate).  gzip stays in each core (zlib, pooled deflate states in the
compiled one); :class:`Encoders` puts a core's gzip beside these.

Padding (``COMPRESS_RANDOM_PADDING``, against BREACH-style length oracles,
as Django's ``GZipMiddleware`` does): 0 to 99 random bytes per response,
inside each coding's own format so every decoder skips them:

* gzip: an ``FNAME`` field (RFC 1952 2.3.1) spliced after the 10-byte header;
* zstd: a skippable frame (RFC 8878 3.1.2) before the data frame;
* br: a metadata meta-block (RFC 7932 9.2) after the stream header.  The
  binding cannot write one, but a ``flush()`` before any data leaves the
  stream byte-aligned just after its header (brotli pads with an empty
  metadata block), so a metadata block of our own can follow it.
"""

from __future__ import annotations

import os
import secrets
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

try:  # Python 3.14
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    try:
        from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef]
    except ImportError:  # a broken install: a config naming zstd says so
        _zstd = None

try:
    import brotli as _brotli
except ImportError:  # as above
    _brotli = None

__all__ = [
    "Encoders",
    "available",
    "brotli_compress",
    "missing",
    "zstd_compress",
    "BrotliStream",
    "ZstdStream",
]

#: What to install for each coding whose binding is missing.
_PACKAGES = {"br": "brotli", "zstd": "backports.zstd (Python 3.14 has compression.zstd)"}

# Idle zstd compressors kept per level: about one per thread serving at once.
_ZSTD_POOL_MAX = 8


def missing(coding: str) -> Optional[str]:
    """The package to install for ``coding``, or None when it is usable."""
    if coding == "br" and _brotli is None:
        return _PACKAGES["br"]
    if coding == "zstd" and _zstd is None:
        return _PACKAGES["zstd"]
    return None


def available() -> List[Tuple[str, str]]:
    """``(coding, library and version)`` for each coding this install can send."""
    out = [("gzip", f"zlib {zlib.ZLIB_RUNTIME_VERSION}")]
    if _zstd is not None:
        out.append(("zstd", f"zstd {_zstd.zstd_version} ({_zstd.__name__})"))
    if _brotli is not None:
        out.append(("br", f"brotli {_brotli.__version__}"))
    return out


# --- zstd -------------------------------------------------------------------------------------


class _ZstdPool:
    """Idle ``ZstdCompressor`` objects by level.

    Making one is a fresh zstd context: the module's one-shot ``compress()``
    does that per call and costs 12.5 us on a 1.6 KB JSON body here, against
    3.9 us through a reused compressor.  A compressor serialises its callers
    with a mutex, so each has one owner at a time: taken from here, given back
    when its frame is finished.  ``list.pop``/``append`` are atomic, so no lock;
    after ``fork`` the idle ones are owned by nobody and stay usable.
    """

    __slots__ = ("_idle",)

    def __init__(self) -> None:
        self._idle: Dict[int, List[Any]] = {}

    def take(self, level: int) -> Any:
        idle = self._idle.get(level)
        if idle:
            try:
                return idle.pop()
            except IndexError:  # another thread took the last one meanwhile
                pass
        return _zstd.ZstdCompressor(level=level)

    def give(self, level: int, compressor: Any) -> None:
        idle = self._idle.setdefault(level, [])
        if len(idle) < _ZSTD_POOL_MAX:
            idle.append(compressor)


_ZSTD_POOL = _ZstdPool()


def zstd_compress(data: bytes, level: int) -> bytes:
    """One zstd frame of ``data`` at ``level``, its content size in the header.

    One ``FLUSH_FRAME`` call with all the input lets zstd write the content
    size.  The window stays within 8 MiB (RFC 9659): levels 1 to 19 (the
    range the config accepts) use at most 2**23 in every zstd release, and a
    larger body is written with that window, not as one segment.
    """
    compressor = _ZSTD_POOL.take(level)
    out: bytes = compressor.compress(data, _zstd.ZstdCompressor.FLUSH_FRAME)
    _ZSTD_POOL.give(level, compressor)  # not on error: its state is unknown
    return out


class ZstdStream:
    """zstd for a body of unknown length: a block flushed per chunk.

    ``compress(chunk)`` ends a block, so the client can decode what it has so
    far; ``finish()`` ends the frame and hands the compressor back; ``close()``
    drops it mid-frame.  ``prefix`` comes out before the first byte.
    """

    __slots__ = ("_compressor", "_level", "_prefix")

    def __init__(self, level: int, prefix: bytes = b"") -> None:
        self._level = level
        self._prefix = prefix
        self._compressor: Any = _ZSTD_POOL.take(level)

    def _live(self) -> Any:
        if self._compressor is None:
            raise ValueError("ZstdStream is finished or closed")
        return self._compressor

    def _out(self, data: bytes) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix + data, b""
        return data

    def compress(self, chunk: bytes) -> bytes:
        compressor = self._live()
        if not chunk:
            return b""
        return self._out(compressor.compress(chunk, _zstd.ZstdCompressor.FLUSH_BLOCK))

    def finish(self) -> bytes:
        compressor = self._live()
        self._compressor = None
        tail = compressor.compress(b"", _zstd.ZstdCompressor.FLUSH_FRAME)
        _ZSTD_POOL.give(self._level, compressor)
        return self._out(tail)

    def close(self) -> None:
        self._compressor = None  # mid-frame: never pooled


# --- brotli -----------------------------------------------------------------------------------


def brotli_compress(data: bytes, quality: int) -> bytes:
    """``data`` as one brotli stream at ``quality`` (the default 4 MiB window).

    The binding makes an encoder per call and cannot reuse one after
    ``finish()``; the encoder itself costs about 2.8 us here (a 10-byte body).
    """
    return _brotli.compress(data, quality=quality)  # type: ignore[no-any-return]


class BrotliStream:
    """brotli for a body of unknown length: a flush per chunk (see ZstdStream).

    With ``padded``, the stream opens with its header, byte-aligned by a
    flush, and a metadata block of random length.
    """

    __slots__ = ("_compressor", "_prefix")

    def __init__(self, quality: int, padded: bool = False) -> None:
        self._compressor: Any = _brotli.Compressor(quality=quality)
        self._prefix = _brotli_padding(self._compressor) if padded else b""

    def _live(self) -> Any:
        if self._compressor is None:
            raise ValueError("BrotliStream is finished or closed")
        return self._compressor

    def _out(self, data: bytes) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix + data, b""
        return data

    def compress(self, chunk: bytes) -> bytes:
        compressor = self._live()
        if not chunk:
            return b""
        return self._out(compressor.process(chunk) + compressor.flush())

    def finish(self) -> bytes:
        compressor = self._live()
        self._compressor = None
        return self._out(compressor.finish())

    def close(self) -> None:
        self._compressor = None


# --- padding ----------------------------------------------------------------------------------

# zstd's skippable frames take any magic number from 0x184D2A50 to 0x184D2A5F.
_ZSTD_SKIPPABLE = (0x184D2A50).to_bytes(4, "little")


def _pad_length() -> int:
    return secrets.randbelow(100)  # 0 to 99 bytes, as Django pads gzip


def _pad_gzip(member: bytes) -> bytes:
    """A gzip member (or its first bytes, the 10-byte header included) with an
    ``FNAME`` field of random length; gzip readers skip it."""
    n = _pad_length()
    if n == 0:
        return member
    name = secrets.token_urlsafe(n)[:n].encode("ascii")  # ISO 8859-1, no NUL
    return member[:3] + bytes((member[3] | 0x08,)) + member[4:10] + name + b"\0" + member[10:]


def _zstd_padding() -> bytes:
    n = _pad_length()
    return _ZSTD_SKIPPABLE + n.to_bytes(4, "little") + os.urandom(n)


def _brotli_padding(compressor: Any) -> bytes:
    """The start of a padded brotli stream, from a fresh ``compressor``: its
    header, byte-aligned by a flush, then a metadata meta-block of 0 to 99
    random bytes (RFC 7932 9.2).  The compressor's output follows."""
    head: bytes = compressor.flush()
    n = _pad_length()
    if n == 0:
        return head
    # Bits from the lowest: ISLAST 0, MNIBBLES code 3 (metadata), reserved 0,
    # MSKIPBYTES 1, then MSKIPLEN - 1 in 8 bits, zero fill to the byte.
    return head + bytes((0x16 | ((n - 1) & 3) << 6, (n - 1) >> 2)) + os.urandom(n)


class _PaddedGzip:
    """A gzip stream whose first bytes out carry the random ``FNAME`` field."""

    __slots__ = ("_inner", "_padded")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._padded = False

    def _out(self, data: bytes) -> bytes:
        if data and not self._padded:
            self._padded = True
            return _pad_gzip(data)
        return data

    def compress(self, chunk: bytes) -> bytes:
        return self._out(self._inner.compress(chunk))

    def finish(self) -> bytes:
        return self._out(self._inner.finish())

    def close(self) -> None:
        self._inner.close()


# --- one core's codings -----------------------------------------------------------------------


class Encoders:
    """A core's gzip (``gzip_compress(data, level)`` and ``GzipStream(level)``)
    beside the shared zstd and brotli: the one place that maps a negotiated
    coding and the settings (levels, padding) to bytes."""

    __slots__ = ("_gzip_compress", "_gzip_stream")

    def __init__(self, gzip_compress: Callable[[bytes, int], bytes], gzip_stream: Callable[[int], Any]) -> None:
        self._gzip_compress = gzip_compress
        self._gzip_stream = gzip_stream

    def compress(self, settings: Any, coding: str, data: bytes) -> bytes:
        """A whole body in ``coding`` ("gzip", "br" or "zstd")."""
        padded = settings.padding
        if coding == "gzip":
            out = self._gzip_compress(data, settings.gzip_level)
            return _pad_gzip(out) if padded else out
        if coding == "zstd":
            out = zstd_compress(data, settings.zstd_level)
            return _zstd_padding() + out if padded else out
        if padded:
            compressor = _brotli.Compressor(quality=settings.brotli_level)
            return _brotli_padding(compressor) + compressor.process(data) + compressor.finish()
        return brotli_compress(data, settings.brotli_level)

    def open_stream(self, settings: Any, coding: str) -> Any:
        """The per-response compressor of a stream in ``coding``."""
        padded = settings.padding
        if coding == "gzip":
            stream = self._gzip_stream(settings.gzip_level)
            return _PaddedGzip(stream) if padded else stream
        if coding == "zstd":
            return ZstdStream(settings.zstd_level, _zstd_padding() if padded else b"")
        return BrotliStream(settings.brotli_level, padded)
