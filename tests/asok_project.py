"""Scaffold a real Asok project with the real ``asok create`` CLI and load its WSGI app.

Used by ``tests/test_asok.py``.  ``make_asok_app(tmp_path, **config)``:

1. runs ``python -m asok create asokproj`` (the interpreter running the tests, so the
   Asok installed beside it) in ``tmp_path``; the CLI asks three y/N questions
   (Tailwind, Admin, WebP images) on stdin, answered "n" each;
2. adds two pages the way an Asok user writes them (file-based routing):
   ``src/pages/report/page.py`` + ``page.html`` -> ``/report`` (an HTML document of several KB,
   rendered by Asok's template engine) and ``src/pages/api/items/page.py`` -> ``/api/items``
   (``request.json(...)``: ~1.4 KB of ``application/json``);
3. sets ``DEBUG=false`` in the project's ``.env`` (production mode: no live-reload script or
   debug toolbar injected into pages, HTML minified, module/template caches on);
4. appends the given config keys to the project's ``wsgi.py`` after ``app = Asok()``
   (``app.config["GZIP"] = True`` ...), as an Asok user sets them; ``RATE_LIMIT`` is turned
   off unless given (Asok's default limiter allows 100 requests a minute per IP);
5. imports that ``wsgi.py`` in-process and returns its ``app`` (an ``asok.Asok`` instance).

Isolation.  ``Asok()`` takes the current directory as the project root, inserts
``<root>/src`` into ``sys.path``, and copies ``.env`` into ``os.environ`` (``DEBUG``,
``SECRET_KEY``).  So the import runs with cwd = project root, under a module name unique to
the project (two projects never share a ``wsgi`` entry in ``sys.modules``), with
``ASOK_ENV_OVERRIDE=true`` (the project's ``.env`` wins over whatever the test process's
environment holds, e.g. a stray ``DEBUG``); afterwards cwd, ``sys.path``, ``os.environ`` and
``sys.modules`` (every module loaded from inside the project) are put back as they were.

Serving does not need cwd = project root: Asok stores its root in ``app.root_dir`` and puts it in
every request's environ (``asok.root``), from which it resolves pages, templates and partials.
(Only features these pages do not use, file uploads, a relative SQLite path, geo/image helpers,
fall back to ``os.getcwd()``.)  Our pages import nothing from ``src/``, so removing ``src``
from ``sys.path`` again is safe for them.

Determinism.  Asok injects per-request values into HTML pages: a ``<meta name="csrf-token">``
(taken from the request's ``asok_csrf`` cookie when it sends a valid one, otherwise a fresh
random token) and CSP nonces on ``<script>``/``<style>`` tags.  The report page has no script or
style tag, and a client that sends ``Cookie: asok_csrf=<CSRF_TOKEN>`` (as a browser does after
its first visit) gets byte-identical bodies on every request.  JSON responses carry no
per-request value.  Per-request values remain in headers only (``Set-Cookie: asok_sid=...``,
the CSP nonce).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "CSRF_TOKEN",
    "CSRF_COOKIE",
    "PAGE_PATH",
    "JSON_PATH",
    "PROJECT_NAME",
    "expected_json_body",
    "make_asok_app",
]

PROJECT_NAME = "asokproj"
PAGE_PATH = "/report"
JSON_PATH = "/api/items"

# A valid Asok CSRF token (10-128 chars of [A-Za-z0-9_+=-]); sending it back as the
# ``asok_csrf`` cookie makes Asok reuse it instead of minting a random one per request.
CSRF_TOKEN = "0123456789abcdef" * 4
CSRF_COOKIE = f"asok_csrf={CSRF_TOKEN}"

_REPORT_ROWS = 60
_JSON_ITEMS = 30

_REPORT_PAGE_PY = '''\
from asok import Request

ROWS = [
    {{
        "id": i,
        "sku": f"SKU-{{i:05d}}",
        "name": f"Deterministic item number {{i}}",
        "qty": (i * 37) % 101,
        "price": f"{{(i * 7919) % 10000 / 100:.2f}}",
    }}
    for i in range({rows})
]


def render(request: Request):
    return request.html("page.html", rows=ROWS, title="Inventory report")
'''

_REPORT_PAGE_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
    <meta charset="UTF-8">
    <title>{{ title }}</title>
</head>
<body>
    <main>
        <h1>{{ title }}</h1>
        <p>Every value on this page is fixed: the same request gives the same bytes.</p>
        <table>
            <thead><tr><th>#</th><th>SKU</th><th>Name</th><th>Qty</th><th>Price</th></tr></thead>
            <tbody>
            {% for row in rows %}
                <tr><td>{{ row.id }}</td><td>{{ row.sku }}</td><td>{{ row.name }}</td><td>{{ row.qty }}</td><td>{{ row.price }}</td></tr>
            {% endfor %}
            </tbody>
        </table>
    </main>
</body>
</html>
"""

_JSON_PAGE_PY = '''\
from asok import Request

ITEMS = [
    {{"id": i, "name": f"item-{{i:04d}}", "score": (i * 7919) % 1000}}
    for i in range({items})
]


def render(request: Request):
    return request.json({{"items": ITEMS}})
'''


def expected_json_body() -> bytes:
    """The exact bytes ``/api/items`` serves (``json.dumps``, as ``request.json`` does)."""
    items = [
        {"id": i, "name": f"item-{i:04d}", "score": (i * 7919) % 1000}
        for i in range(_JSON_ITEMS)
    ]
    return json.dumps({"items": items}).encode("utf-8")


def _scaffold(parent: Path, name: str) -> Path:
    """Run the real ``asok create NAME`` non-interactively; return the project root."""
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    proc = subprocess.run(
        [sys.executable, "-m", "asok", "create", name],
        cwd=str(parent),
        input="n\nn\nn\n",  # Tailwind? Admin? Image optimization? -> no, no, no
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    root = parent / name
    if proc.returncode != 0 or not (root / "wsgi.py").is_file():
        raise RuntimeError(
            f"`asok create {name}` failed (exit {proc.returncode})\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return root


def _add_pages(root: Path) -> None:
    report = root / "src" / "pages" / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "page.py").write_text(
        _REPORT_PAGE_PY.format(rows=_REPORT_ROWS), encoding="utf-8"
    )
    (report / "page.html").write_text(_REPORT_PAGE_HTML, encoding="utf-8")

    items = root / "src" / "pages" / "api" / "items"
    items.mkdir(parents=True, exist_ok=True)
    (items / "page.py").write_text(
        _JSON_PAGE_PY.format(items=_JSON_ITEMS), encoding="utf-8"
    )


def _set_production_env(root: Path) -> None:
    env_file = root / ".env"
    lines = env_file.read_text(encoding="utf-8").splitlines()
    if not any(line.startswith("SECRET_KEY=") for line in lines):
        raise RuntimeError(f"`asok create` wrote no SECRET_KEY in {env_file}")
    lines = [line for line in lines if not line.startswith("DEBUG=")]
    lines.insert(0, "DEBUG=false")
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _literal(key: str, value: Any) -> str:
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise TypeError(
            f"config key {key!r}: {value!r} cannot be written into wsgi.py as a literal"
        )
    return text


def _write_config(root: Path, config: dict[str, Any]) -> None:
    wsgi = root / "wsgi.py"
    source = wsgi.read_text(encoding="utf-8")
    if "app = Asok()" not in source:
        raise RuntimeError(f"unexpected scaffolded wsgi.py:\n{source}")
    lines = ["", "# Project settings (written by tests/asok_project.py)."]
    for key, value in config.items():
        if not isinstance(key, str) or not key.isupper():
            raise ValueError(f"config key {key!r} is not an Asok config name")
        lines.append(f"app.config[{key!r}] = {_literal(key, value)}")
    wsgi.write_text(source.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def _load_wsgi_app(root: Path) -> Any:
    """Import ``<root>/wsgi.py`` in-process and return its ``app``; leave no trace."""
    mod_name = f"_asok_test_project_{uuid.uuid4().hex}_wsgi"
    saved_cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_env = dict(os.environ)
    saved_modules = set(sys.modules)
    root_str = os.path.realpath(root)
    try:
        os.chdir(root_str)
        os.environ["ASOK_ENV_OVERRIDE"] = "true"
        spec = importlib.util.spec_from_file_location(mod_name, root / "wsgi.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        app = module.app
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)
        for name in set(sys.modules) - saved_modules:
            mod = sys.modules.get(name)
            path = getattr(mod, "__file__", None) or ""
            if name == mod_name or os.path.realpath(path).startswith(root_str + os.sep):
                sys.modules.pop(name, None)
    if os.path.realpath(app.root_dir) != os.path.realpath(root_str):
        raise RuntimeError(f"Asok app root {app.root_dir!r} is not {root_str!r}")
    return app


def make_asok_app(tmp_path: os.PathLike, **config: Any) -> Any:
    """Scaffold a real Asok project in ``tmp_path`` and return its WSGI ``app`` object.

    ``config`` keys are written into the project's ``wsgi.py`` as ``app.config[KEY] = value``
    (Asok's own keys: ``GZIP``, ``GZIP_MIN_SIZE``, ``CORS_ORIGINS`` ... and any key of the
    middleware's SPEC).  ``RATE_LIMIT`` defaults to ``False`` here.
    """
    settings = {"RATE_LIMIT": False}
    settings.update(config)
    root = _scaffold(Path(tmp_path), PROJECT_NAME)
    _add_pages(root)
    _set_production_env(root)
    _write_config(root, settings)
    return _load_wsgi_app(root)
