"""Reading ``model_registry.yaml``: YAML, ``${VAR:-default}`` expansion, one-line errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router_model.registry.schema import RegistryFile

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RegistryError(Exception):
    """A registry file that cannot be used; the message is one line naming file, entry, field."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key written twice in one mapping (YAML keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def expand_env(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ and environ[name] != "":
                return environ[name]
            if default is not None:
                return default
            raise RegistryError(f"{where or 'value'}: environment variable {name} is not set")

        return _ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, dict):
        return {
            k: expand_env(v, environ, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [expand_env(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """``('models', 2, 'pricing')`` → ``models[2] ('Qwen2.5-7B-Instruct').pricing``."""
    text = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                text += f" ({node['name']!r})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text


def format_validation_error(error: ValidationError, data: Any) -> str:
    """One line: the first problem, located, plus how many more there are."""
    problems = error.errors()
    first = problems[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = _location(tuple(first["loc"]), data)
    text = f"{where}: {message}" if where else message
    if first["type"] == "missing":
        text = f"{where}: required field is missing"
    elif first["type"] == "extra_forbidden":
        text = f"{where}: unknown field"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return text


def parse_registry(
    text: str, source: str, environ: Mapping[str, str] | None = None
) -> RegistryFile:
    """Validate registry YAML text; ``source`` names the file in error messages."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError(f"{source}:{line}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RegistryError(f"{source}: expected a mapping at the top level")
    try:
        data = expand_env(data, os.environ if environ is None else environ)
    except RegistryError as exc:
        raise RegistryError(f"{source}: {exc}") from None
    try:
        return RegistryFile.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{source}: {format_validation_error(exc, data)}") from None


def read_registry_file(path: str | Path, environ: Mapping[str, str] | None = None) -> RegistryFile:
    """Read and validate a registry file; every failure is a one-line :class:`RegistryError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_registry(text, str(path), environ)
