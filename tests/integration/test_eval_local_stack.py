"""``router-r1 eval`` end to end against the real local stack: the shipped 20 questions
through the gateway to llama-server (the SmolLM2 plumbing policy, grammar on; Qwen2.5 and
SmolLM2 upstreams)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from local_stack.stack import PLUMBING_PROFILE
from router_model.eval import SMOKE_FILE, load_questions, read_results, run_eval, write_report
from router_model.eval.report import summarize
from tests.integration.conftest import GENERATE_PATH, LlamaStack, live_gateway, with_limits

pytestmark = pytest.mark.slow


async def test_eval_runs_the_shipped_questions_through_the_local_stack(
    llama_stack: LlamaStack, tmp_path: Path
) -> None:
    items = load_questions(SMOKE_FILE)
    assert len(items) == 20
    # short episodes keep CI time bounded: one route, short turns and replies
    registry = with_limits(llama_stack, max_routes=1, max_turn_tokens=64, upstream_max_tokens=32)
    run_dir = tmp_path / PLUMBING_PROFILE
    async with live_gateway(registry) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            written = await run_eval(
                items, run_dir, PLUMBING_PROFILE, client=client, concurrency=2, progress=False
            )
        policy_calls = len(gw.engine_calls.to(GENERATE_PATH))
    assert len(written) == 20
    assert all(record["error"] is None for record in written), [r["error"] for r in written]
    assert policy_calls >= 20  # every question reached the real policy engine

    summary = summarize(read_results(run_dir))["smoke20"]
    assert (summary.questions, summary.errors) == (20, 0)
    assert 0.0 <= summary.em <= 1.0
    assert 0.0 <= summary.routes_mean <= 1.0
    assert summary.format_failure_rate is not None
    assert 0 < summary.latency_p50_s <= summary.latency_p95_s
    if summary.routes_mean > 0:
        assert summary.cost_usd_total > 0

    paths = write_report([run_dir], tmp_path / "report")
    assert f"| {PLUMBING_PROFILE} |" in paths["markdown"].read_text()
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "smoke20" in json.loads(paths["json"].read_text())[PLUMBING_PROFILE]
