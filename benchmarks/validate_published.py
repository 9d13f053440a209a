"""Simulated vs published: the two NeMo-RL v0.5 Llama-3.1-8B GRPO runs.

Reads ../shared/reference/published.yaml at run time (never copies its numbers), simulates
scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml and ...-1step-offpolicy.yaml, and prints step time,
tokens/s/GPU (prompt + generated tokens per step / step time / all GPUs) and the async/on-policy
speed-up next to the published values, with relative errors. Nothing is tuned to these numbers.

    .venv/bin/python benchmarks/validate_published.py [--steps 20] [--fast] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.sim import simulate  # noqa: E402

PUBLISHED = ROOT.parent / "shared" / "reference" / "published.yaml"
RUNS = {"nemo-rl-v0.5-llama3.1-8b-onpolicy": "scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml",
        "nemo-rl-v0.5-llama3.1-8b-1step-offpolicy": "scenarios/nemo-rl-llama3.1-8b-1step-offpolicy.yaml"}


def _err(sim: float, ref: float) -> float:
    return (sim - ref) / ref


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="steps simulated per run")
    p.add_argument("--fast", action="store_true", help="use simulate()'s speed approximations")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    published = {r["id"]: r for r in yaml.safe_load(PUBLISHED.read_text())["rl_runs"]}
    rows = []
    for run_id, path in RUNS.items():
        ref = published[run_id]["reported"]
        s = simulate(load_scenario(ROOT / path), steps=args.steps, exact=not args.fast).summary
        rows.append({
            "run": run_id, "scenario": path, "steps": args.steps, "warmup_steps": s.warmup_steps,
            "step_time_s": s.step_time_s.mean, "published_step_time_s": ref["step_time_s"],
            "step_time_error": _err(s.step_time_s.mean, ref["step_time_s"]),
            "tokens_per_s_per_gpu": s.tokens_per_s_per_gpu,
            "published_tokens_per_s_per_gpu": ref["tokens_per_s_per_gpu"],
            "tokens_per_s_per_gpu_error": _err(s.tokens_per_s_per_gpu, ref["tokens_per_s_per_gpu"]),
            "phase_time_s": s.phase_time_s, "bottleneck": s.bottleneck,
            "output_tokens_per_step": s.output_tokens_per_step})
    on, off = rows
    ref_speedup = published[off["run"]].get("derived", {}).get("speedup_vs_onpolicy") or \
        on["published_step_time_s"] / off["published_step_time_s"]
    speedup = {"simulated": on["step_time_s"] / off["step_time_s"], "published": ref_speedup}
    speedup["error"] = _err(speedup["simulated"], speedup["published"])
    out = {"runs": rows, "speedup_async_vs_onpolicy": speedup, "published_file": str(PUBLISHED)}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'run':<42} {'step s sim':>10} {'published':>9} {'error':>7}   "
          f"{'tok/s/GPU sim':>13} {'published':>9} {'error':>7}   bottleneck")
    for r in rows:
        print(f"{r['run']:<42} {r['step_time_s']:10.1f} {r['published_step_time_s']:9.1f} "
              f"{r['step_time_error']:+7.1%}   {r['tokens_per_s_per_gpu']:13.0f} "
              f"{r['published_tokens_per_s_per_gpu']:9.0f} {r['tokens_per_s_per_gpu_error']:+7.1%}   "
              f"{r['bottleneck']}")
    print(f"{'async / on-policy speed-up':<42} {speedup['simulated']:10.2f} "
          f"{speedup['published']:9.2f} {speedup['error']:+7.1%}")
    for r in rows:
        print(f"  {r['run']}: critical path " +
              ", ".join(f"{k} {v:.1f} s" for k, v in r["phase_time_s"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
