"""LlamaCppEngine against a real llama.cpp server (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import httpx
import pytest

from router_model.protocol.grammar import action_grammar
from router_model.protocol.turn import ActionKind, parse_action
from server.engines import EngineError, GenerationParams, LlamaCppEngine
from tests.integration.conftest import LlamaStack, policy_engine

pytestmark = pytest.mark.slow

# SmolLM2-135M-Instruct's chat template as transformers renders it for one user message
# (the template adds its default system message when the first message is not a system one).
SMOLLM2_CHAT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
)
FORCED_STOP = 'root ::= "<answer>" [a-z]{1,8} "</answer> and then more text"\n'


async def test_chat_prompt_is_the_models_template_tokenized(llama_stack: LlamaStack) -> None:
    async with policy_engine(llama_stack) as engine:
        ids = await engine.chat_prompt_ids("What is 2+2?")
        expected = await engine.tokenize(SMOLLM2_CHAT)
        im_start = await engine.tokenize("<|im_start|>")
    assert ids == expected
    assert len(im_start) == 1  # special-token text is parsed into the special token
    assert ids[0] == im_start[0]  # no BOS added in front of the template's own tokens
    assert ids.count(im_start[0]) == 3


async def test_tokenize_detokenize_round_trip(llama_stack: LlamaStack) -> None:
    text = "<think> Who wrote it? </think>\n<search> Gemma-3-270M: the author </search>"
    async with policy_engine(llama_stack) as engine:
        ids = await engine.tokenize(text)
        assert await engine.detokenize(ids) == text
        assert await engine.tokenize("") == []


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_string_ends_the_turn_and_is_kept(llama_stack: LlamaStack, stream: bool) -> None:
    params = GenerationParams(max_tokens=40, temperature=1.0, seed=7, grammar=FORCED_STOP)
    async with policy_engine(llama_stack) as engine:
        prompt = await engine.chat_prompt_ids("Say a word.")
        if stream:
            chunks = [c async for c in engine.stream_generate(prompt, params)]
            text = "".join(c.text for c in chunks)
            final = chunks[-1]
            finish, completion = final.finish_reason, final.completion_tokens
            assert final.prompt_tokens == len(prompt)
        else:
            generation = await engine.generate(prompt, params)
            text, finish = generation.text, generation.finish_reason
            completion = generation.completion_tokens
            assert generation.prompt_tokens == len(prompt)
    assert text.startswith("<answer>")
    assert text.endswith("</answer>")  # cut right after the stop string, which is kept
    assert "more" not in text
    assert finish == "stop"
    assert completion is not None
    assert completion >= 3


async def test_end_of_sequence_is_not_mistaken_for_a_stop_string(
    llama_stack: LlamaStack,
) -> None:
    # the grammar ends after "hello": the only token left is end-of-generation
    params = GenerationParams(max_tokens=20, temperature=1.0, seed=1, grammar='root ::= "hello"')
    async with policy_engine(llama_stack) as engine:
        prompt = await engine.chat_prompt_ids("Greet me.")
        generation = await engine.generate(prompt, params)
    assert generation.text == "hello"
    assert generation.finish_reason == "stop"


async def test_length_limit(llama_stack: LlamaStack) -> None:
    grammar = 'root ::= "<think>" [a-z ]{50,60} "</think>"'
    params = GenerationParams(max_tokens=3, temperature=1.0, seed=1, grammar=grammar)
    async with policy_engine(llama_stack) as engine:
        generation = await engine.generate(await engine.chat_prompt_ids("Think."), params)
    assert generation.finish_reason == "length"
    assert generation.completion_tokens == 3


async def test_greedy_stream_equals_greedy_completion(llama_stack: LlamaStack) -> None:
    # Reusing a cached prefix changes the float arithmetic (and so greedy choices) a little:
    # a first request warms the cache so that the two compared ones start alike.
    params = GenerationParams(max_tokens=24, temperature=0.0, seed=3)
    async with policy_engine(llama_stack) as engine:
        prompt = await engine.chat_prompt_ids("Name three colours.")
        await engine.generate(prompt, params)
        streamed = "".join([c.text async for c in engine.stream_generate(prompt, params)])
        whole = await engine.generate(prompt, params)
    assert whole.text
    assert streamed == whole.text


async def test_repeated_prompt_reuses_the_kv_state(llama_stack: LlamaStack) -> None:
    async with policy_engine(llama_stack) as engine:
        prompt = await engine.chat_prompt_ids("What colour is the sky?")
        params = GenerationParams(max_tokens=4, temperature=0.0)
        body = engine._completion_payload(prompt, params, stream=False)
        url = llama_stack.specs["policy"].base_url + "/completions"
        async with httpx.AsyncClient(timeout=120) as client:
            first = (await client.post(url, json=body)).json()
            extended = prompt + [int(t) for t in await engine.tokenize(" More")]
            second_body = engine._completion_payload(extended, params, stream=False)
            second = (await client.post(url, json=second_body)).json()
    assert first["usage"]["prompt_tokens"] == len(prompt)
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= len(prompt) - 1  # only the appended tokens were evaluated
    assert second["timings"]["prompt_n"] == len(extended) - cached


async def test_action_grammar_gives_a_valid_action(llama_stack: LlamaStack) -> None:
    names = [m.name for m in llama_stack.registry.pool(llama_stack.profile)]
    grammar = action_grammar(names)
    async with policy_engine(llama_stack) as engine:
        prompt = await engine.chat_prompt_ids("Who wrote Hamlet? Ask a model or answer.")
        for seed in range(3):
            params = GenerationParams(max_tokens=300, temperature=1.0, seed=seed, grammar=grammar)
            text = (await engine.generate(prompt, params)).text
            action = parse_action(text)
            assert action.kind in (ActionKind.SEARCH, ActionKind.ANSWER), text
            if action.kind is ActionKind.SEARCH:
                assert action.model_name in names, text


async def test_a_stock_style_request_error_is_an_engine_error(llama_stack: LlamaStack) -> None:
    async with policy_engine(llama_stack) as engine:
        with pytest.raises(EngineError):
            await engine.generate([1, 2, 3], GenerationParams(max_tokens=4, grammar="root ::= ("))
    assert isinstance(engine, LlamaCppEngine)
