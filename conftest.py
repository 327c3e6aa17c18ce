"""Repository-level pytest switches: what a run at the root collects.

* ``pytest`` runs the tests under ``tests/`` and no benchmark;
* ``pytest --benchmark`` runs the benchmarks under ``bench/`` (pytest-benchmark,
  both cores side by side) and no test; pytest-benchmark's own flags
  (``--benchmark-disable``, ``--benchmark-json``...) work with it;
* a path given on the command line is collected as asked: ``pytest bench/``
  runs the benchmarks too, ``pytest tests/test_gzip.py`` that file.

Both directories are in ``testpaths`` (pyproject.toml); this file ignores the
one the run does not want.  pytest-benchmark is needed only when benchmarks
are collected (the ``bench`` extra), so plain ``pytest`` works without it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parent
TESTS = ROOT / "tests"
BENCH = ROOT / "bench"


def _unshadow_installed_package() -> None:
    """Take the checkout's root off ``sys.path`` again.

    To import this file, pytest (``--import-mode=prepend``) put its directory
    first on ``sys.path``, where the checkout's ``asok_fast/`` would shadow the
    installed package: CI installs the package (with its compiled core) and runs
    ``pytest`` from the checkout, and must test what pip installed, as it did
    before this file existed.  Under ``python -m pytest`` run from the root,
    Python itself put the directory there: leave it.
    """
    if not sys.path or os.path.realpath(sys.path[0] or os.curdir) != str(ROOT):
        return
    launched_with_m = getattr(sys.modules.get("__main__"), "__spec__", None) is not None
    if launched_with_m and os.path.realpath(os.getcwd()) == str(ROOT):
        return
    del sys.path[0]


_unshadow_installed_package()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="run the benchmarks under bench/ (pytest-benchmark) instead of the tests under tests/",
    )


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _explicit_paths(config: pytest.Config) -> List[Path]:
    """Paths named on the command line (not the testpaths default)."""
    source = getattr(config, "args_source", None)
    if source is not None and source != pytest.Config.ArgsSource.ARGS:
        return []
    invocation = Path(config.invocation_params.dir)
    paths = []
    for arg in config.args:
        candidate = (invocation / arg.split("::", 1)[0]).resolve()
        if candidate.exists():
            paths.append(candidate)
    return paths


def _wants_bench(config: pytest.Config) -> bool:
    return bool(config.getoption("--benchmark")) or any(_inside(p, BENCH) for p in _explicit_paths(config))


def pytest_configure(config: pytest.Config) -> None:
    if _wants_bench(config) and importlib.util.find_spec("pytest_benchmark") is None:
        raise pytest.UsageError(
            "the benchmarks under bench/ need pytest-benchmark: pip install -e '.[bench]'"
        )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> Optional[bool]:
    path = Path(collection_path).resolve()
    if config.getoption("--benchmark"):
        if _inside(path, TESTS) and not any(_inside(p, TESTS) for p in _explicit_paths(config)):
            return True
        return None
    if _inside(path, BENCH) and not any(_inside(p, BENCH) for p in _explicit_paths(config)):
        return True
    return None
