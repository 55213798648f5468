"""The behaviours a :class:`~tests.fakes.misbehaving_upstream.MisbehavingUpstream` can be
scripted with (one per request), and the record it keeps of each request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

HANG_LIMIT_S = 120.0  # a hang or stall ends by then even if nobody closes it


@dataclass(frozen=True)
class Reply:
    """A completion; see the module docstring for ``end`` and ``cut_after``."""

    text: str = "Leo Tolstoy wrote War and Peace."
    prompt_tokens: int = 11
    completion_tokens: int | None = None  # default: the number of words of ``text``
    send_usage: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)  # values sent as UTF-8 bytes
    delay_s: float = 0.0  # before the response headers
    chunk_interval_s: float = 0.0  # before each stream chunk (a drip)
    end: Literal["done", "eof", "stall", "reset"] = "done"
    cut_after: int | None = None  # content chunks sent before a stall/reset/eof (None: all)

    @property
    def words(self) -> list[str]:
        parts = self.text.split(" ")
        return [part + " " for part in parts[:-1]] + [parts[-1]]

    @property
    def usage(self) -> dict[str, int]:
        completion = (
            self.completion_tokens if self.completion_tokens is not None else len(self.words)
        )
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


@dataclass(frozen=True)
class Status:
    """An HTTP error status with the OpenAI error envelope."""

    status: int
    retry_after: str | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    """Read the request, then send nothing (until the client leaves, or HANG_LIMIT_S)."""


@dataclass(frozen=True)
class Reset:
    """Reset the connection instead of responding.

    Over TCP the request has been read by then (a reset before the request is written is
    what a dead keep-alive connection or a refused connection gives: nothing listening).
    In-process, ``before_request`` picks the error the client sees: ``ConnectError``
    (the request never left) or ``RemoteProtocolError`` (it was sent, no answer came)."""

    before_request: bool = False


@dataclass(frozen=True)
class Garbage:
    body: bytes = b"<html><body>502 Bad Gateway</body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class TruncatedJson:
    """A 200 ``application/json`` whose body stops in the middle of the object."""


Behaviour = Reply | Status | Hang | Reset | Garbage | TruncatedJson
Rule = Callable[["Received"], Behaviour | None]


@dataclass
class Received:
    """One request as the fake got it, and what it did with it."""

    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    behaviour: Behaviour | None = None
    reported_usage: dict[str, int] | None = None  # the usage object it sent, if any
    finished: bool = False  # the behaviour ran to its end (a hang or stall never does)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True
