"""``asok-fast`` / ``python -m asok_fast``: the command line.

``asok-fast info`` prints what is installed and which core runs.
"""

from __future__ import annotations

import argparse
import platform
import sys
import sysconfig
import zlib
from typing import List, Optional


def _info() -> int:
    import asok_fast
    from asok_fast import _core

    core = _core.core
    lines = [
        ("asok_fast", asok_fast.__version__),
        ("implementation", asok_fast.IMPLEMENTATION),
        ("core module", getattr(core, "__file__", core.__name__)),
        ("zlib (Python's)", zlib.ZLIB_RUNTIME_VERSION),
    ]
    zlib_version = getattr(core, "zlib_version", None)
    if zlib_version is not None:
        lines.append(("zlib (compiled core's)", zlib_version()))
    lines += [
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", sysconfig.get_platform()),
        ("compiler", platform.python_compiler()),
    ]
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asok-fast",
        description="CORS, gzip and MD5 ETags for any WSGI app, with a compiled core.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("info", help="version, implementation, zlib, Python and build details")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
