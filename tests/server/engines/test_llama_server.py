"""LlamaServerEngine against a fake of llama-server's native API (tests/fakes/llama_server.py)
and, for transport faults, mock transports; the real binary is in tests/integration/."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from router_model.episode.engine import EngineError, EngineUnavailable, GenerationParams
from server.engines.llama_server import NEUTRAL_SAMPLING, LlamaServerEngine
from tests.fakes.llama_server import BASE_URL, FakeLlamaServer, LlamaTurn
from tests.fakes.toy_tokenizer import EOS_ID

PARAMS = GenerationParams(max_tokens=64, temperature=0.7, top_p=0.9, seed=5, grammar="root ::= x")


def _engine(fake: FakeLlamaServer, base_url: str = BASE_URL + "/v1") -> LlamaServerEngine:
    return LlamaServerEngine(fake.client(), base_url=base_url, model="policy")


def _mock_engine(
    handler: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]],
) -> LlamaServerEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return LlamaServerEngine(client, base_url=BASE_URL, model="policy")


async def _stream_text(engine: LlamaServerEngine, ids: list[int], params: GenerationParams) -> Any:
    chunks = [chunk async for chunk in engine.stream_generate(ids, params)]
    return "".join(c.text for c in chunks), chunks


@pytest.mark.parametrize("add_bos", [False, True])
@pytest.mark.parametrize("writes_bos", [False, True])
async def test_chat_prompt_ids_are_the_hf_rendering_tokenized(
    add_bos: bool, writes_bos: bool
) -> None:
    """The BOS the template writes is there exactly once, whether or not the model adds
    BOS itself (llama.cpp then cuts it off the rendering); none is added otherwise."""
    fake = FakeLlamaServer(add_bos=add_bos, template_writes_bos=writes_bos)
    ids = await _engine(fake).chat_prompt_ids("Who wrote it?")
    assert ids == fake.tokenizer.encode(fake.rendered_template("Who wrote it?"))
    assert ids.count(EOS_ID) == int(writes_bos)
    assert (ids[0] == EOS_ID) is writes_bos


async def test_chat_setup_is_learnt_once_and_requests_are_the_documented_ones() -> None:
    fake = FakeLlamaServer(add_bos=True, template_writes_bos=True)
    engine = _engine(fake)
    await engine.chat_prompt_ids("a")
    await engine.chat_prompt_ids("b")
    assert fake.requests == [
        *("/props", "/tokenize", "/tokenize"),
        *("/apply-template", "/tokenize") * 2,
    ]


async def test_tokenize_detokenize_payloads() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        if request.url.path == "/detokenize":
            return httpx.Response(200, json={"content": "hi"})
        return httpx.Response(200, json={"tokens": [7, 8]})

    engine = _mock_engine(handler)
    assert await engine.tokenize("<|im_end|> x") == [7, 8]
    assert await engine.detokenize([7, 8]) == "hi"
    assert await engine.tokenize("") == []
    assert await engine.detokenize([]) == ""
    assert seen == [
        ("/tokenize", {"content": "<|im_end|> x", "add_special": False, "parse_special": True}),
        ("/detokenize", {"tokens": [7, 8]}),
    ]


async def test_completion_payload_is_token_ids_with_temperature_and_top_p_only() -> None:
    fake = FakeLlamaServer(["<answer> x </answer>"])
    await _engine(fake).generate([1, 2, 3], PARAMS)
    (body,) = fake.completions
    assert body["prompt"] == [1, 2, 3]
    assert body["samplers"] == ["temperature", "top_p"]
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 5)
    assert body["n_predict"] == 64
    assert body["grammar"] == "root ::= x"
    assert body["stop"] == ["</search>", "</answer>"]
    assert body["cache_prompt"] is True
    assert body["stream"] is False
    for name, neutral in NEUTRAL_SAMPLING.items():
        assert body[name] == neutral
    for name in ("max_tokens", "include_stop_str_in_output", "model"):
        assert name not in body  # OpenAI fields the native endpoint does not need


async def test_no_seed_and_no_grammar_fields_when_unset() -> None:
    fake = FakeLlamaServer(["<answer> x </answer>"])
    await _engine(fake).generate([1], GenerationParams(max_tokens=8))
    (body,) = fake.completions
    assert "seed" not in body
    assert "grammar" not in body


async def test_turn_text_ends_with_the_stop_string_that_stopped_it() -> None:
    fake = FakeLlamaServer(["<think>t</think>\n<search> GPT-4o: q </search> tail"] * 2)
    engine = _engine(fake)
    generation = await engine.generate([1], PARAMS)
    assert generation.text == "<think>t</think>\n<search> GPT-4o: q </search>"
    assert generation.finish_reason == "stop"
    text, chunks = await _stream_text(engine, [1], PARAMS)
    assert text == generation.text
    assert chunks[-1].finish_reason == "stop"


async def test_stop_string_left_out_when_the_params_say_so() -> None:
    fake = FakeLlamaServer(["<answer> x </answer>"])
    params = GenerationParams(max_tokens=64, include_stop_str_in_output=False)
    assert (await _engine(fake).generate([1], params)).text == "<answer> x "


async def test_eos_ends_the_turn_without_text_and_limit_is_length() -> None:
    fake = FakeLlamaServer(["plain words", "a b c d e f g h"])
    engine = _engine(fake)
    ended = await engine.generate([1], PARAMS)
    assert (ended.text, ended.finish_reason, ended.completion_tokens) == ("plain words", "stop", 3)
    cut = await engine.generate([1], GenerationParams(max_tokens=3))
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("a b c", "length", 3)


async def test_usage_and_cached_prompt_tokens_of_a_turn_that_extends_the_last() -> None:
    fake = FakeLlamaServer(["<answer> a </answer>"] * 3)
    engine = _engine(fake)
    first_prompt = [1, 2, 3, 4]
    first = await engine.generate(first_prompt, PARAMS)
    assert (first.prompt_tokens, first.cached_tokens) == (4, 0)
    second = await engine.generate([*first_prompt, 9, 9], PARAMS)
    assert (second.prompt_tokens, second.cached_tokens) == (6, 4)
    _, chunks = await _stream_text(engine, [*first_prompt, 9, 9, 8], PARAMS)
    final = chunks[-1]
    assert (final.prompt_tokens, final.cached_tokens) == (7, 6)
    assert final.completion_tokens == len(fake.tokenizer.encode("<answer> a </answer>"))


async def test_stream_deltas_then_one_final_chunk() -> None:
    fake = FakeLlamaServer(["<answer> one two </answer>"])
    text, chunks = await _stream_text(_engine(fake), [1], PARAMS)
    assert text == "<answer> one two </answer>"
    assert [c.is_final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c.text for c in chunks[:-1])
    assert fake.completions[0]["stream"] is True


async def test_stream_that_ends_without_its_final_event_is_unavailable() -> None:
    fake = FakeLlamaServer([LlamaTurn("<answer> x </answer>", drop_final=True)])
    with pytest.raises(EngineUnavailable, match="ended before its end"):
        await _stream_text(_engine(fake), [1], PARAMS)


@pytest.mark.parametrize(("code", "unavailable"), [(500, True), (400, False)])
async def test_stream_error_event(code: int, unavailable: bool) -> None:
    fake = FakeLlamaServer([LlamaTurn("<answer> x </answer>", stream_error=code)])
    with pytest.raises(EngineError, match="scripted stream error") as caught:
        await _stream_text(_engine(fake), [1], PARAMS)
    assert isinstance(caught.value, EngineUnavailable) is unavailable
    assert caught.value.status_code == code


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "unavailable"), [(503, True), (500, True), (400, False)])
async def test_http_errors(stream: bool, status: int, unavailable: bool) -> None:
    fake = FakeLlamaServer([LlamaTurn(status=status)])
    engine = _engine(fake)
    call = _stream_text(engine, [1], PARAMS) if stream else engine.generate([1], PARAMS)
    with pytest.raises(EngineError, match=f"HTTP {status}: scripted failure") as caught:
        await call
    assert isinstance(caught.value, EngineUnavailable) is unavailable
    assert caught.value.status_code == status


@pytest.mark.parametrize(
    ("exc", "timed_out"),
    [(httpx.ConnectError("refused"), False), (httpx.ReadTimeout("slow"), True)],
)
async def test_transport_errors_are_unavailable(exc: Exception, timed_out: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    engine = _mock_engine(handler)
    for call in (engine.generate([1], PARAMS), _stream_text(engine, [1], PARAMS)):
        with pytest.raises(EngineUnavailable) as caught:
            await call
        assert caught.value.timed_out is timed_out


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.Response(200, text="not json"), "not JSON"),
        (httpx.Response(200, json=[1]), "not a JSON object"),
        (httpx.Response(200, json={"stop_type": "eos"}), "no content"),
        (httpx.Response(200, json={"content": "x", "stop_type": "none"}), "did not finish"),
        (httpx.Response(200, json={"content": "x", "stop_type": "word"}), "names none"),
    ],
)
async def test_malformed_completion_replies(reply: httpx.Response, error: str) -> None:
    engine = _mock_engine(lambda request: reply)
    with pytest.raises(EngineError, match=error):
        await engine.generate([1], PARAMS)


async def test_malformed_stream_event_is_an_error() -> None:
    engine = _mock_engine(lambda request: httpx.Response(200, text="data: {oops\n\n"))
    with pytest.raises(EngineError, match="malformed event"):
        await _stream_text(engine, [1], PARAMS)


async def test_template_less_model_is_refused() -> None:
    engine = _mock_engine(lambda request: httpx.Response(200, json={"chat_template": ""}))
    with pytest.raises(EngineError, match="no chat template"):
        await engine.chat_prompt_ids("q")


async def test_ready_follows_health() -> None:
    fake = FakeLlamaServer()
    engine = _engine(fake)
    assert await engine.ready() is True
    fake.healthy = False
    assert await engine.ready() is False

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    assert await _mock_engine(refuse).ready() is False


async def test_requests_are_not_queued_in_the_client() -> None:
    """Two generations are in flight at once: llama-server's slots do the queueing."""
    in_flight, both = 0, asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        in_flight += 1
        if in_flight == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=10)  # bounded: a queue would time out
        return httpx.Response(200, json={"content": "x", "stop_type": "eos"})

    engine = _mock_engine(handler)
    results = await asyncio.gather(engine.generate([1], PARAMS), engine.generate([2], PARAMS))
    assert [r.text for r in results] == ["x", "x"]


async def test_base_url_with_or_without_v1_reaches_the_root() -> None:
    for base in (BASE_URL, BASE_URL + "/v1", BASE_URL + "/v1/"):
        fake = FakeLlamaServer(["<answer> x </answer>"])
        assert (await _engine(fake, base).generate([1], PARAMS)).text == "<answer> x </answer>"
