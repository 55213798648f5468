"""The Router-R1 action grammar (GBNF) for grammar-constrained policy turns.

One turn is ``<think>THOUGHT</think>`` then either ``<search> NAME:QUERY </search>`` with
NAME one of the given model names, or ``<answer>ANSWER</answer>``. The same GBNF string is
accepted by llama.cpp (``grammar`` field) and by vLLM's structured outputs
(``structured_outputs: {"grammar": ...}``, xgrammar reads GBNF).

What the grammar rules out, so that every constrained turn parses to a valid action and
passes the per-block format checks (spec section 6):

- no ``<`` inside any block (no nested tags); a thought, query and answer start with a
  visible character other than ``.`` (never empty, never ``...``);
- no ``:`` or newline in the query (exactly one colon in the search);
- bounded lengths (:data:`MAX_THOUGHT_CHARS` etc.), so a small model cannot loop inside a
  block: it must close it and act.

Bounded repetitions are written ``x{0,n}``, which both engines understand.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_QUERY_CHARS",
    "MAX_THOUGHT_CHARS",
    "action_grammar",
    "gbnf_literal",
]

MAX_THOUGHT_CHARS = 300
MAX_QUERY_CHARS = 150
MAX_ANSWER_CHARS = 150

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal: quotes and backslashes escaped, control
    characters as ``\\xHH``, everything else (including non-ASCII) as itself."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def action_grammar(
    model_names: Iterable[str],
    *,
    max_thought_chars: int = MAX_THOUGHT_CHARS,
    max_query_chars: int = MAX_QUERY_CHARS,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> str:
    """The GBNF of one policy turn, routing only to ``model_names`` (in the given order).

    With no names, only the answer action is allowed. A name must be non-empty and free
    of ``:`` and newlines (the registry already guarantees this); duplicates are dropped.
    """
    names = list(dict.fromkeys(model_names))
    for name in names:
        if not name.strip() or ":" in name or "\n" in name:
            raise ValueError(f"model name {name!r} cannot appear in <search> NAME:QUERY")
    for label, bound in (
        ("max_thought_chars", max_thought_chars),
        ("max_query_chars", max_query_chars),
        ("max_answer_chars", max_answer_chars),
    ):
        if bound < 1:
            raise ValueError(f"{label} must be positive, got {bound}")
    lines = [
        'root ::= "<think>" thought "</think>" sep action',
        'sep ::= "\\n"{0,2}',
        "action ::= answer" + (" | search" if names else ""),
        f"thought ::= lead text{{0,{max_thought_chars - 1}}}",
        f'answer ::= "<answer>" lead text{{0,{max_answer_chars - 1}}} "</answer>"',
        # a visible first character that is not '.', '<' or ':' (never empty, never "...")
        "lead ::= [^<:.\\x00-\\x20\\x7f]",
        "text ::= [^<]",
    ]
    if names:
        alternatives = " | ".join(gbnf_literal(name) for name in names)
        lines += [
            'search ::= "<search> " name ":" " "? query " </search>"',
            f"name ::= {alternatives}",
            f"query ::= lead qtext{{0,{max_query_chars - 1}}}",
            "qtext ::= [^<:\\n]",
        ]
    return "\n".join(lines) + "\n"
