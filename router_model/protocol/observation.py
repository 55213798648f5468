"""Observations appended to the policy's turn."""

from __future__ import annotations

import re

from router_model.protocol.tags import INFORMATION_CLOSE, INFORMATION_OPEN, TAG_NAMES

OBSERVATION_MAX_TOKENS = 600
"""The whole observation string is cut to this many policy tokens (done by the server)."""

NONE_REPLY = "None"

_TAG_RE = re.compile(
    r"<(\s*/?\s*(?:" + "|".join(TAG_NAMES) + r")\s*)>",
    re.IGNORECASE,
)
_LOOKALIKE_OPEN = "\u2039"  # single left-pointing angle quotation mark
_LOOKALIKE_CLOSE = "\u203a"  # single right-pointing angle quotation mark


def neutralize_tags(text: str) -> str:
    """Replace the angle brackets of protocol tags with look-alikes (U+2039, U+203A).

    Matches the eight tags in any case and with whitespace inside the brackets
    (``< /Answer >``); all other text is kept unchanged.
    """
    return _TAG_RE.sub(lambda m: f"{_LOOKALIKE_OPEN}{m.group(1)}{_LOOKALIKE_CLOSE}", text)


def format_observation(reply: str | None, *, neutralize: bool = True) -> str:
    """The training layout ``\\n\\n<information>R</information>\\n\\n``.

    ``reply`` is stripped; None (unknown model, upstream failure) gives ``None``.
    """
    if reply is None:
        body = NONE_REPLY
    else:
        body = reply.strip()
        if neutralize:
            body = neutralize_tags(body)
    return f"\n\n{INFORMATION_OPEN}{body}{INFORMATION_CLOSE}\n\n"
