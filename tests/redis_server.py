"""A real Redis server for the tests: Debian's ``redis-server`` on 127.0.0.1, stopped by its own pid.

``RedisServer.start(workdir)`` runs ``redis-server`` in the foreground of its own session
(``start_new_session``, so no signal meant for the test run reaches it) on a free port of
127.0.0.1, with its working directory and log in ``workdir`` and no persistence at all (no RDB
snapshots, no append-only file: nothing is written beside the log).  It returns once the
server answers ``PING`` with ``+PONG``.

The port: Redis cannot report a port the kernel picked (``--port 0`` means "no TCP"), so a
free port is found by binding port 0 and closing it, and Redis is started on it; if another
process took the port meanwhile, Redis exits at once ("Address already in use") and the next
free port is tried.

The fault helpers signal that one pid: :meth:`RedisServer.pause` (``SIGSTOP``: connections
are still accepted by the kernel, but no command is answered), :meth:`RedisServer.resume`
(``SIGCONT``) and :meth:`RedisServer.kill` (``SIGKILL``, then reaped).  :meth:`stop` ends it
(a paused server is resumed first, so that ``SIGTERM`` can act; ``SIGKILL`` after a grace
period) and is safe to call twice.  Output goes to a log file, never to a pipe.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional

HOST = "127.0.0.1"


def redis_server_binary() -> Optional[str]:
    """The ``redis-server`` executable (``.ci/run`` installs Debian's), or None."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server on ``port`` answers ``PING`` (RESP inline command) within ``timeout``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; see the module's docstring."""

    def __init__(self, proc: "subprocess.Popen[bytes]", port: int, workdir: Path) -> None:
        self.proc = proc
        self.port = port
        self.workdir = workdir
        self.log_path = workdir / "redis.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @classmethod
    def start(cls, workdir: Path, port: Optional[int] = None, attempts: int = 5, timeout: float = 10.0) -> "RedisServer":
        """A running server whose working directory is ``workdir`` (created if needed).

        ``port``: that port (a restart on the port a killed server had), else a free one."""
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server not found (.ci/run installs Debian's redis-server)")
        workdir.mkdir(parents=True, exist_ok=True)
        last_log = ""
        for _ in range(attempts if port is None else 1):
            chosen = port if port is not None else _free_port()
            server = cls._spawn(binary, chosen, workdir)
            if server._wait_ready(timeout):
                return server
            last_log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
            server.stop()
        raise RuntimeError(f"redis-server did not answer PING; its log:\n{last_log[-2000:]}")

    @classmethod
    def _spawn(cls, binary: str, port: int, workdir: Path) -> "RedisServer":
        args: List[str] = [
            binary,
            "--bind", HOST,
            "--port", str(port),
            "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"),
            "--daemonize", "no",
            "--save", "",  # no RDB snapshots
            "--appendonly", "no",  # no append-only file
            "--databases", "1",
            "--protected-mode", "yes",  # loopback only anyway
        ]
        proc = subprocess.Popen(
            args,
            cwd=str(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(proc, port, workdir)

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            if ping(self.port):
                return True
            time.sleep(0.02)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pause(self) -> None:
        """``SIGSTOP``: the server stops answering; the kernel still accepts connections."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """``SIGCONT``: the server answers again, the commands that waited first."""
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """``SIGKILL`` and reap: gone at once, every connection reset."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        """End the server by its pid (``SIGCONT`` + ``SIGTERM``, ``SIGKILL`` after ``grace``)."""
        if not self.alive():
            self.proc.wait()
            return
        try:
            os.kill(self.pid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
