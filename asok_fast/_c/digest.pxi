# Buffer access and MD5 (the ETag digest).  Included by _core_c.pyx.
#
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


cdef void _md5_hex(const unsigned char* data, size_t length, char* out) noexcept:
    """The 32 hex digits of MD5(data[:length]) into out[0:32], with the GIL
    released from ASOKFAST_MD5_NOGIL_MIN bytes on (below that the release
    costs more than it saves).  data must stay valid meanwhile."""
    if length >= ASOKFAST_MD5_NOGIL_MIN:
        with nogil:
            asokfast_md5_hex(data, length, out)
    else:
        asokfast_md5_hex(data, length, out)


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
            _md5_hex(ptr, length, out)
        finally:
            PyBuffer_Release(&view)
    else:
        _md5_hex(ptr, length, out)
    return PyUnicode_DecodeASCII(out, 32, NULL)
