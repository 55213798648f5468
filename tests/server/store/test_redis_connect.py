"""The Redis URL forms: one Redis, a cluster, a Sentinel-managed primary, and bad URLs."""

from __future__ import annotations

import pydantic
import pytest

from server.store.redis_connect import parse_redis_url
from server.store.settings import RedisSettings


def test_single_node_urls_are_redis_pys_own() -> None:
    for url in ("redis://localhost:6379/0", "rediss://u:p@h:6380/2", "unix:///tmp/r.sock"):
        target = parse_redis_url(url)
        assert target.mode == "single"
        assert target.url == url


def test_cluster_urls_list_startup_nodes() -> None:
    target = parse_redis_url("redis+cluster://a:7000,b,[::1]:7002")
    assert target.mode == "cluster"
    assert target.nodes == (("a", 7000), ("b", 6379), ("::1", 7002))
    assert target.options == {}
    tls = parse_redis_url("rediss+cluster://user:p%40ss@a:7000/0?health_check_interval=5")
    assert tls.options == {
        "username": "user",
        "password": "p@ss",
        "ssl": True,
        "health_check_interval": 5,
    }


def test_sentinel_urls_name_the_service_and_database() -> None:
    target = parse_redis_url(
        "redis+sentinel://:secret@s1:26380,s2/mymaster/3?sentinel_password=sentinel-secret"
    )
    assert target.mode == "sentinel"
    assert target.nodes == (("s1", 26380), ("s2", 26379))
    assert target.service_name == "mymaster"
    assert target.options == {"password": "secret", "db": 3}
    assert target.sentinel_options == {"password": "sentinel-secret"}
    assert parse_redis_url("rediss+sentinel://s1/svc").options == {"ssl": True}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://redis:6379", "a Redis URL starts with"),
        ("redis+cluster://a:7000/1", "only database 0"),
        ("redis+cluster://", "no host"),
        ("redis+cluster://a:port", "bad port"),
        ("redis+sentinel://s1:26379", "names no service"),
    ],
)
def test_bad_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


def test_the_settings_refuse_a_bad_url_at_startup() -> None:
    assert RedisSettings(url="redis+cluster://a:7000").url is not None
    with pytest.raises(pydantic.ValidationError, match="a Redis URL starts with"):
        RedisSettings(url="memcached://x")
