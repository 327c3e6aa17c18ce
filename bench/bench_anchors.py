"""The same workloads through the anchor stacks (the ``bench`` extra installs them).

Flask bare / with Flask-Compress + Flask-CORS + add_etag/make_conditional;
Django bare / with CorsMiddleware + GZipMiddleware + ConditionalGetMiddleware;
Django without CommonMiddleware; Asok 0.8 with GZIP and CORS_ORIGINS off and
on; and each bare Flask or Django app wrapped by asok_fast on each core, side
by side.  Each is checked for the work it claims before it is timed; a
framework that is not installed is skipped with the reason.
"""

from __future__ import annotations

import pytest
from _support import WORKLOAD_IDS, group, prepared

from asok_fast.benchmarks import stacks as st

ANCHORS = ["flask", "flask+ext", "django", "django+mw", "django-nocommon", "asok", "asok+gzip+cors"]


def _built(stacks, stack_id, unavailable):
    """``stacks[stack_id]``, or a skip saying why it was not built."""
    stack = stacks.get(stack_id)
    if stack is None:
        pytest.skip(st.why_unavailable(stack_id, unavailable) or f"{stack_id} not built")
    return stack


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
@pytest.mark.parametrize("stack_id", ANCHORS)
def test_anchor(benchmark, anchor_stacks, stack_id, workload):
    built, unavailable = anchor_stacks
    cell = prepared(_built(built, stack_id, unavailable), workload)
    benchmark.group = group(workload)
    benchmark(cell.call)


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
@pytest.mark.parametrize("framework", st.WRAPPED)
def test_wrapped(benchmark, anchor_stacks, wrapped_stacks, framework, workload):
    """``<framework>+asok_fast`` on the core under benchmark."""
    cell = prepared(_built(wrapped_stacks, framework, anchor_stacks[1]), workload)
    benchmark.group = group(workload)
    benchmark(cell.call)
