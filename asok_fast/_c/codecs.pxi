# gzip through zlib: the pool of deflate states, gzip_compress and GzipStream.
# Included by _core_c.pyx.
#
# Parity: _core_py uses zlib.compressobj(level, DEFLATED, 31): a 32 KiB window
# with zlib's gzip wrapper (window bits 31) and memLevel 8 (zlib's default).
# The states here are made with the same arguments, so zlib writes the same
# header, deflate stream and trailer.

cdef enum:
    _GZIP_WBITS = 31        # MAX_WBITS (15) + 16: zlib writes the gzip wrapper
    _MEM_LEVEL = 8
    _LEVELS = 10            # pool slots indexed by level (1..9; 0 unused)


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
    """A fresh gzip deflate state on the heap.

    Heap, not an object field: zlib's internal state keeps a pointer back to
    its z_stream (deflateStateCheck compares them), so the struct must never
    move while the state lives, including while it waits in the pool.
    """
    cdef z_stream* zs = <z_stream*>malloc(sizeof(z_stream))
    cdef int rc
    if zs == NULL:
        raise MemoryError()
    memset(zs, 0, sizeof(z_stream))     # zalloc, zfree, opaque = Z_NULL
    rc = deflateInit2(zs, level, Z_DEFLATED, _GZIP_WBITS, _MEM_LEVEL, Z_DEFAULT_STRATEGY)
    if rc != Z_OK:
        exc = _zlib_error(zs, rc, "while creating compression object")
        free(zs)
        raise exc
    return zs


cdef void _zs_free(z_stream* zs) noexcept nogil:
    """End a deflate state and free its struct; the one place states die."""
    deflateEnd(zs)          # Z_DATA_ERROR for an unfinished stream: still freed
    free(zs)


cdef inline int _deflate_call(z_stream* zs, int mode, bint release) noexcept:
    cdef int rc
    if release:
        with nogil:
            rc = deflate(zs, mode)
    else:
        rc = deflate(zs, mode)
    return rc


# Output buffers up to this size start at deflateBound (one deflate call).
cdef size_t _OUT_START_MAX = 64 * 1024


cdef bytes _deflate_out(z_stream* zs, const unsigned char* src, size_t length, bint feed, int flush):
    """Run deflate over src[:length] and return what it writes, as one bytes.

    feed true (one chunk of a stream): the calls compressobj makes for
    ``compress(data) + flush(flush)``: deflate(Z_NO_FLUSH) until the input is
    consumed, then deflate(flush) until it leaves output room unused.
    feed false, with input (a whole body): deflate(flush) with all the input
    at once -- for a fresh stream, Z_FINISH and a deflateBound-sized buffer
    this is ONE call.  deflate's output does not depend on how input and
    output room are split across calls at levels 1-9 (its blocks end where
    its symbol buffer fills), so the bytes equal compressobj's; tests check
    every level.  Input over 4 GiB goes through in pieces (avail_in is
    32-bit), all but the last with Z_NO_FLUSH.
    feed false, no input: just deflate(flush) (compressobj.flush()).

    The output grows in a heap buffer and becomes one bytes at the end.  The
    GIL is released around each deflate call from ASOKFAST_DEFLATE_NOGIL_MIN
    input bytes on; src must stay valid meanwhile.  On error the stream is in
    an unknown state: the caller frees it, never pools it.
    """
    cdef unsigned char* buf = NULL
    cdef unsigned char* grown
    cdef size_t cap, used = 0, left = length, piece, room
    cdef int rc = Z_OK, mode
    cdef bint release = length >= ASOKFAST_DEFLATE_NOGIL_MIN
    cdef bint flushing = False

    # deflateBound counts the gzip header and trailer; a sync flush marker and
    # block bits already pending need a little slack beyond it.
    cap = (<size_t>deflateBound(zs, <uLong>length) if length <= UINT_MAX else length + (length >> 8)) + 16
    if cap > _OUT_START_MAX:
        # A large body: start at a quarter of it (text compresses to less) and
        # grow if it does not; a bound-sized buffer would be a fresh mapping
        # from the system on every call, its pages faulted in, for output
        # that then shrinks to a fraction of it.
        cap = max(_OUT_START_MAX, length >> 2)
    buf = <unsigned char*>malloc(cap)
    if buf == NULL:
        raise MemoryError()
    try:
        zs.next_in = NULL
        zs.avail_in = 0
        while True:
            if zs.avail_in == 0 and left:
                piece = left if left <= UINT_MAX else UINT_MAX
                zs.next_in = <Bytef*>src    # zlib never writes through next_in
                zs.avail_in = <unsigned int>piece
                src += piece
                left -= piece
            if used == cap:
                if cap > <size_t>PY_SSIZE_T_MAX - (cap >> 1) - 1024:
                    raise OverflowError("compressed output too large")
                grown = <unsigned char*>realloc(buf, cap + (cap >> 1) + 1024)
                if grown == NULL:
                    raise MemoryError()
                buf = grown
                cap += (cap >> 1) + 1024
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
            rc = _deflate_call(zs, mode, release)
            used += room - zs.avail_out
            # Z_BUF_ERROR only says no progress was possible (compressobj
            # ignores it too); anything else negative is a real failure.
            if rc < 0 and rc != Z_BUF_ERROR:
                raise _zlib_error(zs, rc, "while compressing data" if mode == Z_NO_FLUSH else "while flushing")
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
        if flush == Z_FINISH and rc != Z_STREAM_END:
            raise _zlib_error(zs, rc, "while finishing compression")
        return (<char*>buf)[:used]
    finally:
        free(buf)


# The pool of idle deflate states.
#
# Why: deflateInit2 allocates ~270 KB (window, hash chains, pending buffer)
# and deflateEnd frees it.  When those blocks sit at the top of the heap glibc
# trims them, and the next response faults the pages in again: measured, a
# fresh state per response cost 67-79 us and 18 page faults for a 100 B or
# 1.4 KB body, against 8.5 us and 20 us pooled (0 faults) -- the state costs
# more than the compression.  deflateReset keeps the memory and gives a state
# whose output equals a fresh one's (zlib's contract; tests check it over
# many cycles).  The reset happens in take(), just before use, so that the
# 64 KiB hash table it zeroes is in the caches when deflate reads it.
#
# Rules: at most ASOKFAST_POOL_MAX idle states per level (memory stays
# bounded); a state is in the pool or owned by exactly one user; a pooled
# state may be finished or abandoned mid-stream, and take() hands it out only
# after deflateReset accepted it (else it is freed and a new one made); the
# lock guards push/pop only.  Pool updates never release the GIL, so after
# fork() (taken with the GIL held) the arrays are consistent: the child frees
# the idle states and makes a new lock.

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


cdef bytes _gzip_compress_ptr(const unsigned char* data, size_t length, int level):
    """The gzip member of data[:length] at level (1-9), with a pooled state."""
    cdef z_stream* zs = _pool_take(level)
    cdef bytes out
    try:
        out = _deflate_out(zs, data, length, False, Z_FINISH)
    except BaseException:
        _zs_free(zs)
        raise
    _pool_give(zs, level)
    return out


def gzip_compress(data, level):
    """data as one gzip member, byte-identical to
    ``c = zlib.compressobj(level, zlib.DEFLATED, 31); c.compress(data) + c.flush()``.
    """
    cdef Py_buffer view
    cdef const unsigned char* ptr
    cdef size_t length
    cdef int key = check_level(level)
    if _get_buffer(data, &view, &ptr, &length):
        try:
            return _gzip_compress_ptr(ptr, length, key)
        finally:
            PyBuffer_Release(&view)
    return _gzip_compress_ptr(ptr, length, key)


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
    cdef bint _busy         # a call is running with the GIL released
    cdef bint _close_pending

    def __cinit__(self, level):
        self._zs = NULL
        self._busy = False
        self._close_pending = False
        self._level = check_level(level)
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

    cdef void _release_state(self) noexcept:
        cdef z_stream* zs = self._zs
        if zs != NULL:
            self._zs = NULL
            _pool_give(zs, self._level)

    cdef bytes _run(self, const unsigned char* data, size_t length, bint feed, int flush):
        """One deflate pass over data[:length]: the state is freed (never
        pooled) when it fails, handed back when it finishes or when close()
        came from another thread meanwhile."""
        cdef bytes out
        cdef z_stream* zs
        self._enter()
        try:
            out = _deflate_out(self._zs, data, length, feed, flush)
        except BaseException:
            zs, self._zs = self._zs, NULL
            _zs_free(zs)
            raise
        finally:
            self._busy = False
        if flush == Z_FINISH or self._close_pending:
            self._close_pending = False
            self._release_state()
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
            # chunk before looking at its type (compressobj would emit an
            # empty stored block).
            return b""
        if _get_buffer(chunk, &view, &ptr, &length):
            try:
                return self._run(ptr, length, True, Z_SYNC_FLUSH) if length else b""
            finally:
                PyBuffer_Release(&view)
        return self._run(ptr, length, True, Z_SYNC_FLUSH) if length else b""

    def finish(self):
        """The end of the gzip member (final block and trailer)."""
        return self._run(NULL, 0, False, Z_FINISH)

    def close(self):
        """Give the state up without finishing; safe to call again."""
        if self._busy:
            # Another thread is compressing with the GIL released: it hands
            # the state back when its call returns.
            self._close_pending = True
            return
        self._release_state()


# zstd and brotli are shared with the pure core (_codecs: one library build,
# the same bytes); this core's gzip sits beside them.
cdef object _ENCODERS = Encoders(gzip_compress, GzipStream)


# Tests count compressions by wrapping _codecs.Encoders.encode; gzip made in
# C by respond (zlib engine, no padding) is reported to this hook instead,
# None outside tests.
cdef object _COMPRESSED_HOOK = None


def _set_compressed_hook(hook):
    """Call ``hook("gzip")`` for each body respond gzips in C; returns the
    previous hook (for tests)."""
    global _COMPRESSED_HOOK
    previous, _COMPRESSED_HOOK = _COMPRESSED_HOOK, hook
    return previous


def compress(settings, coding, data, md5=None, shareable=True):
    """A whole body in ``coding`` at the settings' engine and level, through
    the compressed-body caches, padded where the settings say (parity:
    _core_py.compress)."""
    return _ENCODERS.compress(settings, coding, data, md5, shareable)


def open_stream(settings, coding):
    """The compressor of a stream in ``coding``: ``compress(chunk)`` (each
    flushed), ``finish()`` and ``close()``."""
    return _ENCODERS.open_stream(settings, coding)


def zlib_version():
    """Version of the libz loaded at run time (compare zlib.ZLIB_RUNTIME_VERSION)."""
    return (<bytes>zlibVersion()).decode("ascii")
