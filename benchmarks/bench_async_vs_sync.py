"""Throughput and learning of orchestration modes on one scenario, interleaved.

Modes: colocated sync (the core loop, one process), disaggregated sync (sampler process +
trainer, max_staleness 0) and async(eta) (the sampler runs up to eta policy versions ahead,
stale_policy block). Every run is a fresh subprocess with the same scenario, seed, SFT
warm-start and threads per process; the order cycles through the modes `--rounds` times.
Reported per mode: RL steps per second over the step loop (median over rounds; start-up, SFT
and evaluation excluded), the ratio to disaggregated sync and to colocated sync, the reward
curve (first round), mean reward of the first/last quarter of steps, held-out accuracy
before/after GRPO, and (async) the staleness histogram. On a 2-core machine the sampler and
trainer processes each get `--threads` threads; async can overlap them, sync cannot.

    .venv/bin/python benchmarks/bench_async_vs_sync.py [--steps 30] [--rounds 2] [--eta 1]
        [--threads 1] [--set KEY=VALUE ...] [--json]
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
MODES = {
    "colocated-sync": ["orchestration.placement=colocated", "orchestration.mode=sync"],
    "disaggregated-sync": ["orchestration.placement=disaggregated", "orchestration.mode=sync",
                           "sampler.gpus=1", "trainer.gpus=1"],
    "async": ["orchestration.placement=disaggregated", "orchestration.mode=async",
              "sampler.gpus=1", "trainer.gpus=1"],
}


def child(mode: str, scenario: str, steps: int, threads: int, eta: int, overrides: list[str],
          out: str) -> dict:
    from dataclasses import asdict

    from executor.orchestrator import run_orchestrated
    from rlvr_sim.scenario import load_scenario

    sets = [f"executor.threads={threads}", f"orchestration.max_staleness={eta}"] + MODES[mode] + overrides
    result = run_orchestrated(load_scenario(scenario, overrides=sets), steps=steps, out_dir=out,
                              progress=False, stale_policy="block")
    rows = [json.loads(line) for line in Path(result.metrics_path).read_text().splitlines()]
    orch_path = Path(out) / "orchestration.json"
    orch = json.loads(orch_path.read_text()) if orch_path.exists() else {}
    wall_s = orch.get("wall_s") or sum(r["step_s"] for r in rows)
    return {"mode": mode, "steps_per_s": len(rows) / wall_s, "wall_s": wall_s,
            "reward_curve": [round(r["mean_reward"], 4) for r in rows],
            "accuracy": [result.accuracy_after_sft, result.accuracy_after_grpo],
            "reward_first_last_quarter": [result.mean_reward_first, result.mean_reward_last],
            "staleness_hist": orch.get("staleness_hist"), "result": asdict(result)}


def run_child(mode: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as out:
        cmd = [sys.executable, __file__, "--child", mode, "--scenario", args.scenario, "--steps",
               str(args.steps), "--threads", str(args.threads), "--eta", str(args.eta), "--out", out]
        for o in args.overrides:
            cmd += ["--set", o]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} run failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="scenarios/tiny-cpu-execute.yaml")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--eta", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=list(MODES))
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.scenario, args.steps, args.threads, args.eta,
                               args.overrides, args.out)))
        return 0
    modes = args.modes.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for rnd in range(args.rounds):
        for mode in modes:
            r = run_child(mode, args)
            runs[mode].append(r)
            print(f"round {rnd} {mode}: {r['steps_per_s']:.3f} steps/s, reward quarter "
                  f"{r['reward_first_last_quarter'][0]:.3f} -> {r['reward_first_last_quarter'][1]:.3f}, "
                  f"accuracy {r['accuracy'][0]:.3f} -> {r['accuracy'][1]:.3f}", file=sys.stderr)
    med = {m: statistics.median(r["steps_per_s"] for r in rs) for m, rs in runs.items()}
    report = {"scenario": args.scenario, "steps": args.steps, "rounds": args.rounds, "eta": args.eta,
              "threads_per_process": args.threads, "overrides": args.overrides,
              "steps_per_s_median": med,
              "ratio_to_disaggregated_sync": {m: v / med["disaggregated-sync"] for m, v in med.items()}
              if "disaggregated-sync" in med else None,
              "ratio_to_colocated_sync": {m: v / med["colocated-sync"] for m, v in med.items()}
              if "colocated-sync" in med else None,
              "per_round_steps_per_s": {m: [r["steps_per_s"] for r in rs] for m, rs in runs.items()},
              "reward_curve": {m: rs[0]["reward_curve"] for m, rs in runs.items()},
              "reward_first_last_quarter": {m: [r["reward_first_last_quarter"] for r in rs]
                                            for m, rs in runs.items()},
              "accuracy_after_sft_after_grpo": {m: [r["accuracy"] for r in rs] for m, rs in runs.items()},
              "staleness_hist": {m: [r["staleness_hist"] for r in rs] for m, rs in runs.items()}}
    print(json.dumps(report, indent=2) if args.json else
          "\n".join(f"{m}: {v:.3f} steps/s" for m, v in med.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
