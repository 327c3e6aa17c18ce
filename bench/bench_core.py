"""The core's helpers on their own, for both cores (tiny ones looped 100 times per call)."""

from __future__ import annotations

import hashlib

import pytest

from asok_fast._config import build_settings, initial_values
from asok_fast.benchmarks import workloads as wl

LOOP = 100
SETTINGS = build_settings(initial_values(None, wl.CONFIG))
W1 = wl.by_id("W1")
W1_TAG = f'"{hashlib.md5(wl.JSON_BODY).hexdigest()}-gzip"'
W1_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(wl.JSON_BODY)))]


def _need(core, name):
    function = getattr(core, name, None)
    if function is None:
        pytest.skip(f"{core.__name__} has no {name}")
    return function


@pytest.mark.parametrize("size", ["W1", "W6"])
def test_md5_hex(benchmark, core, size):
    md5_hex = _need(core, "md5_hex")
    body = wl.by_id(size).body
    benchmark.group = f"core: md5_hex {len(body)} B"
    assert benchmark(md5_hex, body) == hashlib.md5(body).hexdigest()


@pytest.mark.parametrize("size", ["W1", "W3"])
def test_gzip_compress(benchmark, core, size):
    gzip_compress = _need(core, "gzip_compress")
    body = wl.by_id(size).body
    benchmark.group = f"core: gzip_compress {len(body)} B"
    benchmark(gzip_compress, body, wl.GZIP_LEVEL)


def test_accepts_gzip(benchmark, core):
    accepts_gzip = _need(core, "accepts_gzip")
    benchmark.group = f"core: accepts_gzip x{LOOP}"

    def loop():
        for _ in range(LOOP):
            accepts_gzip(wl.ACCEPT_ENCODING)

    benchmark(loop)


def test_parse_if_none_match(benchmark, core):
    parse = _need(core, "parse_if_none_match")
    benchmark.group = f"core: parse_if_none_match x{LOOP}"

    def loop():
        for _ in range(LOOP):
            parse(W1_TAG)

    benchmark(loop)


def test_is_compressible(benchmark, core):
    is_compressible = _need(core, "is_compressible")
    benchmark.group = f"core: is_compressible x{LOOP}"
    empty = frozenset()

    def loop():
        for _ in range(LOOP):
            is_compressible("application/json; charset=utf-8", empty)

    benchmark(loop)


def test_preflight_headers(benchmark, core):
    preflight = _need(core, "preflight")
    environ = wl.environ_for(wl.by_id("W4"))
    benchmark.group = f"core: preflight x{LOOP}"

    def loop():
        for _ in range(LOOP):
            preflight(SETTINGS, environ)

    benchmark(loop)


@pytest.mark.parametrize("workload", ["W1", "W2"])
def test_respond(benchmark, core, workload):
    """core.respond alone (no WSGI plumbing): W1 hashes + gzips, W2 answers 304."""
    respond = _need(core, "respond")
    w = wl.by_id(workload)
    environ = wl.environ_for(w, if_none_match=W1_TAG if w.revalidate else None)
    benchmark.group = f"core: respond {w.label}"
    status, _headers, _body = benchmark(respond, SETTINGS, environ, "200 OK", list(W1_HEADERS), wl.JSON_BODY)
    assert status.startswith("304" if w.revalidate else "200")
