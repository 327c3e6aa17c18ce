"""The codings' byte work that both cores share: zstd, brotli, ISA-L's gzip, the
random padding, and the compressed-body caches' place in front of them.

zstd and brotli come from their Python bindings (``compression.zstd`` on
Python 3.14, its backport ``backports.zstd`` before; ``brotli``), called the
same way by the pure core and by the compiled one.  Why not a compiled twin
calling libzstd and libbrotlienc directly: the twins must give the same bytes,
and bytes depend on the library build; a second, system copy of each library
could be another version than the binding's.  The bindings already do the
one thing a twin would add, releasing the GIL while they compress (measured
on this machine, two threads on a 110 KB page: zstd 1.79x, brotli 1.9x one
thread's rate).  gzip stays in each core (zlib, pooled deflate states in the
compiled one); :class:`Encoders` puts a core's gzip beside these, and
consults the caches of ``_cache`` before compressing a buffered body.
ISA-L (``GZIP_ENGINE = "isal"``, the optional ``isal`` package) is called
through ``isal.isal_zlib`` the same way by both cores.

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

import hashlib
import os
import secrets
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._cache import digest

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

try:  # the optional extra asok_fast[isal]
    from isal import isal_zlib as _isal_zlib  # type: ignore[import-not-found]
except ImportError:
    _isal_zlib = None

__all__ = [
    "SHARED_MIN_SIZE",
    "BrotliStream",
    "Encoders",
    "IsalGzipStream",
    "ZstdStream",
    "available",
    "brotli_compress",
    "isal_compress",
    "isal_missing",
    "missing",
    "variant",
    "zstd_compress",
]

#: Bodies from this size on are looked up in the shared tier: a smaller one
#: compresses faster than a round trip to a cache server takes.
SHARED_MIN_SIZE = 8192

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


def isal_missing() -> bool:
    return _isal_zlib is None


def _library(coding: str, engine: str) -> str:
    if coding == "gzip":
        if engine == "isal":
            import isal  # type: ignore[import-not-found]

            return f"isal-{isal.__version__}"
        return f"zlib-{zlib.ZLIB_RUNTIME_VERSION}"
    if coding == "zstd":
        return f"zstd-{_zstd.zstd_version}"
    return f"brotli-{_brotli.__version__}"


def variant(coding: str, engine: str, level: int, padded: bool) -> str:
    """What made a coding's bytes, as a cache key names it: library and its
    version, level, and (br) the form that random padding needs."""
    form = "-paddable" if padded and coding == "br" else ""
    return f"{_library(coding, engine)}:{level}{form}"


def available() -> List[Tuple[str, str]]:
    """``(coding, library and version)`` for each coding this install can send."""
    out = [("gzip", f"zlib {zlib.ZLIB_RUNTIME_VERSION}")]
    if _zstd is not None:
        out.append(("zstd", f"zstd {_zstd.zstd_version} ({_zstd.__name__})"))
    if _brotli is not None:
        out.append(("br", f"brotli {_brotli.__version__}"))
    if _isal_zlib is not None:
        out.append(("gzip", f"{_library('gzip', 'isal').replace('-', ' ')} (GZIP_ENGINE = \"isal\")"))
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
    drops it mid-frame.
    """

    __slots__ = ("_compressor", "_level")

    def __init__(self, level: int) -> None:
        self._level = level
        self._compressor: Any = _ZSTD_POOL.take(level)

    def _live(self) -> Any:
        if self._compressor is None:
            raise ValueError("ZstdStream is finished or closed")
        return self._compressor

    def compress(self, chunk: bytes) -> bytes:
        compressor = self._live()
        if not chunk:
            return b""
        return compressor.compress(chunk, _zstd.ZstdCompressor.FLUSH_BLOCK)  # type: ignore[no-any-return]

    def finish(self) -> bytes:
        compressor = self._live()
        self._compressor = None
        tail: bytes = compressor.compress(b"", _zstd.ZstdCompressor.FLUSH_FRAME)
        _ZSTD_POOL.give(self._level, compressor)
        return tail

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

    ``paddable``: the stream opens with its header, byte-aligned by a flush
    before any data, where padding can go.
    """

    __slots__ = ("_compressor", "_prefix")

    def __init__(self, quality: int, paddable: bool = False) -> None:
        self._compressor: Any = _brotli.Compressor(quality=quality)
        self._prefix: bytes = self._compressor.flush() if paddable else b""

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


def _brotli_metadata() -> bytes:
    """A metadata meta-block of 0 to 99 random bytes (RFC 7932 9.2), or nothing."""
    n = _pad_length()
    if n == 0:
        return b""
    # Bits from the lowest: ISLAST 0, MNIBBLES code 3 (metadata), reserved 0,
    # MSKIPBYTES 1, then MSKIPLEN - 1 in 8 bits, zero fill to the byte.
    return bytes((0x16 | ((n - 1) & 3) << 6, (n - 1) >> 2)) + os.urandom(n)


def _brotli_paddable(data: bytes, quality: int) -> bytes:
    """``data`` as a brotli stream that opens with its header, byte-aligned by
    a flush before any data (``_BROTLI_HEAD`` bytes): where padding goes."""
    compressor = _brotli.Compressor(quality=quality)
    return compressor.flush() + compressor.process(data) + compressor.finish()  # type: ignore[no-any-return]


# The length of that opening: the stream header and an empty metadata block,
# the same for every quality at the default window.
_BROTLI_HEAD = len(_brotli.Compressor().flush()) if _brotli is not None else 0


def _pad(coding: str, data: bytes) -> bytes:
    """Compressed bytes (br: its paddable form) with fresh random padding."""
    if coding == "gzip":
        return _pad_gzip(data)
    if coding == "zstd":
        return _zstd_padding() + data
    return data[:_BROTLI_HEAD] + _brotli_metadata() + data[_BROTLI_HEAD:]


class _PaddedStream:
    """A stream compressor whose first bytes out are padded (see _pad)."""

    __slots__ = ("_inner", "_coding")

    def __init__(self, inner: Any, coding: str) -> None:
        self._inner = inner
        self._coding: Optional[str] = coding

    def _out(self, data: bytes) -> bytes:
        if data and self._coding is not None:
            data, self._coding = _pad(self._coding, data), None
        return data

    def compress(self, chunk: bytes) -> bytes:
        return self._out(self._inner.compress(chunk))

    def finish(self) -> bytes:
        return self._out(self._inner.finish())

    def close(self) -> None:
        self._inner.close()


# --- ISA-L (GZIP_ENGINE = "isal") -------------------------------------------------------------


def isal_compress(data: bytes, level: int) -> bytes:
    """One gzip member from ISA-L at ``level`` (0 to 3), window bits 31."""
    return _isal_zlib.compress(data, level, 31)  # type: ignore[no-any-return]


class IsalGzipStream:
    """gzip from ISA-L for a body of unknown length, a sync flush per chunk."""

    __slots__ = ("_compressor",)

    def __init__(self, level: int) -> None:
        self._compressor: Any = _isal_zlib.compressobj(level, _isal_zlib.DEFLATED, 31)

    def _live(self) -> Any:
        if self._compressor is None:
            raise ValueError("IsalGzipStream is finished or closed")
        return self._compressor

    def compress(self, chunk: bytes) -> bytes:
        compressor = self._live()
        if not chunk:
            return b""
        return compressor.compress(chunk) + compressor.flush(_isal_zlib.Z_SYNC_FLUSH)  # type: ignore[no-any-return]

    def finish(self) -> bytes:
        compressor = self._live()
        self._compressor = None
        return compressor.flush()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._compressor = None


# --- one core's codings -----------------------------------------------------------------------


class Encoders:
    """A core's gzip (``gzip_compress(data, level)`` and ``GzipStream(level)``)
    beside the shared zstd, brotli and ISA-L: the one place that maps a
    negotiated coding and the settings (engine, levels, padding, caches) to
    bytes."""

    __slots__ = ("_gzip_compress", "_gzip_stream")

    def __init__(self, gzip_compress: Callable[[bytes, int], bytes], gzip_stream: Callable[[int], Any]) -> None:
        self._gzip_compress = gzip_compress
        self._gzip_stream = gzip_stream

    def encode(self, settings: Any, coding: str, data: bytes) -> bytes:
        """``data`` in ``coding``, unpadded (br: its paddable form when padding is on)."""
        if coding == "gzip":
            if settings.gzip_engine == "isal":
                return isal_compress(data, settings.isal_level)
            return self._gzip_compress(data, settings.gzip_level)
        if coding == "zstd":
            return zstd_compress(data, settings.zstd_level)
        if settings.padding:
            return _brotli_paddable(data, settings.brotli_level)
        return brotli_compress(data, settings.brotli_level)

    def compress(
        self, settings: Any, coding: str, data: bytes, md5: Optional[str] = None, shareable: bool = True
    ) -> bytes:
        """A whole body in ``coding``: from the caches where they hold it, else
        compressed (and offered to them); padded where the settings say.

        ``md5``: the body's MD5 hex digest when the caller has it (the ETag's);
        ``shareable``: false for ``no-store``/``private`` responses, which are
        never written to the shared tier."""
        cache = settings.cache
        if settings.shared_tier is not None and len(data) >= SHARED_MIN_SIZE:
            out = self._shared(settings, coding, data, md5, shareable, cache)
        elif cache is None:
            out = self.encode(settings, coding, data)
        else:
            # Parity: the compiled core's _compress_body does these steps in C.
            found = cache.find(settings.variants[coding], md5 or hashlib.md5(data).hexdigest(), data)
            if type(found) is bytes:
                out = found
            else:
                out = self.encode(settings, coding, data)
                if found is not None:  # seen before: kept from now on
                    cache.store(found, data, out)
        return _pad(coding, out) if settings.padding else out

    def _shared(
        self, settings: Any, coding: str, data: bytes, md5: Optional[str], shareable: bool, cache: Any
    ) -> bytes:
        """compress() for a body the shared tier is consulted for."""
        made_by = settings.variants[coding]
        found = None
        if cache is not None:
            found = cache.find(made_by, md5 or hashlib.md5(data).hexdigest(), data)
            if type(found) is bytes:
                return found  # type: ignore[no-any-return]
        sha = digest(data)
        key = f"asok_fast:{coding}:{made_by}:{sha.hex()}"
        out = settings.shared_tier.get(key)
        if out is None:
            out = self.encode(settings, coding, data)
            if shareable:
                settings.shared_tier.set(key, out)
        if found is not None:
            cache.store(found, data, out, sha)
        return out  # type: ignore[no-any-return]

    def open_stream(self, settings: Any, coding: str) -> Any:
        """The per-response compressor of a stream in ``coding``."""
        if coding == "gzip":
            if settings.gzip_engine == "isal":
                stream: Any = IsalGzipStream(settings.isal_level)
            else:
                stream = self._gzip_stream(settings.gzip_level)
        elif coding == "zstd":
            stream = ZstdStream(settings.zstd_level)
        else:
            stream = BrotliStream(settings.brotli_level, settings.padding)
        return _PaddedStream(stream, coding) if settings.padding else stream
