"""A deterministic toy tokenizer with a Qwen-like chat template, for the fake vLLM server.

Pre-tokenization is GPT-2-like (a leading space sticks to the following word, runs of
punctuation and of whitespace are pieces), so tokenizing two strings separately can give
other ids than tokenizing their concatenation, as with a real BPE tokenizer: that is
what makes the token-fidelity tests meaningful. The vocabulary grows on first sight of a
piece; ids are stable for one tokenizer instance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END)
EOS_ID = 0

QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_TOKENS) + ")")
_PIECE_RE = re.compile(r" ?\w+| ?[^\s\w]+|\s+(?!\S)|\s+")
_FIRST_ID = 100


class ToyTokenizer:
    """Text ↔ ids; special-token strings in text become their special ids (as in HF)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
        self._pieces: dict[int, str] = {i: s for s, i in self._ids.items()}

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(range(len(SPECIAL_TOKENS)))

    def _id(self, piece: str) -> int:
        found = self._ids.get(piece)
        if found is None:
            found = _FIRST_ID + len(self._ids) - len(SPECIAL_TOKENS)
            self._ids[piece] = found
            self._pieces[found] = piece
        return found

    def knows(self, token_id: int) -> bool:
        return token_id in self._pieces

    def pieces(self, text: str) -> list[str]:
        """The pieces of ``text`` (special tokens whole); they concatenate to ``text``."""
        out: list[str] = []
        for part in _SPECIAL_RE.split(text):
            if part in SPECIAL_TOKENS:
                out.append(part)
            elif part:
                out.extend(_PIECE_RE.findall(part))
        assert "".join(out) == text
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; no special tokens are added."""
        return [self._id(piece) for piece in self.pieces(text)]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        special = self.special_ids
        return "".join(self._pieces[i] for i in ids if not (skip_special_tokens and i in special))

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool
    ) -> str:
        """Qwen2.5's default template: a default system message when none is given."""
        text = ""
        if not messages or messages[0].get("role") != "system":
            text += f"{IM_START}system\n{QWEN_DEFAULT_SYSTEM}{IM_END}\n"
        for message in messages:
            text += f"{IM_START}{message['role']}\n{message['content']}{IM_END}\n"
        if add_generation_prompt:
            text += f"{IM_START}assistant\n"
        return text
