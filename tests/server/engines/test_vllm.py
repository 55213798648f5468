"""VLLMEngine against the in-process fake vLLM server (and a few mock transports)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server.engines import (
    EngineError,
    EngineUnavailable,
    GenerationParams,
    VLLMEngine,
    build_policy_engine,
)
from server.engines.vllm import server_root
from tests.fakes.registry import default_registry, router_profile
from tests.fakes.vllm_server import DEFAULT_BASE_URL, FakeVLLM, ScriptedTurn

TURN = "<think> who? </think>\n<search> Qwen2.5-7B-Instruct: who wrote it? </search> trailing"


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM([TURN])


@pytest.fixture
async def engine(fake: FakeVLLM) -> AsyncIterator[VLLMEngine]:
    async with fake.client() as client:
        yield VLLMEngine(client, base_url=fake.base_url, model=fake.model)


def _mock_engine(handler: Callable[[httpx.Request], httpx.Response]) -> VLLMEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return VLLMEngine(client, base_url=DEFAULT_BASE_URL, model="m")


def test_server_root_strips_v1() -> None:
    assert server_root("http://h:8000/v1") == "http://h:8000"
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:8000") == "http://h:8000"


async def test_chat_prompt_ids_use_the_engine_chat_template(
    fake: FakeVLLM, engine: VLLMEngine
) -> None:
    ids = await engine.chat_prompt_ids("What is 2+2?")
    assert ids == fake.chat_ids("What is 2+2?")
    assert fake.tokenize_requests[-1] == {
        "model": fake.model,
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "add_generation_prompt": True,
    }
    text = fake.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are Qwen")
    assert text.endswith("What is 2+2?<|im_end|>\n<|im_start|>assistant\n")


async def test_tokenize_adds_no_special_tokens(fake: FakeVLLM, engine: VLLMEngine) -> None:
    ids = await engine.tokenize("\n\n<information>Paris</information>\n\n")
    assert ids == fake.tokenizer.encode("\n\n<information>Paris</information>\n\n")
    assert fake.tokenize_requests[-1]["add_special_tokens"] is False
    assert await engine.tokenize("") == []
    assert await engine.detokenize(ids) == "\n\n<information>Paris</information>\n\n"


async def test_generate_sends_token_ids_and_stops_at_search(
    fake: FakeVLLM, engine: VLLMEngine
) -> None:
    prompt = fake.chat_ids("q")
    params = GenerationParams(max_tokens=100, temperature=0.7, top_p=0.9, seed=7)
    generation = await engine.generate(prompt, params)
    assert generation.text == TURN[: TURN.index("</search>") + len("</search>")]
    assert generation.finish_reason == "stop"
    assert generation.prompt_tokens == len(prompt)
    assert generation.completion_tokens == len(fake.tokenizer.encode(generation.text))
    record = fake.completions[-1]
    assert record.prompt_ids == prompt
    body = record.body
    assert body["stop"] == ["</search>", "</answer>"]
    assert body["include_stop_str_in_output"] is True
    assert body["skip_special_tokens"] is True
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (
        100,
        0.7,
        0.9,
        7,
    )
    assert body["stream"] is False
    assert "structured_outputs" not in body


async def test_generate_length_and_eos(fake: FakeVLLM, engine: VLLMEngine) -> None:
    fake.set_script(["one two three four", "short"])
    cut = await engine.generate([1, 2], GenerationParams(max_tokens=3))
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("one two three", "length", 3)
    eos = await engine.generate([1, 2], GenerationParams(max_tokens=10))
    # the EOS token counts as a completion token but never reaches the text
    assert (eos.text, eos.finish_reason, eos.completion_tokens) == ("short", "stop", 2)


async def test_stream_generate_matches_generate(fake: FakeVLLM, engine: VLLMEngine) -> None:
    fake.set_script([TURN, TURN])
    params = GenerationParams(max_tokens=100, grammar="root ::= x")
    prompt = fake.tokenizer.encode("a b c")
    whole = await engine.generate(prompt, params)
    chunks = [c async for c in engine.stream_generate(prompt, params)]
    assert len(chunks) > 2
    assert all(not c.is_final for c in chunks[:-1])
    final = chunks[-1]
    assert final.is_final
    assert "".join(c.text for c in chunks) == whole.text
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == (
        "stop",
        3,
        whole.completion_tokens,
    )
    body = fake.completions[-1].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["structured_outputs"] == {"grammar": "root ::= x"}


async def test_unknown_token_ids_are_a_client_error(engine: VLLMEngine) -> None:
    with pytest.raises(EngineError, match="out of vocabulary") as info:
        await engine.generate([99999], GenerationParams(max_tokens=1))
    assert info.value.status_code == 400


def test_extra_stop_strings_are_merged() -> None:
    params = GenerationParams(max_tokens=1, stop=("\n\nUser:", "</answer>", ""))
    assert params.stop == ("</search>", "</answer>", "\n\nUser:")


async def test_connect_error_is_engine_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    engine = _mock_engine(refuse)
    with pytest.raises(EngineUnavailable) as info:
        await engine.tokenize("x")
    assert not info.value.timed_out
    with pytest.raises(EngineUnavailable):
        async for _ in engine.stream_generate([1], GenerationParams(max_tokens=1)):
            pass
    assert await engine.ready() is False


async def test_timeout_is_engine_unavailable_timed_out() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(EngineUnavailable) as info:
        await _mock_engine(slow).generate([1], GenerationParams(max_tokens=1))
    assert info.value.timed_out


async def test_server_errors_are_unavailable_client_errors_are_not(
    fake: FakeVLLM, engine: VLLMEngine
) -> None:
    fake.set_script([ScriptedTurn(status=503), ScriptedTurn(status=500)])
    with pytest.raises(EngineUnavailable) as info:
        await engine.generate([1], GenerationParams(max_tokens=1))
    assert info.value.status_code == 503
    with pytest.raises(EngineUnavailable):
        async for _ in engine.stream_generate([1], GenerationParams(max_tokens=1)):
            pass
    wrong_model = VLLMEngine(engine._client, base_url=fake.base_url, model="nope")
    with pytest.raises(EngineError) as error:
        await wrong_model.tokenize("x")
    assert not isinstance(error.value, EngineUnavailable)
    assert error.value.status_code == 404
    assert "does not exist" in str(error.value)


async def test_stream_cut_before_its_end_is_unavailable() -> None:
    event = {"choices": [{"index": 0, "text": "<think>", "finish_reason": None}]}

    def truncated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=f"data: {json.dumps(event)}\n\n".encode())

    with pytest.raises(EngineUnavailable, match="before its end"):
        async for _ in _mock_engine(truncated).stream_generate([1], GenerationParams(max_tokens=5)):
            pass


async def test_ready(fake: FakeVLLM, engine: VLLMEngine) -> None:
    assert await engine.ready() is True
    fake.healthy = False
    assert await engine.ready() is False


async def test_factory_builds_vllm_with_api_key() -> None:
    registry = default_registry()
    profile = router_profile(registry)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tokens": [1, 2]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        engine = build_policy_engine(
            registry, profile, client, environ={"ROUTER_R1_POLICY_API_KEY": "secret"}
        )
        assert isinstance(engine, VLLMEngine)
        assert await engine.tokenize("hi") == [1, 2]
    assert str(seen[0].url) == "http://127.0.0.1:8000/tokenize"
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert json.loads(seen[0].content)["model"] == profile.policy.model
