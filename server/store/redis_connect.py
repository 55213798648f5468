"""Which Redis ``ROUTER_R1_REDIS_URL`` names, and a bounded client for it.

Accepted URL forms (credentials, database and ``?`` options as redis-py reads them)::

    redis://[user:password@]host[:6379][/db]            one Redis (rediss:// TLS, unix:// socket)
    redis+cluster://[user:password@]h1[:6379],h2[:6379]  a Redis Cluster: any reachable node
                                                         finds the others (rediss+cluster:// TLS)
    redis+sentinel://[user:password@]s1[:26379],s2[:26379]/service[/db]
                                                         the primary the Sentinels of
                                                         ``service`` name (rediss+sentinel:// TLS
                                                         to the primary); ``?sentinel_username=
                                                         &sentinel_password=`` for the Sentinels

redis-py reads only the single-node forms; the ``+cluster``/``+sentinel`` schemes are the ones
other clients use (``redis+sentinel://`` as in Celery/kombu-style and LangChain URLs). A cluster
URL's path must be empty or ``/0`` (a cluster has one database).

Every client is built with ``timeout_s`` as its connect and read timeout and no retries (the
store bounds every call and fails fast; see ``_no_retry``); pooled connections are bounded by
the store's own concurrency gate, ``max_connections``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

RedisMode = Literal["single", "cluster", "sentinel"]

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_SENTINEL_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


# At most once: a command that may have reached Redis is never sent again (a Lua script that
# ran but whose answer was lost would count twice). A pooled connection a restarted Redis
# closed is replaced when it is taken from the pool (see "protocol" below); a failed cluster
# node makes the next call refresh the topology; a Sentinel failover makes it ask the
# Sentinels again.
def as_text(value: Any) -> str:
    """A reply (bytes: this client does not decode) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


@dataclass(frozen=True)
class RedisTarget:
    """A parsed URL: the mode, its nodes (cluster startup nodes or Sentinels), the connection
    options of the data nodes, and for Sentinel the service name and the Sentinels' options."""

    url: str
    mode: RedisMode
    nodes: tuple[tuple[str, int], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    service_name: str | None = None
    sentinel_options: dict[str, Any] = field(default_factory=dict)


def _split_host(text: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"empty host in {text!r}")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None


def _parse_members(url: str, default_port: int) -> tuple[str, list[tuple[str, int]], str, str]:
    """(``user:password@`` or "", the member hosts, the path, the query) of a multi-host URL."""
    rest, _, query = url.split("://", 1)[1].partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    members = [_split_host(part.strip(), default_port) for part in hosts.split(",") if part.strip()]
    if not members:
        raise ValueError("no host in the URL")
    return userinfo + at, members, slash + path, query


def _node_options(base_scheme: str, userinfo: str, db_path: str, query: str) -> dict[str, Any]:
    """Connection options redis-py's own parser reads from the URL, minus host and port."""
    options: dict[str, Any] = dict(
        parse_url(f"{base_scheme}://{userinfo}placeholder{db_path}{'?' if query else ''}{query}")
    )
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options


def parse_redis_url(url: str) -> RedisTarget:
    """The target ``url`` names (ValueError, with the accepted forms, when it names none)."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget(url=url, mode="single")
    try:
        if scheme in _CLUSTER_SCHEMES:
            userinfo, members, path, query = _parse_members(url, 6379)
            if path.strip("/") not in ("", "0"):
                raise ValueError("a Redis Cluster has only database 0")
            options = _node_options(_CLUSTER_SCHEMES[scheme], userinfo, "", query)
            options.pop("db", None)
            return RedisTarget(url=url, mode="cluster", nodes=tuple(members), options=options)
        if scheme in _SENTINEL_SCHEMES:
            userinfo, members, path, query = _parse_members(url, 26379)
            service, _, db = path.strip("/").partition("/")
            if not service:
                raise ValueError("the Sentinel URL names no service: .../<service>[/<db>]")
            pairs = parse_qsl(query)
            sentinel_options = {k: v for k, v in pairs if k in _SENTINEL_OPTIONS}
            query = urlencode([(k, v) for k, v in pairs if k not in _SENTINEL_OPTIONS])
            options = _node_options(
                _SENTINEL_SCHEMES[scheme], userinfo, f"/{db}" if db else "", query
            )
            return RedisTarget(
                url=url,
                mode="sentinel",
                nodes=tuple(members),
                options=options,
                service_name=service,
                sentinel_options={
                    key.removeprefix("sentinel_"): value for key, value in sentinel_options.items()
                },
            )
    except ValueError as exc:
        raise ValueError(f"bad Redis URL ({exc})") from None
    raise ValueError(
        "a Redis URL starts with redis://, rediss://, unix://, redis+cluster://, "
        "rediss+cluster://, redis+sentinel:// or rediss+sentinel://"
    )


class RedisConnection:
    """The client of one target (``client``), and what closing it takes."""

    def __init__(self, target: RedisTarget, *, timeout_s: float, max_connections: int) -> None:
        self.target = target
        timeouts: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            # RESP2: with RESP3 (redis-py 8's default) maintenance notifications are on, and
            # the pool then skips its check that a pooled connection was not closed by a
            # restarted Redis; without retries, that stale connection would fail a call
            "protocol": 2,
        }
        self._pool: BlockingConnectionPool | None = None
        self._sentinel: Sentinel | None = None
        self._cluster_nodes: dict[int, ClusterNode] = {}  # the topology last seen
        options = {**timeouts, **target.options}  # the URL's own options win, as in redis-py
        self.client: Redis | RedisCluster
        if target.mode == "cluster":
            self.client = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
                max_connections=max_connections,
                retry=_no_retry(),
                # MOVED patches the slot map, never closes the client: a full refresh closes
                # every connection, and with them the replies of calls in flight
                reinitialize_steps=0,
                **options,
            )
        elif target.mode == "sentinel":
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.nodes),
                sentinel_kwargs={**timeouts, **target.sentinel_options},
            )
            self.client = self._sentinel.master_for(
                target.service_name or "",
                redis_class=Redis,
                max_connections=max_connections,
                retry=_no_retry(),
                **options,
            )
        else:
            self._pool = BlockingConnectionPool.from_url(
                target.url,
                max_connections=max_connections,
                timeout=timeout_s,
                retry=_no_retry(),
                **timeouts,
            )
            self.client = Redis(connection_pool=self._pool)

    async def ready(self) -> None:
        """Before each call: a cluster client not (or no longer) initialized learns the
        topology first, under its own lock. redis-py routes a command before it would do so,
        and one routed while the topology is unknown goes to a random node and gets MOVED:
        at cold start or after a failure, a burst of calls would be misrouted."""
        if not isinstance(self.client, RedisCluster):
            return
        await self.client.initialize()
        nodes = {id(node): node for node in self.client.get_nodes()}
        if nodes.keys() != self._cluster_nodes.keys():
            await self._close_nodes_gone(nodes)

    async def _close_nodes_gone(self, nodes: dict[int, ClusterNode]) -> None:
        """redis-py drops a node that left the topology (a dead primary) without closing the
        connections busy at that moment: they would stay open until garbage-collected."""
        gone = [node for key, node in self._cluster_nodes.items() if key not in nodes]
        self._cluster_nodes = nodes
        await asyncio.gather(*(node.disconnect() for node in gone), return_exceptions=True)

    async def mget(self, keys: list[str]) -> list[Any]:
        """Values of keys that may live in different hash slots (None where missing)."""
        if not keys:
            return []
        if isinstance(self.client, RedisCluster):
            values: list[Any] = await self.client.mget_nonatomic(keys)
        else:
            values = await self.client.mget(keys)
        return values

    async def aclose(self) -> None:
        await self.client.aclose()
        await self._close_nodes_gone({})
        if self._pool is not None:
            await self._pool.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()
