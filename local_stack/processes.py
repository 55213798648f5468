"""Child server processes on loopback: start, wait until ready (bounded), stop cleanly.

Each child writes its output to a log file; a child that exits or is not ready in time
raises :class:`ServerStartError` with the tail of that log, so a failed start explains
itself. :func:`free_port` picks a port the kernel says is free on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LOOPBACK",
    "ManagedProcess",
    "ServerStartError",
    "free_port",
    "llama_server_environment",
]

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40


class ServerStartError(RuntimeError):
    """A child server exited or did not become ready in time."""


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class ManagedProcess:
    """One child process with its readiness URL and log file."""

    name: str
    command: Sequence[str]
    ready_url: str
    log_path: Path
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        with self.log_path.open("wb") as log:
            # A new session: Ctrl-C in the terminal reaches the orchestrator only, which
            # then stops every child itself, in order.
            self.process = subprocess.Popen(
                list(self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def _failure(self, why: str) -> ServerStartError:
        return ServerStartError(
            f"{self.name} {why} (log: {self.log_path}); last lines:\n{self.log_tail()}"
        )

    def wait_ready(
        self,
        timeout_s: float,
        *,
        poll_s: float = 0.25,
        cancelled: Callable[[], bool] | None = None,
    ) -> float:
        """Poll ``ready_url`` until it answers 200; returns the seconds it took.

        ``cancelled`` (checked every poll) ends the wait early with an error."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        start = time.monotonic()
        deadline = start + timeout_s
        while True:
            if cancelled is not None and cancelled():
                raise ServerStartError(f"{self.name}: start interrupted")
            code = self.process.poll()
            if code is not None:
                raise self._failure(f"exited with status {code} before it was ready")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2.0) as reply:
                    if reply.status == 200:
                        return time.monotonic() - start
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise self._failure(f"was not ready within {timeout_s:g} s at {self.ready_url}")
            time.sleep(poll_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (SIGINT for a graceful uvicorn), then SIGKILL after ``timeout_s``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)


def llama_server_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a llama.cpp server: OpenMP threads sleep while they wait.

    llama.cpp's CPU backend uses OpenMP, whose threads spin at every barrier by default.
    With more busy threads than cores (several servers, the gateway, anything else on a
    2-core machine) a spinning thread holds the core its partner needs, and decoding
    drops from ~50 to under 1 token/s; passive waiting keeps it near full speed.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return env
