"""The Router-R1 episode: the domain core that serving and training share.

The loop, its token context, events, ledger, result and trace, and its ports: the policy
engine (:mod:`.engine`) and the upstream route caller (:mod:`.route`). It depends only on
``router_model.protocol`` and ``router_model.registry``; the gateway and the trainers plug
their engines and upstream clients into the ports.
"""

from router_model.episode.context import ContextPiece, PolicyContext
from router_model.episode.events import (
    AnswerDelta,
    AnswerSplitter,
    EpisodeEvent,
    EpisodeFinished,
    ReasoningDelta,
    RouteFinished,
    RouteStarted,
    split_turn,
)
from router_model.episode.loop import EpisodeRun
from router_model.episode.result import EpisodeResult
from router_model.episode.runner import EpisodeRunner
from router_model.episode.settings import EpisodeSettings, PolicyOverrides, resolve_settings
from router_model.episode.special_tokens import SpecialTokenGuard
from router_model.episode.trace import Outcome, RouterTotals, RouterTrace, RouteStep, StepAction
from router_model.usage import Usage

__all__ = [
    "AnswerDelta",
    "AnswerSplitter",
    "ContextPiece",
    "EpisodeEvent",
    "EpisodeFinished",
    "EpisodeResult",
    "EpisodeRun",
    "EpisodeRunner",
    "EpisodeSettings",
    "Outcome",
    "PolicyContext",
    "PolicyOverrides",
    "ReasoningDelta",
    "RouteFinished",
    "RouteStarted",
    "RouteStep",
    "RouterTotals",
    "RouterTrace",
    "SpecialTokenGuard",
    "StepAction",
    "Usage",
    "resolve_settings",
    "split_turn",
]
