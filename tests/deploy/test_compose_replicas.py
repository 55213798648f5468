"""The two-replica compose stack (docker-compose.replicas.yml over docker-compose.yml): a second
vLLM serving the same checkpoint on its own GPU, and a registry listing both."""

from __future__ import annotations

from urllib.parse import urlparse

from router_model.registry import Registry
from tests.deploy.compose import COMPOSE, REPO, Override, active_services, depends_on, merged
from tests.deploy.test_compose import host_path

REPLICAS = REPO / "docker-compose.replicas.yml"
SERVICES = active_services(merged(COMPOSE, REPLICAS))
REGISTRY = REPO / "deploy" / "compose" / "model_registry.replicas.yaml"


def registry() -> Registry:
    return Registry.from_file(REGISTRY, environ={})


def test_both_replicas_serve_the_same_checkpoint_on_their_own_gpu() -> None:
    a, b = SERVICES["vllm"], SERVICES["vllm-b"]
    assert a["command"] == b["command"]
    assert a["image"] == b["image"]
    assert a.get("expose") == b.get("expose")
    assert "ports" not in b  # clients reach the policy only through the gateway
    assert "--enable-prefix-caching" in b["command"]
    devices = [service["deploy"]["resources"]["reservations"]["devices"] for service in (a, b)]
    gpus = [(d.value if isinstance(d, Override) else d)[0]["device_ids"] for d in devices]
    assert gpus == [["0"], ["1"]]
    host_ports = [p.rsplit(":", 1)[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))


def test_the_proxy_uses_the_registry_listing_both() -> None:
    proxy = SERVICES["proxy"]
    assert host_path(proxy, proxy["environment"]["ROUTER_R1_REGISTRY"]) == REGISTRY
    assert {"vllm", "vllm-b", "redis"} <= set(depends_on(proxy))
    profile = registry().profile("router-r1")
    assert profile is not None
    hosts = []
    for name in profile.policy.replica_endpoints:
        url = urlparse(registry().endpoint(name).base_url)
        assert url.hostname in SERVICES
        assert url.port == 8000
        hosts.append(url.hostname)
    assert hosts == ["vllm", "vllm-b"]


def test_only_the_policy_endpoints_differ_from_the_main_registry() -> None:
    main = Registry.from_file(REPO / "model_registry.yaml", environ={})
    replicas = registry()
    assert replicas.models == main.models
    for ours, theirs in zip(replicas.profiles, main.profiles, strict=True):
        assert ours.model_copy(update={"policy": theirs.policy}) == theirs
        assert (
            ours.policy.model_copy(update={"endpoint": theirs.policy.endpoint, "endpoints": ()})
            == theirs.policy
        )
