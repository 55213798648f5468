"""Format reward of the reference (``main_ppo.format_reward``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from router_model.protocol.names import NameResolver, legacy_resolver
from router_model.protocol.tags import ALL_TAGS, ANSWER_CLOSE, THINK_OPEN
from router_model.protocol.turn import PLACEHOLDERS

FORMAT_OK = 0.0
FORMAT_PENALTY = -1.0

ValidModel = Callable[[str], bool]

_BLOCK_RE = re.compile(r"<(search|answer|think|information)>(.*?)</\1>", re.DOTALL)
_BALANCED = ("search", "think", "answer", "information")


def valid_model_from_resolver(resolver: NameResolver) -> ValidModel:
    """``valid_model`` for :func:`format_reward`: the name resolves to something."""
    return resolver.is_known


def legacy_valid_model() -> ValidModel:
    """The reference's test: the legacy substring rules resolve the name."""
    return valid_model_from_resolver(legacy_resolver())


def _search_is_malformed(content: str) -> bool:
    if content.count(":") != 1:
        return True
    name, query = (part.strip().lower() for part in content.split(":"))
    lowered = content.lower()
    return (
        not query
        or any(p in lowered for p in PLACEHOLDERS)
        # the model name repeated inside its own query (an empty name always is)
        or name in query
    )


def _has_nested_tag(content: str) -> bool:
    return any(tag in content for tag in ALL_TAGS)


def format_reward(response: str, valid_model: ValidModel) -> float:
    """0.0 when the response side follows every format rule, else -1.0.

    ``response`` is the decoded response (policy turns and information blocks, no
    prompt). ``valid_model`` receives the name part of each search as written.
    """
    blocks: list[tuple[str, str]] = _BLOCK_RE.findall(response)
    if not blocks:
        return FORMAT_PENALTY
    if any(response.count(f"<{t}>") != response.count(f"</{t}>") for t in _BALANCED):
        return FORMAT_PENALTY
    counts = dict.fromkeys(_BALANCED, 0)
    for tag, raw in blocks:
        content = raw.strip()
        counts[tag] += 1
        if _has_nested_tag(content):
            return FORMAT_PENALTY
        if tag == "think" and content in ("", "..."):
            return FORMAT_PENALTY
        if tag == "search" and (
            _search_is_malformed(content) or not valid_model(content.split(":")[0])
        ):
            return FORMAT_PENALTY
    if counts["answer"] != 1 or counts["think"] == 0 or counts["search"] != counts["information"]:
        return FORMAT_PENALTY
    stripped = response.strip()
    if not stripped.startswith(THINK_OPEN) or not stripped.endswith(ANSWER_CLOSE):
        return FORMAT_PENALTY
    return FORMAT_OK
