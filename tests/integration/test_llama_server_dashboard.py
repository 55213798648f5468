"""The dashboard's llama.cpp row against the real stack: a real Prometheus scrapes both
llama-servers (``--metrics``) while the SmolLM2 one serves turns; then every llama.cpp
panel's PromQL returns data. What the panels show never depends on what the model wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from router_model.episode.engine import GenerationParams
from tests.deploy.dashboards import dashboard_files, expressions, is_llamacpp, load, substitute
from tests.integration.conftest import LlamaStack, policy_engine
from tests.servers.prometheus_server import PrometheusServer, finite_values

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_the_dashboards_llama_server_panels_return_data(
    llama_stack: LlamaStack, tmp_path: Path
) -> None:
    targets = [f"127.0.0.1:{spec.port}" for spec in llama_stack.specs.values()]
    prometheus = PrometheusServer(tmp_path / "prometheus", targets)

    await asyncio.to_thread(prometheus.start)
    try:
        # rates need a sample on each side of the load
        predicted = "sum(llamacpp:tokens_predicted_total)"
        twice = "count_over_time(llamacpp:tokens_predicted_total[1m]) >= 2"
        await asyncio.to_thread(prometheus.wait_for, twice)
        before = finite_values(await asyncio.to_thread(prometheus.query, predicted))[0]
        async with policy_engine(llama_stack) as engine:
            prompt = await engine.chat_prompt_ids("What is the capital city of France?")
            params = GenerationParams(max_tokens=8, temperature=0.0)
            for _ in range(3):
                await engine.generate(prompt, params)
        await asyncio.to_thread(prometheus.wait_for, f"{predicted} > {before}")
        await asyncio.sleep(2.5)  # a scrape after the load, for the rates' second sample
        empty: list[str] = []
        checked = 0
        for path in dashboard_files():
            for title, expr in expressions(load(path)):
                if not is_llamacpp(expr):
                    continue
                checked += 1
                query = substitute(expr, "1m", "1m")
                result = await asyncio.to_thread(prometheus.query, query)
                if not finite_values(result):
                    empty.append(f"{path.name}: {title}: {query} -> {result}")
        assert checked >= 4
        assert empty == []
    finally:
        await asyncio.to_thread(prometheus.stop)
