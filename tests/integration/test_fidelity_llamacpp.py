"""Token fidelity over many real episodes on llama.cpp: a property of every sampled text.

Forty short episodes (eight questions, five seeds, four at a time, every other one
streamed to the client) through the in-process gateway against the real llama.cpp stack.
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

import pytest

from local_stack.stack import LOCAL_PROFILE
from router_model.protocol.prompt import fill_policy_prompt
from tests.integration.conftest import LlamaStack, live_gateway, policy_engine, with_limits
from tests.integration.fidelity import (
    EpisodeRequest,
    FidelityReport,
    LayoutLimits,
    check_training_layout,
    episodes_from_recording,
    play_tagged,
    upstream_model_resolver,
)

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
SEEDS = range(5)
CONCURRENCY = 4
# short episodes: two routes at most, short upstream replies; max_turn_tokens is above what
# the grammar allows, so no turn is cut by length
LIMITS = {"max_routes": 2, "upstream_max_tokens": 24, "max_turn_tokens": 700}


async def _play_and_check(stack: LlamaStack) -> tuple[FidelityReport, int, int, float]:
    registry = with_limits(stack, **LIMITS)
    profile = registry.profile(LOCAL_PROFILE)
    assert profile is not None
    requests = [
        EpisodeRequest(question, seed, stream=(seed + n) % 2 == 1)
        for seed in SEEDS
        for n, question in enumerate(QUESTIONS)
    ]
    start = time.perf_counter()
    async with live_gateway(registry) as gw:
        routers = await play_tagged(gw.client, LOCAL_PROFILE, requests, concurrency=CONCURRENCY)
    played_s = time.perf_counter() - start
    assert all(r["outcome"] in ("answer", "no_answer") for r in routers), routers
    template = registry.policy_template(profile)
    async with policy_engine(stack) as engine:
        chat_ids = {
            str(i): await engine.chat_prompt_ids(fill_policy_prompt(template, r.question))
            for i, r in enumerate(requests)
        }
        episodes = episodes_from_recording(
            gw.engine_calls.exchanges, gw.upstream_calls.exchanges, chat_ids
        )
        report = await check_training_layout(
            episodes,
            engine.tokenize,
            upstream_model_resolver(registry, profile),
            LayoutLimits.of(profile.limits),
        )
    generations = len(gw.engine_calls.to("/v1/completions"))
    routes = len(gw.upstream_calls.to("/v1/chat/completions"))
    return report, generations, routes, played_s


def test_every_turn_of_every_episode_is_the_training_layout(
    llama_stack: LlamaStack, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.perf_counter()
    report, generations, routes, played_s = asyncio.run(_play_and_check(llama_stack))
    with capsys.disabled():
        print(
            f"\ntoken fidelity (llama.cpp): {report.summary()}; {routes} upstream calls; "
            f"played in {played_s:.0f} s, {time.perf_counter() - start:.0f} s in all"
        )
    assert report.ok, report.details()
    assert report.episodes == len(QUESTIONS) * len(SEEDS)
    assert report.turns == generations  # every generation request was checked
    assert report.observations >= routes > 0
    assert report.multi_turn_episodes > 0
