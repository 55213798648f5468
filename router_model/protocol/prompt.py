"""Policy and upstream prompts, rendered exactly as in training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from router_model.protocol.templates import (
    NAME_SEPARATOR,
    PARAGRAPH_SEPARATOR,
    Variant,
    template_parts,
    upstream_prompt_template,
)


class ModelDescriptor(Protocol):
    """What the policy prompt needs to know about one pool model."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _check_pool(models: Sequence[ModelDescriptor]) -> None:
    if not models:
        raise ValueError("the model pool is empty: the policy prompt needs at least one model")
    seen: set[str] = set()
    for model in models:
        name = model.name
        if not name.strip():
            raise ValueError("a pool model has an empty name")
        if ":" in name:
            raise ValueError(f"model name {name!r} contains ':', which separates NAME:QUERY")
        if "\n" in name or "\r" in name:
            raise ValueError(f"model name {name!r} contains a line break")
        key = name.strip().lower()
        if key in seen:
            raise ValueError(f"model name {name!r} appears twice in the pool (case-insensitive)")
        seen.add(key)


def render_policy_template(models: Sequence[ModelDescriptor], variant: Variant) -> str:
    """Build the policy template for ``models``; ``{question}`` stays unfilled.

    The result is a ``str.format_map`` template: braces in names and descriptions are
    doubled so that only ``{question}`` is a field. With the paper's default pool it is
    byte-identical to the reference template.
    """
    _check_pool(models)
    parts = template_parts(variant)
    names = NAME_SEPARATOR.join(_escape_braces(m.name) for m in models)
    paragraphs = PARAGRAPH_SEPARATOR.join(
        f"{_escape_braces(m.name)}:{_escape_braces(m.description)}" for m in models
    )
    return parts.head + names + parts.middle + paragraphs + parts.footer


def normalize_question(question: str) -> str:
    """``strip()``, then append ``?`` unless it already ends with one; empty stays empty."""
    stripped = question.strip()
    if stripped and not stripped.endswith("?"):
        return stripped + "?"
    return stripped


def fill_policy_prompt(template: str, question: str) -> str:
    """Fill ``{question}`` of a policy template with the normalised question."""
    return template.format_map({"question": normalize_question(question)})


def render_upstream_prompt(query: str) -> str:
    """The single user message sent to the routed model (``query`` is inserted verbatim)."""
    return upstream_prompt_template().format_map({"query": query})
