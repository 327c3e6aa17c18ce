"""The core's entry points and helpers on their own, for both cores (tiny ones
looped 100 times per call).  No WSGI here: the core takes a request tuple, a
status line, a header list and a body.  Compression in every coding (zstd, br,
gzip; the cache off, and its hits; ISA-L's gzip), buffered and streamed, and the
negotiation of ``Accept-Encoding``."""

from __future__ import annotations

import hashlib

import pytest

from asok_fast._config import build_settings, initial_values
from asok_fast._shared import CODINGS, STREAM_COMPRESS
from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl

LOOP = 100
#: What the middleware runs with (the compressed-body cache on, the default).
SETTINGS = build_settings(initial_values(None, wl.CONFIG))
#: The cache off: ``compress`` compresses on every call.
SETTINGS_NOCACHE = build_settings(initial_values(None, {**wl.CONFIG, "COMPRESS_CACHE_SIZE": 0}))
W1_TAG = f'"{hashlib.md5(wl.JSON_BODY).hexdigest()}-zstd"'
W1_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(wl.JSON_BODY)))]
#: What the benchmarks negotiate: the browser's header, one that takes only br,
#: one that puts gzip first by weight, one with a q=0 on the best coding.
ACCEPT_ENCODINGS = {
    "browser": wl.ACCEPT_ENCODING,
    "br-only": wl.BR_ONLY,
    "weighted": "zstd;q=0.5, br;q=0.8, gzip, *;q=0.1",
    "refused": "zstd;q=0, br;q=0, gzip;q=0.3, identity;q=0.5",
}
#: A stream of W3's page in 16 KiB chunks (what a WSGI app yielding a page in parts sends).
CHUNKS = [wl.HTML_BODY[i : i + 16384] for i in range(0, len(wl.HTML_BODY), 16384)]


def request(workload, if_none_match=None):
    """The core's request tuple for a workload: (method, origin, accept_encoding,
    if_none_match, if_modified_since)."""
    headers = workload.headers
    return (workload.method, headers.get("Origin"), headers.get("Accept-Encoding"), if_none_match, None)


@pytest.mark.parametrize("size", ["W1", "W6"])
def test_md5_hex(benchmark, core, size):
    body = wl.by_id(size).body
    benchmark.group = f"core: md5_hex {len(body)} B"
    assert benchmark(core.md5_hex, body) == hashlib.md5(body).hexdigest()


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("size", ["W1", "W3"])
def test_compress(benchmark, core, size, coding):
    """A whole body in each coding at its configured level (the cores' ``compress``, cache off)."""
    body = wl.by_id(size).body
    benchmark.group = f"core: compress {len(body)} B"
    out = benchmark(core.compress, SETTINGS_NOCACHE, coding, body)
    assert st.decode(coding, out) == body


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("size", ["W1", "W3"])
def test_compress_cache_hit(benchmark, core, size, coding):
    """The same from the compressed-body cache: the body's MD5 given (as the ETag
    has it), confirmed by its SHA-256."""
    body = wl.by_id(size).body
    md5 = hashlib.md5(body).hexdigest()
    settings = build_settings(initial_values(None, wl.CONFIG))  # a cache of its own
    first = core.compress(settings, coding, body, md5)
    core.compress(settings, coding, body, md5)  # the second appearance: admitted
    benchmark.group = f"core: compress {len(body)} B"
    assert benchmark(core.compress, settings, coding, body, md5) == first
    assert len(settings.cache) == 1


@pytest.mark.parametrize("size", ["W1", "W3"])
def test_compress_isal(benchmark, core, size):
    """gzip from ISA-L at ISAL_LEVEL 1 (GZIP_ENGINE = "isal", cache off)."""
    from asok_fast._codecs import isal_missing

    if isal_missing():
        pytest.skip("the isal package is not installed (pip install 'asok_fast[isal]')")
    settings = build_settings(initial_values(None, st.ISAL_CONFIG))
    body = wl.by_id(size).body
    benchmark.group = f"core: compress {len(body)} B"
    assert st.decode("gzip", benchmark(core.compress, settings, "gzip", body)) == body


@pytest.mark.parametrize("coding", CODINGS)
def test_stream(benchmark, core, coding):
    """W3's page as a stream of 16 KiB chunks: open, a flush per chunk, finish."""
    open_stream = core.open_stream
    benchmark.group = f"core: stream of {len(CHUNKS)} chunks, {len(wl.HTML_BODY)} B"

    def stream():
        compressor = open_stream(SETTINGS, coding)
        parts = [compressor.compress(chunk) for chunk in CHUNKS]
        parts.append(compressor.finish())
        return b"".join(parts)

    assert st.decode(coding, benchmark(stream)) == wl.HTML_BODY


@pytest.mark.parametrize("header", list(ACCEPT_ENCODINGS))
def test_negotiate(benchmark, core, header):
    negotiate = core.negotiate
    value = ACCEPT_ENCODINGS[header]
    benchmark.group = f"core: negotiate x{LOOP}"

    def loop():
        for _ in range(LOOP):
            negotiate(value, CODINGS)

    benchmark(loop)
    assert negotiate(value, CODINGS) == {"browser": "zstd", "br-only": "br", "weighted": "gzip", "refused": None}[header]


def test_parse_if_none_match(benchmark, core):
    parse = core.parse_if_none_match
    benchmark.group = f"core: parse_if_none_match x{LOOP}"

    def loop():
        for _ in range(LOOP):
            parse(W1_TAG)

    benchmark(loop)


def test_is_compressible(benchmark, core):
    is_compressible = core.is_compressible
    benchmark.group = f"core: is_compressible x{LOOP}"
    empty = frozenset()

    def loop():
        for _ in range(LOOP):
            is_compressible("application/json; charset=utf-8", empty)

    benchmark(loop)


def test_buffer_length(benchmark, core):
    buffer_length = core.buffer_length
    benchmark.group = f"core: buffer_length x{LOOP}"
    buffer_max = SETTINGS.buffer_max

    def loop():
        for _ in range(LOOP):
            buffer_length(W1_HEADERS, buffer_max)

    benchmark(loop)
    assert buffer_length(W1_HEADERS, buffer_max) == len(wl.JSON_BODY)


def test_preflight(benchmark, core):
    preflight = core.preflight
    benchmark.group = f"core: preflight x{LOOP}"

    def loop():
        for _ in range(LOOP):
            preflight(SETTINGS, wl.ORIGIN, None)

    benchmark(loop)
    assert ("Access-Control-Allow-Origin", wl.ORIGIN) in preflight(SETTINGS, wl.ORIGIN, None)


@pytest.mark.parametrize("workload", ["W1", "W2"])
def test_respond(benchmark, core, workload):
    """core.respond alone: W1 hashes + compresses (zstd for the browser), W2 answers 304."""
    w = wl.by_id(workload)
    req = request(w, W1_TAG if w.revalidate else None)
    benchmark.group = f"core: respond {w.label}"
    status, headers, _body = benchmark(core.respond, SETTINGS, req, "200 OK", list(W1_HEADERS), wl.JSON_BODY)
    assert status.startswith("304" if w.revalidate else "200")
    assert w.revalidate or ("Content-Encoding", "zstd") in headers


def test_respond_stream(benchmark, core):
    """core.respond_stream alone: the headers of a compressed (zstd) stream of HTML."""
    respond_stream = core.respond_stream
    headers = [("Content-Type", "text/html; charset=utf-8")]
    req = request(wl.by_id("W3"))
    benchmark.group = f"core: respond_stream x{LOOP}"

    def loop():
        for _ in range(LOOP):
            respond_stream(SETTINGS, req, "200 OK", headers, True)

    benchmark(loop)
    assert respond_stream(SETTINGS, req, "200 OK", headers, True)[2:] == (STREAM_COMPRESS, "zstd")
