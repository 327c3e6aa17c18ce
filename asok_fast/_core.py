"""Choose the core once, at import: compiled when it can, pure Python otherwise.

``ASOK_FAST_NO_EXTENSIONS`` set to ``1``, ``true`` or ``yes`` (any case) selects
pure Python without touching the compiled module; ``0``, ``false``, ``no`` and
empty leave the choice to us.  A missing or broken compiled module falls back
to pure Python with one ``RuntimeWarning`` naming the cause.
"""

from __future__ import annotations

import importlib
import os
import platform
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})


def extensions_disabled(value: "str | None") -> bool:
    """Read the ``ASOK_FAST_NO_EXTENSIONS`` switch (shared with setup.py's rule)."""
    if value is None:
        return False
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    warnings.warn(
        f"ASOK_FAST_NO_EXTENSIONS={value!r} is not one of 1/true/yes or 0/false/no; "
        "using the compiled core if it is available",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


def _select() -> "tuple[ModuleType, str]":
    from . import _core_py

    if extensions_disabled(os.environ.get("ASOK_FAST_NO_EXTENSIONS")):
        return _core_py, "python"
    if platform.python_implementation() != "CPython":
        return _core_py, "python"
    try:
        # import_module, not "from . import _core_c": inside the package's own
        # import, a missing module would read "cannot import name '_core_c' from
        # partially initialized module ... (most likely due to a circular
        # import)" instead of "No module named 'asok_fast._core_c'".
        _core_c = importlib.import_module("._core_c", __package__)
    except Exception as exc:  # ImportError, or a broken build failing at init
        warnings.warn(
            f"asok_fast: the compiled core could not be loaded ({type(exc).__name__}: {exc}); "
            "using the pure-Python implementation",
            RuntimeWarning,
            stacklevel=3,
        )
        return _core_py, "python"
    return _core_c, "compiled"


if TYPE_CHECKING:
    from . import _core_py as core

    IMPLEMENTATION: str
else:
    core, IMPLEMENTATION = _select()
