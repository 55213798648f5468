"""Token fidelity over many real episodes on llama-server: a property of every sampled text.

Short episodes through the in-process gateway against the real local stack, four at a time,
every other one streamed to the client: 16 with the SmolLM2 plumbing policy (eight questions,
two seeds), and 4 with the Qwen2.5 policy, the production layout (Qwen's chat template
with its default system prompt, each turn and observation tokenized on its own by Qwen's
tokenizer).
For every policy turn, the ids the engine received must be the training layout rebuilt
piece by piece from what was recorded (:func:`tests.integration.fidelity.check_training_layout`:
chat-template ids, then each cut turn and each observation tokenized on its own by an
independent tokenize call, each observation the reply of its own upstream call). Nothing
here depends on what the model wrote, only on how the gateway laid it out, so the
assertion holds for any text the policy or the upstreams could sample.

The figures (episodes, turns, observations, ids compared, seconds) are printed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from local_stack.stack import LOCAL_PROFILE, PLUMBING_PROFILE
from router_model.protocol.prompt import fill_policy_prompt
from tests.integration.conftest import (
    GENERATE_PATH,
    LlamaStack,
    live_gateway,
    policy_engine,
    with_limits,
)
from tests.integration.fidelity import (
    EpisodeRequest,
    FidelityReport,
    LayoutLimits,
    check_training_layout,
    episodes_from_recording,
    play_tagged,
    upstream_model_resolver,
)
from tests.integration.recording import Exchange

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

QUESTIONS = [
    "Who wrote Hamlet?",
    "Which planet is known as the red planet?",
    "What is the capital of Japan?",
    "What gas do plants absorb?",
    "Who discovered penicillin?",
    "How many legs does a spider have?",
    "What is the largest mammal?",
    "Which metal is liquid at room temperature?",
]
CONCURRENCY = 4
# (profile, questions, seeds): many fast SmolLM2 episodes, a few Qwen ones
RUNS = {
    PLUMBING_PROFILE: (QUESTIONS, range(2)),
    LOCAL_PROFILE: (QUESTIONS[:4], range(1)),
}
# short episodes: two routes at most, short upstream replies; max_turn_tokens is above what
# the grammar allows, so no turn is cut by length; a deadline no loaded CI machine reaches
LIMITS = {"max_routes": 2, "upstream_max_tokens": 24, "max_turn_tokens": 700, "deadline_s": 900}


async def _play_and_check(
    stack: LlamaStack, name: str
) -> tuple[FidelityReport, int, int, float, int]:
    registry = with_limits(stack, name, **LIMITS)
    profile = registry.profile(name)
    assert profile is not None
    questions, seeds = RUNS[name]
    requests = [
        EpisodeRequest(question, seed, stream=(seed + n) % 2 == 1)
        for seed in seeds
        for n, question in enumerate(questions)
    ]
    start = time.perf_counter()
    async with live_gateway(registry) as gw:
        routers = await play_tagged(gw.client, name, requests, concurrency=CONCURRENCY)
    played_s = time.perf_counter() - start
    # the Qwen profile falls back to its chat model when the episode ends without an answer
    assert all(r["outcome"] in ("answer", "no_answer", "fallback") for r in routers), routers
    template = registry.policy_template(profile)
    async with policy_engine(stack, name) as engine:
        chat_ids = {
            str(i): await engine.chat_prompt_ids(fill_policy_prompt(template, r.question))
            for i, r in enumerate(requests)
        }
        # the fallback's chat call is no route: it is not in the policy's context
        routed = _routed_calls(gw.upstream_calls.exchanges, routers)
        episodes = episodes_from_recording(
            gw.engine_calls.exchanges, routed, chat_ids, generate_path=GENERATE_PATH
        )
        report = await check_training_layout(
            episodes,
            engine.tokenize,
            upstream_model_resolver(registry, profile),
            LayoutLimits.of(profile.limits),
        )
    generations = len(gw.engine_calls.to(GENERATE_PATH))
    routes = len([e for e in routed if e.path == "/v1/chat/completions"])
    return report, generations, routes, played_s, len(requests)


def _routed_calls(exchanges: list[Exchange], routers: list[dict[str, Any]]) -> list[Exchange]:
    """``exchanges`` without the fallback calls: the last upstream call of each episode
    (tagged by its index) whose trace ends with a ``fallback`` step."""
    fallbacks: set[int] = set()
    for index, router in enumerate(routers):
        steps = router["steps"]
        if steps and steps[-1]["action"] == "fallback":
            mine = [n for n, e in enumerate(exchanges) if e.episode == str(index)]
            fallbacks.add(mine[-1])
    return [e for n, e in enumerate(exchanges) if n not in fallbacks]


@pytest.mark.parametrize("name", [PLUMBING_PROFILE, LOCAL_PROFILE])
def test_every_turn_of_every_episode_is_the_training_layout(
    llama_stack: LlamaStack, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    start = time.perf_counter()
    report, generations, routes, played_s, episodes = asyncio.run(
        _play_and_check(llama_stack, name)
    )
    with capsys.disabled():
        print(
            f"\ntoken fidelity (llama-server, {name}): {report.summary()}; {routes} upstream "
            f"calls; played in {played_s:.0f} s, {time.perf_counter() - start:.0f} s in all"
        )
    assert report.ok, report.details()
    assert report.episodes == episodes
    assert report.turns == generations  # every generation request was checked
    assert report.observations >= routes
