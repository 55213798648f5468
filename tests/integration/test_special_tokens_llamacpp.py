"""Special-token neutralisation against llama-server's real tokenizers: Qwen2.5's (the
default profile's policy, the released checkpoints' family) and SmolLM2's (the plumbing
profile's); see :mod:`tests.integration.guarded_context`."""

from __future__ import annotations

import pytest

from local_stack.stack import LOCAL_PROFILE, PLUMBING_PROFILE
from tests.integration.conftest import LlamaStack, policy_engine
from tests.integration.guarded_context import check_guarded_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize("profile", [LOCAL_PROFILE, PLUMBING_PROFILE])
async def test_injected_control_tokens_never_reach_the_context(
    llama_stack: LlamaStack, profile: str
) -> None:
    async with policy_engine(llama_stack, profile) as engine:
        await check_guarded_context(engine, llama_stack.registry, llama_stack.profile(profile))
