"""Whole WSGI calls for W1..W13: asok_fast on both cores (its default codings,
and gzip alone; the compressed-body cache on, the default, and off; the ISA-L
gzip engine), the bare app, the C-work floors (gzip-6, zstd-3, brotli-4).

Grouped by workload, so pytest-benchmark's table shows ``compiled``,
``python``, ``bare`` and the floors of one workload together.  W1, W3, W10 and
W11 send the same body every time: with the cache on they measure its hits.
W7..W9, W12 and W13 make a new body for every request (the bare app too), so
the cache never answers them; W9's client accepts only ``br``, W10..W13's only
``gzip``.
"""

from __future__ import annotations

import pytest
from _support import WORKLOAD_IDS, group, prepared

from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl

#: W10..W13: the clients that accept only gzip.
GZIP_CLIENT = [w.id for w in wl.GZIP_CLIENT_WORKLOADS]


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
def test_middleware(benchmark, middleware_stack, workload):
    cell = prepared(middleware_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


#: The workloads that compress (where the cache and the gzip engine work).
COMPRESSING = [w.id for w in wl.ALL_WORKLOADS if w.compresses]


@pytest.mark.parametrize("workload", [w for w in COMPRESSING if w not in GZIP_CLIENT])
def test_middleware_gzip_only(benchmark, gzip_only_stack, workload):
    """``COMPRESS_CODINGS = ["gzip"]`` on the workloads that compress."""
    cell = prepared(gzip_only_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", COMPRESSING)
def test_middleware_cache_off(benchmark, nocache_stack, workload):
    """``COMPRESS_CACHE_SIZE = 0``: every request compresses (beside the cache's hits and misses)."""
    cell = prepared(nocache_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", GZIP_CLIENT)
def test_middleware_isal(benchmark, isal_stack, workload):
    """``GZIP_ENGINE = "isal"`` (level 1), the cache off, for the gzip-only clients."""
    cell = prepared(isal_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
def test_bare_app(benchmark, bare_stack, workload):
    cell = prepared(bare_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
@pytest.mark.parametrize("floor", list(st.FLOORS))
def test_c_work_floor(benchmark, floor_stacks, floor, workload):
    cell = prepared(floor_stacks[floor], workload)
    benchmark.group = group(workload)
    benchmark(cell.call)
