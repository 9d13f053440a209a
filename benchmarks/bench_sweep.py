"""Sweep and plan-search speed on this machine.

Measures, for a realistic scenario with few simulated steps per plan:
1. a 1,000-plan sweep on `--workers` processes (goal: < 5 min on 2 cores);
2. the 1-vs-2-worker speed-up: the same smaller sweep timed alternately on 1 and 2 workers,
   `--repeats` times each, interleaved so load from other users hits both alike; medians and
   the ratio of medians are reported;
3. a `plan` search for `--total-gpus` GPUs (goal: < 60 s), and how many plans it simulated.

Run: .venv/bin/python benchmarks/bench_sweep.py [--scenario FILE] [--steps 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlvr_sim.sweep.grid import grid_plans  # noqa: E402
from rlvr_sim.sweep.planner import Evaluator, search  # noqa: E402
from rlvr_sim.sweep.pools import open_pool  # noqa: E402
from rlvr_sim.sweep.recommend import Constraints, recommend  # noqa: E402
from rlvr_sim.sweep.runner import run_sweep  # noqa: E402
from rlvr_sim.commands import plan as plan_command  # noqa: E402
from rlvr_sim.sweep.space import enumerate_space  # noqa: E402

# 5 x 5 x 4 x 2 x 5 = 1,000 disaggregated plans
GRID_1000 = ["sampler.gpus=8,16,24,32,40", "trainer.gpus=8,16,24,32,40", "sampler.tp=1,2,4,8",
             "orchestration.mode=sync,async", "trainer.mini_batches=1,2,4,8,16"]
# 2 x 3 x 2 x 2 x 2 = 48 plans for the 1-vs-2-worker comparison
GRID_SMALL = ["sampler.gpus=16,32", "trainer.gpus=8,16,32", "sampler.tp=1,2", "orchestration.mode=sync,async",
              "trainer.mini_batches=2,4"]


def default_scenario() -> Path:
    for name in ("nemo-rl-llama3.1-8b-onpolicy.yaml", "minimal.yaml"):
        if (ROOT / "scenarios" / name).is_file():
            return ROOT / "scenarios" / name
    raise SystemExit("no scenario found under scenarios/; pass --scenario")


def cpu_s() -> float:
    """CPU seconds used so far by this process and its reaped children (pool workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_sweep(scenario: Path, grid: list[str], workers: int, steps: int) -> tuple[float, float, dict[str, int]]:
    """Wall and CPU seconds of one sweep including pool start-up, and its status counts. CPU
    seconds do not grow when other users load the machine; wall seconds do."""
    started, cpu0 = time.perf_counter(), cpu_s()
    pool = open_pool(workers)
    try:
        plans = grid_plans(grid + ["orchestration.placement=disaggregated"])
        result = run_sweep(scenario, plans, pool, steps=steps, progress=False)
    finally:
        pool.close()
    return time.perf_counter() - started, cpu_s() - cpu0, result.counts()


# 2 x 3 x 4 x 2 x 2 x 2 = 192 plans: a longer 1-vs-2-worker comparison (--speedup-large)
GRID_LARGE = ["sampler.gpus=16,32", "trainer.gpus=8,16,32", "sampler.tp=1,2,4,8", "orchestration.mode=sync,async",
              "trainer.mini_batches=2,4", "verifier.workers=8,16"]


def speedup(scenario: Path, steps: int, repeats: int, grid: list[str] = GRID_SMALL) -> dict[str, object]:
    """1 vs 2 workers, interleaved. Also CPU seconds (parallel overhead: 2-worker CPU vs 1-worker
    CPU) and the CPU share obtained (CPU / wall: at most 1 for 1 worker, 2 for 2 workers on an
    idle 2-core machine; less when other users' sessions compete for the cores)."""
    wall: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            w, c, _counts = timed_sweep(scenario, grid, workers, steps)
            wall[workers].append(round(w, 2))
            cpu[workers].append(round(c, 2))
    m1, m2 = statistics.median(wall[1]), statistics.median(wall[2])
    c1, c2 = statistics.median(cpu[1]), statistics.median(cpu[2])
    return {"plans": len(grid_plans(grid)), "wall_s_1_worker": wall[1], "wall_s_2_workers": wall[2],
            "cpu_s_1_worker": cpu[1], "cpu_s_2_workers": cpu[2],
            "median_s_1_worker": round(m1, 2), "median_s_2_workers": round(m2, 2), "speedup": round(m1 / m2, 2),
            "cpu_overhead_2_vs_1": round(c2 / c1, 3),
            "cpu_share_1_worker": round(c1 / m1, 2), "cpu_share_2_workers": round(c2 / m2, 2)}


def plan_search(scenario: Path, total_gpus: int, steps: int, workers: int) -> dict[str, object]:
    """The `rlvr-sim plan` search with the command's default space (its own parser and builder)."""
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    args = parser.parse_args([str(scenario), "--total-gpus", str(total_gpus), "--steps", str(steps)])
    started, cpu0 = time.perf_counter(), cpu_s()
    space, base = plan_command.build_space(args)
    pool = open_pool(workers)
    try:
        ev = Evaluator(scenario, pool, steps, None)
        result = search(space, base, ev)
        rec = recommend(result, ev, Constraints())
    finally:
        pool.close()
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(cpu_s() - cpu0, 2),
            "counts": result.counts(), "rounds": result.rounds,
            "space_size": len(enumerate_space(space)), "recommended": rec.label, "hours_total": rec.hours_total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=3, help="simulated RL steps per plan")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved 1/2-worker repetitions")
    parser.add_argument("--total-gpus", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: sweep,speedup,plan")
    parser.add_argument("--speedup-large", action="store_true", help="192 plans per speed-up run instead of 48")
    parser.add_argument("--plan-scenario", type=Path, default=None, help="scenario of the plan search (default: --scenario)")
    args = parser.parse_args()
    scenario = args.scenario or default_scenario()
    skip = set(args.skip.split(","))
    report: dict[str, object] = {"scenario": str(scenario.relative_to(ROOT) if scenario.is_relative_to(ROOT) else scenario),
                                 "steps_per_plan": args.steps, "cpus": os.cpu_count()}
    if "speedup" not in skip:
        report["speedup_1_vs_2_workers"] = speedup(scenario, args.steps, args.repeats,
                                                   GRID_LARGE if args.speedup_large else GRID_SMALL)
    if "sweep" not in skip:
        wall, cpu, counts = timed_sweep(scenario, GRID_1000, args.workers, args.steps)
        report["sweep_1000"] = {"workers": args.workers, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                "counts": counts, "plans_per_s": round(1000 / wall, 2),
                                "wall_s_if_cpus_were_free": round(cpu / args.workers, 2)}
    if "plan" not in skip:
        report["plan_search"] = plan_search(args.plan_scenario or scenario, args.total_gpus, args.steps, args.workers)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
