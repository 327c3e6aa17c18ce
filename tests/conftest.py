"""Fixtures shared by the whole suite: each test runs against both cores.

``core`` yields the compiled twin (id ``compiled``) and the pure one (id
``python``); ``make_mw`` builds a ResponseMiddleware bound to that core through
the private ``_core_module`` seam, so no global is patched.  The compiled
variant is skipped, visibly, when the extension is not built; ``-m "not
compiled"`` deselects it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Optional

import pytest

from asok_fast import ResponseMiddleware, _core_py

try:
    _core_c: Any = importlib.import_module("asok_fast._core_c")
except ImportError as exc:  # not built (pure install)
    _core_c = None
    _CORE_C_ERROR = f"{type(exc).__name__}: {exc}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compiled: runs against the compiled core (asok_fast._core_c)")


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.compiled), "python"],
)
def core(request: pytest.FixtureRequest) -> Any:
    """The core module under test: ``_core_c`` or ``_core_py``."""
    if request.param == "compiled":
        if _core_c is None:
            pytest.skip(f"compiled core not built ({_CORE_C_ERROR})")
        return _core_c
    return _core_py


@pytest.fixture
def make_mw(core: Any) -> Callable[..., ResponseMiddleware]:
    """``make_mw(app, config=None)``: a middleware bound to the core under test."""

    def make(app: Callable[..., Any], config: Optional[Mapping[str, Any]] = None) -> ResponseMiddleware:
        return ResponseMiddleware(app, config, _core_module=core)

    return make
