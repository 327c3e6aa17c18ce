"""Compiled core of asok_fast: the Cython twin of ``asok_fast._core_py``.

``_core_py`` is the reference: every name here gives byte-identical results
for the same arguments (tests/test_parity.py checks).  Directives
(language_level=3, embedsignature) live in setup.py only; boundscheck and
wraparound keep their defaults (on).

The module is built from one file per concern, included below in order:

  _c/digest.pxi     buffer access and MD5 (the ETag digest)
  _c/codecs.pxi     gzip through zlib: the pool of deflate states, one-shot
                    gzip_compress and the per-response GzipStream; zstd and
                    brotli beside it through the shared _codecs
  _c/scan.pxi       request and response header scanning (Accept-Encoding
                    negotiation, media types, If-None-Match, header names,
                    Content-Length)
  _c/decisions.pxi  the per-response decisions: preflight, respond,
                    respond_stream, origin_allowed
  _c/pairs.pxi      byte-pair header lists (ASGI) to and from the core's
                    str pairs

C declarations live in _cdefs.pxd and _zlib.pxd, C code in _c/*.h.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from cpython.tuple cimport PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_DecodeASCII, PyUnicode_DecodeLatin1, PyUnicode_GET_LENGTH
from libc.limits cimport UINT_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from asok_fast._cdefs cimport (
    ASOKFAST_DEFLATE_NOGIL_MIN,
    ASOKFAST_MD5_NOGIL_MIN,
    ASOKFAST_POOL_MAX,
    ASOKFAST_POOL_SLOTS,
    PY_SSIZE_T_MAX,
    PyUnicode_MAX_CHAR_VALUE,
    asokfast_md5_hex,
)
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

from asok_fast._codecs import SHARED_MIN_SIZE, Encoders
from asok_fast._config import CORS_ANY as _CORS_ANY, CORS_LIST as _CORS_LIST, CORS_OFF as _CORS_OFF
from asok_fast._httpdate import parse_http_date
from asok_fast._shared import (
    CODINGS,
    COMPRESSIBLE_TYPES,
    NOT_IN_304,
    OWS,
    RAW_REQUEST_NAMES,
    STAR,
    STREAM_EMPTY,
    STREAM_COMPRESS,
    STREAM_PASS,
    TCHARS,
    bad_header,
    cache_control_has,
    check_level,
    header_pair,
    merge_vary,
    normalize_etag,
    request_fields,
    status_code,
)

# The same public names as _core_py (tests/test_layout.py checks).
__all__ = [
    "GzipStream",
    "buffer_length",
    "compress",
    "decode_pairs",
    "encode_pairs",
    "gzip_compress",
    "is_compressible",
    "md5_hex",
    "negotiate",
    "open_stream",
    "origin_allowed",
    "parse_if_none_match",
    "preflight",
    "raw_request_fields",
    "respond",
    "respond_stream",
]

# Exposed for tests and measurements only.
_MD5_NOGIL_MIN = ASOKFAST_MD5_NOGIL_MIN
_DEFLATE_NOGIL_MIN = ASOKFAST_DEFLATE_NOGIL_MIN
_POOL_MAX = ASOKFAST_POOL_MAX

include "_c/digest.pxi"
include "_c/codecs.pxi"
include "_c/scan.pxi"
include "_c/decisions.pxi"
include "_c/pairs.pxi"
