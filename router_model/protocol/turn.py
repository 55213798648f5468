"""One policy turn: where it ends and which action it takes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from router_model.protocol.tags import ANSWER_CLOSE, SEARCH_CLOSE

# First complete <search>…</search> or <answer>…</answer> block; the back-reference makes
# "<answer>x</search>" no block at all.
_ACTION_RE = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
PLACEHOLDERS = ("llm-name", "your-query")
"""Words of the prompt's example search: a search that contains one is invalid."""


class ActionKind(StrEnum):
    """Action kinds; the values are the reference strings."""

    SEARCH = "search"
    ANSWER = "answer"
    INVALID_PLACEHOLDER = "route invalid-1"
    INVALID_NO_COLON = "route invalid-2"
    INVALID_EMPTY_QUERY = "route invalid-3"


@dataclass(frozen=True)
class Action:
    """The action of one turn; ``kind`` is None when the turn has no action block."""

    kind: ActionKind | None
    content: str

    @property
    def is_route(self) -> bool:
        """True for a valid ``<search>`` (a route to execute)."""
        return self.kind is ActionKind.SEARCH

    def _route_content(self) -> str:
        if self.kind is not ActionKind.SEARCH:
            raise ValueError(f"not a valid route action: {self.kind}")
        return self.content

    @property
    def model_name(self) -> str:
        """The model name as written: ``content.split(":")[0].strip()``."""
        return self._route_content().split(":")[0].strip()

    @property
    def lookup_name(self) -> str:
        """The name the reference resolves: ``model_name.lower()``."""
        return self.model_name.lower()

    @property
    def query(self) -> str:
        """The reference sub-query: ``content.split(":")[1]``, not stripped.

        Text after a second ``:`` is dropped, as in the reference.
        """
        return self._route_content().split(":")[1]

    @property
    def query_remainder(self) -> str:
        """Everything after the first ``:``, not stripped.

        A server may send this instead of :attr:`query` so that a sub-query containing
        ``:`` reaches the upstream model whole; it equals :attr:`query` when there is
        exactly one ``:``.
        """
        return self._route_content().split(":", 1)[1]


NO_ACTION = Action(kind=None, content="")


def cut_turn(text: str) -> str:
    """Cut right after the first ``</search>``; else after the first ``</answer>``."""
    for closer in (SEARCH_CLOSE, ANSWER_CLOSE):
        index = text.find(closer)
        if index != -1:
            return text[: index + len(closer)]
    return text


def parse_action(turn: str) -> Action:
    """Parse one turn as the reference does: the first complete block decides."""
    match = _ACTION_RE.search(turn)
    if match is None:
        return NO_ACTION
    content = match.group(2).strip()
    if match.group(1) == "answer":
        return Action(ActionKind.ANSWER, content)
    lowered = content.lower()
    if any(placeholder in lowered for placeholder in PLACEHOLDERS):
        return Action(ActionKind.INVALID_PLACEHOLDER, content)
    if ":" not in content:
        return Action(ActionKind.INVALID_NO_COLON, content)
    if not content.split(":")[-1].strip():
        return Action(ActionKind.INVALID_EMPTY_QUERY, content)
    return Action(ActionKind.SEARCH, content)
