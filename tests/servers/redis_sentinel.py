"""A real Sentinel-managed Redis on loopback: a primary, a replica, and Sentinels (``redis-server
--sentinel``) watching them, each in its own temporary directory."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis

from tests.servers.ports import free_port, wait_until
from tests.servers.redis_server import RedisServer

SERVICE = "mymaster"
HEALTHY_TIMEOUT_S = 30.0


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)


class SentinelServer:
    """One Sentinel process; its config file is rewritten by Sentinel itself."""

    def __init__(self, workdir: Path, primary_port: int, *, quorum: int, down_after_ms: int):
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed: run scripts/bootstrap.sh")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "sentinel.conf"
        self.config_text = (
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text)
        self.process = subprocess.Popen(
            [self.binary, str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process

        def answers() -> bool:
            client = _client(self.port)
            try:
                return process.poll() is not None or bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_until(answers, HEALTHY_TIMEOUT_S, f"sentinel on port {self.port}")
        if process.poll() is not None:
            raise AssertionError(f"sentinel exited at start with code {process.returncode}")
        return self

    def master(self) -> dict[str, str]:
        """Sentinel's view of the service (``SENTINEL MASTER``), {} if it does not answer."""
        client = _client(self.port)
        try:
            state = client.execute_command("SENTINEL MASTER", SERVICE)
        except redis.RedisError:
            return {}
        finally:
            client.close()
        if isinstance(state, list):  # RESP2 without a response callback: flat pairs
            state = dict(zip(state[::2], state[1::2], strict=True))
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in state.items()
        }

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class SentinelGroup:
    """A primary, one replica and ``sentinels`` Sentinels; :meth:`kill_primary` starts a
    failover, :meth:`wait_failed_over` waits for the replica to be the primary."""

    def __init__(self, workdir: Path, *, sentinels: int = 1, down_after_ms: int = 500) -> None:
        no_sync_delay = ["--repl-diskless-sync-delay", "0"]  # the default waits 5 s
        self.primary = RedisServer(workdir / "primary", no_sync_delay)
        self.replica = RedisServer(
            workdir / "replica",
            [*no_sync_delay, "--replicaof", "127.0.0.1", str(self.primary.port)],
        )
        self.sentinels = [
            SentinelServer(
                workdir / f"sentinel{i}",
                self.primary.port,
                quorum=sentinels // 2 + 1,
                down_after_ms=down_after_ms,
            )
            for i in range(sentinels)
        ]

    @property
    def url(self) -> str:
        members = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{members}/{SERVICE}/0"

    def start(self) -> SentinelGroup:
        """Start the primary, the replica and the Sentinels (all stopped if that fails)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.primary.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        others = str(len(self.sentinels) - 1)

        def ready() -> bool:
            replica = _client(self.replica.port)
            try:
                linked = replica.info("replication").get("master_link_status") == "up"
            except redis.RedisError:
                return False
            finally:
                replica.close()
            views = [sentinel.master() for sentinel in self.sentinels]
            return linked and all(
                view.get("num-slaves") == "1" and view.get("num-other-sentinels") == others
                for view in views
            )

        wait_until(ready, HEALTHY_TIMEOUT_S, "the replica and the sentinels to be ready")

    def kill_primary(self) -> None:
        self.primary.kill()

    def wait_failed_over(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        port = str(self.replica.port)
        wait_until(
            lambda: all(sentinel.master().get("port") == port for sentinel in self.sentinels),
            timeout_s,
            "the sentinels to promote the replica",
        )

    def flush(self) -> None:
        """Delete every key on the primary the Sentinels name now."""
        client = _client(int(self.sentinels[0].master()["port"]))
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.primary.stop()
