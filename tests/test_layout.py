"""The package's seams, read from its source: who may import what, and the twins' names.

Every module of ``asok_fast/`` is parsed: the ``.py`` files with ``ast``, the Cython files
(``_core_c.pyx``, the ``.pxi`` files it includes, the ``.pxd`` files) with a regex for
``from ... import``/``cimport`` and ``import``/``cimport``.  The rules:

* ``middleware.py`` and ``asgi.py`` (the WSGI and ASGI plumbing) take only public names of
  ``_core``, ``_config`` and ``_shared`` from the package;
* no module imports another module's private name (one leading underscore, and not a
  module itself);
* the cores (``_core_py.py``, ``_core_c.pyx`` and what it includes) import neither the
  plumbing nor a private name of ``_config``;
* nothing under ``asok_fast/`` imports ``asok_fast.benchmarks`` but the benchmarks
  themselves and ``__main__.py``, which loads it by name for ``asok-fast bench`` only;
* the twins and the stub declare the same ``__all__``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import asok_fast
from asok_fast import _core, _core_py

PKG_DIR = Path(asok_fast.__file__).resolve().parent
PACKAGE = "asok_fast"
CORE_C = PKG_DIR / "_core_c.pyx"


@dataclass(frozen=True)
class Import:
    source: str  # the importing file, relative to the package directory
    line: int
    module: str  # absolute dotted name of the module imported (from)
    name: Optional[str]  # the name taken from it; None when the module itself is imported
    top_level: bool  # at import time of the importing module (not inside a function)

    def __str__(self) -> str:
        what = self.module if self.name is None else f"{self.name} from {self.module}"
        return f"{self.source}:{self.line}: {what}"


def _package_of(path: Path) -> str:
    """The package a file's relative imports resolve against; an included ``.pxi`` is
    compiled as part of the ``.pyx`` that includes it, so it resolves as that does."""
    if path.suffix == ".pxi":
        path = CORE_C
    parts = list(path.relative_to(PKG_DIR.parent).with_suffix("").parts)
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


def _absolute(path: Path, module: Optional[str], level: int) -> str:
    if level == 0:
        assert module is not None
        return module
    base = _package_of(path).split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module (a file or a package), not an attribute."""
    if dotted == PACKAGE or dotted.startswith(PACKAGE + "."):
        where = PKG_DIR.parent.joinpath(*dotted.split("."))
        return where.is_dir() or any(where.with_suffix(ext).exists() for ext in (".py", ".pyx", ".pxd", ".pyi")) or bool(list(where.parent.glob(where.name + ".*.so")))
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def _normalise(source: str, line: int, module: str, name: Optional[str], top_level: bool) -> Import:
    if name is not None and _is_module(f"{module}.{name}"):
        return Import(source, line, f"{module}.{name}", None, top_level)
    return Import(source, line, module, name, top_level)


def python_imports(path: Path) -> List[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    source = str(path.relative_to(PKG_DIR))
    found: List[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(source, child.lineno, alias.name, None, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = _absolute(path, child.module, child.level)
                for alias in child.names:
                    found.append(_normalise(source, child.lineno, module, alias.name, top_level))
            visit(child, top_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, True)
    return found


_CY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+c?import[ \t]+(\([^)]*\)|[^\n#]+)", re.M)
_CY_IMPORT = re.compile(r"^[ \t]*c?import[ \t]+([\w., \t]+?)[ \t]*(?:#.*)?$", re.M)
_CY_INCLUDE = re.compile(r"^[ \t]*include[ \t]+\"([^\"]+)\"", re.M)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def cython_imports(path: Path) -> List[Import]:
    text = path.read_text(encoding="utf-8")
    source = str(path.relative_to(PKG_DIR))
    found: List[Import] = []
    for match in _CY_FROM.finditer(text):
        dotted = match.group(1)
        level = len(dotted) - len(dotted.lstrip("."))
        module = _absolute(path, dotted[level:] or None, level)
        names = re.sub(r"#[^\n]*", "", match.group(2)).strip("() \t\n")
        for item in names.split(","):
            name = item.split(" as ")[0].strip()
            if name:
                found.append(_normalise(source, _line_of(text, match.start()), module, name, True))
    for match in _CY_IMPORT.finditer(text):
        for item in match.group(1).split(","):
            name = item.split(" as ")[0].strip()
            if name:
                found.append(Import(source, _line_of(text, match.start()), name, None, True))
    return found


def included_files(pyx: Path) -> List[Path]:
    return [pyx.parent / name for name in _CY_INCLUDE.findall(pyx.read_text(encoding="utf-8"))]


def package_files() -> List[Path]:
    kinds = ("*.py", "*.pyx", "*.pxi", "*.pxd")
    return sorted(path for kind in kinds for path in PKG_DIR.rglob(kind) if "__pycache__" not in path.parts)


def imports_of(path: Path) -> List[Import]:
    return python_imports(path) if path.suffix == ".py" else cython_imports(path)


ALL_IMPORTS: Dict[str, List[Import]] = {str(path.relative_to(PKG_DIR)): imports_of(path) for path in package_files()}


def _private(name: Optional[str]) -> bool:
    return name is not None and name.startswith("_") and not name.startswith("__")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# --- the parser itself ------------------------------------------------------------------------


def test_the_parsers_see_what_is_there() -> None:
    """The rules below are only as good as the parsing: known imports must be found."""
    middleware = {(i.module, i.name) for i in ALL_IMPORTS["middleware.py"]}
    assert ("asok_fast._core", None) in middleware
    assert ("asok_fast._shared", "not_bytes") in middleware
    assert ("asok_fast._config", "Configured") in middleware
    core_c = {(i.module, i.name) for i in ALL_IMPORTS["_core_c.pyx"]}
    assert ("asok_fast._shared", "header_pair") in core_c
    assert ("asok_fast._config", "CORS_ANY") in core_c
    assert ("asok_fast._zlib", "deflateInit2") in core_c
    assert ("cython", None) in core_c
    lazy = [i for i in ALL_IMPORTS["_serve.py"] if i.module == "asok_fast.middleware"]
    assert lazy and not any(i.top_level for i in lazy)
    assert included_files(CORE_C), "the compiled twin includes its parts from asok_fast/_c/"
    assert all(path.exists() for path in included_files(CORE_C))


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("plumbing", ["middleware.py", "asgi.py"])
def test_the_plumbing_takes_only_public_names_of_core_config_and_shared(plumbing: str) -> None:
    """The WSGI and the ASGI plumbing stand side by side over the same core: neither
    imports the other, nor a core directly."""
    allowed = {"asok_fast._core", "asok_fast._config", "asok_fast._shared"}
    wrong = [
        str(i)
        for i in ALL_IMPORTS[plumbing]
        if _inside(i.module, PACKAGE) and (i.module not in allowed or _private(i.name))
    ]
    assert wrong == []


def test_no_module_imports_a_private_name_of_another() -> None:
    wrong = [str(i) for imports in ALL_IMPORTS.values() for i in imports if _private(i.name)]
    assert wrong == []


def _core_files() -> List[str]:
    files = [CORE_C, *included_files(CORE_C), PKG_DIR / "_core_py.py"]
    return [str(path.relative_to(PKG_DIR)) for path in files]


def test_the_cores_know_nothing_of_the_plumbing() -> None:
    wrong = []
    for source in _core_files():
        for i in ALL_IMPORTS[source]:
            if _inside(i.module, "asok_fast.middleware") or _inside(i.module, "asok_fast.asgi") or (i.module == "asok_fast._config" and _private(i.name)):
                wrong.append(str(i))
            if i.module == PACKAGE and i.name in ("middleware", "asgi"):
                wrong.append(str(i))
    assert wrong == []


def test_only_the_command_line_reaches_the_benchmarks() -> None:
    wrong = [
        str(i)
        for source, imports in ALL_IMPORTS.items()
        if not source.startswith("benchmarks" + os.sep)
        for i in imports
        if _inside(i.module, "asok_fast.benchmarks") and (source != "__main__.py" or i.top_level)
    ]
    assert wrong == []


def test_importing_the_package_and_its_command_line_loads_no_benchmark(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "import asok_fast, asok_fast.middleware, asok_fast.__main__\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('asok_fast.benchmarks'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(PKG_DIR.parent)
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# --- the twins' names ---------------------------------------------------------------------------


def _literal_all(text: str, filename: str) -> List[str]:
    """The ``__all__ = [...]`` list of a source file (Python syntax from there on)."""
    match = re.search(r"^__all__\s*=\s*(\[[^\]]*\])", text, re.M)
    assert match, f"{filename} has no __all__ list"
    return list(ast.literal_eval(match.group(1)))


def _public_names_defined_in(module: Any) -> List[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    )


def test_core_py_all_is_complete_and_resolvable() -> None:
    names = _core_py.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(_core_py, name), name
    # Every public function or class the reference twin defines is part of the seam.
    assert set(_public_names_defined_in(_core_py)) <= set(names)
    assert set(names) >= {"preflight", "respond", "respond_stream", "buffer_length", "GzipStream"}


def test_the_twins_declare_the_same_names() -> None:
    compiled, _ = _core.find_compiled()
    if compiled is not None:
        declared = list(compiled.__all__)
        missing = [name for name in declared if not hasattr(compiled, name)]
        assert missing == []
    else:
        declared = _literal_all(CORE_C.read_text(encoding="utf-8"), CORE_C.name)
    assert sorted(declared) == sorted(_core_py.__all__)


def _stub_names(path: Path) -> Dict[str, ast.AST]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: Dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
    return names


def test_the_stub_declares_the_same_names() -> None:
    stub = PKG_DIR / "_core_c.pyi"
    names = _stub_names(stub)
    assert "__all__" in names, "_core_c.pyi has no __all__"
    assert sorted(ast.literal_eval(names["__all__"].value)) == sorted(_core_py.__all__)  # type: ignore[attr-defined]
    missing = [name for name in _core_py.__all__ if name not in names]
    assert missing == [], f"_core_c.pyi lacks {missing}"


def test_the_stub_declares_what_only_the_compiled_twin_has(compiled_core: Any) -> None:
    names = _stub_names(PKG_DIR / "_core_c.pyi")
    extra = sorted(name for name in vars(compiled_core) if name in {"zlib_version", "_pool_idle", "_MD5_NOGIL_MIN", "_DEFLATE_NOGIL_MIN", "_POOL_MAX"})
    assert extra == ["_DEFLATE_NOGIL_MIN", "_MD5_NOGIL_MIN", "_POOL_MAX", "_pool_idle", "zlib_version"]
    assert [name for name in extra if name not in names] == []
