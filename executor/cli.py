"""`rlvr-sim execute SCENARIO`: run the real GRPO loop of a scenario's `executor:` section.

Dispatch: executor.backend=trl -> `executor.trl_backend.run_trl`; backend vllm, or any
orchestration other than colocated sync -> `executor.orchestrator.run_orchestrated`;
`--self-improve ROUNDS` -> `executor.self_improve.run_self_improve` (expert iteration instead of
GRPO); otherwise the core loop `executor.loop.run_grpo`. Prints a short summary (or the result as
JSON with --json); writes the trace (rlvr_sim.trace schema), metrics.jsonl, evals.json,
result.json, checkpoints (core loop) and the resolved scenario under --out (default:
executor.out_dir). `--resume` is only supported by the core loop (UserError elsewhere).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import yaml

from executor.config import RunConfig
from executor.results import ExecuteResult, SelfImproveResult, execute_lines, self_improve_lines
from rlvr_sim.cli_output import check_output_path, strict_json
from rlvr_sim.errors import UserError
from rlvr_sim.scenario import Scenario, load_scenario


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario YAML with an `executor:` section")
    p.add_argument("--steps", type=int, default=None, help="RL steps (default: workload.steps)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--trace", default=None, help="trace path (.parquet or .csv; default OUT/trace.parquet)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoints/latest (core hf colocated-sync loop only)")
    p.add_argument("--out", default=None, help="output directory (default: executor.out_dir)")
    p.add_argument("--self-improve", type=int, default=None, metavar="ROUNDS",
                   help="run ROUNDS rounds of expert iteration (attempt, keep accepted, SFT) "
                   "instead of GRPO")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set executor.lr=1e-3 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--allow-weak-sandbox", action="store_true",
                   help="code task without OS isolation (namespaces need root): run it under an "
                   "in-process audit hook instead of refusing (= executor.allow_weak_sandbox)")


def _dispatch(scenario: Scenario, args: argparse.Namespace, progress: bool
              ) -> ExecuteResult | SelfImproveResult:
    """Run the scenario on the path its backend/orchestration (or --self-improve) selects."""
    if args.self_improve is not None:
        for flag, given in (("--resume", args.resume), ("--steps", args.steps is not None)):
            if given:
                raise UserError(f"{flag} does not apply to --self-improve; leave it out")
        if args.self_improve < 1:
            raise UserError(f"--self-improve={args.self_improve}: give at least 1 round")
        from executor.self_improve import SelfImproveSettings, run_self_improve   # torch: lazy

        return run_self_improve(scenario, SelfImproveSettings(rounds=args.self_improve),
                                out_dir=args.out, trace_path=args.trace, progress=progress)
    from executor.orchestrator import run_scenario   # torch: lazy, so `rlvr-sim simulate` stays light

    return run_scenario(scenario, args.steps, args.out, args.trace, progress, args.resume)


def run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps={args.steps}: give at least 1")
    if args.trace is not None:
        check_output_path(args.trace, "--trace")
    overrides = list(args.overrides)
    if getattr(args, "allow_weak_sandbox", False):
        overrides.append("executor.allow_weak_sandbox=true")
    scenario = load_scenario(args.scenario, overrides=overrides)
    cfg = RunConfig.from_scenario(scenario, steps=args.steps, out_dir=args.out, trace_path=args.trace)
    if cfg.out_dir.exists() and not cfg.out_dir.is_dir():
        raise UserError(f"--out {str(cfg.out_dir)!r}: is a file, not a folder ; give a folder")
    check_output_path(cfg.out_dir / "scenario.resolved.yaml", "--out")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "scenario.resolved.yaml").write_text(
        yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False))
    try:
        result = _dispatch(scenario, args, progress=not args.no_progress and not args.json)
    except ValueError as exc:   # bad settings found while building (device, model path, ...)
        raise UserError(str(exc)) from None
    if args.json:
        print(strict_json(asdict(result)))
    elif isinstance(result, ExecuteResult):
        print("\n".join(execute_lines(result)))
    else:
        print("\n".join(self_improve_lines(result)))
    return 0
