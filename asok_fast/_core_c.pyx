"""Compiled core of asok_fast: the Cython twin of ``asok_fast._core_py``.

``_core_py`` is the reference: every name here gives byte-identical results
for the same arguments.  Directives (language_level=3, embedsignature) live in
setup.py only; boundscheck and wraparound keep their defaults (on).

Sections:
  1. C declarations and build-time tunables
  2. Buffer access
  3. MD5 (ETag digests)
  4. zlib: errors, stream lifetime, gzip framing and the deflate driver
  5. zlib: the pool of idle deflate states
  6. zlib: one-shot gzip (gzip_compress)
  7. zlib: streaming gzip (GzipStream)
  8. zlib: version
  9. Request-header parsing and per-response decisions
 10. The WSGI entry (MiddlewareBase, handle, Capture)
"""

# =============================================================================
# 1. C declarations and build-time tunables
# =============================================================================

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE, _PyBytes_Resize
from cpython.number cimport PyNumber_Index
from cpython.object cimport PyObject, PyTypeObject
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from cpython.ref cimport Py_DECREF, Py_XDECREF
from libc.limits cimport UINT_MAX
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from asok_fast._zlib cimport (
    Z_BUF_ERROR,
    Z_DEFAULT_STRATEGY,
    Z_DEFLATED,
    Z_FINISH,
    Z_MEM_ERROR,
    Z_NO_FLUSH,
    Z_OK,
    Z_STREAM_END,
    Z_STREAM_ERROR,
    Z_SYNC_FLUSH,
    Z_VERSION_ERROR,
    Bytef,
    deflate,
    deflateBound,
    deflateEnd,
    deflateInit2,
    deflateReset,
    uLong,
    z_stream,
    zlibVersion,
)

import os
import zlib as _pyzlib

cdef extern from "_md5.h" nogil:
    void asokfast_md5(const unsigned char* data, size_t length, unsigned char* out)
    void asokfast_md5_hex(const unsigned char* data, size_t length, char* out)

cdef extern from "_crc32.h" nogil:
    uint32_t asokfast_crc32(uint32_t crc, const unsigned char* data, size_t length)
    uint32_t asokfast_crc32_with(uint32_t crc, const unsigned char* data, size_t length, int use_clmul)
    int asokfast_crc32_init()

cdef extern from "Python.h":
    # The raw form, so that the result can go through _PyBytes_Resize.
    PyObject* _bytes_alloc "PyBytes_FromStringAndSize"(const char* v, Py_ssize_t n) except NULL
    const Py_ssize_t PY_SSIZE_T_MAX

cdef extern from *:
    """
    /* Tunables.  Each may be overridden at build time, e.g.
     *   CFLAGS=-DASOKFAST_MD5_NOGIL_MIN=0
     * which is how they were measured (builds that always / never release
     * the GIL, compared on 2 cores); the defaults are the measured choices.
     *   ASOKFAST_MD5_NOGIL_MIN      hash with the GIL released from this many
     *       bytes on.  Two threads hashing 2 KiB bodies: +35% calls/s with
     *       release; 1 KiB: -8%..+17% (noise); release costs ~0.1 us a call.
     *   ASOKFAST_DEFLATE_NOGIL_MIN  same for deflate, in input bytes.  A
     *       deflate call costs >= 7 us, so release is free; two threads at
     *       1 KiB: +9%..+45%, 2 KiB: +82%; below 1 KiB gains were mixed.
     *   ASOKFAST_POOL_MAX           idle deflate states kept per level.
     */
    #ifndef ASOKFAST_MD5_NOGIL_MIN
    #define ASOKFAST_MD5_NOGIL_MIN 2048
    #endif
    #ifndef ASOKFAST_DEFLATE_NOGIL_MIN
    #define ASOKFAST_DEFLATE_NOGIL_MIN 1024
    #endif
    #ifndef ASOKFAST_POOL_MAX
    #define ASOKFAST_POOL_MAX 8
    #endif
    /* Set by setup.py on the second pass of a profile-guided build. */
    #ifndef ASOKFAST_PGO
    #define ASOKFAST_PGO 0
    #endif
    #define ASOKFAST_POOL_SLOTS (ASOKFAST_POOL_MAX > 0 ? ASOKFAST_POOL_MAX : 1)
    """
    const unsigned long long ASOKFAST_MD5_NOGIL_MIN
    const unsigned long long ASOKFAST_DEFLATE_NOGIL_MIN
    const int ASOKFAST_PGO
    enum:
        ASOKFAST_POOL_MAX
        ASOKFAST_POOL_SLOTS

# Parity: _core_py.gzip_compress / GzipStream use compressobj(level,
# DEFLATED, 31): a 32 KiB window (15) with zlib's gzip wrapper (+16), memLevel
# 8 (zlib's DEF_MEM_LEVEL).  The states here deflate raw (-15: the same
# window, no wrapper) and the wrapper is written around their output, with
# the header zlib itself writes (learned at import, section 4) and the
# trailer it would write (CRC-32 and length, little-endian).  A deflate
# stream does not depend on its wrapper, so the bytes are the same; the CRC is
# _crc32.h's instead of the one deflate computes as it reads.
cdef enum:
    _GZIP_WBITS = 31        # MAX_WBITS (15) + 16: only to learn zlib's header
    _RAW_WBITS = -15
    _MEM_LEVEL = 8
    _LEVELS = 10            # pool slots indexed by level (1..9; 0 unused)
    _GZIP_HEAD_LEN = 10     # RFC 1952 header without optional fields
    _GZIP_TAIL_LEN = 8      # CRC-32, ISIZE

# Exposed for tests and measurements only.
_MD5_NOGIL_MIN = ASOKFAST_MD5_NOGIL_MIN
_DEFLATE_NOGIL_MIN = ASOKFAST_DEFLATE_NOGIL_MIN
_POOL_MAX = ASOKFAST_POOL_MAX
#: Whether this build was profile-guided (setup.py; ``asok-fast info`` shows it).
BUILT_WITH_PGO = bool(ASOKFAST_PGO)
#: Whether gzip's CRC-32 runs on carry-less multiplication (_crc32.h) here.
CRC32_CLMUL = bool(asokfast_crc32_init())

# The same public names as _core_py (tests/test_selector.py checks).
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


# =============================================================================
# 2. Buffer access
# =============================================================================
# bytes (the common case) is read in place; any other C-contiguous buffer
# (bytearray, memoryview, ...) goes through the buffer protocol, which also
# pins it (a bytearray cannot be resized while exported), so the GIL may be
# released over it.  str and other non-buffers raise TypeError, as hashlib
# and zlib do.

cdef inline int _get_buffer(object data, Py_buffer* view,
                            const unsigned char** ptr, size_t* length) except -1:
    """Point at data's bytes.  Returns 1 when view must be released."""
    if PyBytes_Check(data):
        ptr[0] = <const unsigned char*>PyBytes_AS_STRING(data)
        length[0] = <size_t>PyBytes_GET_SIZE(data)
        return 0
    PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    ptr[0] = <const unsigned char*>view.buf
    length[0] = <size_t>view.len
    return 1


# =============================================================================
# 3. MD5 (ETag digests)
# =============================================================================
# The digest itself is C (_md5.h, RFC 1321).  Releasing the GIL costs more
# than it saves on small bodies; from ASOKFAST_MD5_NOGIL_MIN on other threads
# run while we hash (measured, see section 1; CPython's hashlib draws the
# line at 2 KiB too).

cdef void _md5_hex_into(const unsigned char* data, size_t length, char* out) noexcept nogil:
    """Write the 32 lower-case hex digits of MD5(data[:length]) to out[0:32]."""
    asokfast_md5_hex(data, length, out)


cdef void _md5_hex_auto(const unsigned char* data, size_t length, char* out) noexcept:
    """_md5_hex_into for a caller holding the GIL; releases it on large input.

    data must stay valid meanwhile (a bytes object we hold, or a buffer view).
    """
    if length >= ASOKFAST_MD5_NOGIL_MIN:
        with nogil:
            _md5_hex_into(data, length, out)
    else:
        _md5_hex_into(data, length, out)


def md5_hex(data):
    """32 lower-case hex digits of the MD5 of data (bytes or a buffer)."""
    cdef char out[32]
    cdef Py_buffer view
    cdef const unsigned char* ptr
    cdef size_t length
    if isinstance(data, str):
        # Parity: hashlib's message (the Python twin hashes with hashlib).
        raise TypeError("Strings must be encoded before hashing")
    if _get_buffer(data, &view, &ptr, &length):
        try:
            _md5_hex_auto(ptr, length, out)
        finally:
            PyBuffer_Release(&view)
    else:
        _md5_hex_auto(ptr, length, out)
    return out[:32].decode("ascii")


# =============================================================================
# 4. zlib: errors, stream lifetime, gzip framing and the deflate driver
# =============================================================================

cdef int _check_level(int level) except -1:
    """The pool key for a compression level (1 to 9; -1 means 6).

    Level 0 is refused: stored blocks are cut to the output room deflate is
    given, so their bytes depend on buffer sizes and could not match the
    Python twin's.
    """
    if level == -1:             # Z_DEFAULT_COMPRESSION is level 6
        return 6
    if 1 <= level <= 9:
        return level
    raise ValueError(f"invalid gzip compression level {level}: expected 1 to 9")


cdef int _level_arg(object level) except -1:
    """Read a level argument as zlib's int converter does (__index__: an int
    or bool, never a float -- TypeError, as compressobj raises), then check it.
    """
    return _check_level(PyNumber_Index(level))


cdef object _zlib_error(z_stream* zs, int rc, str action):
    """The exception compressobj would raise for rc (zlib.error, MemoryError)."""
    cdef const char* msg = NULL
    if rc == Z_MEM_ERROR:
        return MemoryError(f"Out of memory while {action}")
    if rc == Z_VERSION_ERROR:
        return _pyzlib.error(f"Error {rc} {action}: library version mismatch")
    if zs != NULL:
        msg = zs.msg
    if msg != NULL:
        text = (<bytes>msg).decode("latin-1")
    elif rc == Z_STREAM_ERROR:
        text = "inconsistent stream state"
    elif rc == Z_BUF_ERROR:
        text = "incomplete or truncated stream"
    else:
        text = "unknown error"
    return _pyzlib.error(f"Error {rc} {action}: {text}")


cdef z_stream* _zs_new(int level) except NULL:
    """A fresh raw deflate state on the heap (the gzip wrapper is ours).

    Heap, not an object field: zlib's internal state keeps a pointer back to
    its z_stream (deflateStateCheck compares them), so the struct must never
    move while the state lives, including while it waits in the pool.
    """
    cdef z_stream* zs = <z_stream*>malloc(sizeof(z_stream))
    cdef int rc
    if zs == NULL:
        raise MemoryError()
    memset(zs, 0, sizeof(z_stream))     # zalloc, zfree, opaque = Z_NULL
    rc = deflateInit2(zs, level, Z_DEFLATED, _RAW_WBITS, _MEM_LEVEL, Z_DEFAULT_STRATEGY)
    if rc != Z_OK:
        exc = _zlib_error(zs, rc, "while creating compression object")
        free(zs)
        raise exc
    return zs


cdef void _zs_free(z_stream* zs) noexcept nogil:
    """End a deflate state and free its struct; the one place states die."""
    deflateEnd(zs)          # Z_DATA_ERROR for an unfinished stream: still freed
    free(zs)


# The gzip header zlib writes at each level (its XFL byte follows the level,
# its OS byte how zlib was built), learned from zlib itself at import: the
# first ten bytes of an empty member made with its gzip wrapper.
cdef unsigned char _GZIP_HEAD[_LEVELS][_GZIP_HEAD_LEN]


cdef int _learn_gzip_heads() except -1:
    """Fill _GZIP_HEAD, and check on an empty member that zlib's gzip output is
    that header, the raw stream, and a zero CRC and length."""
    cdef z_stream zs
    cdef unsigned char wrapped[64]
    cdef unsigned char raw[64]
    cdef size_t n_wrapped = 0, n_raw = 0
    cdef int level, wbits, rc
    for level in range(1, _LEVELS):
        for wbits in (_GZIP_WBITS, _RAW_WBITS):
            memset(&zs, 0, sizeof(z_stream))
            rc = deflateInit2(&zs, level, Z_DEFLATED, wbits, _MEM_LEVEL, Z_DEFAULT_STRATEGY)
            if rc != Z_OK:
                raise _zlib_error(&zs, rc, "while creating compression object")
            zs.next_out = <Bytef*>(&wrapped[0] if wbits == _GZIP_WBITS else &raw[0])
            zs.avail_out = 64
            rc = deflate(&zs, Z_FINISH)
            deflateEnd(&zs)
            if rc != Z_STREAM_END:
                raise _zlib_error(&zs, rc, "while finishing compression")
            if wbits == _GZIP_WBITS:
                n_wrapped = 64 - zs.avail_out
            else:
                n_raw = 64 - zs.avail_out
        if (
            n_wrapped != _GZIP_HEAD_LEN + n_raw + _GZIP_TAIL_LEN
            or wrapped[0] != 0x1F or wrapped[1] != 0x8B or wrapped[2] != 8 or wrapped[3] != 0
            or memcmp(wrapped + _GZIP_HEAD_LEN, raw, n_raw) != 0
            or any([wrapped[_GZIP_HEAD_LEN + n_raw + i] for i in range(_GZIP_TAIL_LEN)])
        ):
            version = (<bytes>zlibVersion()).decode("ascii", "replace")
            raise ImportError(f"zlib {version} frames gzip in a way asok_fast does not know")
        memcpy(_GZIP_HEAD[level], wrapped, _GZIP_HEAD_LEN)
    return 0


_learn_gzip_heads()


cdef inline int _crc_then_deflate(z_stream* zs, int mode, uint32_t* crc,
                                  const unsigned char* fresh, size_t fresh_len) noexcept nogil:
    if fresh_len:
        crc[0] = asokfast_crc32(crc[0], fresh, fresh_len)
    return deflate(zs, mode)


cdef inline int _deflate_call(z_stream* zs, int mode, bint release, uint32_t* crc,
                              const unsigned char* fresh, size_t fresh_len) noexcept:
    """deflate(zs, mode), after taking fresh[:fresh_len] (the input just
    handed to zs, if any) into the CRC at crc; both without the GIL when
    release."""
    cdef int rc
    if release:
        with nogil:
            rc = _crc_then_deflate(zs, mode, crc, fresh, fresh_len)
    else:
        rc = _crc_then_deflate(zs, mode, crc, fresh, fresh_len)
    return rc


cdef inline void _put_le32(char* p, uint32_t v) noexcept:
    p[0] = <char>(v & 0xFF)
    p[1] = <char>((v >> 8) & 0xFF)
    p[2] = <char>((v >> 16) & 0xFF)
    p[3] = <char>(v >> 24)


def _crc32(data, value=0, clmul=True):
    """``zlib.crc32(data, value)``, computed as the gzip trailer's is;
    ``clmul=False`` takes zlib's own code for every byte (tests compare both)."""
    cdef Py_buffer view
    cdef const unsigned char* ptr
    cdef size_t length
    cdef uint32_t crc = <uint32_t>(value & 0xFFFFFFFF)
    cdef int use_clmul = 1 if clmul else 0
    if _get_buffer(data, &view, &ptr, &length):
        try:
            crc = asokfast_crc32_with(crc, ptr, length, use_clmul)
        finally:
            PyBuffer_Release(&view)
    else:
        crc = asokfast_crc32_with(crc, ptr, length, use_clmul)
    return crc


cdef size_t _out_bound(z_stream* zs, size_t length) noexcept:
    """Output room for length more input bytes, deflateBound where it applies."""
    if length <= UINT_MAX:          # fits uLong everywhere (32-bit on Windows)
        return <size_t>deflateBound(zs, <uLong>length)
    return length + (length >> 12) + (length >> 14) + (length >> 25) + 64


# Output buffers up to this size start at deflateBound (one deflate call).
cdef size_t _OUT_START_MAX = 64 * 1024


cdef bytes _deflate_out(z_stream* zs, const unsigned char* src, size_t length,
                        bint feed, int flush, int head, uint32_t* crc):
    """Run deflate over src[:length]; return what it writes, as one bytes,
    framed as part of a gzip member.

    Framing (the states deflate raw): ``head`` a level (1-9) puts that level's
    gzip header first (the start of a member), 0 none; the running CRC-32 at
    ``crc`` takes in the input; flush Z_FINISH ends the member with its
    trailer, that CRC and zs.total_in (the member's length) mod 2**32.

    feed true (one chunk of a stream): the calls compressobj makes for
    ``compress(data) + flush(flush)``: deflate(Z_NO_FLUSH) until the input is
    consumed, then deflate(flush) until it leaves output room unused.
    feed false, with input (a whole body): deflate(flush) with all the input
    at once -- for a fresh stream, flush Z_FINISH and a deflateBound-sized
    buffer this is ONE call returning Z_STREAM_END.  deflate's output does not
    depend on how input and output room are split across calls at levels
    1-9 (its blocks end where its symbol buffer fills), so the bytes equal
    compressobj's; tests check every level.  Input over 4 GiB goes through in
    pieces (avail_in is 32-bit), all but the last with Z_NO_FLUSH.
    feed false, no input: just deflate(flush) (compressobj.flush()).

    The GIL is released around each deflate call when length is at least
    ASOKFAST_DEFLATE_NOGIL_MIN; src must stay valid meanwhile.  On error the
    stream is in an unknown state: the caller frees it, never pools it.
    """
    cdef PyObject* out = NULL
    cdef bytes result
    cdef char* buf
    cdef size_t cap, used = 0, left = length, piece, room, grow, fresh_len = 0
    cdef const unsigned char* fresh = NULL
    cdef int rc = Z_OK, mode
    cdef bint release = length >= ASOKFAST_DEFLATE_NOGIL_MIN
    cdef bint flushing = False

    # Sync flush marker, block header bits already pending: a little slack
    # beyond the bound keeps a chunk to one pass.
    cap = _out_bound(zs, length) + (16 if feed or length == 0 else 0)
    cap += (_GZIP_HEAD_LEN if head else 0) + (_GZIP_TAIL_LEN if flush == Z_FINISH else 0)
    if cap > _OUT_START_MAX:
        # A large body: start at a quarter of it (text compresses to less)
        # and grow if it does not; a bound-sized buffer would be a fresh
        # mapping from the system on every call, its pages faulted in, for
        # output that then shrinks to a fraction of it.
        cap = max(_OUT_START_MAX, length >> 2)
    if cap > <size_t>PY_SSIZE_T_MAX:
        raise OverflowError("input too large to compress")
    out = _bytes_alloc(NULL, <Py_ssize_t>cap)
    try:
        buf = PyBytes_AS_STRING(<object>out)
        if head:
            memcpy(buf, _GZIP_HEAD[head], _GZIP_HEAD_LEN)
            used = _GZIP_HEAD_LEN
        zs.next_in = NULL
        zs.avail_in = 0
        while True:
            if zs.avail_in == 0 and left:
                piece = left if left <= UINT_MAX else UINT_MAX
                zs.next_in = <Bytef*>src    # zlib never writes through next_in
                zs.avail_in = <unsigned int>piece
                fresh = src
                fresh_len = piece
                src += piece
                left -= piece
            if used == cap:
                grow = (cap >> 1) + 1024
                if cap + grow > <size_t>PY_SSIZE_T_MAX:
                    raise OverflowError("compressed output too large")
                _PyBytes_Resize(&out, <Py_ssize_t>(cap + grow))
                buf = PyBytes_AS_STRING(<object>out)
                cap += grow
            if flushing:
                mode = flush
            elif not feed and left == 0:
                mode = flush
                flushing = True
            else:
                mode = Z_NO_FLUSH
            room = cap - used
            if room > UINT_MAX:
                room = UINT_MAX
            zs.next_out = <Bytef*>(buf + used)
            zs.avail_out = <unsigned int>room
            rc = _deflate_call(zs, mode, release, crc, fresh, fresh_len)
            fresh_len = 0
            used += room - zs.avail_out
            # Z_BUF_ERROR only says no progress was possible (compressobj
            # ignores it too); anything else negative is a real failure.
            if rc < 0 and rc != Z_BUF_ERROR:
                raise _zlib_error(zs, rc, "while compressing data" if mode == Z_NO_FLUSH
                                  else "while flushing")
            if rc == Z_STREAM_END:
                break
            if zs.avail_out == 0:
                continue            # output full: same call again, more room
            if mode != Z_NO_FLUSH:
                break               # the flush is complete
            if zs.avail_in:
                # Room left yet input unread: deflate made no progress.
                raise _zlib_error(zs, Z_BUF_ERROR, "while compressing data")
            if left:
                continue            # next input piece
            flushing = True         # feed: input consumed, now flush
        if flush == Z_FINISH:
            if rc != Z_STREAM_END:
                raise _zlib_error(zs, rc, "while finishing compression")
            if cap - used < _GZIP_TAIL_LEN:
                _PyBytes_Resize(&out, <Py_ssize_t>(used + _GZIP_TAIL_LEN))
                buf = PyBytes_AS_STRING(<object>out)
                cap = used + _GZIP_TAIL_LEN
            _put_le32(buf + used, crc[0])
            _put_le32(buf + used + 4, <uint32_t>(zs.total_in & 0xFFFFFFFFu))
            used += _GZIP_TAIL_LEN
        if used != cap:
            _PyBytes_Resize(&out, <Py_ssize_t>used)
        result = <bytes>out
        Py_DECREF(result)           # hand our reference over to result
        out = NULL
        return result
    except BaseException:
        Py_XDECREF(out)             # NULL if _PyBytes_Resize failed (it freed it)
        raise


# =============================================================================
# 5. zlib: the pool of idle deflate states
# =============================================================================
# Why a pool: deflateInit2 allocates ~270 KB (window, hash chains, pending
# buffer) and deflateEnd frees it.  When those blocks sit at the top of the
# heap glibc trims them, and the next response faults the pages in again:
# measured, a fresh state per response cost 67-79 us and 18 page faults for
# a 100 B or 1.4 KB body, against 8.5 us and 20 us pooled (0 faults) -- the
# state costs more than the compression.  Whether trimming happens depends on
# the heap layout, so without the pool the cost comes and goes.
# deflateReset keeps the memory and gives a state whose output equals a
# fresh one's (zlib's contract; tests check it over many cycles).
#
# When to reset: in take(), just before the state is used, not in give().
# deflateReset zeroes the 64 KiB hash head table, and deflate then reads and
# writes it at random offsets (about one per input byte).  Zeroed right
# before use, the table is in the core's caches when those accesses come;
# zeroed at the end of the previous response, a server's own work in between
# (sockets, parsing, the app) evicts it first.  Measured on W1's 1.4 KB body
# with 1 MiB of other memory touched between responses: 16.3 -> 15.9 us per
# compression (no difference when nothing runs in between).
#
# Rules: at most ASOKFAST_POOL_MAX idle states per level (memory stays
# bounded); a state is in the pool or owned by exactly one user; a pooled
# state may be finished or abandoned mid-stream, and take() hands it out only
# after deflateReset accepted it (else it is freed and a new one made); the
# lock guards push/pop only.  Pool updates never release the GIL and this
# module does not declare free-threading support, so after fork() (taken with
# the GIL held) the arrays are consistent: the child frees the idle states
# and makes a new lock.

cdef class _DeflatePool:
    cdef PyThread_type_lock lock
    cdef z_stream* idle[_LEVELS][ASOKFAST_POOL_SLOTS]
    cdef int count[_LEVELS]

    def __cinit__(self):
        memset(self.count, 0, sizeof(self.count))
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError("cannot allocate the deflate pool lock")

    def __dealloc__(self):
        self._drop_idle()
        if self.lock != NULL:
            PyThread_free_lock(self.lock)
            self.lock = NULL

    cdef void _drop_idle(self) noexcept:
        cdef int level, i
        for level in range(_LEVELS):
            for i in range(self.count[level]):
                _zs_free(self.idle[level][i])
            self.count[level] = 0

    cdef z_stream* take(self, int level) except NULL:
        """A state for level, reset and ready: the caller owns it."""
        cdef z_stream* zs = NULL
        PyThread_acquire_lock(self.lock, WAIT_LOCK)
        if self.count[level] > 0:
            self.count[level] -= 1
            zs = self.idle[level][self.count[level]]
        PyThread_release_lock(self.lock)
        if zs != NULL:
            if deflateReset(zs) == Z_OK:
                return zs
            _zs_free(zs)  # a state zlib no longer accepts: never reused
        return _zs_new(level)

    cdef void give(self, z_stream* zs, int level) noexcept:
        """Take back a state its owner is done with (finished or abandoned);
        freed when the pool for its level is full.  take() resets it."""
        cdef bint kept = False
        PyThread_acquire_lock(self.lock, WAIT_LOCK)
        if self.count[level] < ASOKFAST_POOL_MAX:
            self.idle[level][self.count[level]] = zs
            self.count[level] += 1
            kept = True
        PyThread_release_lock(self.lock)
        if not kept:
            _zs_free(zs)

    cdef void after_fork_in_child(self) noexcept:
        # The old lock is dropped, not freed: freeing a lock that some thread
        # of the parent might have held is undefined, and a lock is small.
        cdef PyThread_type_lock fresh = PyThread_allocate_lock()
        self._drop_idle()
        if fresh != NULL:
            self.lock = fresh
        # else: keep the old one; it is free (see above) and still usable.

    cdef tuple counts(self):
        return tuple([self.count[i] for i in range(_LEVELS)])


cdef _DeflatePool _POOL = _DeflatePool()


# Module teardown may set _POOL to None while objects still run code; cdef
# method calls do not check for None, so every use goes through these.
cdef inline z_stream* _pool_take(int level) except NULL:
    if _POOL is None:
        return _zs_new(level)
    return _POOL.take(level)


cdef inline void _pool_give(z_stream* zs, int level) noexcept:
    if _POOL is None:
        _zs_free(zs)
    else:
        _POOL.give(zs, level)


def _after_fork_in_child():
    if _POOL is not None:
        _POOL.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _pool_idle():
    """Idle pooled states per level, indexed 0..9 (for tests)."""
    return _POOL.counts() if _POOL is not None else ()


# =============================================================================
# 6. zlib: one-shot gzip
# =============================================================================

cdef bytes _gzip_compress_ptr(const unsigned char* data, size_t length, int level):
    """gzip member of data[:length] at level, with a pooled state.

    GIL released during deflate for large inputs: data must stay valid.
    """
    cdef int key = _check_level(level)
    cdef z_stream* zs = _pool_take(key)
    cdef bytes out
    cdef uint32_t crc = 0
    try:
        out = _deflate_out(zs, data, length, False, Z_FINISH, key, &crc)
    except BaseException:
        _zs_free(zs)
        raise
    _pool_give(zs, key)
    return out


def gzip_compress(data, level):
    """data as one gzip member, byte-identical to
    ``c = zlib.compressobj(level, zlib.DEFLATED, 31); c.compress(data) + c.flush()``.
    """
    cdef Py_buffer view
    cdef const unsigned char* ptr
    cdef size_t length
    cdef int key = _level_arg(level)
    if _get_buffer(data, &view, &ptr, &length):
        try:
            return _gzip_compress_ptr(ptr, length, key)
        finally:
            PyBuffer_Release(&view)
    return _gzip_compress_ptr(ptr, length, key)


# =============================================================================
# 7. zlib: streaming gzip
# =============================================================================

cdef class GzipStream:
    """Gzip for a body of unknown length, one sync-flushed block per chunk.

    Twin of _core_py.GzipStream: compress(chunk) equals
    ``cobj.compress(chunk) + cobj.flush(zlib.Z_SYNC_FLUSH)`` and finish()
    equals ``cobj.flush()`` on ``zlib.compressobj(level, zlib.DEFLATED, 31)``;
    an empty chunk gives b"" and leaves zlib alone.  finish() returns the state
    to the pool; close() gives it up unfinished (idempotent).  Afterwards
    compress() and finish() raise ValueError.
    """
    cdef z_stream* _zs      # owned; NULL once finished or closed
    cdef int _level
    cdef bint _started      # the gzip header is out
    cdef uint32_t _crc      # CRC-32 of the input so far
    cdef bint _busy         # a call is running with the GIL released
    cdef bint _close_pending

    def __cinit__(self, level):
        self._zs = NULL
        self._busy = False
        self._close_pending = False
        self._started = False
        self._crc = 0
        self._level = _level_arg(level)
        self._zs = _pool_take(self._level)

    def __dealloc__(self):
        # No pool here (module globals may be gone at shutdown): end it.
        if self._zs != NULL:
            _zs_free(self._zs)
            self._zs = NULL

    cdef int _enter(self) except -1:
        if self._zs == NULL:
            raise ValueError("GzipStream is finished or closed")
        if self._busy:
            raise RuntimeError("GzipStream is in use by another thread")
        self._busy = True
        return 0

    cdef void _leave(self) noexcept:
        self._busy = False
        if self._close_pending:
            self._close_pending = False
            self._release_state()

    cdef void _release_state(self) noexcept:
        cdef z_stream* zs = self._zs
        if zs != NULL:
            self._zs = NULL
            _pool_give(zs, self._level)

    cdef void _discard_state(self) noexcept:
        cdef z_stream* zs = self._zs
        if zs != NULL:
            self._zs = NULL
            _zs_free(zs)

    cdef bytes _compress_ptr(self, const unsigned char* data, size_t length):
        """compress() on a pointer: data must stay valid during the call."""
        cdef bytes out
        if self._zs == NULL:
            raise ValueError("GzipStream is finished or closed")
        if length == 0:
            # Parity with _core_py: nothing in, nothing out (compressobj
            # would emit an empty stored block).
            return b""
        self._enter()
        try:
            out = _deflate_out(self._zs, data, length, True, Z_SYNC_FLUSH,
                               0 if self._started else self._level, &self._crc)
        except BaseException:
            self._busy = False
            self._close_pending = False
            self._discard_state()       # unknown state: never pooled
            raise
        self._started = True
        self._leave()
        return out

    def compress(self, chunk):
        """Compress chunk and sync-flush it, so the client can decode it now."""
        cdef Py_buffer view
        cdef const unsigned char* ptr
        cdef size_t length
        if self._zs == NULL:
            raise ValueError("GzipStream is finished or closed")
        if not chunk:
            # Parity with _core_py, which returns b"" for any empty (falsy)
            # chunk before looking at its type.
            return b""
        if _get_buffer(chunk, &view, &ptr, &length):
            try:
                return self._compress_ptr(ptr, length)
            finally:
                PyBuffer_Release(&view)
        return self._compress_ptr(ptr, length)

    def finish(self):
        """The end of the gzip member (final block and trailer)."""
        cdef bytes out
        self._enter()
        try:
            out = _deflate_out(self._zs, NULL, 0, False, Z_FINISH,
                               0 if self._started else self._level, &self._crc)
        except BaseException:
            self._busy = False
            self._close_pending = False
            self._discard_state()
            raise
        self._busy = False
        self._close_pending = False
        self._release_state()           # finished cleanly: back to the pool
        return out

    def close(self):
        """Give the state up without finishing; safe to call again."""
        if self._busy:
            # Another thread is compressing with the GIL released: it hands
            # the state back when its call returns.
            self._close_pending = True
            return
        self._release_state()


# =============================================================================
# 8. zlib: version
# =============================================================================

def zlib_version():
    """Version of the libz loaded at run time (compare zlib.ZLIB_RUNTIME_VERSION)."""
    return (<bytes>zlibVersion()).decode("ascii")


# =============================================================================
# 9. Request-header parsing and per-response decisions.
#
# Twin of asok_fast/_core_py.py: every function here must give the same result
# as the one of the same name there (tests/test_parity.py checks).  Request
# headers are scanned as raw bytes: a str that is not pure ASCII counts as
# absent or unmatched in both twins, so an ASCII str's one-byte buffer
# (PyUnicode_DATA) is all the C code ever reads.  App header values that are
# not ASCII take the pure twin's code path, so no corner can diverge.
# =============================================================================

from cpython.unicode cimport PyUnicode_GET_LENGTH
from cpython.dict cimport PyDict_GetItemWithError
from cpython.list cimport PyList_GET_SIZE, PyList_GetSlice
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from libc.string cimport memcmp

from asok_fast._config import CORS_ANY as _PY_CORS_ANY, CORS_LIST as _PY_CORS_LIST, CORS_OFF as _PY_CORS_OFF
from asok_fast._httpdate import parse_http_date as _parse_http_date
from asok_fast import _core_py as _py

cimport cython
from cpython.unicode cimport PyUnicode_DecodeASCII

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    str PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)

STREAM_PASS = 0
STREAM_GZIP = 1
STREAM_EMPTY = 2
STAR = "*"

cdef int CORS_OFF = _PY_CORS_OFF
cdef int CORS_ANY = _PY_CORS_ANY
cdef int CORS_LIST = _PY_CORS_LIST

# RFC 9110 5.6.2 tchar, as a 256-entry table built at import.
cdef unsigned char _TCHAR_TABLE[256]


cdef void _init_tables() noexcept:
    cdef int c
    for c in range(256):
        _TCHAR_TABLE[c] = 0
    for c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        _TCHAR_TABLE[c] = 1


_init_tables()


cdef inline unsigned char _lower(unsigned char c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint _is_ows(unsigned char c) noexcept nogil:
    return c == 32 or c == 9


cdef inline bint _ieq(const unsigned char* p, Py_ssize_t n, const char* lit, Py_ssize_t m) noexcept nogil:
    """Case-insensitive ASCII compare of p[:n] with a lower-case literal."""
    cdef Py_ssize_t i
    if n != m:
        return False
    for i in range(n):
        if _lower(p[i]) != <unsigned char>lit[i]:
            return False
    return True


cdef inline bint _str_eq(object s, const char* lit, Py_ssize_t m) except -1:
    """``s == lit`` for an ASCII literal: in place for an exact str, by ``==``
    otherwise (a str subclass compares as the twin compares it)."""
    cdef const char* p
    cdef Py_ssize_t i
    if type(s) is str:
        if not PyUnicode_IS_ASCII(s) or PyUnicode_GET_LENGTH(s) != m:
            return False
        p = <const char*>PyUnicode_DATA(s)
        for i in range(m):  # a few bytes: no call to memcmp
            if p[i] != lit[i]:
                return False
        return True
    if s is None:
        return False
    return s == (<bytes>lit[:m]).decode("ascii")


cdef inline const unsigned char* _ascii(object s, Py_ssize_t* n):
    """The one-byte buffer of an ASCII str, or NULL (not a str / not ASCII)."""
    if not isinstance(s, str) or not PyUnicode_IS_ASCII(s):
        return NULL
    n[0] = PyUnicode_GET_LENGTH(s)
    return <const unsigned char*>PyUnicode_DATA(s)


cdef int _qvalue(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """An RFC 9110 qvalue in thousandths, -1 when not one (parity: _core_py._qvalue)."""
    cdef Py_ssize_t i
    cdef int q = 0
    if n == 0 or n > 5 or (p[0] != 48 and p[0] != 49):
        return -1
    if n == 1:
        return 1000 if p[0] == 49 else 0
    if p[1] != 46:
        return -1
    for i in range(2, n):
        if not (48 <= p[i] <= 57):
            return -1
    if p[0] == 49:
        for i in range(2, n):
            if p[i] != 48:
                return -1
        return 1000
    for i in range(2, 5):
        q = q * 10 + ((p[i] - 48) if i < n else 0)
    return q


cdef bint _accepts_gzip(object value):
    cdef Py_ssize_t n = 0, i, start, end, a, b, semi, eq
    cdef const unsigned char* p = _ascii(value, &n)
    cdef int explicit = -1, star = -1, q
    if p == NULL or n == 0:
        return False
    start = 0
    while start <= n:
        end = start
        while end < n and p[end] != 44:  # ','
            end += 1
        # coding = element[:';'] stripped
        semi = start
        while semi < end and p[semi] != 59:  # ';'
            semi += 1
        a = start
        b = semi
        while a < b and _is_ows(p[a]):
            a += 1
        while b > a and _is_ows(p[b - 1]):
            b -= 1
        if a < b:
            i = a
            while i < b and _TCHAR_TABLE[p[i]]:
                i += 1
            if i == b:
                q = 1000
                if semi < end:
                    # params.strip(OWS).partition("="): the name must be q/Q.
                    i = semi + 1
                    while i < end and _is_ows(p[i]):
                        i += 1
                    eq = i
                    while eq < end and p[eq] != 61:  # '='
                        eq += 1
                    if eq == end or eq - i != 1 or _lower(p[i]) != 113:  # 'q'
                        q = -2
                    else:
                        i = end
                        while i > eq + 1 and _is_ows(p[i - 1]):
                            i -= 1
                        q = _qvalue(p + eq + 1, i - eq - 1)
                        if q < 0:
                            q = -2
                if q >= 0:
                    if _ieq(p + a, b - a, "gzip", 4) or _ieq(p + a, b - a, "x-gzip", 6):
                        if q > explicit:
                            explicit = q
                    elif b - a == 1 and p[a] == 42:  # '*'
                        if q > star:
                            star = q
        start = end + 1
    if explicit >= 0:
        return explicit > 0
    return star > 0


def accepts_gzip(accept_encoding):
    """Whether an ``Accept-Encoding`` value lets us send gzip (RFC 9110 12.5.3)."""
    if not accept_encoding:
        return False
    return _accepts_gzip(accept_encoding)


cdef inline bint _ends_with(const unsigned char* p, Py_ssize_t n, const char* lit, Py_ssize_t m) noexcept nogil:
    return n >= m and memcmp(p + n - m, lit, m) == 0


cdef bint _is_compressible(object content_type, object extra_types) except -1:
    cdef Py_ssize_t n = 0, a, b, i, slash
    cdef const unsigned char* p
    cdef unsigned char buf[128]
    cdef const unsigned char* m
    cdef Py_ssize_t kind_len, sub_len, mlen
    if not content_type:
        return False
    p = _ascii(content_type, &n)
    if p == NULL:
        return False
    a = 0
    b = 0
    while b < n and p[b] != 59:  # ';'
        b += 1
    while a < b and _is_ows(p[a]):
        a += 1
    while b > a and _is_ows(p[b - 1]):
        b -= 1
    mlen = b - a
    slash = -1
    for i in range(a, b):
        if p[i] == 47:  # '/'
            slash = i
            break
        if not _TCHAR_TABLE[p[i]]:
            return False
    if slash < 0:
        return False
    kind_len = slash - a
    sub_len = b - slash - 1
    if kind_len == 0 or sub_len == 0:
        return False
    for i in range(slash + 1, b):
        if not _TCHAR_TABLE[p[i]]:
            return False
    if _ieq(p + a, kind_len, "text", 4):
        return not _ieq(p + slash + 1, sub_len, "event-stream", 12)
    if mlen > <Py_ssize_t>sizeof(buf):
        return _py.is_compressible(content_type, extra_types)  # rare: the twin's path
    for i in range(mlen):
        buf[i] = _lower(p[a + i])
    m = buf
    if (_ieq(m, mlen, "application/json", 16)
            or _ieq(m, mlen, "application/javascript", 22)
            or _ieq(m, mlen, "application/xml", 15)
            or _ieq(m, mlen, "application/xhtml+xml", 21)
            or _ieq(m, mlen, "application/x-ndjson", 20)
            or _ieq(m, mlen, "application/wasm", 16)
            or _ieq(m, mlen, "image/svg+xml", 13)):
        return True
    if extra_types and (<bytes>m[:mlen]).decode("ascii") in extra_types:
        return True
    # Structured syntax suffixes (RFC 6839): application/problem+json, ...
    m = buf + kind_len + 1
    return (sub_len > 5 and _ends_with(m, sub_len, "+json", 5)) or (sub_len > 4 and _ends_with(m, sub_len, "+xml", 4))


def is_compressible(content_type, extra_types):
    """Whether a ``Content-Type`` names a media type worth compressing."""
    return _is_compressible(content_type, extra_types)


# If-None-Match ----------------------------------------------------------------

cdef int _scan_inm(object value, list tags, tuple current, const char* hexdigest) except -2:
    """Scan an If-None-Match value (RFC 9110 13.1.2).

    Returns -1 when malformed, 2 for ``*``, else 1 when a listed opaque tag
    equals one in ``current`` (or, with ``hexdigest``, one of our two tags
    ``"<hexdigest>"`` and ``"<hexdigest>-gzip"``, compared in place) and 0
    when none does.  With ``tags`` not None, every opaque tag is appended to
    it (for parse_if_none_match).
    """
    cdef Py_ssize_t n = 0, i, a, b, end, k, tn
    cdef const unsigned char* p = _ascii(value, &n)
    cdef const unsigned char* t
    cdef bint matched = False, any_tag = False
    cdef Py_ssize_t ncur
    cdef object cur
    if p == NULL:
        return -1
    a = 0
    b = n
    while a < b and _is_ows(p[a]):
        a += 1
    while b > a and _is_ows(p[b - 1]):
        b -= 1
    if b - a == 1 and p[a] == 42:
        return 2
    ncur = PyTuple_GET_SIZE(current) if current is not None else 0
    i = 0
    while True:
        while i < n and (p[i] == 32 or p[i] == 9 or p[i] == 44):
            i += 1
        if i == n:
            break
        if i + 1 < n and p[i] == 87 and p[i + 1] == 47:  # "W/"
            i += 2
        if i == n or p[i] != 34:
            return -1
        end = i + 1
        while end < n and p[end] != 34:
            if p[end] <= 32 or p[end] == 127:
                return -1
            end += 1
        if end == n:
            return -1
        # opaque tag = p[i : end + 1], quotes included
        any_tag = True
        if tags is not None:
            tags.append((<bytes>(<const char*>p)[i:end + 1]).decode("ascii"))
        if not matched and hexdigest != NULL:
            tn = end + 1 - i  # the quotes included: '"' + 32 hex + '"' or + '-gzip"'
            matched = (
                (tn == 34 or (tn == 39 and memcmp(p + i + 33, b'-gzip"', 6) == 0))
                and memcmp(p + i + 1, hexdigest, 32) == 0
            )
        if not matched:
            for k in range(ncur):
                cur = current[k]
                t = _ascii(cur, &tn)
                if t != NULL and tn == end + 1 - i and memcmp(t, p + i, tn) == 0:
                    matched = True
                    break
        i = end + 1
        while i < n and _is_ows(p[i]):
            i += 1
        if i < n and p[i] != 44:
            return -1
    if not any_tag:
        return -1
    return 1 if matched else 0


def parse_if_none_match(value):
    """``"*"``, the tuple of opaque tags listed, or ``None`` when malformed."""
    cdef list tags = []
    cdef int r = _scan_inm(value, tags, None, NULL)
    if r == -1:
        return None
    if r == 2:
        return STAR
    return tuple(tags)


# Origin -------------------------------------------------------------------------

# Constant headers, shared by every response that carries them.
cdef tuple _VARY_BOTH = ("Vary", "Accept-Encoding, Origin")
cdef tuple _VARY_ENCODING = ("Vary", "Accept-Encoding")
cdef tuple _VARY_ORIGIN = ("Vary", "Origin")


cdef class _Fast:
    """A typed copy of a ``_config.Settings``, made once per config change.

    The decision code reads plain C fields instead of Python attributes; it
    is cached on the Settings object itself (its ``compiled`` slot).
    """

    cdef int cors
    cdef frozenset origins
    cdef object origin_regex
    cdef tuple cors_headers
    cdef tuple preflight_headers
    cdef bint private_network
    cdef bint gzip
    cdef Py_ssize_t gzip_min_size
    cdef int gzip_level
    cdef object gzip_types
    cdef bint etag
    cdef bint active
    cdef Py_ssize_t buffer_max
    # Whole preflight answers made once: for "*", and for each CORS_ORIGINS
    # entry that _origin_allowed accepts (keyed by it); copied per request
    # (lists, so that the copy is one list slice; never handed out).
    cdef list preflight_any
    cdef dict preflight_for
    # When there are at most _SCAN_MAX such entries: them and their answers,
    # in the same order, for _listed_index.  None when there are more.
    cdef tuple listed
    cdef tuple listed_answers

    def __cinit__(self, settings):
        self.cors = settings.cors
        self.origins = settings.origins
        self.origin_regex = settings.origin_regex
        self.cors_headers = tuple(settings.cors_headers)
        self.preflight_headers = tuple(settings.preflight_headers)
        self.private_network = settings.private_network
        self.gzip = settings.gzip
        # A body never exceeds PY_SSIZE_T_MAX bytes: clamping keeps the comparison exact.
        self.gzip_min_size = min(settings.gzip_min_size, PY_SSIZE_T_MAX)
        self.gzip_level = settings.gzip_level
        self.gzip_types = settings.gzip_types
        self.etag = settings.etag
        self.active = settings.active
        self.buffer_max = min(settings.buffer_max, PY_SSIZE_T_MAX)
        self.preflight_any = [("Access-Control-Allow-Origin", "*"), *self.preflight_headers]
        self.preflight_for = {}
        if self.cors == CORS_LIST:
            for origin in self.origins:
                if type(origin) is str and _origin_allowed(self, origin):
                    self.preflight_for[origin] = [
                        _VARY_ORIGIN, ("Access-Control-Allow-Origin", origin), *self.preflight_headers
                    ]
        if len(self.preflight_for) <= _SCAN_MAX:
            self.listed = tuple(self.preflight_for)
            self.listed_answers = tuple(self.preflight_for.values())


# An Origin header is a str the server made for this one request, so a set or
# dict lookup must first hash it (SipHash over every byte).  Against a few
# allowed origins, comparing lengths and then bytes is cheaper.
cdef Py_ssize_t _SCAN_MAX = 8


cdef inline bint _same_bytes(const unsigned char* a, const unsigned char* b, Py_ssize_t n) noexcept nogil:
    """``a[:n] == b[:n]``, eight bytes at a time: on text as short as an
    origin this beats a call to memcmp."""
    cdef uint64_t x, y
    cdef Py_ssize_t i = 0
    if n < 8:
        for i in range(n):
            if a[i] != b[i]:
                return False
        return True
    while i < n - 8:
        memcpy(&x, a + i, 8)
        memcpy(&y, b + i, 8)
        if x != y:
            return False
        i += 8
    memcpy(&x, a + n - 8, 8)   # the last eight bytes (may overlap the words before)
    memcpy(&y, b + n - 8, 8)
    return x == y


cdef inline Py_ssize_t _listed_index(tuple listed, const unsigned char* p, Py_ssize_t n) noexcept:
    """Index in ``listed`` (ASCII str entries) of the one equal to the ASCII
    text p[:n], or -1."""
    cdef Py_ssize_t i
    cdef PyObject* entry
    for i in range(PyTuple_GET_SIZE(listed)):
        entry = PyTuple_GET_ITEM(listed, i)
        if PyUnicode_GET_LENGTH(<object>entry) == n and _same_bytes(
            <const unsigned char*>PyUnicode_DATA(<object>entry), p, n
        ):
            return i
    return -1


cdef inline _Fast _fast(object settings):
    cdef object cached = settings.compiled
    if type(cached) is _Fast:
        return <_Fast>cached
    cached = _Fast(settings)
    settings.compiled = cached
    return <_Fast>cached


cdef bint _origin_allowed(_Fast settings, object origin) except -1:
    cdef Py_ssize_t n = 0, i
    cdef const unsigned char* p
    if not origin:
        return False
    p = _ascii(origin, &n)
    if p == NULL:
        return False
    # One visible-ASCII token: no space, comma or control character.
    for i in range(n):
        if p[i] <= 32 or p[i] >= 127 or p[i] == 44:
            return False
    if n == 1 and p[0] == 42:
        return False  # "*" is never a serialized origin (RFC 6454 7.1): never echoed
    if settings.listed is not None:
        # Every entry of origins that can equal a valid token is in listed.
        if _listed_index(settings.listed, p, n) >= 0:
            return True
    elif origin in settings.origins:
        return True
    regex = settings.origin_regex
    return regex is not None and regex.fullmatch(origin) is not None


def origin_allowed(settings, origin):
    """Whether a list/regex CORS config allows this ``Origin`` as sent."""
    return _origin_allowed(_fast(settings), origin)


# App headers ----------------------------------------------------------------------

# Header names the decisions read, by a small integer.
cdef enum:
    H_OTHER = 0
    H_CONTENT_LENGTH
    H_VARY
    H_CONTENT_TYPE
    H_CONTENT_ENCODING
    H_CACHE_CONTROL
    H_ETAG
    H_LAST_MODIFIED
    H_CORS
    H_CONTENT_LANGUAGE
    H_CONTENT_RANGE
    H_CONTENT_MD5


_NAME_IDS = {
    "content-length": H_CONTENT_LENGTH,
    "vary": H_VARY,
    "content-type": H_CONTENT_TYPE,
    "content-encoding": H_CONTENT_ENCODING,
    "cache-control": H_CACHE_CONTROL,
    "etag": H_ETAG,
    "last-modified": H_LAST_MODIFIED,
    "content-language": H_CONTENT_LANGUAGE,
    "content-range": H_CONTENT_RANGE,
    "content-md5": H_CONTENT_MD5,
}


cdef int _header_id(object name) except -1:
    cdef Py_ssize_t n = 0
    cdef const unsigned char* p = _ascii(name, &n)
    if p == NULL:
        # Not ASCII: classify str.lower() of it as the pure twin does (a few
        # non-ASCII letters lower-case to ASCII ones, e.g. the Kelvin sign).
        lname = name.lower()
        hid = _NAME_IDS.get(lname, H_OTHER)
        if hid == H_OTHER and lname.startswith("access-control-"):
            return H_CORS
        return hid
    # The canonical spelling (what nearly every app sends) is one memcmp.
    if n == 4:
        if _ieq(p, n, "vary", 4):
            return H_VARY
        if _ieq(p, n, "etag", 4):
            return H_ETAG
    elif n == 12:
        if memcmp(p, b"Content-Type", 12) == 0 or _ieq(p, n, "content-type", 12):
            return H_CONTENT_TYPE
    elif n == 14:
        if memcmp(p, b"Content-Length", 14) == 0 or _ieq(p, n, "content-length", 14):
            return H_CONTENT_LENGTH
    elif n == 16:
        if _ieq(p, n, "content-encoding", 16):
            return H_CONTENT_ENCODING
        if _ieq(p, n, "content-language", 16):
            return H_CONTENT_LANGUAGE
    elif n == 13:
        if _ieq(p, n, "cache-control", 13):
            return H_CACHE_CONTROL
        if _ieq(p, n, "last-modified", 13):
            return H_LAST_MODIFIED
        if _ieq(p, n, "content-range", 13):
            return H_CONTENT_RANGE
    elif n == 11:
        if _ieq(p, n, "content-md5", 11):
            return H_CONTENT_MD5
    if n >= 15 and _ieq(p, 15, "access-control-", 15):
        return H_CORS
    return H_OTHER


cdef inline bint _is_identity(object value) except -1:
    return _ieq_strip(value, "identity", 8)


cdef inline bint _cache_control_has(list values, const char* directive, Py_ssize_t dlen) except -1:
    """Whether a Cache-Control value lists ``directive``; ``values`` is None
    when the app sent none (most responses: no call then)."""
    return values is not None and _cache_control_scan(values, directive, dlen)


cdef bint _cache_control_scan(list values, const char* directive, Py_ssize_t dlen) except -1:
    cdef Py_ssize_t n = 0, start, end, a, b
    cdef const unsigned char* p
    for value in values:
        p = _ascii(value, &n)
        if p == NULL:
            if _py._cache_control_has([value], (<bytes>directive[:dlen]).decode("ascii")):
                return True
            continue
        start = 0
        while start <= n:
            end = start
            while end < n and p[end] != 44:
                end += 1
            b = start
            while b < end and p[b] != 61:  # '='
                b += 1
            a = start
            while a < b and _is_ows(p[a]):
                a += 1
            while b > a and _is_ows(p[b - 1]):
                b -= 1
            if _ieq(p + a, b - a, directive, dlen):
                return True
            start = end + 1
    return False


cdef int _status_code(object status) except -1:
    cdef Py_ssize_t n = 0
    cdef const unsigned char* p = _ascii(status, &n)
    if p == NULL:
        return _py._status_code(status)  # not ASCII, or not a str: the twin's path
    if n < 3 or not (48 <= p[0] <= 57 and 48 <= p[1] <= 57 and 48 <= p[2] <= 57):
        return 0
    if n > 3 and p[3] != 32:
        return 0
    return (p[0] - 48) * 100 + (p[1] - 48) * 10 + (p[2] - 48)


@cython.freelist(8)
@cython.no_gc  # holds only the app's header values: never part of a cycle
cdef class _AppHeaders:
    """The app's headers, read in one pass by :func:`_read_headers` (parity:
    _core_py._AppHeaders).

    ``cache_control`` and ``vary`` stay None until the app sends one: most
    responses have neither, and two lists a request are measurable.
    """

    cdef list kept
    cdef object content_type
    cdef bint encoded
    cdef list cache_control
    cdef object etag
    cdef object etag_raw
    cdef object last_modified
    cdef bint has_cors
    cdef list vary
    cdef object content_length
    cdef object length_header  # the app's first Content-Length header, as given


cdef _AppHeaders _read_headers(headers):
    # __new__ rather than a constructor: no argument parsing, and every field
    # starts as None/False.
    cdef _AppHeaders app = _AppHeaders.__new__(_AppHeaders)
    cdef list kept = []
    cdef int hid
    for header in headers:
        if type(header) is tuple and PyTuple_GET_SIZE(header) == 2:
            name = (<tuple>header)[0]
            value = (<tuple>header)[1]
            if not isinstance(name, str) or not isinstance(value, str):
                raise _py._bad_header(header)
        else:
            name, value = _py._header_pair(header)  # lists, and the error
        hid = _header_id(name)
        if hid == H_CONTENT_LENGTH:
            if app.content_length is None:
                app.content_length = value
                app.length_header = header
            continue
        if hid == H_VARY:
            if app.vary is None:
                app.vary = [value]
            else:
                app.vary.append(value)
            continue
        if hid == H_CONTENT_TYPE:
            if app.content_type is None:
                app.content_type = value
        elif hid == H_CONTENT_ENCODING:
            if _is_identity(value):
                continue
            app.encoded = True
        elif hid == H_CACHE_CONTROL:
            if app.cache_control is None:
                app.cache_control = [value]
            else:
                app.cache_control.append(value)
        elif hid == H_ETAG:
            if app.etag_raw is None:
                app.etag_raw = value
                app.etag = _normalize_etag(value)
        elif hid == H_LAST_MODIFIED:
            if app.last_modified is None:
                app.last_modified = value
        elif hid == H_CORS:
            app.has_cors = True
        kept.append(header)
    app.kept = kept
    return app


cdef tuple _length_header(_AppHeaders app, Py_ssize_t length):
    """``("Content-Length", str(length))``: the app's own header object when
    it is exactly that already (the common case), else a new one."""
    cdef char digits[24]
    cdef int k = 24
    cdef size_t v = <size_t>length
    cdef Py_ssize_t n = 0
    cdef const unsigned char* p
    while True:
        k -= 1
        digits[k] = <char>(48 + v % 10)
        v = v // 10
        if v == 0:
            break
    header = app.length_header
    if type(header) is tuple:
        name = (<tuple>header)[0]
        value = (<tuple>header)[1]
        if type(name) is str and type(value) is str and _str_eq(name, "Content-Length", 14):
            p = _ascii(value, &n)
            if p != NULL and n == 24 - k and memcmp(p, digits + k, n) == 0:
                return <tuple>header
    return ("Content-Length", PyUnicode_DecodeASCII(digits + k, 24 - k, NULL))


cdef _merge_vary(list values, list tokens):
    """One Vary value, or None at ``*`` (parity: _core_py._merge_vary)."""
    return _py._merge_vary(values, tokens)


cdef int _cors(_Fast settings, int mode, environ, list out) except -1:
    if mode == CORS_ANY:
        out.append(("Access-Control-Allow-Origin", "*"))
        out.extend(settings.cors_headers)
    elif mode == CORS_LIST:
        origin = _env(environ, "HTTP_ORIGIN")
        if _origin_allowed(settings, origin):
            out.append(("Access-Control-Allow-Origin", origin))
            out.extend(settings.cors_headers)
    return 0


cdef int _finish_headers(_Fast settings, environ, _AppHeaders app, list out, bint vary_encoding) except -1:
    cdef int mode = settings.cors
    cdef list tokens
    cdef Py_ssize_t nvary = 0 if app.vary is None else len(app.vary)
    if vary_encoding or mode == CORS_LIST or nvary > 1:
        if nvary == 0:
            # The app set no Vary: one of three constant headers, no join.
            if vary_encoding and mode == CORS_LIST:
                out.append(_VARY_BOTH)
            elif vary_encoding:
                out.append(_VARY_ENCODING)
            elif mode == CORS_LIST:
                out.append(_VARY_ORIGIN)
        else:
            if vary_encoding and mode == CORS_LIST:
                tokens = ["Accept-Encoding", "Origin"]
            elif vary_encoding:
                tokens = ["Accept-Encoding"]
            elif mode == CORS_LIST:
                tokens = ["Origin"]
            else:
                tokens = []
            merged = _merge_vary(app.vary, tokens)
            if merged is None:
                for value in app.vary:
                    out.append(("Vary", value))
            elif merged:
                out.append(("Vary", merged))
    elif nvary:
        out.append(("Vary", app.vary[0]))
    if mode != CORS_OFF and not app.has_cors:
        _cors(settings, mode, environ, out)
    return 0


cdef object _normalize_etag(object value):
    """The app's ETag as an entity-tag (parity: _core_py._normalize_etag)."""
    cdef Py_ssize_t n = 0
    cdef const unsigned char* p = _ascii(value, &n)
    if p != NULL and n >= 2 and p[0] == 34 and p[n - 1] == 34:
        return value  # the common, well-formed case: "..."
    return _py._normalize_etag(value)


cdef inline object _weaken(object tag):
    return tag if tag.startswith("W/") else "W/" + tag


cdef inline object _opaque(object tag):
    return tag[2:] if tag.startswith("W/") else tag


cdef inline list _with_etag(list headers, object app_etag, object etag):
    """``headers`` with the app's ETag line carrying ``etag`` instead; the
    list itself when that changes nothing (no ETag, or not weakened)."""
    if etag is app_etag or etag == app_etag:
        return headers
    return _replace_etag(headers, etag)


cdef list _replace_etag(list headers, object etag):
    cdef list out = []
    for h in headers:
        if _header_id(h[0]) == H_ETAG:
            out.append(("ETag", etag))
        else:
            out.append(h)
    return out


cdef bint _not_in_304(object name) except -1:
    cdef int hid = _header_id(name)
    return (hid == H_CONTENT_TYPE or hid == H_CONTENT_LENGTH or hid == H_CONTENT_ENCODING
            or hid == H_CONTENT_LANGUAGE or hid == H_CONTENT_RANGE or hid == H_CONTENT_MD5)


cdef list _not_modified(_Fast settings, environ, _AppHeaders app, object app_etag, object our_etag, bint vary_encoding):
    """The headers of the ``304 Not Modified`` answer."""
    cdef list out = []
    for h in _with_etag(app.kept, app.etag_raw, app_etag):
        if not _not_in_304(h[0]):
            out.append(h)
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, environ, app, out, vary_encoding)
    return out


cdef bint _conditional_match(environ, tuple tags, const char* hexdigest, object last_modified) except -1:
    """``tags``: the current opaque tags; ``hexdigest`` (or NULL): the body's
    MD5, whose two tags count as current too."""
    cdef int r
    inm = _env(environ, "HTTP_IF_NONE_MATCH")
    if inm is not None:
        r = _scan_inm(inm, None, tags, hexdigest)
        return r == 1 or r == 2
    if last_modified is None:
        return False  # nothing to compare If-Modified-Since with
    ims = _env(environ, "HTTP_IF_MODIFIED_SINCE")
    if ims is None:
        return False
    since = _parse_http_date(ims)
    if since is None:
        return False
    modified = _parse_http_date(last_modified)
    return modified is not None and since >= modified


cdef inline object _env(object environ, str key):
    """environ[key] or None: a plain dict read directly, any other mapping via get()."""
    if type(environ) is dict:
        return (<dict>environ).get(key)
    return environ.get(key)


cdef inline bint _get_or_head(object method) except -1:
    """``method``: environ's REQUEST_METHOD."""
    return _str_eq(method, "GET", 3) or _str_eq(method, "HEAD", 4)


# The three entry points ---------------------------------------------------------------


def preflight(settings, environ):
    """Headers of the ``204`` answering a preflight."""
    return _preflight(_fast(settings), environ, _env(environ, "HTTP_ORIGIN"))


cdef inline list _list_copy(list items):
    """A fresh copy of an answer made in advance, for the server to keep (or
    change: wsgiref adds to the list it is given).  PyList_GetSlice makes it
    with one uninitialised allocation; PyList_New would zero the items first."""
    return PyList_GetSlice(items, 0, PyList_GET_SIZE(items))


cdef list _preflight(_Fast settings, environ, origin):
    """``origin``: environ's HTTP_ORIGIN."""
    cdef list out
    cdef PyObject* cached = NULL
    cdef Py_ssize_t i
    if settings.cors == CORS_ANY:
        out = _list_copy(settings.preflight_any)
    else:
        if type(origin) is str:
            if settings.listed is None:
                cached = PyDict_GetItemWithError(settings.preflight_for, origin)
            elif PyUnicode_IS_ASCII(origin):
                i = _listed_index(settings.listed, <const unsigned char*>PyUnicode_DATA(origin),
                                  PyUnicode_GET_LENGTH(origin))
                if i >= 0:
                    cached = PyTuple_GET_ITEM(settings.listed_answers, i)
        if cached != NULL:
            out = _list_copy(<list>cached)  # a listed origin: the answer made in advance
        else:
            out = [_VARY_ORIGIN]
            if not _origin_allowed(settings, origin):
                return out
            out.append(("Access-Control-Allow-Origin", origin))
            out.extend(settings.preflight_headers)
    if settings.private_network:
        asked = _env(environ, "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK")
        if isinstance(asked, str) and _ieq_strip(asked, "true", 4):
            out.append(("Access-Control-Allow-Private-Network", "true"))
    return out


cdef bint _ieq_strip(object value, const char* lit, Py_ssize_t m) except -1:
    cdef Py_ssize_t n = 0, a, b
    cdef const unsigned char* p = _ascii(value, &n)
    if p == NULL:
        return value.strip(" \t").lower() == (<bytes>lit[:m]).decode("ascii")
    a = 0
    b = n
    while a < b and _is_ows(p[a]):
        a += 1
    while b > a and _is_ows(p[b - 1]):
        b -= 1
    return _ieq(p + a, b - a, lit, m)


def respond(settings, environ, status, headers, body):
    """Process a buffered response; the returned body is what a ``GET`` sends."""
    return _respond(_fast(settings), environ, _env(environ, "REQUEST_METHOD"), status, headers, body, None)


cdef object _respond(_Fast settings, environ, method, status, headers, body, Capture send_to):
    """``respond()``, given environ's REQUEST_METHOD.  Returns ``(status,
    headers, body)``; with ``send_to``, hands status and headers to its
    ``_send`` and returns the body alone."""
    cdef int code = _status_code(status)
    cdef _AppHeaders app
    cdef list out
    cdef bint eligible, compress, hashed = False
    cdef tuple current = ()
    cdef char tag[40]  # our ETag: '"' + 32 hex digits + '"' or '-gzip"'
    if code == 0:
        return _answer(send_to, status, headers, body)
    app = _read_headers(headers)
    if code < 200 or code == 204 or code == 304:
        out = list(app.kept)
        _finish_headers(settings, environ, app, out, False)
        return _answer(send_to, status, out, b"")

    eligible = (
        settings.gzip
        and code != 206
        and not app.encoded
        and len(body) > settings.gzip_min_size
        and _is_compressible(app.content_type, settings.gzip_types)
        and not _cache_control_has(app.cache_control, "no-transform", 12)
    )
    compress = eligible and _accepts_gzip_env(environ)

    app_etag = _weaken(app.etag) if compress and app.etag is not None else app.etag
    our_etag = None
    if settings.etag and code == 200 and _get_or_head(method):
        if app.etag is not None:
            current = (_opaque(app.etag),)
        elif not _cache_control_has(app.cache_control, "no-store", 8):
            # The digest names the content: either representation's tag
            # matches (parity: _core_py.respond); only the one sent is made.
            _digest_tag(body, tag, compress)
            hashed = True
            our_etag = _ascii_str(tag, 39 if compress else 34)
        if _conditional_match(environ, current, tag + 1 if hashed else NULL, app.last_modified):
            out = _not_modified(settings, environ, app, app_etag, our_etag, eligible)
            return _answer(send_to, "304 Not Modified", out, b"")

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if compress:
        if type(body) is bytes:
            body = _gzip_compress_ptr(<const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), settings.gzip_level)
        else:
            body = gzip_compress(body, settings.gzip_level)
        out.append(("Content-Encoding", "gzip"))
    out.append(_length_header(app, len(body)))
    if our_etag is not None:
        out.append(("ETag", our_etag))
    _finish_headers(settings, environ, app, out, eligible)
    return _answer(send_to, status, out, body)


cdef inline object _answer(Capture send_to, status, headers, body):
    if send_to is None:
        return status, headers, body
    send_to._send(status, headers)
    return body


cdef inline str _ascii_str(const char* data, Py_ssize_t n):
    """A str of ``n`` ASCII characters (no decoding pass: the caller wrote them)."""
    cdef str out = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(out), data, n)
    return out


cdef int _digest_tag(object body, char* tag, bint gzipped) except -1:
    """Write our ETag for ``body`` into ``tag``: ``"<md5>"`` (34 chars) or,
    ``gzipped``, ``"<md5>-gzip"`` (39)."""
    cdef object hexdigest
    if type(body) is bytes:
        _md5_hex_auto(<const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), tag + 1)
    else:
        hexdigest = md5_hex(body).encode("ascii")  # any other buffer: the Python-level path
        memcpy(tag + 1, PyBytes_AS_STRING(hexdigest), 32)
    tag[0] = 34  # '"'
    if gzipped:
        memcpy(tag + 33, b'-gzip"', 6)
    else:
        tag[33] = 34
    return 0


cdef inline bint _accepts_gzip_env(environ) except -1:
    value = _env(environ, "HTTP_ACCEPT_ENCODING")
    return bool(value) and _accepts_gzip(value)


def respond_stream(settings, environ, status, headers, bint may_compress):
    """Headers for a streamed body and what to do with it (a ``STREAM_*``)."""
    return _respond_stream(_fast(settings), environ, status, headers, may_compress)


cdef tuple _respond_stream(_Fast settings, environ, status, headers, bint may_compress):
    cdef int code = _status_code(status)
    cdef _AppHeaders app
    cdef list out
    cdef bint eligible, compress
    if code == 0:
        return status, headers, STREAM_PASS
    app = _read_headers(headers)
    if code < 200 or code == 204 or code == 304:
        out = list(app.kept)
        _finish_headers(settings, environ, app, out, False)
        return status, out, STREAM_EMPTY

    eligible = (
        may_compress
        and settings.gzip
        and code != 206
        and not app.encoded
        and _is_compressible(app.content_type, settings.gzip_types)
        and not _cache_control_has(app.cache_control, "no-transform", 12)
    )
    compress = eligible and _accepts_gzip_env(environ)
    app_etag = _weaken(app.etag) if compress and app.etag is not None else app.etag
    if (
        settings.etag
        and code == 200
        and (app.etag is not None or app.last_modified is not None)
        and _get_or_head(_env(environ, "REQUEST_METHOD"))
    ):
        current = (_opaque(app.etag),) if app.etag is not None else ()
        if _conditional_match(environ, current, NULL, app.last_modified):
            out = _not_modified(settings, environ, app, app_etag, None, eligible)
            return "304 Not Modified", out, STREAM_EMPTY

    out = _with_etag(app.kept, app.etag_raw, app_etag)
    if compress:
        out.append(("Content-Encoding", "gzip"))
    elif app.content_length is not None:
        out.append(("Content-Length", app.content_length))
    _finish_headers(settings, environ, app, out, eligible)
    return status, out, STREAM_GZIP if compress else STREAM_PASS


# =============================================================================
# 10. The WSGI entry: ResponseMiddleware's base class, its __call__ and
#     Capture (parity: _core_py.MiddlewareBase / handle / Capture)
# =============================================================================

from asok_fast._core_py import _not_bytes


cdef extern from *:
    """
    /* Capture is called once a request by the app (start_response(status,
     * headers[, exc_info])).  Through tp_call that call builds an argument
     * tuple and parses it; Capture also speaks vectorcall (PEP 590), which
     * takes the arguments where the caller has them.  Keywords or another
     * argument count go the tuple way, for its parsing and error messages.
     * asokfast_capture_start is the Cython function that does the work; it is
     * set when the module initialises, before any Capture exists. */
    typedef PyObject *(*asokfast_start_fn)(PyObject *, PyObject *, PyObject *, PyObject *);
    static asokfast_start_fn asokfast_capture_start = NULL;

    static PyObject *
    asokfast_call_with_tuple(PyObject *self, PyObject *const *args, Py_ssize_t n, PyObject *kwnames)
    {
        Py_ssize_t i, nk = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        PyObject *tuple, *kwargs = NULL, *result;
        tuple = PyTuple_New(n);
        if (tuple == NULL)
            return NULL;
        for (i = 0; i < n; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        if (nk > 0) {
            kwargs = PyDict_New();
            for (i = 0; kwargs != NULL && i < nk; i++) {
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[n + i]) < 0)
                    Py_CLEAR(kwargs);
            }
            if (kwargs == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
        }
        result = Py_TYPE(self)->tp_call(self, tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        return result;
    }

    static PyObject *
    asokfast_capture_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
    {
        Py_ssize_t n = PyVectorcall_NARGS(nargsf);
        if (kwnames == NULL && (n == 2 || n == 3))
            return asokfast_capture_start(self, args[0], args[1], n == 3 ? args[2] : Py_None);
        return asokfast_call_with_tuple(self, args, n, kwnames);
    }

    static void
    asokfast_enable_vectorcall(PyTypeObject *type, Py_ssize_t offset)
    {
        type->tp_vectorcall_offset = offset;
        type->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    }
    """
    ctypedef PyObject* (*asokfast_start_fn)(PyObject*, PyObject*, PyObject*, PyObject*)
    asokfast_start_fn asokfast_capture_start
    void* asokfast_capture_vectorcall
    void asokfast_enable_vectorcall(PyTypeObject* type, Py_ssize_t offset)


@cython.freelist(8)
cdef class Capture:
    """The ``start_response`` handed to the app: it records, the middleware sends later.

    ``written`` (what the legacy ``write()`` got) is made on first use.
    Called through vectorcall when the caller supports it (see above).
    """

    cdef void* _vectorcall  # the instance's vectorcall entry (PEP 590)
    cdef public object status
    cdef public object headers
    cdef public object exc_info
    cdef public bint sent
    cdef list _written
    cdef object _server

    def __cinit__(self):
        self._vectorcall = asokfast_capture_vectorcall

    def __init__(self, server):
        self._server = server

    @property
    def written(self):
        if self._written is None:
            self._written = []
        return self._written

    def __call__(self, status, headers, exc_info=None):
        return _capture_start(self, status, headers, exc_info)

    def write(self, data):
        """The legacy ``write()``: its bytes come first in the body."""
        if type(data) is not bytes:
            raise _not_bytes(data)
        if self._written is None:
            self._written = [data]
        else:
            self._written.append(data)

    def send(self, status, headers):
        """Hand the final status and headers to the server's ``start_response``."""
        self._send(status, headers)

    cdef int _send(self, status, headers) except -1:
        self.sent = True
        if self.exc_info:
            self._server(status, headers, self.exc_info)
        else:
            self._server(status, headers)
        return 0


cdef extern from "Python.h":
    object PyMethod_New(object func, object self)


cdef object _CAPTURE_WRITE = Capture.__dict__["write"]  # bound per call by _capture_start


cdef object _capture_start(Capture self, status, headers, exc_info):
    """``Capture.__call__``: the app's start_response (parity: _core_py.Capture)."""
    if exc_info is not None:
        if self.sent:
            # Headers are committed to the server: re-raise (PEP 3333).
            try:
                raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        try:
            self.status, self.headers, self.exc_info = status, headers, exc_info
        finally:
            exc_info = None
    elif self.status is not None:
        raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
    else:
        self.status = status
        self.headers = headers
    if type(self) is Capture:
        return PyMethod_New(_CAPTURE_WRITE, self)  # what self.write gives, minus the lookup
    return self.write


cdef int _init_capture_vectorcall() except -1:
    global asokfast_capture_start
    cdef Capture probe = Capture.__new__(Capture)
    asokfast_capture_start = <asokfast_start_fn>_capture_start
    asokfast_enable_vectorcall(<PyTypeObject*>Capture, <char*>&probe._vectorcall - <char*><PyObject*>probe)
    return 0


_init_capture_vectorcall()


cdef extern from *:
    """
    /* MiddlewareBase's vectorcall (PEP 590): the server's call
     * mw(environ, start_response) without an argument tuple.  A subclass gets
     * it from _enable_vectorcall() unless it defines __call__, and
     * every call checks that the type's tp_call is still MiddlewareBase's:
     * a __call__ assigned later is honoured (through the tuple way). */
    typedef PyObject *(*asokfast_entry_fn)(PyObject *, PyObject *, PyObject *);
    static asokfast_entry_fn asokfast_entry_call = NULL;  /* (self, environ, start_response) */
    static ternaryfunc asokfast_entry_tp_call = NULL;

    static PyObject *
    asokfast_entry_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
    {
        Py_ssize_t n = PyVectorcall_NARGS(nargsf);
        if (kwnames == NULL && n == 2 && Py_TYPE(self)->tp_call == asokfast_entry_tp_call)
            return asokfast_entry_call(self, args[0], args[1]);
        return asokfast_call_with_tuple(self, args, n, kwnames);
    }

    static int
    asokfast_entry_calls_base(PyTypeObject *type)
    {
        return type->tp_call == asokfast_entry_tp_call;
    }
    """
    ctypedef PyObject* (*asokfast_entry_fn)(PyObject*, PyObject*, PyObject*)
    asokfast_entry_fn asokfast_entry_call
    void* asokfast_entry_tp_call
    void* asokfast_entry_vectorcall
    bint asokfast_entry_calls_base(PyTypeObject* type)


cdef class MiddlewareBase:
    """``ResponseMiddleware``'s base class with the compiled core.

    Its ``__call__`` runs in C (through vectorcall where the caller supports
    it): the app, the config and the settings built from it are read from C
    fields, and the ``_Fast`` copy of the settings is remembered here, so a
    request costs no attribute lookup before the app is called.
    ``ResponseMiddleware`` (middleware.py) adds the rest.
    """

    cdef void* _vectorcall  # the instance's vectorcall entry (PEP 590)
    cdef public object app
    cdef public object _config
    # (config version, Settings): set whole by ResponseMiddleware.__init__ and
    # _rebuild, so a thread never pairs a version with another one's settings.
    cdef public tuple _state
    cdef object _fast_of  # the Settings that _fast_val was made from
    cdef _Fast _fast_val

    def __cinit__(self, *args, **kwargs):
        self._vectorcall = asokfast_entry_vectorcall

    def __call__(self, environ, start_response):
        return _entry_call(self, environ, start_response)


cdef extern from *:
    """
    #include "structmember.h"
    /* Config (asok_fast/_config.py) keeps its version in a __slots__ member;
     * a request reads it where the member descriptor says it lives instead
     * of through getattr (an MRO lookup and a descriptor call).  The offset
     * is taken from the descriptor at import, so it follows the class as
     * Python lays it out; -1 when the attribute is not such a slot, and then
     * getattr it is. */
    static Py_ssize_t
    asokfast_slot_offset(PyObject *descr)
    {
        PyMemberDef *member;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type))
            return -1;
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY))
            return -1;
        return member->offset;
    }

    /* The slot's value, borrowed; NULL while it is unset. */
    static PyObject *
    asokfast_slot_get(PyObject *obj, Py_ssize_t offset)
    {
        return *(PyObject **)((char *)obj + offset);
    }
    """
    Py_ssize_t asokfast_slot_offset(object descr) noexcept
    PyObject* asokfast_slot_get(object obj, Py_ssize_t offset) noexcept


from asok_fast._config import Config as _Config

cdef type _CONFIG_TYPE = _Config
cdef Py_ssize_t _VERSION_OFFSET = asokfast_slot_offset(_Config.__dict__["version"])


cdef inline object _config_version(config):
    """``config.version``: from its slot when config is exactly a Config."""
    cdef PyObject* found
    if type(config) is _CONFIG_TYPE and _VERSION_OFFSET >= 0:
        found = asokfast_slot_get(config, _VERSION_OFFSET)
        if found != NULL:
            return <object>found
    return config.version  # anything else, and the AttributeError of an unset slot


cdef object _entry_call(MiddlewareBase self, environ, start_response):
    """``MiddlewareBase.__call__``, whichever way it is called."""
    cdef tuple state = self._state
    cdef _Fast fast
    settings = state[1]
    version = _config_version(self._config)
    if version is not state[0] and version != state[0]:
        settings = self._rebuild()
    if settings is self._fast_of:
        fast = self._fast_val
    else:
        fast = _fast(settings)
        # Both fields change with no Python code in between: a thread
        # sees the old pair or the new one.
        self._fast_val = fast
        self._fast_of = settings
    return _dispatch(self, self.app, settings, fast, environ, start_response)


cdef Py_ssize_t _init_entry_vectorcall() except -1:
    global asokfast_entry_call, asokfast_entry_tp_call
    cdef MiddlewareBase probe = MiddlewareBase.__new__(MiddlewareBase)
    cdef Py_ssize_t offset = <char*>&probe._vectorcall - <char*><PyObject*>probe
    asokfast_entry_call = <asokfast_entry_fn>_entry_call
    asokfast_entry_tp_call = <void*>(<PyTypeObject*>MiddlewareBase).tp_call
    asokfast_enable_vectorcall(<PyTypeObject*>MiddlewareBase, offset)
    return offset


cdef Py_ssize_t _ENTRY_OFFSET = _init_entry_vectorcall()


def _enable_vectorcall(type cls):
    """Give a subclass of MiddlewareBase the vectorcall entry when it keeps
    MiddlewareBase's ``__call__`` (CPython before 3.12 does not pass it on to
    classes made by a class statement); a no-op for any other class.
    ResponseMiddleware calls it for itself and for its subclasses."""
    if issubclass(cls, MiddlewareBase) and asokfast_entry_calls_base(<PyTypeObject*>cls):
        asokfast_enable_vectorcall(<PyTypeObject*>cls, _ENTRY_OFFSET)


def handle(mw, environ, start_response):
    """One WSGI call through the middleware ``mw``, read through its attributes
    (what ``MiddlewareBase.__call__`` does from its C fields).

    The ``__call__`` of a ResponseMiddleware bound to this core while the
    other one is the default (the ``_core_module`` seam of tests and benches).
    """
    cdef tuple state = mw._state
    settings = state[1]
    if mw._config.version != state[0]:
        settings = mw._rebuild()
    return _dispatch(mw, mw.app, settings, _fast(settings), environ, start_response)


cdef object _dispatch(object mw, object app, object settings, _Fast fast, environ, start_response):
    """Answer a preflight, or call the app and finish what it returned
    (parity: _core_py.handle)."""
    cdef Capture capture
    cdef bint head
    if not fast.active:
        return app(environ, start_response)
    method = _env(environ, "REQUEST_METHOD")
    if _str_eq(method, "OPTIONS", 7) and fast.cors and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
        # A preflight when Origin is there ("in", as the twin tests it).
        if type(environ) is dict:
            found = PyDict_GetItemWithError(environ, "HTTP_ORIGIN")
            if found != NULL:
                start_response("204 No Content", _preflight(fast, environ, <object>found))
                return ()  # no body (the twin's empty tuple)
        elif "HTTP_ORIGIN" in environ:
            start_response("204 No Content", _preflight(fast, environ, environ.get("HTTP_ORIGIN")))
            return ()
    head = _str_eq(method, "HEAD", 4)
    app_environ = environ
    if head:
        app_environ = environ.copy()
        app_environ["REQUEST_METHOD"] = "GET"
    capture = Capture.__new__(Capture)  # no __init__: no argument tuple
    capture._server = start_response
    result = app(app_environ, capture)
    # The common case, finished here: a one-chunk list body (what a plain
    # WSGI app returns for a buffered page), exactly as mw._finish's list
    # branch would (a plain list has no close()).
    if (
        type(result) is list
        and PyList_GET_SIZE(result) == 1
        and type((<list>result)[0]) is bytes
        and capture.status is not None
        and capture._written is None
    ):
        return _send_whole(fast, environ, method, head, capture, <bytes>(<list>result)[0], <list>result)
    # The other common case: an iterable of known length that the app has
    # already started (Werkzeug's and Django's responses), buffered here as
    # mw._finish's buffering branch would.  Anything else (streams,
    # wsgi.file_wrapper, write(), unusual headers) goes to the Python
    # plumbing, which decides from scratch.
    if (
        not isinstance(result, (list, tuple))  # those (subclasses too) are _finish's list branch
        and capture.status is not None
        and capture._written is None
        and _buffer_length(capture.headers, fast.buffer_max) >= 0
        and not _is_file_wrapper(environ, result)
    ):
        return _send_whole(fast, environ, method, head, capture, _drain(result), None)
    return mw._finish(settings, environ, head, capture, result)


cdef list _send_whole(_Fast fast, environ, method, bint head, Capture capture, bytes body, list app_list):
    """Respond with a whole body (parity: ResponseMiddleware._send).  ``app_list``:
    the app's own one-chunk list, handed back when the body leaves unchanged."""
    cdef bytes out = <bytes>_respond(fast, environ, method, capture.status, capture.headers, body, capture)
    if head or PyBytes_GET_SIZE(out) == 0:
        return []
    if app_list is not None and out is body:
        return app_list
    return [out]


cdef Py_ssize_t _buffer_length(headers, Py_ssize_t buffer_max) except -3:
    """The body length to buffer, as middleware._buffer_hints decides it, for
    plain headers: an exact 2-tuple of ASCII str each, a Content-Length of
    1..18 digits at most ``buffer_max``, no ``text/event-stream``.  -1 for
    anything else: the Python plumbing then decides, from the start."""
    cdef Py_ssize_t length = -1, n = 0, i, a, b
    cdef const unsigned char* p
    cdef bint seen_length = False, seen_type = False
    cdef int hid
    if type(headers) is not list:
        return -1
    for header in <list>headers:
        if type(header) is not tuple or PyTuple_GET_SIZE(header) != 2:
            return -1
        name = (<tuple>header)[0]
        value = (<tuple>header)[1]
        if type(name) is not str or type(value) is not str or not PyUnicode_IS_ASCII(name):
            return -1
        hid = _header_id(name)
        if hid == H_CONTENT_LENGTH and not seen_length:
            seen_length = True
            p = _ascii(value, &n)
            if p == NULL or n == 0 or n > 18:
                return -1
            length = 0
            for i in range(n):
                if not 48 <= p[i] <= 57:
                    return -1
                length = length * 10 + (p[i] - 48)
        elif hid == H_CONTENT_TYPE and not seen_type:
            seen_type = True
            p = _ascii(value, &n)
            if p == NULL:
                return -1
            b = 0
            while b < n and p[b] != 59:  # ';'
                b += 1
            a = 0
            while a < b and (p[a] == 32 or p[a] == 9):
                a += 1
            while b > a and (p[b - 1] == 32 or p[b - 1] == 9):
                b -= 1
            if _ieq(p + a, b - a, "text/event-stream", 17):
                return -1
    return length if length <= buffer_max else -1


cdef bint _is_file_wrapper(environ, result) except -1:
    """Whether ``result`` is the server's ``wsgi.file_wrapper`` (as _finish tests
    it); ``result`` is closed if the test itself fails."""
    try:
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper is not None and isinstance(wrapper, type) and isinstance(result, wrapper)
    except BaseException:
        _close_result(result)
        raise


cdef bytes _drain(result):
    """Every chunk of ``result`` joined; ``close()`` called once, whatever happens."""
    cdef list chunks = []
    try:
        for chunk in result:
            if type(chunk) is not bytes:
                raise _not_bytes(chunk)
            chunks.append(chunk)
    except BaseException:
        _close_result(result)
        raise
    _close_result(result)
    if PyList_GET_SIZE(chunks) == 1:
        return <bytes>chunks[0]
    return b"".join(chunks)


cdef int _close_result(result) except -1:
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return 0
