"""Special-token neutralisation against llama.cpp's real SmolLM2 tokenizer (the local stack's
policy server): see :mod:`tests.integration.guarded_context`."""

from __future__ import annotations

import pytest

from tests.integration.conftest import LlamaStack, policy_engine
from tests.integration.guarded_context import check_guarded_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_injected_control_tokens_never_reach_the_context(llama_stack: LlamaStack) -> None:
    async with policy_engine(llama_stack) as engine:
        await check_guarded_context(engine, llama_stack.registry, llama_stack.profile)
