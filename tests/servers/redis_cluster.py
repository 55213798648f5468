"""A real Redis Cluster on loopback: N primaries (and replicas), each a ``redis-server`` in its
own temporary directory, joined by ``redis-cli --cluster create``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import redis

from tests.servers.ports import free_port, wait_until
from tests.servers.redis_server import RedisServer

HEALTHY_TIMEOUT_S = 30.0


def _info(port: int, *command: str) -> dict[str, str]:
    """``CLUSTER INFO`` / ``INFO replication`` of one node as a dict ({} if it does not answer)."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
    try:
        text = client.execute_command(*command)
    except redis.RedisError:
        return {}
    finally:
        client.close()
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    text = text.decode() if isinstance(text, bytes) else str(text)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


class RedisClusterServers:
    """Start with :meth:`start`; :meth:`primary_of` names the node to kill for a failover."""

    def __init__(
        self,
        workdir: Path,
        *,
        primaries: int = 3,
        replicas_per_primary: int = 0,
        node_timeout_ms: int = 1000,
    ) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise AssertionError("redis-cli is not installed: run scripts/bootstrap.sh")
        self.cli = cli
        self.replicas_per_primary = replicas_per_primary
        self.nodes = [
            RedisServer(
                workdir / f"node{i}",
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                    "--cluster-port",
                    str(free_port()),  # the bus port, instead of port + 10000 (maybe taken)
                    "--repl-diskless-sync-delay",
                    "0",  # replicas sync at once (the default waits 5 s for more replicas)
                ],
            )
            for i in range(primaries * (1 + replicas_per_primary))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> RedisClusterServers:
        """Start every node and join them (all stopped again if that fails)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas_per_primary),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=HEALTHY_TIMEOUT_S,
        )
        self.wait_healthy()

    def wait_healthy(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        """Until every running node sees the cluster ok and every replica is in sync."""
        running = [node for node in self.nodes if node.process is not None]

        def healthy() -> bool:
            for node in running:
                if _info(node.port, "CLUSTER", "INFO").get("cluster_state") != "ok":
                    return False
                replication = _info(node.port, "INFO", "replication")
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                ):
                    return False
            return True

        wait_until(healthy, timeout_s, "the Redis Cluster to be healthy")

    def primary_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s hash slot now."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=0.5)
            try:
                slot = int(client.execute_command("CLUSTER KEYSLOT", key))
                nodes: dict[str, dict[str, Any]] = client.execute_command("CLUSTER NODES")
                for address, info in nodes.items():
                    if "master" not in info["flags"] or "fail" in info["flags"]:
                        continue
                    for span in info["slots"]:
                        if int(span[0]) <= slot <= int(span[-1]):
                            port = int(address.rsplit(":", 1)[1])
                            return next(n for n in self.nodes if n.port == port)
            finally:
                client.close()
        raise AssertionError(f"no primary serves {key!r}")

    def flush(self) -> None:
        """Delete every key (between the tests sharing one cluster)."""
        for node in self.nodes:
            if (
                node.process is None
                or _info(node.port, "INFO", "replication").get("role") != "master"
            ):
                continue
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=2)
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
