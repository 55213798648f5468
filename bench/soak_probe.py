"""What the soak benchmark reads of the gateway process: RSS and descriptors from ``/proc``,
and its request counts by status from its own ``/metrics``."""

from __future__ import annotations

import contextlib
import os
import re

import aiohttp


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int, pooled_ports: set[int]) -> tuple[int, int]:
    """(open descriptors, of which sockets to ``pooled_ports``: the engine and upstream
    keep-alive pools, whose size follows the load). The rest must come back to the same
    number after every wave."""
    peers: dict[str, int] = {}  # socket inode -> remote port
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                peers[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    total = pooled = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and peers.get(target[8:-1]) in pooled_ports:
                pooled += 1
    return total, pooled


async def requests_by_status(base: str) -> dict[str, float]:
    """``router_r1_requests_total`` summed by status (every profile: a client that leaves
    before its body was read is counted under profile ``none``)."""
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        text = await response.text()
    counts: dict[str, float] = {}
    pattern = re.compile(r"^router_r1_requests_total\{([^}]*)\} (\S+)$", re.M)
    for labels, value in pattern.findall(text):
        status = re.search(r'status="(\d+)"', labels)
        if status is not None:
            counts[status.group(1)] = counts.get(status.group(1), 0.0) + float(value)
    return counts
