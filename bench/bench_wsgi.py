"""Whole WSGI calls for W1..W6: asok_fast on both cores, the bare app, the C-work floor.

Grouped by workload, so pytest-benchmark's table shows ``compiled``,
``python``, ``bare`` and ``floor`` of one workload together.
"""

from __future__ import annotations

import pytest
from _support import WORKLOAD_IDS, group, prepared


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
def test_middleware(benchmark, middleware_stack, workload):
    cell = prepared(middleware_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
def test_bare_app(benchmark, bare_stack, workload):
    cell = prepared(bare_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
def test_c_work_floor(benchmark, floor_stack, workload):
    cell = prepared(floor_stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)
