"""Fault-injection suite: the gateway against fakes that misbehave on demand (see harness)."""

from tests.servers.fixtures import redis_server

__all__ = ["redis_server"]
