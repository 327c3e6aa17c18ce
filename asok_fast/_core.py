"""Choose the core once, at import: compiled when it can, pure Python otherwise.

``ASOK_FAST_NO_EXTENSIONS`` set to ``1``, ``true`` or ``yes`` (any case) selects
pure Python without touching the compiled module; ``0``, ``false``, ``no`` and
empty leave the choice to us.  A missing or broken compiled module falls back
to pure Python with one ``RuntimeWarning`` naming the cause.

This module is also the one loader of the compiled module: tests, scripts,
fuzz targets and benchmarks call :func:`load_compiled` or
:func:`find_compiled`.  The switch is read by ``_switch`` (re-exported here).
"""

from __future__ import annotations

import importlib
import platform
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Optional, Tuple

from ._switch import SWITCH, extensions_disabled, switch_on

__all__ = ["SWITCH", "switch_on", "extensions_disabled", "load_compiled", "find_compiled", "core", "IMPLEMENTATION"]


def load_compiled() -> ModuleType:
    """``asok_fast._core_c``, imported; its ImportError (or a failing init) as raised."""
    # import_module, not "from . import _core_c": inside the package's own
    # import, a missing module would read "cannot import name '_core_c' from
    # partially initialized module ... (most likely due to a circular
    # import)" instead of "No module named 'asok_fast._core_c'".
    return importlib.import_module("asok_fast._core_c")


def find_compiled() -> Tuple[Optional[ModuleType], str]:
    """``(the compiled core, "")``, or ``(None, why it is not used)``: the
    switch is set (then the module is not imported at all), or it cannot be
    loaded."""
    if extensions_disabled():
        return None, f"{SWITCH} is set: pure Python only"
    return _try_load()


def _try_load() -> Tuple[Optional[ModuleType], str]:
    try:
        return load_compiled(), ""
    except Exception as exc:  # ImportError, or a broken build failing at init
        return None, f"{type(exc).__name__}: {exc}"


def _select() -> "Tuple[ModuleType, str]":
    from . import _core_py

    if extensions_disabled() or platform.python_implementation() != "CPython":
        return _core_py, "python"
    compiled, why = _try_load()
    if compiled is None:
        warnings.warn(
            f"asok_fast: the compiled core could not be loaded ({why}); using the pure-Python implementation",
            RuntimeWarning,
            stacklevel=3,
        )
        return _core_py, "python"
    return compiled, "compiled"


if TYPE_CHECKING:
    from . import _core_py as core

    IMPLEMENTATION: str
else:
    core, IMPLEMENTATION = _select()
