"""The docs check: README.md, CHANGELOG.md and docs/*.md say what is true.

* A ```python or ```sh block right after a line ``<!-- run -->`` runs: Python in a
  subprocess, in a temporary directory, with the package under test importable; shell under
  ``bash -e`` there, with ``python`` and ``asok-fast`` on PATH meaning this interpreter and
  the package under test.  Every other ```python block parses.
* Every relative link (and image) resolves to a file of the repository, and every
  ``#anchor`` to a heading of the page it points at, slugged as GitHub does.
* README keeps the two commands of its first screen byte for byte (CI runs the second), its
  configuration table holds every key of ``DEFAULTS`` with its default, and it stays short.

The marker and these rules are described in docs/architecture.md ("The docs check").
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Dict, List, NamedTuple, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

if not DOCS.is_dir() and not (ROOT / ".git").exists():  # an sdist that ships no docs/
    pytest.skip("docs/ is not part of this tree (an sdist without it)", allow_module_level=True)

PAGES = [README, ROOT / "CHANGELOG.md"] + sorted(DOCS.glob("*.md"))
MARKER = "<!-- run -->"
SERVE_DEMO = "python3 -m venv .venv && .venv/bin/pip install '.[serve]' && .venv/bin/asok-fast serve"
RUN_TESTS = "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/pytest"
README_MAX_LINES = 260
RUN_TIMEOUT = 120


class Block(NamedTuple):
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    runnable: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")


def blocks(page: Path) -> List[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        runnable = start > 0 and lines[start - 1].strip() == MARKER
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n", runnable))
    return found


def prose(page: Path) -> List[str]:
    """The page's lines outside fenced blocks."""
    out, fence = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and line.startswith(fence):
            fence = None
        elif fence is None:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(page: Path) -> Set[str]:
    seen: Dict[str, int] = {}
    out = set()
    for line in prose(page):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(page: Path) -> List[str]:
    text = "\n".join(prose(page))
    text = re.sub(r"`+[^`\n]*`+", "", text)  # code spans hold no links
    return _LINK.findall(text)


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL_BLOCKS if b.runnable]
PARSED = [b for b in ALL_BLOCKS if b.lang == "python" and not b.runnable]


def test_pages_exist() -> None:
    names = {p.name for p in PAGES}
    for name in ("README.md", "CHANGELOG.md", "configuration.md", "deployment.md", "performance.md", "robustness.md", "architecture.md"):
        assert name in names and all(p.is_file() for p in PAGES if p.name == name), name


def test_markers_precede_runnable_languages() -> None:
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip() == MARKER:
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                m = _FENCE.match(nxt)
                assert m and m.group(2).lower() in ("python", "sh"), f"{page.name}:{i + 1}: {MARKER} must precede a python or sh block"
    assert RUNNABLE, "no runnable block found"


@pytest.mark.parametrize("block", PARSED, ids=[b.id for b in PARSED])
def test_python_block_parses(block: Block) -> None:
    try:
        ast.parse(block.code)
    except SyntaxError as exc:
        pytest.fail(f"{block.id}: {exc}")


@pytest.fixture(scope="module")
def run_env(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """The environment of a runnable block: the package under test importable from anywhere,
    ``python`` and ``asok-fast`` on PATH meaning this interpreter and that package."""
    import asok_fast

    package_parent = str(Path(asok_fast.__file__).resolve().parent.parent)
    bindir = tmp_path_factory.mktemp("bin")
    for name, args in (("python", ""), ("python3", ""), ("asok-fast", " -m asok_fast")):
        shim = bindir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}"{args} "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    env = dict(os.environ)
    paths = [package_parent] + [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PATH"] = str(bindir) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_runnable_block_runs(block: Block, run_env: Dict[str, str], tmp_path: Path) -> None:
    if block.lang == "python":
        script = tmp_path / "block.py"
        script.write_text(block.code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    else:
        if os.name == "nt":
            pytest.skip("shell blocks run under bash")
        script = tmp_path / "block.sh"
        script.write_text(block.code, encoding="utf-8")
        argv = ["bash", "-e", str(script)]
    done = subprocess.run(argv, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    assert done.returncode == 0, f"{block.id} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def _link_cases() -> List[tuple]:
    return [(page, target) for page in PAGES for target in links(page) if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)]


LINKS = _link_cases()


@pytest.mark.parametrize("page,target", LINKS, ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in LINKS])
def test_relative_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest == ROOT or ROOT in dest.parents, f"{target} leaves the repository"
    assert dest.exists(), f"{page.name}: {target}: no such file"
    if anchor:
        assert dest.suffix == ".md", f"{page.name}: {target}: an anchor into a non-markdown file"
        assert anchor in anchors(dest), f"{page.name}: {target}: no heading gives #{anchor} (has: {sorted(anchors(dest))})"


def test_links_found() -> None:
    assert any(t.startswith("docs/") for p, t in LINKS if p == README)


def test_slugs_as_github_makes_them() -> None:
    assert slug("Asok: the two-line drop-in") == "asok-the-two-line-drop-in"
    assert slug("`asok-fast serve`") == "asok-fast-serve"
    assert slug("ETag and 304") == "etag-and-304"
    assert slug("Method: measuring on a noisy machine") == "method-measuring-on-a-noisy-machine"


def test_readme_commands_on_the_first_screen() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    for command in (SERVE_DEMO, RUN_TESTS):
        assert command in lines, command
        assert lines.index(command) < 60, f"{command!r} is not on README's first screen"
    ci = ROOT / ".ci" / "run"
    if ci.is_file():
        assert RUN_TESTS in ci.read_text(encoding="utf-8"), ".ci/run no longer runs README's test command"


def test_readme_is_short() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines; depth belongs in docs/"


def test_configuration_tables_list_every_key() -> None:
    from asok_fast._config import DEFAULTS

    rows = {}
    for line in prose(README):
        m = re.match(r"^\|\s*`([A-Z_]+)`\s*\|\s*`([^|]*)`\s*\|", line)
        if m:
            rows[m.group(1)] = ast.literal_eval(m.group(2))
    assert set(rows) == set(DEFAULTS), f"README's table: missing {sorted(set(DEFAULTS) - set(rows))}, unknown {sorted(set(rows) - set(DEFAULTS))}"
    for key, default in DEFAULTS.items():
        assert rows[key] == default, f"README says {key} defaults to {rows[key]!r}; it is {default!r}"
    config_page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for key in DEFAULTS:
        assert config_page.count(f"`{key}`") >= 2, f"docs/configuration.md: {key} has no entry or no serve flag"
