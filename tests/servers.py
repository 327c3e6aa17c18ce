"""Start real servers on 127.0.0.1 for the tests, and stop them by their own process ids.

A server runs in its own session (``start_new_session``), so its process group id is its
pid: stopping it signals that group only (``SIGTERM``, then ``SIGKILL`` after a grace
period), which reaches gunicorn's workers too, and then checks that no process of the
group is left.  Servers listen on port 0: the kernel picks a free port, and the port is
read from the server's own output (``asok-fast serve`` prints its URL, gunicorn logs
``Listening at: ...``), so there is no window in which another process could take a
port picked in advance.  Output goes to a log file, never to a pipe that could fill up.

The subprocesses import the *installed* ``asok_fast``: their working directory is a
temporary directory (not the checkout) and ``PYTHONPATH`` holds only this directory
(for ``server_apps``) in front of whatever the test run itself had.  They inherit the
test run's environment, so they run the core ``asok_fast`` selects there (the compiled
one when it is built and ``ASOK_FAST_NO_EXTENSIONS`` is not set); a server started with
``no_extensions=True`` runs the pure-Python one.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

TESTS_DIR = Path(__file__).resolve().parent
BIN_DIR = Path(sys.executable).parent
HOST = "127.0.0.1"

_PORT_RE = re.compile(r"http://127\.0\.0\.1:(\d+)")


def compiled_available() -> bool:
    """Whether the compiled core imports here (what a server picks by default)."""
    from asok_fast import _core

    return _core.find_compiled()[0] is not None


def default_implementation() -> str:
    """The core a server started with this test run's environment must report."""
    from asok_fast import _core

    if _core.extensions_disabled():
        return "python"
    return "compiled" if compiled_available() else "python"


def asok_fast_command() -> List[str]:
    """The ``asok-fast`` console script of this interpreter's environment."""
    script = BIN_DIR / "asok-fast"
    if not script.exists():
        raise RuntimeError(f"no asok-fast console script beside {sys.executable}: is the package installed?")
    return [str(script)]


def python_m_asok_fast() -> List[str]:
    return [sys.executable, "-m", "asok_fast"]


def python_m_gunicorn() -> List[str]:
    return [sys.executable, "-m", "gunicorn"]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    log_path: Path
    gates_dir: Path
    expected_implementation: str
    port: int = 0
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def connection(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def open_gate(self, gate: str) -> None:
        (self.gates_dir / gate).write_bytes(b"")

    def stop(self) -> None:
        stop_process_group(self.proc)


def _group_members(pgid: int) -> List[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group still exists
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            return [pgid]
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_process_group(proc: subprocess.Popen, grace: float = 8.0) -> None:
    """Stop the server started as session leader ``proc`` and every process of its group."""
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    if proc.poll() is None or _group_members(pgid):
        _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + grace
    while _group_members(pgid):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            time.sleep(0.2)
            left = _group_members(pgid)
            if left:
                raise RuntimeError(f"processes of server group {pgid} survived SIGKILL: {left}")
            break
        time.sleep(0.05)


def absolute_pythonpath() -> str:
    """The test run's ``PYTHONPATH`` with relative entries (``PYTHONPATH=.``) made absolute, for
    a subprocess started in another directory: it names what it named for the test run."""
    return os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)


def server_env(gates_dir: Path, no_extensions: bool = False, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)  # ASOK_FAST_NO_EXTENSIONS as the test run has it, unless forced
    if no_extensions:
        env["ASOK_FAST_NO_EXTENSIONS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), absolute_pythonpath()) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["ASOK_FAST_TEST_GATES"] = str(gates_dir)
    env.pop("GUNICORN_CMD_ARGS", None)
    env.pop("WEB_CONCURRENCY", None)
    if extra:
        env.update(extra)
    return env


def start_server(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    no_extensions: bool = False,
    ready_path: Optional[str] = "/__impl",
    env_extra: Optional[Dict[str, str]] = None,
    timeout: float = 30.0,
    cwd: Optional[Path] = None,
    port: Optional[int] = None,
) -> Server:
    """Start ``argv`` and wait until it answers.  ``argv`` listens on 127.0.0.1 port 0 and prints
    its URL, or (a server that cannot, such as nginx) on ``port``, given here."""
    workdir.mkdir(parents=True, exist_ok=True)
    gates_dir = workdir / "gates"
    gates_dir.mkdir(exist_ok=True)
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=str(cwd or workdir),
            env=server_env(gates_dir, no_extensions, env_extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    expected = "python" if no_extensions else default_implementation()
    server = Server(name=name, proc=proc, log_path=log_path, gates_dir=gates_dir, expected_implementation=expected)
    try:
        server.port = port if port is not None else _wait_for_port(server, timeout)
        _wait_until_answering(server, ready_path, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_port(server: Server, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        match = _PORT_RE.search(server.log())
        if match:
            return int(match.group(1))
        if server.proc.poll() is not None:
            raise RuntimeError(f"server {server.name} exited with {server.proc.returncode}:\n{server.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server {server.name} printed no URL within {timeout} s:\n{server.log()}")
        time.sleep(0.05)


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that cannot listen on port 0 and say which
    port it got (nginx).  Another process could take it before the server binds it: the
    caller retries on "Address already in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_until_answering(server: Server, path: Optional[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server {server.name} exited with {server.proc.returncode}:\n{server.log()}")
        try:
            if path is None:
                with socket.create_connection((HOST, server.port), timeout=2):
                    return
            conn = server.connection(timeout=5)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return
                raise RuntimeError(
                    f"server {server.name} answered {path} with {response.status}:\n{server.log()}"
                )
            finally:
                conn.close()
        except OSError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"server {server.name} did not answer within {timeout} s ({last!r}):\n{server.log()}")
        time.sleep(0.05)


# ---------------------------------------------------------------- clients


@dataclass
class RawResponse:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes  # every byte after the header block, up to the server closing

    def values(self, name: str) -> List[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def get(self, name: str) -> Optional[str]:
        values = self.values(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {self.headers}"
        return values[0] if values else None


def raw_request(port: int, method: str, path: str, headers: Optional[Dict[str, str]] = None, timeout: float = 10.0) -> RawResponse:
    """One request with ``Connection: close``; the body is what came on the wire, unframed."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete header block in {raw[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = []
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed.append((name.strip(), value.strip()))
    return RawResponse(status=int(status_line.split()[1]), headers=parsed, body=body)


# ---------------------------------------------------------------- codings

#: The codings the middleware sends, in its default order of preference.
CODINGS = ("zstd", "br", "gzip")

#: What Chromium 156 and curl 7.88 (built with brotli and zstd) send; urllib3 2.x sends
#: ``gzip, deflate, br, zstd`` too when brotli and the zstd module import.  A test that
#: wants one coding sends only that one.
BROWSER_ACCEPT_ENCODING = "gzip, deflate, br, zstd"


def decode(coding: Optional[str], data: bytes) -> bytes:
    """A whole body in ``coding`` (None: identity) -> the bytes the app made."""
    if coding is None:
        return data
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        import brotli

        return brotli.decompress(data)
    if coding == "zstd":
        return _zstd().decompress(data)
    raise AssertionError(f"unexpected Content-Encoding {coding!r}")


class StreamDecoder:
    """Decodes a body in ``coding`` piece by piece as it arrives (None: identity);
    ``complete`` says whether the coding's own end marker has been read."""

    def __init__(self, coding: Optional[str]) -> None:
        self.coding = coding
        if coding is None:
            self._decoder = None
        elif coding == "gzip":
            self._decoder = zlib.decompressobj(31)
        elif coding == "br":
            import brotli

            self._decoder = brotli.Decompressor()
        elif coding == "zstd":
            self._decoder = _zstd().ZstdDecompressor()
        else:
            raise AssertionError(f"unexpected Content-Encoding {coding!r}")

    def feed(self, data: bytes) -> bytes:
        if self._decoder is None:
            return data
        if self.coding == "br":
            return self._decoder.process(data)
        return self._decoder.decompress(data)

    def end(self) -> bytes:
        """What is left after the last byte (gzip's buffered tail)."""
        return self._decoder.flush() if self.coding == "gzip" else b""

    @property
    def complete(self) -> bool:
        if self._decoder is None:
            return True
        if self.coding == "br":
            return bool(self._decoder.is_finished())
        return bool(self._decoder.eof)


def _zstd():
    try:  # Python 3.14
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]
    return zstd


def reference_bytes(coding: str, data: bytes, level: Optional[int] = None) -> bytes:
    """What the middleware sends for ``data`` in ``coding`` at the default levels (deterministic:
    no random padding): made here with the same libraries, independently of asok_fast."""
    if coding == "gzip":
        co = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
        return co.compress(data) + co.flush()
    if coding == "br":
        import brotli

        return brotli.compress(data, quality=4 if level is None else level)
    if coding == "zstd":
        zstd = _zstd()
        return zstd.ZstdCompressor(level=3 if level is None else level).compress(data, zstd.ZstdCompressor.FLUSH_FRAME)
    raise AssertionError(coding)


def get_json(server: Server, path: str) -> Dict[str, object]:
    conn = server.connection()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200, (path, response.status)
        return json.loads(response.read())
    finally:
        conn.close()
