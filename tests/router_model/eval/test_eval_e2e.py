"""``router-r1 eval`` end to end: the shipped 20 questions through the gateway (in-process,
fake policy engine and fake upstreams), tables, plot, resume, and the baselines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from router_model.eval import SMOKE_FILE, load_questions, read_results, run_eval, write_report
from router_model.eval.report import summarize
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.fakes.vllm_server import FakeVLLM
from tests.server.api.conftest import running_gateway

QWEN = "Qwen2.5-7B-Instruct"
LLAMA8 = "LLaMA-3.1-8B-Instruct"
REPLY = "Here is what I know about it."


@asynccontextmanager
async def gateway_client(
    engine: FakeVLLM | None = None, upstream: FakeUpstream | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in-process (fake engine and upstreams) and a plain HTTP client to it."""
    async with running_gateway(engine=engine, upstream=upstream) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


def _policy(items: list) -> FakeVLLM:  # type: ignore[type-arg]
    """Routes once to Qwen, then answers: right for the first 15 questions, wrong after."""

    def turn(prompt: str) -> str:
        if prompt.endswith("</information>\n\n"):
            for index, item in enumerate(items):
                if item.question.rstrip("?") in prompt:
                    text = item.golds[0] if index < 15 else "no idea"
                    return f"<think>I know it now.</think>\n<answer> {text} </answer>"
            return "<answer> ? </answer>"
        return f"<think>Ask Qwen.</think>\n<search> {QWEN}:the question </search>"

    return FakeVLLM(turn)


async def test_router_profile_run_report_and_resume(tmp_path: Path) -> None:
    items = load_questions(SMOKE_FILE)
    assert len(items) == 20
    assert {i.dataset for i in items} == {"smoke20"}
    upstream = FakeUpstream({"qwen/qwen2.5-7b-instruct": UpstreamScript(reply=REPLY)})
    run_dir = tmp_path / "router-r1"
    async with gateway_client(engine=_policy(items), upstream=upstream) as client:
        written = await run_eval(
            items, run_dir, "router-r1", client=client, concurrency=4, progress=False
        )
        assert len(written) == 20
        assert all(r["error"] is None for r in written)
        # resumable: nothing left to ask
        again = await run_eval(items, run_dir, "router-r1", client=client, progress=False)
        assert again == []
        with pytest.raises(ValueError, match="holds results for target 'router-r1'"):
            await run_eval(items, run_dir, QWEN, client=client, progress=False)

    summary = summarize(read_results(run_dir))["smoke20"]
    assert (summary.questions, summary.errors) == (20, 0)
    assert summary.em == pytest.approx(0.75)
    assert summary.routes_mean == 1.0
    assert summary.raw_cost_mean == pytest.approx(len(REPLY.split()) * 0.3)
    assert summary.cost_usd_total > 0
    assert summary.format_failure_rate == 0.0
    assert summary.no_answer_rate == 0.0
    assert 0 < summary.latency_p50_s <= summary.latency_p95_s

    paths = write_report([run_dir], tmp_path / "report")
    table = paths["markdown"].read_text()
    assert "| Method | smoke20 | Avg. |" in table
    assert "| router-r1 | 0.750 | 0.750 |" in table
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["router-r1"]["smoke20"]["em"] == pytest.approx(0.75)


async def test_resume_retries_errors(tmp_path: Path) -> None:
    items = load_questions(SMOKE_FILE)[:3]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"target": QWEN}))
    first = {"dataset": "smoke20", "id": items[0].id, "error": "HTTP 503", "target": QWEN}
    (run_dir / "results.jsonl").write_text(json.dumps(first) + "\n" + '{"cut by a cra')
    upstream = FakeUpstream({"qwen/qwen2.5-7b-instruct": UpstreamScript(reply="Leo Tolstoy")})
    async with (
        running_gateway(upstream=upstream) as gw,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw.app), base_url="http://gateway.test"
        ) as client,
    ):
        written = await run_eval(items, run_dir, QWEN, client=client, progress=False)
    assert sorted(r["id"] for r in written) == sorted(i.id for i in items)
    summary = summarize(read_results(run_dir))["smoke20"]
    assert (summary.questions, summary.errors) == (3, 0)
    assert summary.em == pytest.approx(1 / 3)  # only "War and Peace" is Tolstoy
    assert summary.routes_mean == 0.0
    assert summary.format_failure_rate is None
    assert summary.raw_cost_mean == pytest.approx(2 * 0.3)


async def test_random_router_baseline(tmp_path: Path) -> None:
    items = load_questions(SMOKE_FILE)[:8]
    upstream = FakeUpstream(
        {
            "qwen/qwen2.5-7b-instruct": UpstreamScript(reply="Paris"),
            "meta/llama-3.1-8b-instruct": UpstreamScript(reply="Paris"),
        }
    )
    spec = f"random:{QWEN},{LLAMA8}"
    async with (
        running_gateway(upstream=upstream) as gw,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw.app), base_url="http://gateway.test"
        ) as client,
    ):
        written = await run_eval(items, tmp_path / "rnd", spec, client=client, progress=False)
        with pytest.raises(Exception, match="not served"):
            await run_eval(items, tmp_path / "bad", "random:GPT-9", client=client, progress=False)
    models = [r["models"][0] for r in written]
    assert set(models) == {QWEN, LLAMA8}
    assert all(r["routes"] == 1 for r in written)
    assert sum(r["em"] for r in written) == 1  # the capital of France
