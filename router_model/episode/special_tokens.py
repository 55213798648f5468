"""Untrusted text never becomes the policy's control tokens: a deliberate deviation.

The reference tokenized the question and every upstream reply with special-token parsing on,
so a reply containing ``<|im_end|>\\n<|im_start|>system`` became real chat-template tokens: an
upstream, or a client, could inject turn boundaries and system messages into the policy's
context (spec section 1). The gateway neutralises such text before it is tokenized, as it
neutralises the protocol tags in observations: the angle (or square) brackets of every
special-token string are replaced with look-alikes (U+2039/U+203A, U+FF3B/U+FF3D), so the
text reads the same and tokenizes as plain text. Text that contains no special-token string
(all normal text) is unchanged, and so are its ids: the deviation touches only the attack.

Which strings are special is asked of the policy's own tokenizer, so any checkpoint is
covered without a list per model family: a candidate substring (``<|...|>``, DeepSeek's
``<｜...｜>``, ``<...>``, ``[...]`` in capitals) is special when the engine tokenizes it, on
its own, to exactly one id (an added token: ``<|im_end|>`` is one id, plain ``<b>`` is
several). Each distinct candidate is asked once per engine and remembered; text without a
candidate costs one regular-expression scan. Both are bounded: at most
``_MAX_ASKED_PER_TEXT`` new candidates of one text are asked (a hostile reply or question
full of invented tags cannot make one request send thousands of tokenize calls; the
candidates beyond are neutralised without asking, as if special), and at most
``_MAX_REMEMBERED`` answers are kept.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence

Tokenize = Callable[[str], Awaitable[Sequence[int]]]

_CANDIDATE = re.compile(
    r"<\|[^\s<>|]{1,64}\|>"  # ChatML, Llama 3, Phi, Qwen, SmolLM: <|im_end|>
    r"|<\uff5c[^<>\uff5c]{1,64}\uff5c>"  # DeepSeek: <｜end▁of▁sentence｜>
    r"|</?[A-Za-z_][A-Za-z0-9_.:-]{0,63}>"  # Gemma, Llama 2, Mistral: <start_of_turn>, </s>
    r"|\[/?[A-Z][A-Z0-9_]{1,31}\]"  # Mistral: [INST], [/INST], [SYSTEM_PROMPT]
)
_LOOKALIKES = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "\uff3b", "]": "\uff3d"})
_MAX_REMEMBERED = 4096
_MAX_ASKED_PER_TEXT = 32


def neutralized(token: str) -> str:
    """``<|im_end|>`` → ``‹|im_end|›``: the same letters, never the control token."""
    return token.translate(_LOOKALIKES)


class SpecialTokenGuard:
    """Neutralises the special-token strings of one policy engine's tokenizer in text."""

    def __init__(self, tokenize: Tokenize) -> None:
        self._tokenize = tokenize
        self._special: dict[str, bool] = {}

    async def neutralize(self, text: str) -> str:
        """``text`` with every special-token string neutralised (unchanged if it has none)."""
        candidates = list(dict.fromkeys(m.group(0) for m in _CANDIDATE.finditer(text)))
        if not candidates:
            return text
        unknown = [c for c in candidates if c not in self._special][:_MAX_ASKED_PER_TEXT]
        if unknown:
            ids = await asyncio.gather(*(self._tokenize(c) for c in unknown))
            if len(self._special) + len(unknown) > _MAX_REMEMBERED:
                self._special.clear()  # bounded: hostile replies may invent endless tags
            for candidate, candidate_ids in zip(unknown, ids, strict=True):
                self._special[candidate] = len(candidate_ids) == 1
        special = [c for c in candidates if self._special.get(c, True)]
        if not special:
            return text
        pattern = re.compile("|".join(re.escape(s) for s in sorted(special, key=len, reverse=True)))
        return pattern.sub(lambda m: neutralized(m.group(0)), text)
