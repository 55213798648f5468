"""A real ``redis-server`` on a free loopback port, in a temporary directory, no persistence."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import redis

from tests.servers.ports import free_port, wait_until

START_TIMEOUT_S = 10.0


def _redis_answers(port: int) -> bool:
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.2, socket_connect_timeout=0.2
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """Start with :meth:`start`; :meth:`kill`, :meth:`pause`/:meth:`resume` simulate outages."""

    def __init__(self, workdir: Path, extra_args: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed: run scripts/bootstrap.sh")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = list(extra_args)  # e.g. cluster mode, replicaof
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process
        wait_until(
            lambda: process.poll() is not None or _redis_answers(self.port),
            START_TIMEOUT_S,
            f"redis-server on port {self.port}",
        )
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited at start with code {process.returncode}")
        return self

    def kill(self) -> None:
        """SIGKILL: connections are refused from now on."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: Redis accepts connections (the kernel does) but never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
