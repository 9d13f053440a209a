"""`rlvr-sim plan` on the README's 64-GPU example: wall and CPU seconds, plans simulated, steps per
plan and the recommendation, for this tree and optionally an older one, runs alternating.

The README example: `plan scenarios/deepseek-r1-zero-like.yaml --total-gpus 64 --gpu h100-sxm
--set model=qwen2.5-32b --trainer-pp 1,2,4`. Each run is a fresh `python -m rlvr_sim.cli plan
... --json` subprocess with the tree's `rlvr_sim` on PYTHONPATH; CPU seconds include the pool
workers (getrusage of children), so they compare trees on a loaded machine better than wall
seconds do. `--this-args` / `--baseline-args` add flags per tree (an older tree lacks newer
flags: e.g. `--baseline-args "--steps 3"` for the README's old command).

    .venv/bin/python benchmarks/bench_plan.py [--baseline /work/main] [--repeats 1] [--workers 2]
    .venv/bin/python benchmarks/bench_plan.py --exhaustive-too --this-args "--sizes 64 --staleness 0,1"
    .venv/bin/python benchmarks/bench_plan.py --repeats 0 --verify-pruned 4
    .venv/bin/python benchmarks/bench_plan.py --baseline /work/main --repeats 2 --this-args=--exact \
        --baseline-args=--exact          # the README example, branch and bound, A B A B
    .venv/bin/python benchmarks/bench_plan.py --baseline /work/main --repeats 2 --nemo --this-args=--exact \
        --baseline-args=--exact          # the NeMo-RL example instead (--nemo)

`--exhaustive-too` also runs the same space with `--exhaustive` (every plan simulated) and says
whether the recommendation and the frontier are the same. `--verify-pruned K` checks the branch
and bound's pruning in this process: it repeats the search, then simulates the K skipped plans
of each (GPU, total) whose bounds came closest to that group's best (the ones most likely to
have beaten it) and reports any that does, and whether every simulated plan's bound was below
its simulated hours.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_ARGS = ["--total-gpus", "64", "--gpu", "h100-sxm", "--set", "model=qwen2.5-32b", "--trainer-pp", "1,2,4"]
SCENARIO = "scenarios/deepseek-r1-zero-like.yaml"
NEMO_ARGS = ["--total-gpus", "16", "--sizes", "16,8", "--staleness", "0,1,2"]
NEMO_SCENARIO = "scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml"


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_plan(root: Path, extra: list[str], workers: int, nemo: bool = False) -> dict:
    """One `plan --json` run of the tree at `root`: timings and what it answered."""
    scenario, example = (NEMO_SCENARIO, NEMO_ARGS) if nemo else (SCENARIO, README_ARGS)
    cmd = [sys.executable, "-m", "rlvr_sim.cli", "plan", str(root / scenario), *example,
           "--workers", str(workers), "--json", *extra]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if out.returncode != 0:
        return {"root": str(root), "args": extra, "error": out.stderr[-2000:], "wall_s": wall, "cpu_s": cpu}
    data = json.loads(out.stdout)
    rec = data["recommended"]
    rob = rec.get("robustness")
    return {"root": str(root), "args": extra, "wall_s": wall, "cpu_s": cpu, "counts": data["counts"],
            "plan_steps": data.get("plan_steps"), "search_s": data.get("search_s"),
            "method": data.get("method"), "steps_per_plan": data.get("steps_per_plan"),
            "recommended": rec["label"], "hours_total": rec["hours_total"], "usd_total": rec["usd_total"],
            "recommended_steps_simulated": rec.get("steps_simulated"),
            "frontier": [(f["label"], f.get("steps_simulated")) for f in data["frontier"]],
            "frontier_hours": [f["hours_total"] for f in data["frontier"]],
            "robustness": None if rob is None else {k: rob[k] for k in (
                "share_best", "robust", "hours_p10", "hours_p50", "hours_p90", "usd_p10", "usd_p50", "usd_p90",
                "simulated", "winners") if k in rob}}


def verify_pruned(extra: list[str], workers: int, k: int) -> dict:
    """Search as `plan` does, then simulate the k skipped plans per group with the lowest bounds."""
    sys.path.insert(0, str(ROOT))
    from rlvr_sim.cli import build_parser
    from rlvr_sim.commands.plan_space import build_space, fixed_plan
    from rlvr_sim.sim.steady import PLANNER_RULE
    from rlvr_sim.sweep.bound import PlanBounds
    from rlvr_sim.sweep.planner import Evaluator, search
    from rlvr_sim.sweep.pools import open_pool

    args = build_parser().parse_args(["plan", str(ROOT / SCENARIO), *README_ARGS, *extra])
    space, base = build_space(args)
    bounds = PlanBounds(args.scenario, fixed_plan(args), PLANNER_RULE.max_steps, args.seed)
    pool = open_pool(workers)
    try:
        ev = Evaluator(args.scenario, pool, None, args.seed, fixed=fixed_plan(args), steady=PLANNER_RULE,
                       bound=bounds.hours, quick_bound=bounds.quick_hours)
        result = search(space, base, ev)
        best = {(a.gpu, a.total_gpus): ev.hours(a) for a in result.optima}
        skipped = [a for a in result.allocations.values()]
        from rlvr_sim.sweep.space import enumerate_space

        seen = set(ev.seen)
        closest = []
        for group in best:
            pruned = sorted((bounds.hours(a), a) for a in enumerate_space(space)
                            if (a.gpu, a.total_gpus) == group and a not in seen and bounds.hours(a) < float("inf"))
            closest += [a for _, a in pruned[:k]]
        ev.evaluate(closest, "verify pruned")
    finally:
        pool.close()
    beaten = [a.label() for a in closest if ev.hours(a) < best[(a.gpu, a.total_gpus)]]
    below = [ev.metrics(a) is None or bounds.hours(a) <= ev.hours(a) for a in ev.seen]
    return {"groups": len(best), "simulated_in_search": len(skipped), "pruned_checked": len(closest),
            "pruned_checked_valid": sum(ev.metrics(a) is not None for a in closest),
            "pruned_that_beat_their_group_best": beaten, "bound_below_simulated_for_all": all(below),
            "bound_over_simulated_max": max((bounds.hours(a) / ev.hours(a) for a in ev.seen
                                             if ev.metrics(a) is not None), default=None)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, help="an older tree to compare with (runs alternate)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--this-args", default="", help="extra plan flags for this tree")
    p.add_argument("--baseline-args", default="--steps 3", help="extra plan flags for the baseline tree")
    p.add_argument("--nemo", action="store_true",
                   help=f"the NeMo-RL example ({NEMO_SCENARIO} {' '.join(NEMO_ARGS)}) instead of the README's")
    p.add_argument("--exhaustive-too", action="store_true",
                   help="also run this tree with --exhaustive (same flags): same recommendation?")
    p.add_argument("--verify-pruned", type=int, default=0, metavar="K",
                   help="simulate the K closest skipped plans of each group (in this process)")
    args = p.parse_args(argv)
    this_extra = shlex.split(args.this_args)
    runs: dict[str, list[dict]] = {"this": [], "baseline": []}
    for _ in range(args.repeats):
        if args.baseline is not None:
            runs["baseline"].append(run_plan(args.baseline.resolve(), shlex.split(args.baseline_args), args.workers,
                                             args.nemo))
            print(json.dumps({"baseline": runs["baseline"][-1]}), flush=True)
        runs["this"].append(run_plan(ROOT, this_extra, args.workers, args.nemo))
        print(json.dumps({"this": runs["this"][-1]}), flush=True)
    report: dict = {"runs": runs}
    if args.exhaustive_too:
        full = run_plan(ROOT, [e for e in this_extra if e != "--exact"] + ["--exhaustive"], args.workers, args.nemo)
        report["exhaustive"] = full
        last = runs["this"][-1] if runs["this"] else run_plan(ROOT, this_extra, args.workers, args.nemo)
        report["same_recommendation_as_exhaustive"] = full.get("recommended") == last.get("recommended")
        report["same_frontier_as_exhaustive"] = (full.get("frontier_hours") == last.get("frontier_hours")
                                                 and [f[0] for f in full.get("frontier", [])]
                                                 == [f[0] for f in last.get("frontier", [])])
        print(json.dumps({"exhaustive": full}), flush=True)
    if args.verify_pruned:
        report["verify_pruned"] = verify_pruned(this_extra, args.workers, args.verify_pruned)
    if runs["baseline"] and all("error" not in r for r in runs["baseline"] + runs["this"]):
        for key in ("wall_s", "cpu_s", "plan_steps"):
            base = statistics.median(r[key] for r in runs["baseline"])
            this = statistics.median(r[key] for r in runs["this"])
            report[f"{key}_ratio_baseline_over_this"] = base / this
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
