"""``asok-fast`` / ``python -m asok_fast``: the command line.

* ``asok-fast serve [MODULE:APP]`` - serve a WSGI or ASGI app (or the built-in demo)
  wrapped by ResponseMiddleware or ASGIMiddleware on a production server;
* ``asok-fast info`` - version, implementation, zlib, the codings and their
  libraries, Python, build details;
* ``asok-fast bench`` - the benchmark workloads, interleaved, as one table.

Each subcommand lives in its own module and is imported only when used, so
``info`` needs nothing beyond the standard library.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import sysconfig
import zlib
from typing import List, Optional

# command -> (module, help); the module has add_arguments(parser) and run(args) -> int
_COMMANDS = {
    "serve": ("asok_fast._serve", "serve a WSGI or ASGI app (default: the demo) wrapped by the middleware"),
    "bench": ("asok_fast.benchmarks.runner", "run the benchmark workloads side by side and print one table"),
}


def _info(args: argparse.Namespace) -> int:
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
    # The codings this install can send, in the default order of preference.
    from asok_fast._codecs import available
    from asok_fast._shared import CODINGS

    for coding, library in sorted(available(), key=lambda item: CODINGS.index(item[0])):
        lines.append((f"coding {coding}", library))
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
        description="CORS, zstd/br/gzip compression and MD5 ETags for any WSGI or ASGI app, with a compiled core.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="version, implementation, zlib, codings, Python and build details")
    info.set_defaults(run=_info)
    for name, (module_name, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, add_help=False)
        sub.set_defaults(module=module_name)
    # Parse in two steps so that a subcommand's own options are defined by its
    # module, imported only when that subcommand runs.
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "info":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.run(args)
    module = importlib.import_module(args.module)
    sub = argparse.ArgumentParser(prog=f"asok-fast {args.command}", description=_COMMANDS[args.command][1])
    module.add_arguments(sub)
    return int(module.run(sub.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
