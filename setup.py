"""Build asok_fast, with its compiled core ``asok_fast._core_c`` when possible.

Metadata lives in pyproject.toml; this file owns only the extension.

* ``ASOK_FAST_NO_EXTENSIONS`` = 1 / true / yes (any case): no extension is
  registered and the wheel is pure Python.  0 / false / no / empty leave it
  off (the same rule as ``asok_fast._core`` applies at import).
* Otherwise the core is cythonized and compiled.  If that fails (no compiler,
  no zlib headers, no Cython in a non-isolated build...), a banner says so on
  stderr and a pure-Python package is built instead -- unless
  ``ASOK_FAST_REQUIRE_EXTENSIONS`` is set (same rule) or the build runs under
  cibuildwheel, where the failure is fatal: a release wheel must never lack
  its core silently.
* Not on CPython (PyPy, GraalPy): no extension; the pure core is the one to
  use there.
* Under GCC the core is built profile-guided: compiled instrumented, run on
  the traffic mix of ``asok_fast.benchmarks.training`` in a subprocess, then
  compiled again with ``-fprofile-use``.  The profile changes no behaviour,
  only code layout and inlining: the per-request path touches fewer
  instruction-cache lines (measured in that module's docstring).
  ``ASOK_FAST_PGO`` = 0 / false / no builds in one pass; any failure on the
  way (another compiler, a GCC without ``-fprofile-partial-training``, a
  training run that cannot import the build) falls back to the one-pass build
  with a note on stderr.
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile

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


def env_flag(name):
    """1/true/yes (any case, surrounding blanks ignored) -> True; else False."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def pgo_wanted():
    """ASOK_FAST_PGO: on unless 0/false/no (any case, blanks ignored)."""
    return os.environ.get("ASOK_FAST_PGO", "").strip().lower() not in ("0", "false", "no")


class BuildFailed(Exception):
    """The compiled core could not be built (raised out of setup())."""


class ProfileFailed(Exception):
    """The profile-guided build could not be made (the one-pass build follows)."""


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
        target = self.get_ext_fullpath(ext.name)
        if pgo_wanted() and self._is_gcc() and not self._up_to_date(ext, target):
            try:
                self._build_profile_guided(ext, target)
                return
            except ProfileFailed as exc:
                print(f"note: profile-guided build of {ext.name} failed ({exc}); building it in one pass", file=sys.stderr)
                self._fresh_compile(ext, target)  # never leave the instrumented build behind
                return
        self._compile(ext)

    def _up_to_date(self, ext, target):
        """What build_ext itself checks before compiling (it would skip the build)."""
        if self.force or not os.path.exists(target):
            return False
        built = os.path.getmtime(target)
        return all(os.path.getmtime(p) <= built for p in [*ext.sources, *(ext.depends or [])] if os.path.exists(p))

    def _compile(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError) as exc:
            raise BuildFailed(f"compiling {ext.name} failed: {exc}") from exc

    def _is_gcc(self):
        if self.compiler.compiler_type != "unix":
            return False
        try:
            out = subprocess.run(
                [self.compiler.compiler_so[0], "--version"], capture_output=True, text=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        return "Free Software Foundation" in out and "clang" not in out.lower()

    def _build_profile_guided(self, ext, target):
        """Instrumented build, the training run, then the build that uses its profile."""
        base_compile = list(ext.extra_compile_args or [])
        base_link = list(ext.extra_link_args or [])
        base_macros = list(ext.define_macros or [])
        profile_dir = tempfile.mkdtemp(prefix="asok_fast-pgo-")
        try:
            # The .gcda file is named after the object file's path, which both
            # passes share (the same build_temp).
            ext.extra_compile_args = base_compile + [f"-fprofile-generate={profile_dir}"]
            ext.extra_link_args = base_link + [f"-fprofile-generate={profile_dir}"]
            self._fresh_compile(ext, target)
            self._train(target, profile_dir)
            ext.extra_compile_args = base_compile + [
                f"-fprofile-use={profile_dir}",
                "-fprofile-partial-training",  # untrained paths stay optimised for speed
                "-Wno-missing-profile",
            ]
            ext.extra_link_args = base_link
            ext.define_macros = base_macros + [("ASOKFAST_PGO", "1")]
            self._fresh_compile(ext, target)
        except BuildFailed as exc:
            raise ProfileFailed(str(exc)) from exc
        finally:
            ext.extra_compile_args, ext.extra_link_args, ext.define_macros = base_compile, base_link, base_macros
            shutil.rmtree(profile_dir, ignore_errors=True)

    def _fresh_compile(self, ext, target):
        if os.path.exists(target):
            os.remove(target)  # else build_ext may find it up to date and skip
        self._compile(ext)

    def _train(self, built, profile_dir):
        """Run the instrumented module on the training mix, from a copy of the package."""
        root = tempfile.mkdtemp(prefix="asok_fast-train-")
        try:
            package = os.path.join(root, "asok_fast")
            shutil.copytree(
                os.path.join(HERE, "asok_fast"),
                package,
                ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "*.pyx", "__pycache__"),
            )
            shutil.copy2(built, os.path.join(package, os.path.basename(built)))
            env = {k: v for k, v in os.environ.items() if k not in ("ASOK_FAST_NO_EXTENSIONS", "PYTHONPATH")}
            env["PYTHONPATH"] = root
            env["PYTHONHASHSEED"] = "0"  # the same training, so the same profile, every build
            try:
                run = subprocess.run(
                    [sys.executable, "-s", "-m", "asok_fast.benchmarks.training"],
                    cwd=root, env=env, capture_output=True, text=True, timeout=600,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise ProfileFailed(f"the training run could not start: {exc}") from exc
            if run.returncode != 0:
                tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
                raise ProfileFailed(f"the training run failed: {tail[0]}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if not any(name.endswith(".gcda") for _, _, files in os.walk(profile_dir) for name in files):
            raise ProfileFailed("the training run wrote no profile")


def core_extension():
    return Extension(
        "asok_fast._core_c",
        sources=[CORE_PYX],
        depends=[
            os.path.join("asok_fast", "_md5.h"),
            os.path.join("asok_fast", "_crc32.h"),
            os.path.join("asok_fast", "_zlib.pxd"),
        ],
        include_dirs=["asok_fast"],
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
