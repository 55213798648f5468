"""veRL 0.9.1 integration. ``agent_loop`` (the ``AgentLoopBase`` subclass) imports veRL and is
loaded by veRL itself from the agent-loop file; everything here is importable without it."""

from router_model.training.verl.episode import AgentLoopFields, question_of, run_episode
from router_model.training.verl.generator import ServerManager, VerlServerGenerator
from router_model.training.verl.reward import compute_score, golds_of
from router_model.training.verl.shared import SharedRollout

__all__ = [
    "AgentLoopFields",
    "ServerManager",
    "SharedRollout",
    "VerlServerGenerator",
    "compute_score",
    "golds_of",
    "question_of",
    "run_episode",
]
