# asok_fast/_cdefs.pxd -- the C declarations of the compiled core beyond
# Cython's own cpython/libc .pxd files and _zlib.pxd: one extern block per
# header, all of it documented API.

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    # 127 for a str of ASCII characters only (the "Unicode Objects" page).
    Py_UCS4 PyUnicode_MAX_CHAR_VALUE(object o)

cdef extern from "md5.h" nogil:
    # MD5 (RFC 1321): the 32 lower-case hex digits of data[:length] into out.
    void asokfast_md5_hex(const unsigned char* data, size_t length, char* out)

cdef extern from "tunables.h":
    const unsigned long long ASOKFAST_MD5_NOGIL_MIN
    const unsigned long long ASOKFAST_DEFLATE_NOGIL_MIN
    enum:
        ASOKFAST_POOL_MAX
        ASOKFAST_POOL_SLOTS
