"""LlamaServerEngine against the real ``llama-server`` binary, with SmolLM2-135M-Instruct and
with Qwen2.5-Coder-1.5B-Instruct (each started once, two slots, a small context).

Needs ``scripts/setup_llama_server.sh`` (the binary) and ``scripts/setup_qwen25.sh`` (the
Qwen GGUF). Outputs are sampled, so only what holds for every sampled text is asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local_stack.chat_template import render_chat_template
from local_stack.llama_server_process import LlamaServerOptions, managed_llama_server
from local_stack.models import smollm2_gguf
from local_stack.processes import free_port
from local_stack.qwen25_model import QWEN25_SIZE, qwen25_gguf
from router_model.episode.engine import GenerationParams
from router_model.protocol.grammar import action_grammar
from router_model.protocol.turn import ActionKind, parse_action
from server.engines.llama_server import LlamaServerEngine

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 180.0
ROUTE_NAME = "Qwen2.5-7B-Instruct"
# Short blocks, so a constrained turn is short; every token adds at least one byte and a
# character is at most 4 bytes, so MAX_TOKENS always leaves room to close the grammar.
GRAMMAR = action_grammar(
    [ROUTE_NAME], max_thought_chars=24, max_query_chars=16, max_answer_chars=16
)
MAX_TOKENS = 4 * 120
QUESTION = "Who wrote the novel War and Peace?"


@dataclass(frozen=True)
class Served:
    name: str
    options: LlamaServerOptions
    default_system: str  # text the model's template puts first for one user message


def _model(name: str) -> tuple[Path, str]:
    if name == "smollm2":
        return smollm2_gguf(), "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"
    return qwen25_gguf(), "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud."


@pytest.fixture(scope="module", params=["smollm2", "qwen"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    name = str(request.param)
    model_path, system = _model(name)
    options = LlamaServerOptions(name, model_path, free_port(), alias=name, ctx_per_slot=2048)
    process = managed_llama_server(options, tmp_path_factory.mktemp(f"llama-server-{name}"))
    process.start()
    try:
        process.wait_ready(READY_TIMEOUT_S)
        yield Served(name, options, system)
    finally:
        process.stop()


@asynccontextmanager
async def _engine(served: Served) -> AsyncIterator[LlamaServerEngine]:
    async with httpx.AsyncClient(timeout=300) as client:
        yield LlamaServerEngine(client, base_url=served.options.base_url, model=served.name)


async def _props(served: Served) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.get(served.options.root_url + "/props")
    reply.raise_for_status()
    props: dict[str, object] = reply.json()
    return props


async def test_chat_prompt_ids_are_the_template_rendered_and_tokenized(served: Served) -> None:
    props = await _props(served)
    template, bos, eos = props["chat_template"], props["bos_token"], props["eos_token"]
    assert isinstance(template, str)
    assert isinstance(bos, str)
    assert isinstance(eos, str)
    messages = [{"role": "user", "content": QUESTION}]
    # Hugging Face's rendering of the GGUF's template, tokenized with special tokens parsed
    # and none added: what apply_chat_template(tokenize=True) gives.
    hf_text = render_chat_template(
        template,
        messages,
        add_generation_prompt=True,
        special_tokens={"bos_token": bos, "eos_token": eos},
    )
    async with _engine(served) as engine:
        ids = await engine.chat_prompt_ids(QUESTION)
        assert ids == await engine.tokenize(hf_text)
        assert await engine.detokenize(ids) == hf_text
    assert hf_text.startswith(served.default_system)
    assert hf_text.endswith("<|im_start|>assistant\n")


async def test_tokenize_round_trips_a_turn(served: Served) -> None:
    text = f"<think> Tolstoy? ✓ </think>\n<search> {ROUTE_NAME}: author of War and Peace </search>"
    async with _engine(served) as engine:
        ids = await engine.tokenize(text)
        assert await engine.detokenize(ids) == text
        assert len(await engine.tokenize("<|im_end|>")) == 1  # special-token text parsed
        assert await engine.tokenize("") == []


@pytest.mark.parametrize("stream", [False, True])
async def test_grammar_turn_ends_with_one_closing_tag(served: Served, stream: bool) -> None:
    params = GenerationParams(max_tokens=MAX_TOKENS, temperature=1.0, seed=11, grammar=GRAMMAR)
    async with _engine(served) as engine:
        prompt = await engine.chat_prompt_ids(QUESTION)
        if stream:
            chunks = [c async for c in engine.stream_generate(prompt, params)]
            assert [c.is_final for c in chunks].count(True) == 1
            assert chunks[-1].is_final
            text, final = "".join(c.text for c in chunks), chunks[-1]
            finish, prompt_tokens = final.finish_reason, final.prompt_tokens
        else:
            generation = await engine.generate(prompt, params)
            text, finish = generation.text, generation.finish_reason
            prompt_tokens = generation.prompt_tokens
    assert finish == "stop"
    assert prompt_tokens == len(prompt)
    assert text.startswith("<think>")
    assert text.endswith(("</search>", "</answer>"))
    assert text.count("</search>") + text.count("</answer>") == 1
    action = parse_action(text)
    assert action.kind is ActionKind.ANSWER or action.model_name == ROUTE_NAME


async def test_next_turn_reuses_the_cached_prompt(served: Served) -> None:
    params = GenerationParams(max_tokens=MAX_TOKENS, temperature=1.0, seed=3, grammar=GRAMMAR)
    async with _engine(served) as engine:
        first_prompt = await engine.chat_prompt_ids("Name a river.")
        first = await engine.generate(first_prompt, params)
        observation = "\n\n<information> The Nile. </information>\n\n"
        second_prompt = [
            *first_prompt,
            *await engine.tokenize(first.text),
            *await engine.tokenize(observation),
        ]
        chunks = [c async for c in engine.stream_generate(second_prompt, params)]
    final = chunks[-1]
    assert first.cached_tokens is not None
    assert first.cached_tokens < len(first_prompt)
    assert final.prompt_tokens == len(second_prompt)
    assert final.cached_tokens is not None
    assert len(first_prompt) <= final.cached_tokens < len(second_prompt)


async def test_two_slots_generate_concurrently(served: Served) -> None:
    """Two streams with ``-np 2``: each has its first token before either ends, and the
    server's own counter shows decode calls that served both slots at once."""
    root = served.options.root_url
    events: list[tuple[str, str]] = []

    async def stream(client: httpx.AsyncClient, tag: str, question: str) -> None:
        async with _engine(served) as engine:
            prompt = await engine.chat_prompt_ids(question)
        payload = {"prompt": prompt, "n_predict": 24, "ignore_eos": True, "stream": True}
        async with client.stream("POST", root + "/completion", json=payload) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    events.append((tag, "end" if event.get("stop") else "token"))

    async with httpx.AsyncClient(timeout=300) as client:
        await asyncio.gather(
            stream(client, "a", "Count to ten."), stream(client, "b", "Name colours.")
        )
    # a fresh connection: llama-server may close a pooled one after a stream, and a request
    # sent on it then fails with "Server disconnected" (seen once in a loaded CI run)
    async with httpx.AsyncClient(timeout=60) as client:
        metrics = (await client.get(root + "/metrics")).text
    firsts = {tag: events.index((tag, "token")) for tag in ("a", "b")}
    ends = {tag: events.index((tag, "end")) for tag in ("a", "b")}
    assert max(firsts.values()) < min(ends.values())
    busy = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("llamacpp:n_busy_slots_per_decode")
    )
    assert busy > 1.0


async def test_props_describe_the_served_model(served: Served) -> None:
    props = await _props(served)
    assert props["total_slots"] == 2
    settings = props["default_generation_settings"]
    assert isinstance(settings, dict)
    assert settings["n_ctx"] == 2048
    assert props["endpoint_metrics"] is True
    if served.name == "qwen":
        assert served.options.model_path.stat().st_size == QWEN25_SIZE
        assert props["bos_token"] == "<|endoftext|>"
        assert props["eos_token"] == "<|im_end|>"


async def test_health_is_503_while_loading(tmp_path: Path) -> None:
    """Started and polled at once: ``/health`` answers 503 until the model is loaded (or
    the first answer is already 200 on a fast load); never anything else."""
    options = LlamaServerOptions("loading", qwen25_gguf(), free_port(), ctx_per_slot=512)
    process = managed_llama_server(options, tmp_path)
    process.start()
    statuses: list[int] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            while (not statuses or statuses[-1] != 200) and time.monotonic() < deadline:
                try:
                    statuses.append((await client.get(options.ready_url)).status_code)
                except httpx.TransportError:
                    await asyncio.sleep(0.02)  # not listening yet
    finally:
        process.stop()
    assert statuses[-1] == 200
    assert set(statuses) <= {200, 503}
