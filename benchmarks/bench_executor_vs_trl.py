"""Our GRPO loop vs TRL 1.16's GRPOTrainer on the same tiny scenario, interleaved (A B A B ...).

Both runs use one scenario (default scenarios/tiny-cpu-execute.yaml): same random-init model
and SFT warm-start (same seed, so the same weights), same problems in the same order, same
reward (task checker in our verifier pool), k, batch, response cap, lr, loss, mini-batches,
threads. Each run goes in a fresh subprocess (no shared torch/allocator state); run order
alternates ours, trl, ours, trl. Reported per run: median RL-step time (step 0 excluded:
first-touch warm-up), held-out accuracy before/after, the reward curve; across pairs: the
ratio ours/TRL of median step times (per pair and their median). The machine is shared: only
the interleaved ratio is meaningful.

    .venv/bin/python benchmarks/bench_executor_vs_trl.py [--steps 30] [--pairs 2] [--threads 1]
        [--set executor.sft_steps=40 ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(backend: str, scenario: str, steps: int, threads: int, overrides: list[str], out: str) -> dict:
    """One run in this process; what the parent reports."""
    from dataclasses import asdict

    from rlvr_sim.scenario import load_scenario

    sets = [f"executor.threads={threads}", f"executor.backend={backend}"] + overrides
    sc = load_scenario(scenario, overrides=sets)
    if backend == "trl":
        from executor.trl_backend import run_trl
        result = run_trl(sc, steps=steps, out_dir=out, progress=False)
    else:
        from executor.config import RunConfig
        from executor.loop import run_grpo
        result = run_grpo(RunConfig.from_scenario(sc, steps=steps, out_dir=out), progress=False)
    rows = [json.loads(line) for line in Path(result.metrics_path).read_text().splitlines()]
    step_s = [r["step_s"] for r in rows]
    return {"backend": backend, "result": asdict(result), "step_s": step_s,
            "median_step_s": statistics.median(step_s[1:] or step_s),
            "reward_curve": [round(r["mean_reward"], 4) for r in rows],
            "generate_s_median": statistics.median(r["generate_s"] for r in rows[1:] or rows),
            "train_s_median": statistics.median(r["train_s"] for r in rows[1:] or rows)}


def run_child(backend: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as out:
        cmd = [sys.executable, __file__, "--child", backend, "--scenario", args.scenario,
               "--steps", str(args.steps), "--threads", str(args.threads), "--out", out]
        for o in args.overrides:
            cmd += ["--set", o]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env={"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
                                   **_base_env()})
        if proc.returncode != 0:
            raise RuntimeError(f"{backend} run failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _base_env() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="scenarios/tiny-cpu-execute.yaml")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=["hf", "trl"])
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.scenario, args.steps, args.threads, args.overrides,
                               args.out)))
        return 0
    runs = []
    for pair in range(args.pairs):
        for backend in ("hf", "trl"):
            runs.append(run_child(backend, args))
            r = runs[-1]
            print(f"pair {pair} {backend:>3}: median step {r['median_step_s']:.3f} s, reward "
                  f"{r['reward_curve'][0]:.3f} -> {r['reward_curve'][-1]:.3f}, accuracy "
                  f"{r['result']['accuracy_after_sft']:.3f} -> {r['result']['accuracy_after_grpo']:.3f}",
                  file=sys.stderr)
    ours = [r for r in runs if r["backend"] == "hf"]
    trl = [r for r in runs if r["backend"] == "trl"]
    ratios = [a["median_step_s"] / b["median_step_s"] for a, b in zip(ours, trl)]
    report = {"scenario": args.scenario, "steps": args.steps, "threads": args.threads,
              "overrides": args.overrides, "pairs": args.pairs,
              "ratio_ours_over_trl_per_pair": ratios, "ratio_ours_over_trl_median": statistics.median(ratios),
              "ours_median_step_s": [r["median_step_s"] for r in ours],
              "trl_median_step_s": [r["median_step_s"] for r in trl],
              "ours_generate_s_median": [r["generate_s_median"] for r in ours],
              "trl_generate_s_median": [r["generate_s_median"] for r in trl],
              "ours_train_s_median": [r["train_s_median"] for r in ours],
              "trl_train_s_median": [r["train_s_median"] for r in trl],
              "ours_reward_curve": ours[0]["reward_curve"], "trl_reward_curve": trl[0]["reward_curve"],
              "ours_accuracy": [(r["result"]["accuracy_after_sft"], r["result"]["accuracy_after_grpo"]) for r in ours],
              "trl_accuracy": [(r["result"]["accuracy_after_sft"], r["result"]["accuracy_after_grpo"]) for r in trl]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"step time ours/TRL: median {report['ratio_ours_over_trl_median']:.3f} "
              f"(per pair {', '.join(f'{x:.3f}' for x in ratios)})")
        print(f"ours reward curve: {report['ours_reward_curve']}")
        print(f"TRL  reward curve: {report['trl_reward_curve']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
