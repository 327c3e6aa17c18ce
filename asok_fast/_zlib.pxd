# asok_fast/_zlib.pxd -- the part of the zlib C API (zlib.h) that the compiled
# core uses.  Every function is declared nogil: none of them touches Python
# objects, so they may run with the GIL released on pinned buffers.
#
# Only the z_stream fields we read or write are listed; Cython takes the real
# layout from zlib.h.

cdef extern from "zlib.h" nogil:
    ctypedef unsigned char Bytef
    ctypedef unsigned int uInt
    ctypedef unsigned long uLong
    ctypedef void* voidpf
    ctypedef voidpf (*alloc_func)(voidpf opaque, uInt items, uInt size)
    ctypedef void (*free_func)(voidpf opaque, voidpf address)

    ctypedef struct z_stream:
        const Bytef* next_in    # next input byte
        uInt avail_in           # number of bytes available at next_in
        uLong total_in          # total number of input bytes read so far
        Bytef* next_out         # next output byte will go here
        uInt avail_out          # remaining free space at next_out
        uLong total_out         # total number of bytes output so far
        const char* msg         # last error message, NULL if no error
        alloc_func zalloc       # Z_NULL: zlib uses calloc
        free_func zfree         # Z_NULL: zlib uses free
        voidpf opaque
        int data_type
        uLong adler
    ctypedef z_stream* z_streamp

    const char* ZLIB_VERSION    # version of the zlib.h compiled against

    # Allowed flush values (deflate's second argument).
    int Z_NO_FLUSH
    int Z_PARTIAL_FLUSH
    int Z_SYNC_FLUSH
    int Z_FULL_FLUSH
    int Z_FINISH
    int Z_BLOCK

    # Return codes.  Negative values are errors; Z_BUF_ERROR only means that
    # no progress was possible and is not fatal.
    int Z_OK
    int Z_STREAM_END
    int Z_NEED_DICT
    int Z_ERRNO
    int Z_STREAM_ERROR
    int Z_DATA_ERROR
    int Z_MEM_ERROR
    int Z_BUF_ERROR
    int Z_VERSION_ERROR

    # Compression levels and strategies.
    int Z_NO_COMPRESSION
    int Z_BEST_SPEED
    int Z_BEST_COMPRESSION
    int Z_DEFAULT_COMPRESSION
    int Z_FILTERED
    int Z_HUFFMAN_ONLY
    int Z_RLE
    int Z_FIXED
    int Z_DEFAULT_STRATEGY

    int Z_DEFLATED              # the only method
    int MAX_WBITS               # 15: a 32 KiB window

    const char* zlibVersion()   # version of the libz actually loaded

    # deflateInit2 is a macro that passes ZLIB_VERSION and sizeof(z_stream)
    # to deflateInit2_, so that a header/library mismatch is detected.
    int deflateInit2_(z_streamp strm, int level, int method, int windowBits,
                      int memLevel, int strategy, const char* version,
                      int stream_size)
    int deflateInit2(z_streamp strm, int level, int method, int windowBits,
                     int memLevel, int strategy)
    int deflate(z_streamp strm, int flush)
    int deflateReset(z_streamp strm)
    int deflateEnd(z_streamp strm)
    uLong deflateBound(z_streamp strm, uLong sourceLen)
