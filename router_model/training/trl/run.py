"""``python -m router_model.training.trl.run CONFIG.json --output-dir DIR --upstreams M:F``
(TRL venv).

Trains against the upstreams built by the factory named by ``--upstreams`` (the entry point's
real pool); the policy is sampled in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from router_model.episode.route import RouteCaller
from router_model.eval.questions import load_questions
from router_model.training.config import TrainConfig
from router_model.training.trl.trainer import build_grpo_trainer
from router_model.training.upstreams import resolve_upstreams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument(
        "--upstreams", required=True, help="module:factory building the upstream RouteCaller"
    )
    args = parser.parse_args(argv)
    config = TrainConfig.model_validate(json.loads(Path(args.config).read_text(encoding="utf-8")))
    if config.model is None or config.train_file is None:
        print("error: a TRL config needs `model` and `train_file`", file=sys.stderr)
        return 2
    registry, profile = config.router.load()
    items = load_questions(config.train_file)[: config.max_train_rows]
    rows = [{"question": i.question, "golden_answers": list(i.golds)} for i in items]
    timeout = config.router.upstream_total_timeout_s
    factory = resolve_upstreams(args.upstreams)

    def upstreams() -> AbstractAsyncContextManager[RouteCaller]:
        return factory(registry, timeout)

    trainer, _ = build_grpo_trainer(
        model_dir=Path(config.model).expanduser(),
        rows=rows,
        registry=registry,
        profile=profile,
        route_callers=upstreams,
        output_dir=args.output_dir,
        grpo=config.grpo,
        metric=config.router.metric,
        cost_coefficient=config.router.cost_coefficient,
        cost_window_url=config.router.cost_window_url,
    )
    trainer.train()
    trainer.save_model(str(Path(args.output_dir) / "final"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
