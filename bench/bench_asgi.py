"""Whole ASGI calls on W1, W3 and W4 (issue 17): the bare ASGI app, asok_fast's
``ASGIMiddleware`` on both cores, Starlette's ``CORSMiddleware`` +
``GZipMiddleware``, starlette-compress + ``CORSMiddleware``, and the same
through a Starlette app (bare, with its middlewares, wrapped by asok_fast).

Grouped by workload, beside bench_wsgi.py's WSGI cells of the same workload.
Each request is one coroutine stepped with ``send(None)``, no event loop (see
``asok_fast.benchmarks.asgi_stacks``); a cell whose app hands work to a thread
(Starlette's GZip on W3's 140 KB page) runs on one persistent loop.  Every
stack answers once and is checked (coding, body, ETag, CORS) before it is timed.
"""

from __future__ import annotations

from typing import Dict, Tuple

import pytest
from _support import group, prepared

from asok_fast.benchmarks import asgi_stacks
from asok_fast.benchmarks import stacks as st

WORKLOADS = ["W1", "W3", "W4"]


@pytest.fixture(scope="session")
def asgi_built() -> Tuple[Dict[str, st.Stack], Dict[str, str]]:
    built, unavailable = asgi_stacks.build_asgi_stacks()
    return {s.id: s for s in built}, unavailable


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("stack_id", list(asgi_stacks.ASGI_STACK_IDS))
def test_asgi_stack(benchmark, asgi_built, stack_id, workload):
    built, unavailable = asgi_built
    if stack_id not in built:
        pytest.skip(f"{stack_id}: {unavailable.get(stack_id, 'not built')}")
    cell = prepared(built[stack_id], workload)
    benchmark.group = group(workload)
    benchmark.extra_info["driver"] = cell.info.get("driver")
    benchmark(cell.call)
