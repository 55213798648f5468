"""Reading the compose files as Compose does (enough of it for consistency checks)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_CPU = REPO / "docker-compose.cpu.yml"


class Override:
    """A value tagged ``!override`` (replaces instead of merging) or ``!reset``."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _ComposeLoader(yaml.SafeLoader):
    pass


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!override", _tagged)
_ComposeLoader.add_constructor("!reset", _tagged)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_ComposeLoader)
    return data


def _merge_service(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Override):
            merged[key] = value.value
        elif key == "volumes" and isinstance(value, list):
            targets = {v.split(":")[1]: v for v in merged.get(key, [])}
            targets.update({v.split(":")[1]: v for v in value})
            merged[key] = list(targets.values())
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        elif key == "depends_on" and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged.get(key, []), *value]))
        else:
            merged[key] = value
    return merged


def merged(*paths: Path) -> dict[str, Any]:
    """The files merged in order (services by key; ``volumes`` by mount target)."""
    result: dict[str, Any] = {"services": {}}
    for path in paths:
        data = load(path)
        for name, service in data.get("services", {}).items():
            base = result["services"].get(name, {})
            result["services"][name] = _merge_service(base, service or {})
        for key in ("volumes", "name"):
            if key in data:
                result[key] = data[key]
    return result


def active_services(config: dict[str, Any], profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """Services started without naming a profile (or with one of ``profiles``)."""
    return {
        name: service
        for name, service in config["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def depends_on(service: dict[str, Any]) -> list[str]:
    value = service.get("depends_on", [])
    return list(value) if isinstance(value, dict | list) else []


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every ``./`` bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts.append((source, target))
    return mounts
