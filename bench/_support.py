"""Helpers of the bench_*.py files (imported by name: pytest puts bench/ on sys.path)."""

from __future__ import annotations

import pytest

from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl

WORKLOAD_IDS = [w.id for w in wl.ALL_WORKLOADS]


def prepared(stack: st.Stack, workload_id: str) -> st.Cell:
    """The stack's checked cell for a workload, or a skip saying why not."""
    workload = wl.by_id(workload_id)
    reason = stack.not_applicable(workload)
    if reason:
        pytest.skip(reason)
    return stack.prepare(workload)  # raises CheckFailed: a failure, not a skip


def group(workload_id: str) -> str:
    return wl.by_id(workload_id).label
