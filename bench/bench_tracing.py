"""CPU per episode and per passthrough request of the real gateway process with OpenTelemetry
tracing off and on (issue 13), on ``bench_proxy.py``'s setup: the same fakes, registry,
closed-loop load and per-process CPU (utime+stime of the proxy's pid over the window).

"on" exports every request's spans over OTLP http/protobuf to a local sink (a stub collector
in its own process that answers every export at once: only the gateway's side is counted,
the batch processor's export thread included). "off" is the same gateway with no ``OTEL_*``
variable. ``--baseline SRC`` adds "before": the proxy run from another source tree (e.g. the
commit before tracing was wired, ``git archive <commit> server router_model router_r1 | tar
-x -C SRC``) through ``PYTHONPATH``, to show that "off" is within noise of it. Variants are
interleaved, ``--rounds`` times each, and the median is reported with min-max.

    .venv/bin/python bench/bench_tracing.py [--rounds 2] [--duration 8] [--baseline SRC]

Targets: off within noise of before; on at most +15 % over off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_proxy  # noqa: E402
from bench_telemetry import COLLECTOR  # noqa: E402

SCENARIOS = ("passthrough", "episode")
OTEL = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_BSP_MAX_QUEUE_SIZE",
)
TARGET_ON = 0.15


def proxy_args(args: argparse.Namespace, proxy_command: str | None) -> argparse.Namespace:
    return bench_proxy.parse_args(
        [
            "--duration",
            str(args.duration),
            "--warmup",
            str(args.warmup),
            "--concurrency",
            str(args.concurrency),
            "--only",
            *SCENARIOS,
            *(["--proxy-command", proxy_command] if proxy_command else []),
        ]
    )


async def one_run(
    variant: str, args: argparse.Namespace, sink_port: int, workdir: Path
) -> dict[str, float]:
    """CPU ms per request of each scenario for one variant (a fresh proxy)."""
    command = None
    saved = {name: os.environ.pop(name, None) for name in (*OTEL, "PYTHONPATH")}
    try:
        if variant == "on":
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
            os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
            os.environ["OTEL_SERVICE_NAME"] = "router-r1-bench"
            os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = "200000"  # no span dropped: all are paid for
        if variant == "before":
            os.environ["PYTHONPATH"] = str(args.baseline)
            command = f"{sys.executable} -c 'from router_r1.cli import main; main()' serve"
        children = bench_proxy.Children()
        try:
            setup, _ = await bench_proxy.start_all(children, workdir, proxy_args(args, command))
            results = await bench_proxy.run_scenarios(setup, proxy_args(args, command))
        finally:
            children.stop_all()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    out = {}
    for name in SCENARIOS:
        result = results[name]
        if result.errors or result.cpu_ms_per_request is None:
            raise SystemExit(f"{variant} {name}: {result.errors} errors")
        out[name] = result.cpu_ms_per_request
    return out


async def main_async(args: argparse.Namespace) -> int:
    bench_proxy.litellm_interpreter = lambda given: None  # LiteLLM is not compared here
    variants = ["off", "on"] + (["before"] if args.baseline else [])
    figures: dict[str, dict[str, list[float]]] = {v: {s: [] for s in SCENARIOS} for v in variants}
    sink = bench_proxy.Children()
    sink_port = bench_proxy.free_port()
    sink.start([sys.executable, "-c", COLLECTOR, str(sink_port)], core=None)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tracing-") as workdir:
            for round_no in range(args.rounds):
                for variant in variants if round_no % 2 == 0 else reversed(variants):
                    print(f"round {round_no + 1}: tracing {variant}", flush=True)
                    run = await one_run(variant, args, sink_port, Path(workdir))
                    for name, cpu in run.items():
                        figures[variant][name].append(cpu)
    finally:
        sink.stop_all()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nproxy CPU ms per request (median, min-max of {args.rounds}); load average {load}")
    print(f"{'scenario':<12} " + " ".join(f"{v:>20}" for v in variants) + f" {'on/off':>8}")
    ok = True
    for name in SCENARIOS:
        cells = []
        for variant in variants:
            values = figures[variant][name]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        on, off = (statistics.median(figures[v][name]) for v in ("on", "off"))
        print(f"{name:<12} " + " ".join(f"{c:>20}" for c in cells) + f" {on / off:>7.2f}x")
        ok = ok and on / off <= 1 + TARGET_ON
        if args.baseline:
            before = statistics.median(figures["before"][name])
            print(f"{'':<12} off/before {off / before:.2f}x (noise: the spread of each column)")
    print(f"{'PASS' if ok else 'FAIL'}  tracing on adds at most {TARGET_ON:.0%} CPU per request")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline", type=Path, help="a source tree to run as 'before'")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
