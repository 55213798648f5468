"""The Router-R1 episode: token context, loop, events and the trace returned to clients."""

from server.episode.context import ContextPiece, PolicyContext
from server.episode.events import (
    AnswerDelta,
    AnswerSplitter,
    EpisodeEvent,
    EpisodeFinished,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
    split_turn,
)
from server.episode.loop import EpisodeRunner, EpisodeSettings, PolicyOverrides, resolve_settings
from server.episode.result import EpisodeResult, EpisodeUsage
from server.episode.trace import Outcome, RouterTotals, RouterTrace, RouteStep, StepAction

__all__ = [
    "AnswerDelta",
    "AnswerSplitter",
    "ContextPiece",
    "EpisodeEvent",
    "EpisodeFinished",
    "EpisodeResult",
    "EpisodeRunner",
    "EpisodeSettings",
    "EpisodeUsage",
    "Outcome",
    "PolicyContext",
    "PolicyOverrides",
    "ReasoningDelta",
    "RouteFinished",
    "RouteStarted",
    "RouteStep",
    "RouterTotals",
    "RouterTrace",
    "StepAction",
    "resolve_settings",
    "split_turn",
]
