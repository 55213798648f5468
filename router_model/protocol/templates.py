"""Reference strings of Router-R1, loaded from the packaged ``constants.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

Variant = Literal["qwen", "llama"]

_LIST_OPEN = "selected from ["
_LIST_CLOSE = "]"
_DESCRIPTIONS_HEADING = "#### The Descriptions of Each LLM \n"
_FOOTER_START = "\n\nIf you find that no further external knowledge is needed"
PARAGRAPH_SEPARATOR = "\n\n"
NAME_SEPARATOR = ", "


@dataclass(frozen=True)
class DefaultPoolModel:
    """One model of the paper's six-model pool, as the policy was trained on it."""

    name: str
    description: str
    api_model: str
    usd_per_1m_output_tokens: float
    temperature: float


@dataclass(frozen=True)
class TemplateParts:
    """A policy template cut around its model list and its descriptor paragraphs.

    ``head + names + middle + paragraphs + footer`` is the template.
    """

    head: str
    names: str
    middle: str
    paragraphs: str
    footer: str


@cache
def _constants() -> dict[str, Any]:
    raw = resources.files("router_model.protocol").joinpath("constants.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


def _entry_text(key: str) -> str:
    text = _constants()[key]["text"]
    if not isinstance(text, str):
        raise TypeError(f"constants.json: {key}.text is not a string")
    return text


def reference_template(variant: Variant) -> str:
    """The exact policy template the checkpoints were trained on (``{question}`` unfilled)."""
    return _entry_text(f"policy_template_{variant}")


def reference_sha256(key: str) -> str:
    """The sha256 recorded in constants.json for ``key`` (e.g. ``policy_template_qwen``)."""
    digest = _constants()[key]["sha256"]
    if not isinstance(digest, str):
        raise TypeError(f"constants.json: {key}.sha256 is not a string")
    return digest


def upstream_prompt_template() -> str:
    """The exact upstream prompt (``{query}`` unfilled)."""
    return _entry_text("upstream_prompt")


@cache
def template_parts(variant: Variant) -> TemplateParts:
    """Split the reference template into its fixed pieces and its pool-dependent pieces."""
    text = reference_template(variant)
    try:
        names_start = text.index(_LIST_OPEN) + len(_LIST_OPEN)
        names_end = text.index(_LIST_CLOSE, names_start)
        paragraphs_start = text.index(_DESCRIPTIONS_HEADING, names_end) + len(_DESCRIPTIONS_HEADING)
        footer_start = text.index(_FOOTER_START, paragraphs_start)
    except ValueError as exc:
        raise ValueError(f"policy_template_{variant}: unexpected layout") from exc
    return TemplateParts(
        head=text[:names_start],
        names=text[names_start:names_end],
        middle=text[names_end:paragraphs_start],
        paragraphs=text[paragraphs_start:footer_start],
        footer=text[footer_start:],
    )


def _description(paragraphs: str, name: str) -> str:
    prefix = f"{name}:"
    for paragraph in paragraphs.split(PARAGRAPH_SEPARATOR):
        if paragraph.startswith(prefix):
            return paragraph[len(prefix) :]
    raise ValueError(f"no descriptor paragraph for {name!r} in the reference template")


@cache
def default_pool_descriptors() -> tuple[DefaultPoolModel, ...]:
    """The paper's six default-pool models, descriptions taken from the Qwen template."""
    paragraphs = template_parts("qwen").paragraphs
    return tuple(
        DefaultPoolModel(
            name=entry["name"],
            description=_description(paragraphs, entry["name"]),
            api_model=entry["api_model"],
            usd_per_1m_output_tokens=float(entry["usd_per_1m_output_tokens"]),
            temperature=float(entry["temperature"]),
        )
        for entry in _constants()["default_pool"]
    )
