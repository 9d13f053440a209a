"""`rlvr-sim sweep SCENARIO --grid key=v1,v2 ...`: simulate many plans in parallel into one table."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rlvr_sim.errors import UserError
from rlvr_sim.input_limits import seed_arg
from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep.grid import combine, grid_plans, load_plan_file
from rlvr_sim.sweep.pareto import DOLLARS, HOURS, pareto_front
from rlvr_sim.sweep.pools import open_pool
from rlvr_sim.sweep.recommend import one_line
from rlvr_sim.sweep.runner import run_sweep

if TYPE_CHECKING:
    import pandas as pd

SHOWN_COLUMNS = [HOURS, DOLLARS, "step_time_s.mean", "bottleneck", "steps_simulated"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="base scenario YAML")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="dotted scenario key and comma-separated values; repeat for a cross product")
    p.add_argument("--plans", metavar="FILE", help="YAML list of override mappings, or CSV with one column per key")
    p.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a local Ray when no ADDRESS, else ray.init(address=ADDRESS); cluster "
                        "workers need rlvr-sim installed and the scenario (and files it names) at the same path")
    p.add_argument("--steps", type=int, default=None,
                   help="simulated RL steps per plan (default: until the step time is steady, at most "
                        f"{PLANNER_RULE.max_steps}; the table's steps_simulated says how many)")
    p.add_argument("--seed", type=seed_arg, default=None, help="simulation seed (default: the scenario's)")
    p.add_argument("--out", default="sweep_results.parquet", help="results table (.parquet or .csv)")
    p.add_argument("--fresh", action="store_true", help="ignore rows saved by an interrupted earlier run")
    p.add_argument("--json", action="store_true", help="print counts and the frontier as JSON")


def run(args: argparse.Namespace) -> int:
    if not Path(args.scenario).is_file():
        raise UserError(f"scenario {args.scenario!r}: no such file")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps {args.steps}: give at least 1")
    plans = combine(load_plan_file(args.plans) if args.plans else None, grid_plans(args.grid))
    started = time.perf_counter()
    pool = open_pool(args.workers, ray_address=args.ray or None, use_ray=args.ray is not None)
    try:
        result = run_sweep(args.scenario, plans, pool, steps=args.steps, seed=args.seed, out=args.out,
                           fresh=args.fresh, progress=not args.json and sys.stderr.isatty(), steady=PLANNER_RULE)
    finally:
        pool.close()
    wall_s = time.perf_counter() - started
    front = pareto_front(result.table)
    counts = result.counts()
    if args.json:
        shown = [c for c in ["plan_index", *plans[0].columns().keys(), *SHOWN_COLUMNS] if c in front.columns]
        print(json.dumps({"out": args.out, "planned": result.planned, "resumed": result.resumed,
                          "interrupted": result.interrupted, "counts": counts, "wall_s": round(wall_s, 2),
                          "workers": pool.workers, "frontier": json.loads(front[shown].to_json(orient="records"))},
                         indent=2))
    else:
        print(f"{result.planned} plans ({result.resumed} resumed), {counts['ok']} ok, {counts['invalid']} invalid, "
              f"{counts['error']} errors in {wall_s:.1f} s on {pool.workers} worker(s) -> {args.out}")
        _print_examples(result.table)
        if not front.empty:
            keys = [c for c in plans[0].columns() if c in front.columns]
            print("\nPareto frontier (hours vs dollars):")
            print(front[keys + [c for c in SHOWN_COLUMNS if c in front.columns]].to_string(index=False))
    if result.interrupted:
        print("interrupted: re-run the same command to finish the remaining plans", file=sys.stderr)
        return 130
    return 0


def _print_examples(table: pd.DataFrame) -> None:
    """First reason of each failure kind, so a typo in a --grid key is seen at once."""
    if table.empty or "error" not in table:
        return
    failed = table[table["status"] != "ok"]
    for message, count in failed["error"].fillna("").map(one_line).value_counts().head(3).items():
        print(f"  {count} x {message}", file=sys.stderr)
