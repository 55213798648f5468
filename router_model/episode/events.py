"""The events an episode streams to the HTTP layer, and the answer/reasoning splitter.

Order within one episode: for every turn, ``ReasoningDelta``/``AnswerDelta`` as the
policy writes; for an executed route, ``RouteStarted`` then ``RouteFinished``; last,
exactly one ``EpisodeFinished`` (also after a deadline). Engine errors and cancellation
end the stream with an exception instead.

What the policy saw, exactly: the loop's ``ReasoningDelta`` texts are every character of
every policy turn as it entered the context (the answer block included), and each
``RouteFinished.observation`` is the observation exactly as appended (neutralised, cut to
its token cap); in order, they concatenate to the context's response text, byte for byte.
``AnswerDelta`` texts are additionally the answer, for the client's ``content``.

``AnswerDelta`` texts are the inside of the policy's ``<answer>…</answer>`` (tags
excluded, leading/trailing whitespace dropped as ``str.strip`` would, cut at a client
stop string), streamed as generated. They are speculative in one rare case: a turn that
opens ``<answer>`` but never closes it before ending or before a ``<search>`` block
decides the turn; ``EpisodeFinished.result.answer_text`` is authoritative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from router_model.episode.result import EpisodeResult
from router_model.episode.trace import RouteStep
from router_model.protocol.tags import ANSWER_CLOSE, ANSWER_OPEN


@dataclass(frozen=True)
class ReasoningDelta:
    """Policy text, raw markup included (``<think>``, ``<search>``, ``<answer>``). The
    :class:`AnswerSplitter` uses it for the text outside the answer only."""

    text: str


@dataclass(frozen=True)
class AnswerDelta:
    """Text inside the policy's ``<answer>`` block."""

    text: str


@dataclass(frozen=True)
class RouteStarted:
    """A route is about to be executed; ``model`` is None for an unknown written name."""

    index: int
    written_model: str
    model: str | None
    query: str


@dataclass(frozen=True)
class RouteFinished:
    """The route of turn ``step.index`` is done; ``observation`` is the text appended to the
    context ("" when none was: the request deadline passed during the call)."""

    step: RouteStep
    observation: str = ""


@dataclass(frozen=True)
class EpisodeFinished:
    result: EpisodeResult


EpisodeEvent = ReasoningDelta | AnswerDelta | RouteStarted | RouteFinished | EpisodeFinished
TextDelta = ReasoningDelta | AnswerDelta


class _State(Enum):
    OUTSIDE = "outside"
    ANSWER_START = "answer_start"  # after <answer>, leading whitespace not yet skipped
    ANSWER = "answer"
    STOPPED = "stopped"  # inside the answer, after a client stop string


def _partial_suffix(text: str, markers: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is a proper prefix of a marker."""
    best = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:size]):
                best = size
                break
    return best


def _first_marker(text: str, markers: Sequence[str]) -> tuple[int, str] | None:
    """The earliest marker in ``text``; on a tie the one listed first."""
    hits = [(i, rank, m) for rank, m in enumerate(markers) if (i := text.find(m)) != -1]
    if not hits:
        return None
    index, _, marker = min(hits)
    return index, marker


class AnswerSplitter:
    """Splits the streamed text of ONE policy turn into reasoning and answer deltas.

    Tags may be split across deltas: text that could be the start of ``<answer>``,
    ``</answer>`` or a stop string is held back until it is decided. Call :meth:`feed`
    per delta and :meth:`finish` at the end of the turn; ``"".join`` of the answer
    deltas is :attr:`answer_text`, which for an answer turn equals the stripped content
    ``parse_action`` returns (then cut at the first client stop string).
    """

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._state = _State.OUTSIDE
        self._buf = ""
        self._pending_ws = ""
        self._answer: list[str] = []
        self._answered = False  # only the first answer block is the answer

    @property
    def answer_text(self) -> str:
        return "".join(self._answer)

    def feed(self, text: str) -> list[TextDelta]:
        self._buf += text
        out: list[TextDelta] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> list[TextDelta]:
        """Flush what was held back at the end of the turn."""
        out: list[TextDelta] = []
        if self._state is _State.OUTSIDE:
            self._reason(out, self._buf)
        elif self._state is _State.ANSWER:
            self._emit_answer(out, self._buf, final=True)
        self._buf = ""
        return out

    def _step(self, out: list[TextDelta]) -> bool:
        """Consume what can be decided; True when the state changed (loop again)."""
        buf = self._buf
        if self._state is _State.OUTSIDE:
            if self._answered:
                self._reason(out, buf)
                self._buf = ""
                return False
            index = buf.find(ANSWER_OPEN)
            if index != -1:
                self._reason(out, buf[:index])
                self._buf = buf[index + len(ANSWER_OPEN) :]
                self._state = _State.ANSWER_START
                return True
            keep = _partial_suffix(buf, (ANSWER_OPEN,))
            self._reason(out, buf[: len(buf) - keep])
            self._buf = buf[len(buf) - keep :]
            return False
        if self._state is _State.ANSWER_START:
            self._buf = buf.lstrip()
            if not self._buf:
                return False
            self._state = _State.ANSWER
            return True
        markers = (ANSWER_CLOSE, *self._stops) if self._state is _State.ANSWER else (ANSWER_CLOSE,)
        hit = _first_marker(buf, markers)
        if hit is not None:
            index, marker = hit
            if self._state is _State.ANSWER:
                self._emit_answer(out, buf[:index], final=True)
            self._buf = buf[index + len(marker) :]
            if marker == ANSWER_CLOSE:
                self._state = _State.OUTSIDE
                self._answered = True
            else:
                self._state = _State.STOPPED
            return True
        keep = _partial_suffix(buf, markers)
        if self._state is _State.ANSWER:
            self._emit_answer(out, buf[: len(buf) - keep], final=False)
        self._buf = buf[len(buf) - keep :]
        return False

    @staticmethod
    def _reason(out: list[TextDelta], text: str) -> None:
        if text:
            out.append(ReasoningDelta(text))

    def _emit_answer(self, out: list[TextDelta], text: str, *, final: bool) -> None:
        """Emit answer text, holding back trailing whitespace until more text follows."""
        text = self._pending_ws + text
        body = text.rstrip()
        self._pending_ws = "" if final else text[len(body) :]
        if body:
            out.append(AnswerDelta(body))
            self._answer.append(body)


def split_turn(text: str, stops: Sequence[str] = ()) -> tuple[list[TextDelta], str]:
    """Split a whole turn at once: its deltas and its answer text."""
    splitter = AnswerSplitter(stops)
    deltas = splitter.feed(text) + splitter.finish()
    return deltas, splitter.answer_text
