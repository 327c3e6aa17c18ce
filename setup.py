"""Build asok_fast, with its compiled core ``asok_fast._core_c`` when possible.

Metadata lives in pyproject.toml; this file owns only the extension.

* ``ASOK_FAST_NO_EXTENSIONS`` = 1 / true / yes (any case): no extension is
  registered and the wheel is pure Python.  0 / false / no / empty leave it
  off.  The rule is ``asok_fast._switch``'s, loaded from its file (the
  package itself cannot be imported before it is built).
* Otherwise the core is cythonized and compiled.  If that fails (no compiler,
  no zlib headers, no Cython in a non-isolated build...), a banner says so on
  stderr and a pure-Python package is built instead -- unless
  ``ASOK_FAST_REQUIRE_EXTENSIONS`` is set (same rule) or the build runs under
  cibuildwheel, where the failure is fatal: a release wheel must never lack
  its core silently.
* Not on CPython (PyPy, GraalPy): no extension; the pure core is the one to
  use there.
"""

import glob
import importlib.util
import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# Cython compiler directives: here and nowhere else.  boundscheck and
# wraparound keep their default (on); functions that need them off say so.
CYTHON_DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
}

CORE_PYX = os.path.join("asok_fast", "_core_c.pyx")
HERE = os.path.dirname(os.path.abspath(__file__))


def _load_switch_rule():
    spec = importlib.util.spec_from_file_location("_asok_fast_switch", os.path.join(HERE, "asok_fast", "_switch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports only the standard library
    return module.switch_on


env_flag = _load_switch_rule()


class BuildFailed(Exception):
    """The compiled core could not be built (raised out of setup())."""


class optional_build_ext(build_ext):
    """build_ext that cythonizes here and turns build failures into BuildFailed.

    The compiler errors caught are those markupsafe's setup.py catches: no
    usable compiler (PlatformError), a failing compile or link
    (CCompilerError), a compiler that cannot be run (ExecError).  Cython
    errors and a missing Cython count too.
    """

    def run(self):
        try:
            super().run()
        except PlatformError as exc:
            raise BuildFailed(f"no usable C compiler: {exc}") from exc

    def build_extension(self, ext):
        try:
            from Cython.Build import cythonize
            from Cython.Compiler.Errors import CompileError as CythonError
        except ImportError as exc:
            raise BuildFailed(f"Cython is not installed: {exc}") from exc
        try:
            (cythonized,) = cythonize(
                [ext],
                compiler_directives=CYTHON_DIRECTIVES,
                quiet=not self.verbose,
                force=self.force,
            )
        except CythonError as exc:
            raise BuildFailed(f"Cython could not translate {CORE_PYX}: {exc}") from exc
        ext.sources = cythonized.sources
        if self.compiler.compiler_type == "unix":  # gcc, clang
            ext.extra_compile_args = ["-O3"]
        self._compile(ext)

    def _compile(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError) as exc:
            raise BuildFailed(f"compiling {ext.name} failed: {exc}") from exc


def core_extension():
    return Extension(
        "asok_fast._core_c",
        sources=[CORE_PYX],
        # The .pyx includes _c/*.pxi and cimports the .pxd files; the C code is in _c/*.h.
        depends=sorted(glob.glob(os.path.join("asok_fast", "_c", "*")) + glob.glob(os.path.join("asok_fast", "*.pxd"))),
        include_dirs=[os.path.join("asok_fast", "_c")],
        libraries=["z"],
    )


def banner(lines):
    rule = "=" * 76
    print("\n".join(["", rule, *(f"  {line}" for line in lines), rule, ""]), file=sys.stderr)


def run_setup(with_extension):
    setup(
        ext_modules=[core_extension()] if with_extension else [],
        cmdclass={"build_ext": optional_build_ext},
    )


def main():
    if env_flag("ASOK_FAST_NO_EXTENSIONS"):
        if env_flag("ASOK_FAST_REQUIRE_EXTENSIONS"):
            sys.exit("error: ASOK_FAST_NO_EXTENSIONS and ASOK_FAST_REQUIRE_EXTENSIONS are both set")
        run_setup(with_extension=False)
        return
    if platform.python_implementation() != "CPython":
        run_setup(with_extension=False)
        return
    try:
        run_setup(with_extension=True)
    except BuildFailed as exc:
        required = env_flag("ASOK_FAST_REQUIRE_EXTENSIONS") or env_flag("CIBUILDWHEEL")
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if required:
            banner([
                "ERROR: the compiled core asok_fast._core_c could not be built,",
                "and ASOK_FAST_REQUIRE_EXTENSIONS (or CIBUILDWHEEL) forbids a",
                "pure-Python fallback.",
                f"Cause: {exc}",
            ])
            raise
        banner([
            "WARNING: the compiled core asok_fast._core_c could not be built.",
            f"Cause: {type(cause).__name__}: {exc}",
            "",
            "Installing a pure-Python asok_fast instead: it behaves the same",
            "but is slower (asok_fast.IMPLEMENTATION will be 'python').",
            "To build the core, install a C compiler, the zlib headers",
            "(zlib1g-dev / zlib-devel) and Cython >= 3, then reinstall.",
            "Set ASOK_FAST_REQUIRE_EXTENSIONS=1 to make this failure fatal.",
        ])
        run_setup(with_extension=False)
        banner(["WARNING: installed asok_fast WITHOUT its compiled core (pure Python)."])


main()
