"""The yes/no environment switches: ``ASOK_FAST_NO_EXTENSIONS`` and its kin.

The one parser of these variables, for the selector (``_core``) at import and
for setup.py at build time, which loads this file by path before the package
exists: it imports nothing but the standard library.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["SWITCH", "switch_on", "extensions_disabled"]

#: The environment variable that selects pure Python (at import and at build).
SWITCH = "ASOK_FAST_NO_EXTENSIONS"
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})


def switch_on(name: str, value: "str | None" = None) -> bool:
    """Read a yes/no environment switch: ``1``/``true``/``yes`` (any case,
    blanks ignored) is on; ``0``/``false``/``no``, empty or unset is off;
    anything else is off with a ``RuntimeWarning``.  ``value`` defaults to
    the variable's current value."""
    if value is None:
        value = os.environ.get(name)
        if value is None:
            return False
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    warnings.warn(f"{name}={value!r} is not one of 1/true/yes or 0/false/no; taken as off", RuntimeWarning, stacklevel=2)
    return False


def extensions_disabled(value: "str | None" = None) -> bool:
    """Whether ``ASOK_FAST_NO_EXTENSIONS`` (or ``value``) asks for pure Python."""
    return switch_on(SWITCH, value)
