"""The ``asok-fast`` command: ``serve`` flags -> config, ``info``, errors naming the key,
importing ``MODULE:APP``, the gunicorn path, and an Asok project served with the two-line
drop-in in its ``wsgi.py``.

In-process runs always pass ``--check`` (import, wrap, print, exit: nothing listens), so a
case that wrongly passed validation could never leave a server running; the runs that do
serve are subprocesses started and stopped by ``tests/servers.py``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import hashlib
import re
import subprocess
import sys
import sysconfig
import uuid
import zlib
from pathlib import Path
from typing import List, Tuple

import brotli
import pytest
import redis

try:  # Python 3.14
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

import asok_fast
from asok_fast import ResponseMiddleware, _core, _serve
from asok_fast.__main__ import main
from asok_fast._codecs import available
from asok_fast._config import DEFAULTS
from servers import (
    BROWSER_ACCEPT_ENCODING,
    HOST,
    Server,
    absolute_pythonpath,
    asok_fast_command,
    decode,
    default_implementation,
    python_m_asok_fast,
    raw_request,
    start_server,
)


posix_only = pytest.mark.skipif(os.name != "posix", reason="the test servers are POSIX process groups")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asok-fast serve")
    _serve.add_arguments(parser)
    return parser.parse_args(list(argv))


def config_of(*argv: str) -> dict:
    return _serve.config_from_args(parse(*argv))


def run_cli(capsys: pytest.CaptureFixture, argv: List[str]) -> Tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- flags -> config


def test_no_flag_sets_no_key() -> None:
    assert config_of() == {}
    assert config_of("wsgi:app", "--port", "9000", "--workers", "1") == {}


def test_every_config_key_has_a_flag() -> None:
    assert set(_serve.FLAG_OF_KEY) == set(DEFAULTS)
    parser = argparse.ArgumentParser()
    _serve.add_arguments(parser)
    known = {option for action in parser._actions for option in action.option_strings}
    assert set(_serve.FLAG_OF_KEY.values()) <= known
    everything = config_of(
        "--cors-origin", "https://a.example",
        "--cors-origin-regex", r"https://.*\.a\.example",
        "--cors-allow-methods", "GET, PUT",
        "--cors-allow-headers", "Content-Type",
        "--cors-allow-credentials",
        "--cors-expose-headers", "ETag",
        "--cors-max-age", "600",
        "--cors-allow-private-network",
        "--gzip",
        "--min-size", "100",
        "--gzip-level", "9",
        "--gzip-type", "application/x-custom",
        "--compress-codings", "br, gzip",
        "--zstd-level", "19",
        "--brotli-level", "11",
        "--compress-random-padding",
        "--gzip-engine", "isal",
        "--isal-level", "3",
        "--cache-size", "1000000",
        "--cache-redis", "redis://127.0.0.1:6390/2",
        "--no-etag",
        "--buffer-max-size", "1048576",
    )
    assert set(everything) == set(DEFAULTS)
    client = everything.pop("COMPRESS_CACHE_BACKEND")
    assert isinstance(client, redis.Redis)
    assert client.connection_pool.connection_kwargs["port"] == 6390
    assert client.connection_pool.connection_kwargs["db"] == 2
    assert everything == {
        "CORS_ORIGINS": ["https://a.example"],
        "CORS_ORIGIN_REGEX": r"https://.*\.a\.example",
        "CORS_ALLOW_METHODS": "GET, PUT",
        "CORS_ALLOW_HEADERS": "Content-Type",
        "CORS_ALLOW_CREDENTIALS": True,
        "CORS_EXPOSE_HEADERS": "ETag",
        "CORS_MAX_AGE": 600,
        "CORS_ALLOW_PRIVATE_NETWORK": True,
        "GZIP": True,
        "GZIP_MIN_SIZE": 100,
        "GZIP_LEVEL": 9,
        "GZIP_TYPES": ["application/x-custom"],
        "COMPRESS_CODINGS": ["br", "gzip"],
        "ZSTD_LEVEL": 19,
        "BROTLI_LEVEL": 11,
        "COMPRESS_RANDOM_PADDING": True,
        "GZIP_ENGINE": "isal",
        "ISAL_LEVEL": 3,
        "COMPRESS_CACHE_SIZE": 1000000,
        "ETAG": False,
        "BUFFER_MAX_SIZE": 1048576,
    }
    ResponseMiddleware(lambda e, s: [], {**everything, "COMPRESS_CACHE_BACKEND": client})  # a valid config as a whole
    assert config_of("--cache-redis", "none") == {"COMPRESS_CACHE_BACKEND": None}


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--cors-origin", "https://a.example", "--cors-origin", "https://b.example, https://c.example"],
         {"CORS_ORIGINS": ["https://a.example", "https://b.example", "https://c.example"]}),
        (["--cors-origin", "*"], {"CORS_ORIGINS": "*"}),
        (["--cors-origin", "none"], {"CORS_ORIGINS": None}),
        (["--no-cors"], {"CORS_ORIGINS": None, "CORS_ORIGIN_REGEX": None}),
        (["--cors-origin-regex", "none"], {"CORS_ORIGIN_REGEX": None}),
        (["--no-gzip"], {"GZIP": False}),
        (["--gzip-min-size", "0"], {"GZIP_MIN_SIZE": 0}),
        (["--etag"], {"ETAG": True}),
        (["--no-cors-allow-credentials"], {"CORS_ALLOW_CREDENTIALS": False}),
        (["--cors-max-age", "none"], {"CORS_MAX_AGE": None}),
        (["--cors-expose-headers", "none"], {"CORS_EXPOSE_HEADERS": None}),
        (["--gzip-type", "a/b", "--gzip-type", "c/d,e/f"], {"GZIP_TYPES": ["a/b", "c/d", "e/f"]}),
        (["--gzip-type", "none"], {"GZIP_TYPES": None}),
        # the order given is the server's preference
        (["--compress-codings", "gzip"], {"COMPRESS_CODINGS": ["gzip"]}),
        (["--compress-codings", "br", "--compress-codings", "gzip, zstd"], {"COMPRESS_CODINGS": ["br", "gzip", "zstd"]}),
        (["--zstd-level", "1"], {"ZSTD_LEVEL": 1}),
        (["--brotli-level", "0"], {"BROTLI_LEVEL": 0}),
        (["--no-compress-random-padding"], {"COMPRESS_RANDOM_PADDING": False}),
    ],
)
def test_flag_values(argv: List[str], expected: dict) -> None:
    assert config_of(*argv) == expected


# ---------------------------------------------------------------- bad values fail, naming the key


@pytest.mark.parametrize(
    "argv,keys",
    [
        (["--gzip-level", "0"], ["GZIP_LEVEL"]),
        (["--gzip-level", "10"], ["GZIP_LEVEL"]),
        (["--gzip-level", "ten"], ["GZIP_LEVEL"]),
        (["--min-size", "-1"], ["GZIP_MIN_SIZE"]),
        (["--min-size", "big"], ["GZIP_MIN_SIZE"]),
        (["--buffer-max-size", "-5"], ["BUFFER_MAX_SIZE"]),
        (["--cors-max-age", "-1"], ["CORS_MAX_AGE"]),
        (["--cors-max-age", "soon"], ["CORS_MAX_AGE"]),
        (["--cors-origin", "not-an-origin"], ["CORS_ORIGINS"]),
        (["--cors-origin", "https://a.example/path"], ["CORS_ORIGINS"]),
        (["--cors-origin-regex", "(unclosed"], ["CORS_ORIGIN_REGEX"]),
        (["--cors-allow-methods", "GET\r\nX-Injected: 1"], ["CORS_ALLOW_METHODS"]),
        (["--cors-allow-headers", "Content-Type\n"], ["CORS_ALLOW_HEADERS"]),
        (["--cors-expose-headers", "ETag\x00"], ["CORS_EXPOSE_HEADERS"]),
        (["--gzip-type", "not a media type"], ["GZIP_TYPES"]),
        (["--compress-codings", "deflate"], ["COMPRESS_CODINGS"]),
        (["--compress-codings", ","], ["COMPRESS_CODINGS"]),
        (["--zstd-level", "0"], ["ZSTD_LEVEL"]),
        (["--zstd-level", "20"], ["ZSTD_LEVEL"]),  # 20-22 need windows beyond RFC 9659's 8 MiB
        (["--zstd-level", "fast"], ["ZSTD_LEVEL"]),
        (["--brotli-level", "12"], ["BROTLI_LEVEL"]),
        (["--brotli-level", "-1"], ["BROTLI_LEVEL"]),
        (["--cors-origin", "*", "--cors-allow-credentials"], ["CORS_ORIGINS", "CORS_ALLOW_CREDENTIALS"]),
    ],
)
def test_bad_flag_values_fail_naming_the_key(capsys, argv: List[str], keys: List[str]) -> None:
    code, out, err = run_cli(capsys, ["serve", "--check", *argv])
    assert code == 2, (out, err)
    assert "asok-fast serve: error:" in err
    for key in keys:
        assert key in err, err
    assert "config:" not in out  # failed before anything was built or printed


def test_bad_value_from_the_real_command_line() -> None:
    done = subprocess.run(
        python_m_asok_fast() + ["serve", "--gzip-level", "12"], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "GZIP_LEVEL must be an integer from 1 to 9, got 12" in done.stderr
    assert "--gzip-level" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--server", "waitress", "--workers", "2"], "waitress is one process"),
        (["--preload"], "gunicorn options"),
        (["--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_bad_server_options(capsys, argv: List[str], message: str) -> None:
    code, _, err = run_cli(capsys, ["serve", "--check", *argv])
    assert code == 2 and message in err, err


# ---------------------------------------------------------------- --check: banner and active config


def test_check_prints_implementation_and_active_config(capsys) -> None:
    code, out, err = run_cli(capsys, ["serve", "--check", "--min-size", "64", "--gzip-level", "3"])
    assert code == 0, err
    assert "serving the demo app (built in) on waitress" in out
    assert f"implementation {asok_fast.IMPLEMENTATION}" in out
    for key in DEFAULTS:
        assert re.search(rf"^\s+{key}\s+= ", out, re.M), key
    assert re.search(r"GZIP_MIN_SIZE\s+= 64$", out, re.M)
    assert re.search(r"GZIP_LEVEL\s+= 3$", out, re.M)
    assert re.search(r"^\s+GZIP\s+= True$", out, re.M)  # the demo's own default, kept


def test_missing_waitress_names_the_serve_extra(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "waitress", None)
    monkeypatch.setitem(sys.modules, "waitress.server", None)
    code, _, err = run_cli(capsys, ["serve", "--port", "0"])
    assert code == 2
    assert "waitress is not installed" in err
    assert "pip install 'asok-fast[serve]'" in err


def test_missing_gunicorn_names_the_serve_extra(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gunicorn", None)
    monkeypatch.setitem(sys.modules, "gunicorn.app", None)
    monkeypatch.setitem(sys.modules, "gunicorn.app.base", None)
    code, _, err = run_cli(capsys, ["serve", "--workers", "2", "--port", "0"])
    assert code == 2
    assert "gunicorn is not installed" in err
    assert "asok-fast[serve]" in err


# ---------------------------------------------------------------- MODULE:APP


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module file in a fresh cwd, with a unique name; forgotten afterwards."""
    name = f"cli_target_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "def _app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'hi']\n"
        "application = _app\n"
        "other = _app\n"
        "class config_holder:\n"
        "    inner = _app\n"
        "def make():\n"
        "    return _app\n"
        "not_callable = 42\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    saved_path = list(sys.path)
    yield name
    sys.path[:] = saved_path
    sys.modules.pop(name, None)


@pytest.mark.parametrize("suffix", ["", ":application", ":other", ":config_holder.inner", ":make()"])
def test_module_app_is_imported_from_cwd(capsys, app_module: str, suffix: str) -> None:
    code, out, err = run_cli(capsys, ["serve", "--check", app_module + suffix])
    assert code == 0, err
    assert f"serving {app_module}{suffix} on waitress" in out


@pytest.mark.parametrize(
    "target,message",
    [
        ("{m}:missing", "has no attribute 'missing'"),
        ("{m}:not_callable", "not a WSGI callable"),
        ("no_such_module_{u}:app", "no module named 'no_such_module_"),
        ("{m}:", "is not MODULE:APP"),
    ],
)
def test_module_app_errors(capsys, app_module: str, target: str, message: str) -> None:
    code, _, err = run_cli(capsys, ["serve", "--check", target.format(m=app_module, u=uuid.uuid4().hex)])
    assert code == 2 and message in err, err


# ---------------------------------------------------------------- info


def assert_info(stdout: str) -> None:
    fields = [tuple(re.split(r"\s{2,}", line.strip(), maxsplit=1)) for line in stdout.splitlines() if line.strip()]
    names = [name for name, _ in fields]
    values = dict(fields)
    compiled = default_implementation() == "compiled"
    # one line per (coding, library) that info() lists, in the default order of preference:
    # gzip comes from zlib, and from ISA-L too where the isal extra is installed
    order = ("zstd", "br", "gzip")
    codings = sorted(available(), key=lambda item: order.index(item[0]))
    assert names == [
        "asok_fast",
        "implementation",
        "core module",
        "zlib (Python's)",
        *(["zlib (compiled core's)"] if compiled else []),
        *[f"coding {coding}" for coding, _ in codings],
        "python",
        "platform",
        "compiler",
    ]
    assert values["asok_fast"] == asok_fast.__version__
    assert values["implementation"] == default_implementation()
    assert Path(values["core module"]).name.startswith("_core_c." if compiled else "_core_py.")
    assert values["zlib (Python's)"] == zlib.ZLIB_RUNTIME_VERSION
    if compiled:
        assert values["zlib (compiled core's)"] == _core.load_compiled().zlib_version()
    # each coding with the library (and version) that makes its bytes
    listed = [tuple(field) for field in fields if field[0].startswith("coding ")]
    assert listed == [(f"coding {coding}", library) for coding, library in codings]
    gzip_libraries = [library for name, library in listed if name == "coding gzip"]
    assert gzip_libraries[0] == f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
    assert gzip_libraries[1:] in ([], [f"isal {isal_version()} (GZIP_ENGINE = \"isal\")"])
    assert values["coding br"] == f"brotli {brotli.__version__}"
    assert values["coding zstd"] == f"zstd {zstd.zstd_version} ({zstd.__name__})"
    assert values["python"].endswith(".".join(map(str, sys.version_info[:3])))
    assert values["platform"] == sysconfig.get_platform()


def isal_version() -> str:
    from importlib.metadata import version

    return version("isal")


def test_info_in_process(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, ["info"])
    assert (code, err) == (0, "")
    assert_info(out)


def test_info_output() -> None:
    done = subprocess.run(asok_fast_command() + ["info"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert_info(done.stdout)


# ---------------------------------------------------------------- gunicorn through the CLI


@posix_only
def test_cli_gunicorn_preload_gthread(tmp_path: Path) -> None:
    """``--workers 2 --threads 3 --preload``: gthread workers forked from a master that built the
    middleware; the master prints the whole config once."""
    srv = start_server(
        "cli-gunicorn",
        python_m_asok_fast() + ["serve", "--workers", "2", "--threads", "3", "--preload", "--port", "0", "--min-size", "100"],
        tmp_path,
        ready_path="/api/items",
    )
    try:
        log = srv.log()
        assert "on gunicorn (2 gthread workers, 3 threads each, preloaded)" in log
        assert f"implementation {srv.expected_implementation}" in log
        assert re.search(r"GZIP_MIN_SIZE\s+= 100$", log, re.M)
        r = raw_request(srv.port, "GET", "/api/items", {"Accept-Encoding": "gzip"})
        from asok_fast._demo import ITEMS_JSON

        assert r.get("Content-Encoding") == "gzip" and gzip.decompress(r.body) == ITEMS_JSON
        assert r.get("ETag") == f'"{hashlib.md5(ITEMS_JSON).hexdigest()}-gzip"'
    finally:
        srv.stop()


# ---------------------------------------------------------------- the coding flags on a real server

ALL_CODINGS = {"Accept-Encoding": BROWSER_ACCEPT_ENCODING}


@posix_only
@pytest.mark.parametrize("no_extensions", [False, True], ids=["default-core", "python"])
def test_coding_flags_reach_the_served_bytes(tmp_path: Path, no_extensions: bool) -> None:
    """``--compress-codings br,gzip --brotli-level 11``: a client accepting all three gets br
    (zstd is not offered), made at quality 11; one accepting only zstd gets identity."""
    from asok_fast._demo import ITEMS_JSON

    srv = start_server(
        "cli-codings",
        python_m_asok_fast() + ["serve", "--port", "0", "--compress-codings", "br,gzip", "--brotli-level", "11"],
        tmp_path, ready_path="/api/items", no_extensions=no_extensions,
    )
    try:
        assert re.search(r"^\s+COMPRESS_CODINGS\s+= \['br', 'gzip'\]$", srv.log(), re.M)
        assert re.search(r"^\s+BROTLI_LEVEL\s+= 11$", srv.log(), re.M)
        r = raw_request(srv.port, "GET", "/api/items", ALL_CODINGS)
        assert r.get("Content-Encoding") == "br"
        assert r.body == brotli.compress(ITEMS_JSON, quality=11)
        assert r.get("ETag") == f'"{hashlib.md5(ITEMS_JSON).hexdigest()}-br"'
        gz = raw_request(srv.port, "GET", "/api/items", {"Accept-Encoding": "gzip"})
        assert gz.get("Content-Encoding") == "gzip" and gzip.decompress(gz.body) == ITEMS_JSON
        only_zstd = raw_request(srv.port, "GET", "/api/items", {"Accept-Encoding": "zstd"})
        assert only_zstd.get("Content-Encoding") is None and only_zstd.body == ITEMS_JSON
        assert "accept-encoding" in only_zstd.get("Vary").lower()
    finally:
        srv.stop()


@posix_only
def test_zstd_level_and_padding_flags_reach_the_served_bytes(tmp_path: Path) -> None:
    from asok_fast._demo import ITEMS_JSON

    srv = start_server(
        "cli-zstd",
        python_m_asok_fast() + ["serve", "--port", "0", "--zstd-level", "19"],
        tmp_path / "plain", ready_path="/api/items",
    )
    try:
        r = raw_request(srv.port, "GET", "/api/items", ALL_CODINGS)
        assert r.get("Content-Encoding") == "zstd"  # first in the default order
        assert r.body == zstd.ZstdCompressor(level=19).compress(ITEMS_JSON, zstd.ZstdCompressor.FLUSH_FRAME)
    finally:
        srv.stop()

    srv = start_server(
        "cli-padding",
        python_m_asok_fast() + ["serve", "--port", "0", "--compress-random-padding"],
        tmp_path / "padded", ready_path="/api/items",
    )
    try:
        assert re.search(r"^\s+COMPRESS_RANDOM_PADDING\s+= True$", srv.log(), re.M)
        tag = hashlib.md5(ITEMS_JSON).hexdigest()
        for coding in ("zstd", "br", "gzip"):
            bodies = set()
            for _ in range(6):  # 0 to 99 random bytes each time: six equal lengths has odds 1e-10
                r = raw_request(srv.port, "GET", "/api/items", {"Accept-Encoding": coding})
                assert r.get("Content-Encoding") == coding
                assert decode(coding, r.body) == ITEMS_JSON
                assert r.get("ETag") == f'"{tag}-{coding}"'  # padding changes no tag
                bodies.add(len(r.body))
            assert len(bodies) > 1, (coding, bodies)
    finally:
        srv.stop()


# ---------------------------------------------------------------- the Asok drop-in

ASOK_ORIGIN = "https://app.example.com"
ASOK_MIN_SIZE = 2000  # between /api/items (~1.4 KB: not compressed) and /report (~6 KB: compressed)
DROP_IN_IMPORT = "from asok_fast import ResponseMiddleware"
DROP_IN_WRAP = "app = ResponseMiddleware(app)"


def add_drop_in(wsgi: Path) -> None:
    """The two lines README's Asok section gives: the import, and the wrap after the config."""
    source = wsgi.read_text(encoding="utf-8")
    assert "from asok import Asok\n" in source
    source = source.replace("from asok import Asok\n", f"from asok import Asok\n{DROP_IN_IMPORT}\n", 1)
    wsgi.write_text(source.rstrip("\n") + f"\n\n{DROP_IN_WRAP}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def asok_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("asok", reason="the Asok drop-in tests need asok==0.8.0")
    from asok_project import make_asok_app

    app = make_asok_app(
        tmp_path_factory.mktemp("asok_cli"), GZIP=True, GZIP_MIN_SIZE=ASOK_MIN_SIZE, CORS_ORIGINS=[ASOK_ORIGIN],
    )
    root = Path(app.root_dir)
    app.shutdown()
    plain = (root / "wsgi.py").read_text(encoding="utf-8")
    (root / "wsgi_plain.py").write_text(plain, encoding="utf-8")  # the project without the drop-in
    add_drop_in(root / "wsgi.py")
    return root


@pytest.fixture(scope="module")
def asok_server(asok_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    if os.name != "posix":
        pytest.skip("the test servers are POSIX process groups")
    srv = start_server(
        "asok",
        python_m_asok_fast() + ["serve", "wsgi:app", "--host", HOST, "--port", "0", "--access-log"],
        tmp_path_factory.mktemp("asok_server"),
        cwd=asok_project,  # Asok() takes the current directory as the project root
        ready_path="/api/items",
        env_extra={"ASOK_ENV_OVERRIDE": "true"},
    )
    try:
        yield srv
    finally:
        srv.stop()


def asok_headers(**extra: str) -> dict:
    from asok_project import CSRF_COOKIE

    return {"Cookie": CSRF_COOKIE, **{k.replace("_", "-"): v for k, v in extra.items()}}


def test_drop_in_is_two_lines(asok_project: Path) -> None:
    plain = (asok_project / "wsgi_plain.py").read_text(encoding="utf-8").splitlines()
    wrapped = (asok_project / "wsgi.py").read_text(encoding="utf-8").splitlines()
    added = [line for line in wrapped if line not in plain]
    assert added == [DROP_IN_IMPORT, DROP_IN_WRAP]
    assert wrapped[-1] == DROP_IN_WRAP  # after the app.config lines


def test_asok_banner_shows_the_projects_config(asok_server: Server) -> None:
    log = asok_server.log()
    assert "serving wsgi:app on waitress" in log
    assert f"implementation {asok_server.expected_implementation}" in log
    assert re.search(r"^\s+GZIP\s+= True$", log, re.M)
    assert re.search(rf"^\s+GZIP_MIN_SIZE\s+= {ASOK_MIN_SIZE}$", log, re.M)
    assert re.search(rf"^\s+CORS_ORIGINS\s+= \['{re.escape(ASOK_ORIGIN)}'\]$", log, re.M)


def test_asok_gzip_and_min_size(asok_server: Server) -> None:
    from asok_project import JSON_PATH, PAGE_PATH, expected_json_body

    page = raw_request(asok_server.port, "GET", PAGE_PATH, asok_headers(Accept_Encoding="gzip"))
    assert page.status == 200
    assert page.get("Content-Encoding") == "gzip"
    assert int(page.get("Content-Length")) == len(page.body)
    html = gzip.decompress(page.body)
    assert html.startswith(b"<!DOCTYPE html>") and b"SKU-00059" in html  # compressed once
    assert len(html) > ASOK_MIN_SIZE
    assert page.get("ETag") == f'"{hashlib.md5(html).hexdigest()}-gzip"'

    # GZIP_MIN_SIZE as Asok documents it: a body of at most that many bytes stays as it is
    api = raw_request(asok_server.port, "GET", JSON_PATH, asok_headers(Accept_Encoding="gzip"))
    assert api.status == 200
    assert api.get("Content-Encoding") is None
    assert api.body == expected_json_body()
    assert len(api.body) <= ASOK_MIN_SIZE
    assert api.get("ETag") == f'"{hashlib.md5(api.body).hexdigest()}"'


def test_asok_etag_304(asok_server: Server) -> None:
    from asok_project import PAGE_PATH

    first = raw_request(asok_server.port, "GET", PAGE_PATH, asok_headers(Accept_Encoding="gzip"))
    etag = first.get("ETag")
    again = raw_request(asok_server.port, "GET", PAGE_PATH, asok_headers(Accept_Encoding="gzip", If_None_Match=etag))
    assert again.status == 304
    assert again.body == b""
    assert again.get("ETag") == etag
    assert '"GET /report" 304 - -' in asok_server.log()


def test_asok_cors(asok_server: Server) -> None:
    from asok_project import JSON_PATH

    allowed = raw_request(asok_server.port, "GET", JSON_PATH, asok_headers(Origin=ASOK_ORIGIN))
    assert allowed.values("Access-Control-Allow-Origin") == [ASOK_ORIGIN]  # once, never twice
    assert "origin" in allowed.get("Vary").lower()
    denied = raw_request(asok_server.port, "GET", JSON_PATH, asok_headers(Origin="https://evil.example"))
    assert denied.values("Access-Control-Allow-Origin") == []

    preflight = {"Origin": ASOK_ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    ok = raw_request(asok_server.port, "OPTIONS", JSON_PATH, preflight)
    assert ok.status == 204 and ok.body == b""
    assert ok.get("Access-Control-Allow-Origin") == ASOK_ORIGIN
    assert "PUT" in ok.get("Access-Control-Allow-Methods")
    no = raw_request(asok_server.port, "OPTIONS", JSON_PATH, {**preflight, "Origin": "https://evil.example"})
    assert no.status == 204 and no.get("Access-Control-Allow-Origin") is None


def test_flags_override_the_projects_config(asok_project: Path) -> None:
    """On the wrapped app (drop-in) and on the bare Asok app alike: app.config first, flags over it."""
    for target in ("wsgi:app", "wsgi_plain:app"):
        done = subprocess.run(
            python_m_asok_fast() + ["serve", target, "--check", "--no-etag", "--gzip-level", "9"],
            cwd=str(asok_project), capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": absolute_pythonpath(), "ASOK_ENV_OVERRIDE": "true"},
        )
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert re.search(r"^\s+ETAG\s+= False$", out, re.M), out
        assert re.search(r"^\s+GZIP_LEVEL\s+= 9$", out, re.M), out
        assert re.search(r"^\s+GZIP\s+= True$", out, re.M), out  # from app.config
        assert re.search(rf"^\s+GZIP_MIN_SIZE\s+= {ASOK_MIN_SIZE}$", out, re.M), out


# ---------------------------------------------------------------- --asgi: an ASGI app on embedded uvicorn


@pytest.fixture
def asgi_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module of ASGI (and not-quite-ASGI) callables in a fresh cwd; forgotten afterwards."""
    name = f"cli_asgi_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'hi'})\n"
        "class Instance:\n"
        "    async def __call__(self, scope, receive, send):\n"
        "        await app(scope, receive, send)\n"
        "instance = Instance()\n"
        "async def two_args(environ, start_response):\n"
        "    pass\n"
        "def wsgi(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'hi']\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    saved_path = list(sys.path)
    yield name
    sys.path[:] = saved_path
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "suffix,flags,server",
    [
        (":app", [], "uvicorn"),  # detected: an async function of (scope, receive, send)
        (":instance", [], "uvicorn"),  # detected: an object whose __call__ is one
        (":two_args", [], "waitress"),  # a coroutine function, but not of three arguments
        (":wsgi", [], "waitress"),
        (":wsgi", ["--asgi"], "uvicorn"),  # --asgi: taken as ASGI, whatever it looks like
        (":app", ["--server", "uvicorn"], "uvicorn"),
    ],
)
def test_asgi_app_is_detected(capsys, asgi_module: str, suffix: str, flags: List[str], server: str) -> None:
    code, out, err = run_cli(capsys, ["serve", "--check", asgi_module + suffix, *flags, "--min-size", "64"])
    assert code == 0, err
    assert f"serving {asgi_module}{suffix} on {server}" in out
    assert re.search(r"GZIP_MIN_SIZE\s+= 64$", out, re.M)


def test_asgi_middleware_is_used_as_it_is(capsys, asgi_module: str) -> None:
    """An app already wrapped (``app = ASGIMiddleware(app, config=...)``, or a Starlette app given
    ``Middleware(ASGIMiddleware, config=...)``): not wrapped twice, the flags over its config."""
    from asok_fast import ASGIMiddleware

    sys.path.insert(0, os.getcwd())  # the fixture restores sys.path
    module = __import__(asgi_module)
    module.wrapped = ASGIMiddleware(module.app, {"GZIP_LEVEL": 2, "GZIP_MIN_SIZE": 10})
    code, out, err = run_cli(capsys, ["serve", "--check", f"{asgi_module}:wrapped", "--min-size", "64"])
    assert code == 0, err
    assert "on uvicorn" in out
    assert re.search(r"GZIP_LEVEL\s+= 2$", out, re.M)  # the app's own
    assert re.search(r"GZIP_MIN_SIZE\s+= 64$", out, re.M)  # the flag's
    assert module.wrapped.config["GZIP_MIN_SIZE"] == 64

    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    module.stack = Starlette(middleware=[Middleware(ASGIMiddleware, config={"GZIP_LEVEL": 2})])
    code, out, err = run_cli(capsys, ["serve", "--check", f"{asgi_module}:stack", "--min-size", "64"])
    assert code == 0, err
    assert re.search(r"GZIP_LEVEL\s+= 2$", out, re.M) and re.search(r"GZIP_MIN_SIZE\s+= 64$", out, re.M)
    assert module.stack.user_middleware[0].kwargs["config"] == {"GZIP_LEVEL": 2, "GZIP_MIN_SIZE": 64}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--asgi"], "--asgi serves MODULE:APP"),
        (["--asgi", "{m}:app", "--workers", "2"], "--workers: waitress and gunicorn options"),
        (["--asgi", "{m}:app", "--preload"], "--preload: waitress and gunicorn options"),
        (["{m}:app", "--threads", "4"], "--threads: waitress and gunicorn options"),  # detected, then refused
        (["--asgi", "{m}:app", "--server", "gunicorn"], "--server gunicorn is a WSGI server"),
        (["{m}:app", "--server", "waitress"], "is an ASGI app: serve it on uvicorn (--asgi), not on waitress"),
        (["--asgi", "{m}:app", "--gzip-level", "0"], "GZIP_LEVEL"),
    ],
)
def test_asgi_errors(capsys, asgi_module: str, argv: List[str], message: str) -> None:
    code, out, err = run_cli(capsys, ["serve", "--check", *[a.format(m=asgi_module) for a in argv]])
    assert code == 2, (out, err)
    assert message in err, err


def test_missing_uvicorn_names_the_serve_extra(capsys, monkeypatch, asgi_module: str) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code, _, err = run_cli(capsys, ["serve", f"{asgi_module}:app", "--port", "0"])
    assert code == 2
    assert "uvicorn is not installed" in err
    assert "pip install 'asok-fast[serve]'" in err


@posix_only
@pytest.mark.parametrize("no_extensions", [False, True], ids=["default-core", "python"])
def test_cli_serves_a_detected_asgi_app_on_uvicorn(tmp_path: Path, no_extensions: bool) -> None:
    """``asok-fast serve asgi_server_apps:fastapi_app`` (no --asgi: detected) on a real uvicorn,
    the flags over the module's config: zstd with its ETag, a 304, a preflight, the access log."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    from server_apps import ALLOWED_ORIGIN, json_body

    body = json_body()
    srv = start_server(
        "cli-asgi",
        python_m_asok_fast() + ["serve", "asgi_server_apps:fastapi_app", "--port", "0", "--access-log", "--zstd-level", "9"],
        tmp_path, no_extensions=no_extensions,
    )
    try:
        log = srv.log()
        assert "serving asgi_server_apps:fastapi_app on uvicorn" in log
        assert f"implementation {srv.expected_implementation}" in log
        assert re.search(r"^\s+ZSTD_LEVEL\s+= 9$", log, re.M)
        r = raw_request(srv.port, "GET", "/json", {**ALL_CODINGS, "Origin": ALLOWED_ORIGIN})
        assert r.status == 200 and r.get("Content-Encoding") == "zstd"
        assert r.body == zstd.ZstdCompressor(level=9).compress(body, zstd.ZstdCompressor.FLUSH_FRAME)
        etag = r.get("ETag")
        assert etag == f'"{hashlib.md5(body).hexdigest()}-zstd"'
        assert r.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
        again = raw_request(srv.port, "GET", "/json", {**ALL_CODINGS, "If-None-Match": etag})
        assert again.status == 304 and again.body == b"" and again.get("ETag") == etag
        pre = raw_request(srv.port, "OPTIONS", "/json", {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "PUT"})
        assert pre.status == 204 and pre.body == b"" and pre.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
        log = srv.log()
        assert '127.0.0.1 "GET /json" 200 %d zstd' % len(r.body) in log
        assert '127.0.0.1 "GET /json" 304 - -' in log
        assert '127.0.0.1 "OPTIONS /json" 204 - -' in log
    finally:
        srv.stop()
    assert srv.proc.returncode == 0  # SIGTERM: uvicorn shut down gracefully, and the CLI exited 0


@posix_only
def test_asok_project_served_with_asgi_on_uvicorn(asok_project: Path, tmp_path: Path) -> None:
    """An Asok app speaks both: ``serve wsgi_plain:app`` stays WSGI (waitress), ``--asgi`` serves
    it in Asok's ASGI mode on uvicorn; the WSGI drop-in (``wsgi:app``) with ``--asgi`` too,
    its config kept.  The page, compressed once, and a 304, over a real uvicorn."""
    pytest.importorskip("uvicorn")
    from asok_project import PAGE_PATH

    env = {**os.environ, "PYTHONPATH": absolute_pythonpath(), "ASOK_ENV_OVERRIDE": "true"}
    checked = subprocess.run(
        python_m_asok_fast() + ["serve", "wsgi_plain:app", "--check"],
        cwd=str(asok_project), capture_output=True, text=True, timeout=120, env=env,
    )
    assert checked.returncode == 0, checked.stderr
    assert "serving wsgi_plain:app on waitress" in checked.stdout
    for target in ("wsgi_plain:app", "wsgi:app"):
        srv = start_server(
            f"asok-asgi-{target.partition(':')[0]}",
            python_m_asok_fast() + ["serve", "--asgi", target, "--host", HOST, "--port", "0"],
            tmp_path / target.partition(":")[0], cwd=asok_project, ready_path="/api/items",
            env_extra={"ASOK_ENV_OVERRIDE": "true"},
        )
        try:
            log = srv.log()
            assert f"serving {target} on uvicorn" in log
            assert re.search(rf"^\s+GZIP_MIN_SIZE\s+= {ASOK_MIN_SIZE}$", log, re.M)
            assert re.search(r"^\s+GZIP\s+= True$", log, re.M)
            page = raw_request(srv.port, "GET", PAGE_PATH, asok_headers(Accept_Encoding=BROWSER_ACCEPT_ENCODING))
            assert page.status == 200 and page.get("Content-Encoding") == "zstd"
            html = decode("zstd", page.body)
            assert html.startswith(b"<!DOCTYPE html>") and b"SKU-00059" in html
            etag = page.get("ETag")
            assert etag == f'"{hashlib.md5(html).hexdigest()}-zstd"'
            again = raw_request(srv.port, "GET", PAGE_PATH, asok_headers(Accept_Encoding=BROWSER_ACCEPT_ENCODING, If_None_Match=etag))
            assert again.status == 304 and again.body == b""
        finally:
            srv.stop()
