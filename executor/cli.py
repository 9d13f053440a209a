"""`rlvr-sim execute SCENARIO`: run the real GRPO loop of a scenario's `executor:` section.

Prints a short summary (or the ExecuteResult as JSON with --json); writes the trace
(rlvr_sim.trace schema), metrics.jsonl, evals.json, result.json, checkpoints and the resolved
scenario under --out (default: executor.out_dir).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

import yaml


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario YAML with an `executor:` section")
    p.add_argument("--steps", type=int, default=None, help="RL steps (default: workload.steps)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--trace", default=None, help="trace path (.parquet or .csv; default OUT/trace.parquet)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("--out", default=None, help="output directory (default: executor.out_dir)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set executor.lr=1e-3 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rlvr_sim.errors import UserError
    from rlvr_sim.scenario import load_scenario

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps={args.steps}: give at least 1")
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    from executor.config import RunConfig
    from executor.loop import run_grpo

    cfg = RunConfig.from_scenario(scenario, steps=args.steps, out_dir=args.out, trace_path=args.trace)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "scenario.resolved.yaml").write_text(
        yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False))
    try:
        result = run_grpo(cfg, resume=args.resume, progress=not args.no_progress and not args.json)
    except ValueError as exc:   # bad settings found while building (device, model path, ...)
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    out = sys.stdout
    print(f"{result.run_id}: {result.steps} steps on {result.policy['device']} "
          f"({result.policy['params']:,} params, {result.policy['threads']} threads)", file=out)
    for label, value in (("accuracy initial", result.accuracy_initial),
                         ("accuracy after SFT", result.accuracy_after_sft),
                         ("accuracy after GRPO", result.accuracy_after_grpo)):
        if value is not None:
            print(f"  {label:<22}{value:6.1%}", file=out)
    print(f"  mean reward first/last quarter: {result.mean_reward_first:.3f} -> "
          f"{result.mean_reward_last:.3f}", file=out)
    print(f"  step time mean {result.step_time_s['mean']:.3f} s; phases (s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in result.phase_time_s.items()), file=out)
    print(f"  trace: {result.trace_path}  metrics: {result.metrics_path}", file=out)
    return 0
