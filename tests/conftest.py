"""Fixtures shared by the whole suite: each test runs against both cores.

``core`` yields the compiled twin (id ``compiled``) and the pure one (id
``python``); ``make_mw`` builds a ResponseMiddleware bound to that core through
the private ``_core_module`` seam, so no global is patched.  The compiled
variant is skipped, visibly, with the reason ``_core.find_compiled()`` gives
when the extension is not used (not built, broken, or ``ASOK_FAST_NO_EXTENSIONS``
set); ``-m "not compiled"`` deselects it.
``compiled_core`` is the compiled twin alone, for the tests that compare it
with the pure one or look at what only it has.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import pytest

from asok_fast import ResponseMiddleware, _core, _core_py

_CORE_C, _CORE_C_WHY = _core.find_compiled()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compiled: runs against the compiled core (asok_fast._core_c)")


def _compiled() -> Any:
    if _CORE_C is None:
        pytest.skip(f"compiled core not available: {_CORE_C_WHY}")
    return _CORE_C


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.compiled), "python"],
)
def core(request: pytest.FixtureRequest) -> Any:
    """The core module under test: ``_core_c`` or ``_core_py``."""
    return _compiled() if request.param == "compiled" else _core_py


@pytest.fixture(scope="session", params=[pytest.param("compiled", marks=pytest.mark.compiled)])
def compiled_core(request: pytest.FixtureRequest) -> Any:
    """The compiled core alone (skipped, with the reason, when it cannot be loaded)."""
    return _compiled()


@pytest.fixture
def make_mw(core: Any) -> Callable[..., ResponseMiddleware]:
    """``make_mw(app, config=None)``: a middleware bound to the core under test."""

    def make(app: Callable[..., Any], config: Optional[Mapping[str, Any]] = None) -> ResponseMiddleware:
        return ResponseMiddleware(app, config, _core_module=core)

    return make
