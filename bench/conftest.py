"""Fixtures of the pytest-benchmark files (``pytest --benchmark`` at the root).

``core`` yields each implementation, ids ``compiled`` and ``python`` (the words
of ``asok_fast.IMPLEMENTATION``), so every whole-WSGI benchmark gives both
medians side by side; the compiled one is skipped, visibly, when it cannot be
loaded or ``ASOK_FAST_NO_EXTENSIONS`` is set (then it is never imported), and
``-m "not compiled"`` deselects it.

Workloads, stacks and checks come from ``asok_fast.benchmarks`` (the same
definitions ``asok-fast bench`` uses, W7..W9 with a new body per request
and W10..W13 for a gzip-only client included).  Each benchmark's stack answers its
request once and is checked for the work it claims before it is timed.  The
anchor frameworks are imported at session start when installed, so every
benchmark runs in a process that has loaded them (as a real server has).

This file is imported by plain ``pytest`` too (``bench`` is in testpaths): it
must not need pytest-benchmark or the frameworks at import.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import pytest

from asok_fast import _core_py
from asok_fast.benchmarks import stacks as st
from asok_fast.benchmarks import workloads as wl


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compiled: runs against the compiled core (asok_fast._core_c)")


@pytest.fixture(scope="session", autouse=True)
def _frameworks_loaded() -> Dict[str, str]:
    """Import Flask, Django and Asok if installed: a bare process measures zlib's
    allocations differently (glibc returns freed memory there)."""
    return st.load_frameworks()


@pytest.fixture(scope="session", params=[pytest.param("compiled", marks=pytest.mark.compiled), "python"])
def core(request: pytest.FixtureRequest) -> Any:
    """The core module under benchmark: ``_core_c`` or ``_core_py``."""
    cores, unavailable = st.twins()
    if request.param not in cores:
        pytest.skip(unavailable[request.param])
    return cores[request.param]


@pytest.fixture(scope="session")
def bare_stack() -> st.Stack:
    return st.Stack("bare", "wsgi", "bare", "bare WSGI app", wl.bare_app, copy_environ=False)


@pytest.fixture(scope="session")
def middleware_stack(core: Any, bare_stack: st.Stack) -> st.Stack:
    """ResponseMiddleware(bare_app, CONFIG) bound to the core under benchmark."""
    return st.middleware_stack("python" if core is _core_py else "compiled", core, bare_stack)


@pytest.fixture(scope="session")
def gzip_only_stack(core: Any, bare_stack: st.Stack) -> st.Stack:
    """The same with ``COMPRESS_CODINGS = ["gzip"]`` (Asok's behaviour, asok_fast's before zstd and br)."""
    name = "python" if core is _core_py else "compiled"
    return st.middleware_stack(f"{name}-gzip", core, bare_stack, wl.GZIP_ONLY_CONFIG)


@pytest.fixture(scope="session")
def nocache_stack(core: Any, bare_stack: st.Stack) -> st.Stack:
    """The middleware with ``COMPRESS_CACHE_SIZE = 0`` (the cache off)."""
    name = "python" if core is _core_py else "compiled"
    return st.middleware_stack(f"{name}-nocache", core, bare_stack, st.NOCACHE_CONFIG)


@pytest.fixture(scope="session")
def isal_stack(core: Any, bare_stack: st.Stack) -> st.Stack:
    """The middleware with ``GZIP_ENGINE = "isal"`` and the cache off; skipped without isal."""
    name = "python" if core is _core_py else "compiled"
    stack = st.isal_stack(core, bare_stack, name)
    if stack is None:
        pytest.skip("the isal package is not installed (pip install 'asok_fast[isal]')")
    return stack


@pytest.fixture(scope="session")
def floor_stacks() -> Dict[str, st.Stack]:
    """The C-work floors by id: ``floor`` (gzip-6), ``floor-zstd``, ``floor-br``."""
    return {s.id: s for s in st.floor_stacks()}


@pytest.fixture(scope="session")
def anchor_stacks() -> Tuple[Dict[str, st.Stack], Dict[str, str]]:
    """The Flask, Django and Asok stacks that can be built here (built once)."""
    built, unavailable = st.build_stacks()
    return {s.id: s for s in built}, unavailable


@pytest.fixture(scope="session")
def wrapped_stacks(core: Any, anchor_stacks: Tuple[Dict[str, st.Stack], Dict[str, str]]) -> Dict[str, st.Stack]:
    """Each bare Flask or Django app wrapped by asok_fast on the core under benchmark."""
    built, _ = anchor_stacks
    return {name: st.wrapped_stack(built[name], core) for name in st.WRAPPED if name in built}
