"""Route count of the reference (``main_ppo.route_count``)."""

from __future__ import annotations

import re

from router_model.protocol.turn import PLACEHOLDERS
from router_model.rewards.format import ValidModel

_ROUTE_RE = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)


def _is_countable(content: str, valid_model: ValidModel) -> bool:
    if content.count(":") != 1:
        return False
    lowered = content.lower()
    if not content.split(":")[-1].strip() or any(p in lowered for p in PLACEHOLDERS):
        return False
    return valid_model(content.split(":")[0])


def count_routes(response: str, valid_model: ValidModel) -> int:
    """Well-formed searches naming a valid model, counted up to the first bad one.

    Reference quirks kept: counting stops for good at the first malformed or
    unknown-model search, a name repeated in its query still counts, and search blocks
    inside information blocks are counted too.
    """
    count = 0
    for tag, raw in _ROUTE_RE.findall(response):
        if tag != "search":
            continue
        if not _is_countable(raw.strip(), valid_model):
            break
        count += 1
    return count
