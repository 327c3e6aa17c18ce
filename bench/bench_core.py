"""The core's entry points and helpers on their own, for both cores (tiny ones
looped 100 times per call).  No WSGI here: the core takes a request tuple, a
status line, a header list and a body."""

from __future__ import annotations

import hashlib

import pytest

from asok_fast._config import build_settings, initial_values
from asok_fast._shared import STREAM_GZIP
from asok_fast.benchmarks import workloads as wl

LOOP = 100
SETTINGS = build_settings(initial_values(None, wl.CONFIG))
W1_TAG = f'"{hashlib.md5(wl.JSON_BODY).hexdigest()}-gzip"'
W1_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(wl.JSON_BODY)))]


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


@pytest.mark.parametrize("size", ["W1", "W3"])
def test_gzip_compress(benchmark, core, size):
    body = wl.by_id(size).body
    benchmark.group = f"core: gzip_compress {len(body)} B"
    benchmark(core.gzip_compress, body, wl.GZIP_LEVEL)


def test_accepts_gzip(benchmark, core):
    accepts_gzip = core.accepts_gzip
    benchmark.group = f"core: accepts_gzip x{LOOP}"

    def loop():
        for _ in range(LOOP):
            accepts_gzip(wl.ACCEPT_ENCODING)

    benchmark(loop)


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
    """core.respond alone: W1 hashes + gzips, W2 answers 304."""
    w = wl.by_id(workload)
    req = request(w, W1_TAG if w.revalidate else None)
    benchmark.group = f"core: respond {w.label}"
    status, _headers, _body = benchmark(core.respond, SETTINGS, req, "200 OK", list(W1_HEADERS), wl.JSON_BODY)
    assert status.startswith("304" if w.revalidate else "200")


def test_respond_stream(benchmark, core):
    """core.respond_stream alone: the headers of a gzipped stream of HTML."""
    respond_stream = core.respond_stream
    headers = [("Content-Type", "text/html; charset=utf-8")]
    req = request(wl.by_id("W3"))
    benchmark.group = f"core: respond_stream x{LOOP}"

    def loop():
        for _ in range(LOOP):
            respond_stream(SETTINGS, req, "200 OK", headers, True)

    benchmark(loop)
    assert respond_stream(SETTINGS, req, "200 OK", headers, True)[2] == STREAM_GZIP
