"""Spot-check a finished `plan` search's pruning from its `--out` table, without searching again.

For each (GPU type, total) of the table: the `k` plans of the space the search did NOT simulate
whose cost-model bounds came closest to the group's best simulated hours (the ones most likely to
have beaten it) are simulated until steady (no race); the report says whether any beats its
group's best, and the largest bound / simulated hours over the table's plans simulated to the
end (above 1 would be a bound violation).

    .venv/bin/python tools/check_pruned.py /tmp/plan.parquet --k 3 --workers 2 -- \\
        scenarios/deepseek-r1-zero-like.yaml --total-gpus 64 --gpu h100-sxm \\
        --set model=qwen2.5-32b --trainer-pp 1,2,4

Everything after `--` is the `plan` command line the table came from (scenario and flags).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlvr_sim.cli import build_parser  # noqa: E402
from rlvr_sim.commands.plan_space import build_space, fixed_plan  # noqa: E402
from rlvr_sim.sim.steady import PLANNER_RULE  # noqa: E402
from rlvr_sim.sweep.bound import PlanBounds  # noqa: E402
from rlvr_sim.sweep.planner import Evaluator  # noqa: E402
from rlvr_sim.sweep.pools import open_pool  # noqa: E402
from rlvr_sim.sweep.space import enumerate_space  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("table", type=Path, help="the search's `plan --out` table (.parquet or .csv)")
    p.add_argument("--k", type=int, default=3, help="skipped plans to simulate per group")
    p.add_argument("--workers", type=int, default=2)
    mine = p.parse_args(argv[:cut])
    args = build_parser().parse_args(["plan", *argv[cut + 1:]])
    space, _ = build_space(args)
    table = pd.read_parquet(mine.table) if mine.table.suffix == ".parquet" else pd.read_csv(mine.table)
    ok = table[table["status"] == "ok"]
    full = ok[ok["stopped_above_hours"].isna()] if "stopped_above_hours" in ok else ok
    best = ok.groupby("total_gpus")["hours_total"].min().to_dict()
    bounds = PlanBounds(args.scenario, fixed_plan(args), PLANNER_RULE.max_steps, args.seed)
    every = {a.label(): a for a in enumerate_space(space)}
    simulated = set(table["label"])
    ratios = [bounds.hours(every[label]) / hours for label, hours in zip(full["label"], full["hours_total"])]
    # how tight the bound is where it matters: the fastest plans of each group (near-ties there
    # are what the branch and bound must simulate)
    fastest = full.sort_values("hours_total").groupby("total_gpus").head(5)
    tight = {label: round(bounds.hours(every[label]) / hours, 4)
             for label, hours in zip(fastest["label"], fastest["hours_total"])}
    closest = []
    for total in best:
        skipped = sorted((bounds.hours(a), label) for label, a in every.items()
                         if a.total_gpus == total and label not in simulated and math.isfinite(bounds.hours(a)))
        closest += [every[label] for _, label in skipped[:mine.k]]
    pool = open_pool(mine.workers)
    try:
        ev = Evaluator(args.scenario, pool, None, args.seed, fixed=fixed_plan(args), steady=PLANNER_RULE)
        ev.evaluate(closest, "check pruned")      # --k 0: nothing simulated, the ratios only
    finally:
        pool.close()
    checked = [{"plan": a.label(), "bound_h": round(bounds.hours(a), 2), "simulated_h": round(ev.hours(a), 2),
                "group_best_h": round(best[a.total_gpus], 2)} for a in closest]
    print(json.dumps({"groups": {str(k): round(v, 2) for k, v in best.items()},
                      "skipped_checked": checked,
                      "skipped_that_beat_their_group_best": [c["plan"] for c in checked
                                                             if c["simulated_h"] < c["group_best_h"]],
                      "bound_over_simulated_max": round(max(ratios), 4) if ratios else None,
                      "bound_over_simulated_of_each_groups_5_fastest": tight,
                      "plans_compared_with_their_bound": len(ratios)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
