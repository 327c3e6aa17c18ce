# asok_fast/_c/pairs.pxi -- byte-pair header lists (ASGI) <-> the core's str
# pairs: the compiled twins of _core_py.raw_request_fields, decode_pairs and
# encode_pairs.  Bytes and ASCII str take the C path; anything else takes
# the reference's own Python expression, so errors and rare input match it.


cdef tuple _RAW_REQUEST_NAMES = RAW_REQUEST_NAMES
cdef Py_ssize_t _NRAW = len(RAW_REQUEST_NAMES)
cdef frozenset _RAW_NAME_SET = frozenset(RAW_REQUEST_NAMES)


cdef inline Py_ssize_t _raw_field(object name) except -2:
    """The index of ``name`` in RAW_REQUEST_NAMES, or -1."""
    cdef Py_ssize_t i, n
    cdef const char* p
    if type(name) is not bytes:
        if name not in _RAW_NAME_SET:  # the reference's test (unhashable: its TypeError)
            return -1
        name = bytes(name)
    n = PyBytes_GET_SIZE(name)
    p = PyBytes_AS_STRING(name)
    for i in range(_NRAW):
        known = <bytes>_RAW_REQUEST_NAMES[i]
        if PyBytes_GET_SIZE(known) == n and memcmp(PyBytes_AS_STRING(known), p, n) == 0:
            return i
    return -1


cdef inline object _latin1(object raw):
    if type(raw) is bytes:
        return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), NULL)
    return raw.decode("latin-1")


def raw_request_fields(raw):
    """The values of RAW_REQUEST_NAMES from a request's byte-pair header list."""
    cdef list found = [None] * _NRAW
    cdef Py_ssize_t i
    for name, value in raw:
        i = _raw_field(name)
        if i >= 0:
            text = _latin1(value)
            found[i] = text if found[i] is None else found[i] + ", " + text
    return tuple(found)


def decode_pairs(raw):
    """A response's byte-pair header list as latin-1 str pairs."""
    return [(_latin1(name), _latin1(value)) for name, value in raw]


cdef inline bytes _ascii_bytes(object s, bint lower):
    """``s`` (a str of ASCII characters) as bytes, lower-cased if asked; None when not such a str."""
    cdef Py_ssize_t n = 0, i
    cdef const unsigned char* p = _ascii(s, &n)
    cdef bytes out
    cdef unsigned char* q
    if p == NULL:
        return None
    if not lower:
        return PyBytes_FromStringAndSize(<const char*>p, n)
    out = PyBytes_FromStringAndSize(NULL, n)
    q = <unsigned char*>PyBytes_AS_STRING(out)
    for i in range(n):
        q[i] = _lower(p[i])
    return out


def encode_pairs(headers):
    """The core's header list as ASGI sends it: names lower-cased, latin-1 bytes."""
    cdef list out = []
    for name, value in headers:
        raw_name = _ascii_bytes(name, True)
        if raw_name is None:
            raw_name = name.lower().encode("latin-1")
        raw_value = _ascii_bytes(value, False)
        if raw_value is None:
            raw_value = value.encode("latin-1")
        out.append((raw_name, raw_value))
    return out
