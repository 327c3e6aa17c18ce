"""Whole WSGI calls for W1..W9: asok_fast on both cores (its default codings, and
gzip alone), the bare app, the C-work floors (gzip-6, zstd-3, brotli-4).

Grouped by workload, so pytest-benchmark's table shows ``compiled``,
``python``, ``bare`` and the floors of one workload together.  W7..W9 make a
new body for every request (the bare app too), so no cache of compressed
bodies can answer them; W9's client accepts only ``br``.
"""

from __future__ import annotations

import pytest
from _support import WORKLOAD_IDS, group, prepared

from asok_fast.benchmarks import stacks as st


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
def test_middleware(benchmark, middleware_stack, workload):
    cell = prepared(middleware_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", [w for w in WORKLOAD_IDS if w not in ("W2", "W4", "W5", "W6")])
def test_middleware_gzip_only(benchmark, gzip_only_stack, workload):
    """``COMPRESS_CODINGS = ["gzip"]`` on the workloads that compress."""
    cell = prepared(gzip_only_stack, workload)
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
