"""The same workloads through the anchor stacks (the ``bench`` extra installs them).

Flask bare / with Flask-Compress + Flask-CORS + add_etag/make_conditional /
wrapped by asok_fast; Django bare / with CorsMiddleware + GZipMiddleware +
ConditionalGetMiddleware / wrapped by asok_fast; Asok 0.8 with GZIP and
CORS_ORIGINS off and on.  Each is checked for the work it claims before it is
timed; a framework that is not installed is skipped with the reason.
"""

from __future__ import annotations

import pytest
from _support import WORKLOAD_IDS, group, prepared

ANCHORS = [
    "flask",
    "flask+ext",
    "flask+asok_fast",
    "django",
    "django+mw",
    "django+asok_fast",
    "asok",
    "asok+gzip+cors",
]


@pytest.mark.parametrize("workload", WORKLOAD_IDS)
@pytest.mark.parametrize("stack_id", ANCHORS)
def test_anchor(benchmark, anchor_stacks, stack_id, workload):
    built, unavailable = anchor_stacks
    stack = built.get(stack_id)
    if stack is None:
        framework = stack_id.split("+", 1)[0]
        pytest.skip(unavailable.get(framework, f"{stack_id} not built"))
    cell = prepared(stack, workload)
    benchmark.group = group(workload)
    benchmark(cell.call)
