"""The soak benchmark's clients: one routed episode each, checked, or left midway on purpose."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import orjson

PROFILE = "router-r1-soak"
KEY = "rr1-soak-benchmark-key"
REQUEST_TIMEOUT_S = 300.0


@dataclass
class Plan:
    stream: bool
    leave_after_s: float | None  # None: stays to the end
    start_after_s: float = 0.0  # the arrivals are spread over ``--ramp-s``
    sent: bool = False  # the request's body was written to the connection


@dataclass
class Outcome:
    plan: Plan
    latency_s: float
    left: bool = False
    error: str | None = None


def body(stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": PROFILE,
            "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
            "stream": stream,
        }
    )


def check_plain(raw: bytes) -> str | None:
    payload = orjson.loads(raw)
    router = payload.get("router") or {}
    if router.get("outcome") != "answer" or router.get("totals", {}).get("routes") != 2:
        return f"outcome {router.get('outcome')}, routes {router.get('totals', {}).get('routes')}"
    if "Canberra" not in payload["choices"][0]["message"]["content"]:
        return "wrong answer"
    return None


def check_stream(raw: bytes) -> str | None:
    events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
    if not events or events[-1] != b"[DONE]":
        return "no [DONE]"
    content, outcome = "", None
    for data in events[:-1]:
        chunk = orjson.loads(data)
        if "error" in chunk:
            return f"error event: {chunk['error'].get('message')}"
        for choice in chunk.get("choices") or ():
            content += choice.get("delta", {}).get("content") or ""
        if isinstance(chunk.get("router"), dict) and "outcome" in chunk["router"]:
            outcome = chunk["router"]["outcome"]
    if outcome != "answer" or "Canberra" not in content:
        return f"outcome {outcome}, content {content[:40]!r}"
    return None


async def play(session: aiohttp.ClientSession, url: str, plan: Plan) -> Outcome:
    await asyncio.sleep(plan.start_after_s)
    started = time.perf_counter()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    try:
        async with (
            asyncio.timeout(plan.leave_after_s or REQUEST_TIMEOUT_S),
            session.post(
                url, data=body(plan.stream), headers=headers, trace_request_ctx=plan
            ) as response,
        ):
            raw = await response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            return Outcome(plan, elapsed, error=f"HTTP {response.status}: {raw[:200]!r}")
        error = check_stream(raw) if plan.stream else check_plain(raw)
        return Outcome(plan, elapsed, error=error)
    except TimeoutError:
        elapsed = time.perf_counter() - started
        if plan.leave_after_s is not None:
            return Outcome(plan, elapsed, left=True)  # the deliberate disconnect
        return Outcome(plan, elapsed, error="client timeout")
    except aiohttp.ClientError as exc:
        return Outcome(plan, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
