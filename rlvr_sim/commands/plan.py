"""`rlvr-sim plan SCENARIO --total-gpus N`: search allocations, print the frontier and a recommendation.

The flags become a search in rlvr_sim.commands.plan_space, the decision is made in
rlvr_sim.commands.plan_decision (shared with the app); this module parses, checks and prints."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING
from pathlib import Path

from rlvr_sim.commands.plan_decision import decide
from rlvr_sim.commands.plan_space import base_scenario, build_space, fixed_plan
from rlvr_sim.errors import UserError
from rlvr_sim.cli_output import strict_json
from rlvr_sim.input_limits import seed_arg
from rlvr_sim.sim import compiled
from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep import result_cache
from rlvr_sim.sweep.branch_bound import STOP_EXHAUSTED
from rlvr_sim.sweep.confirm import CONFIRM_PER_GROUP
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.pareto import DOLLARS, HOURS, pareto_front
from rlvr_sim.sweep.pools import open_pool
from rlvr_sim.sweep.recommend import Recommendation
from rlvr_sim.sweep.robust import DEFAULT_LENGTH_RANGE, NEAR_EQUAL
from rlvr_sim.sweep.store import write_table

if TYPE_CHECKING:
    import pandas as pd

    from rlvr_sim.schedule import ResplitAdvice
    from rlvr_sim.sweep.planner import Evaluator, SearchResult

__all__ = ["FRONT_COLUMNS", "add_arguments", "build_space", "check_early_stop", "decide", "fixed_plan",
           "run"]

FRONT_COLUMNS = ["label", HOURS, DOLLARS, "step_time_s.mean", "bottleneck", "steps_simulated", "warmup_steps",
                 "steady_state"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="base scenario YAML (workload, model, verifier; the allocation is searched)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field for every plan (e.g. --set model=qwen2.5-32b); repeatable")
    p.add_argument("--total-gpus", type=int, required=True, help="GPUs available (plans may use fewer)")
    p.add_argument("--gpu", default=None, help="GPU types to compare, comma-separated (default: the scenario's)")
    p.add_argument("--budget-usd", type=float, default=None, help="most dollars the whole run may cost")
    p.add_argument("--deadline-hours", type=float, default=None, help="latest finish; picks the cheapest plan meeting it")
    p.add_argument("--sizes", default=None, help="GPU totals to consider (default: N, N/2, N/4, N/8 in whole nodes)")
    p.add_argument("--sampler-tp", default="1,2,4,8", help="sampler TP options (default 1,2,4,8)")
    p.add_argument("--trainer-tp", default="1,2,4,8", help="trainer TP options (default 1,2,4,8)")
    p.add_argument("--sampler-pp", default=None, help="sampler pipeline-stage options (default: the scenario's)")
    p.add_argument("--trainer-pp", default=None, help="trainer pipeline-stage options (default: the scenario's)")
    p.add_argument("--staleness", default="0,1,2,4,8",
                   help="max_staleness options, 0 = sync (default 0,1,2,4,8)")
    p.add_argument("--whole-run", action=argparse.BooleanOptionalAction, default=None,
                   help="re-evaluate the recommended plan (and the best plans of the same GPUs) over "
                        "the workload schedule and say where a re-split pays (default: on when the "
                        "scenario has a schedule)")
    p.add_argument("--mini-batches", default=None, help="mini-batch options (default: the scenario's value only)")
    p.add_argument("--knob", action="append", default=[], metavar="KEY=V1,V2",
                   help="another scenario field to search, e.g. --knob orchestration.partial_rollout=false,true "
                        "(repeatable; the first value is where the search starts)")
    p.add_argument("--steps", type=int, default=None,
                   help="simulated RL steps per plan (default: until the step time is steady, at most "
                        f"{PLANNER_RULE.max_steps}, mean known to {PLANNER_RULE.rel_tol * 100:.0f}%%; hours extrapolate)")
    p.add_argument("--max-steps", type=int, default=PLANNER_RULE.max_steps,
                   help=f"cap on the steps of a plan simulated until steady (default {PLANNER_RULE.max_steps})")
    p.add_argument("--draws", type=int, default=12,
                   help="robustness draws of the efficiency terms and lengths for the frontier (default 12; 0: off)")
    p.add_argument("--choose", choices=("robust", "nominal"), default="robust",
                   help="robust (default): when the draws show the nominal pick is neither robust nor "
                        "near-equal, the plans the draws pick instead are simulated in every draw too, and "
                        "the one whose worst-case regret is smaller by more than "
                        f"{NEAR_EQUAL * 100:.0f}%% is recommended (minimax regret; "
                        "rlvr_sim.sweep.robust.prefer_rival); nominal: always the plan that is best as "
                        "simulated")
    p.add_argument("--length-range", type=float, default=DEFAULT_LENGTH_RANGE,
                   help=f"robustness: mean response length drawn within +-this fraction (default {DEFAULT_LENGTH_RANGE})")
    p.add_argument("--seed", type=seed_arg, default=None, help="simulation seed (default: the scenario's)")
    p.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help="evaluate plans on Ray")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--exact", action="store_true",
                     help="branch and bound on the cost model's lower bound of each plan's hours (the "
                          "default): the exhaustive answer without simulating plans that cannot win")
    how.add_argument("--local", action="store_true",
                     help="best-improvement local search instead: no optimality guarantee (it can miss a "
                          "group's optimum), for spaces where the bound leaves too many plans")
    how.add_argument("--exhaustive", action="store_true", help="simulate the whole space instead of searching")
    p.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True,
                   help="--local: skip a neighbour whose cost-model lower bound of hours is above "
                        "the plan it would replace (same moves, optima and frontier; default on)")
    p.add_argument("--race", action=argparse.BooleanOptionalAction, default=True,
                   help="stop simulating a plan once its hours are certainly (3 standard errors) above "
                        "the plan it is compared with: it cannot be chosen (default on; not with "
                        "--exhaustive or --steps)")
    p.add_argument("--confirm", type=int, default=CONFIRM_PER_GROUP, metavar="N",
                   help="simulate each GPU total's N closest contenders again for longer (half the "
                        "tolerance, twice the steps and cap) before recommending one; their hours "
                        f"replace the search's (rlvr_sim.sweep.confirm; default {CONFIRM_PER_GROUP}; "
                        "0: off; not with --steps)")
    p.add_argument("--gap", type=float, default=0.0, metavar="FRACTION",
                   help="stop a GPU total's search once no plan left can beat its best by more than this "
                        "fraction (e.g. 0.05: the answer is within 5%% of that total's optimum, by the "
                        "cost-model bound; default 0: the exhaustive answer; branch and bound only)")
    p.add_argument("--order", choices=("auto", "bound", "predicted"), default="auto",
                   help="the branch and bound's order within a GPU total: bound (lowest bound first), "
                        "predicted (least predicted hours first: the bound scaled by how loose it was on "
                        "the plans simulated so far), auto (predicted with --gap or --time-limit, else "
                        "bound). The order changes the work, never what the exact search may skip")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="start no plan after this many seconds, and stop the plans running at their "
                        "first simulated step past it (partial: certainly slower than a stated level), "
                        "confirmation runs too (that plan keeps its search estimate, NOT confirmed); the "
                        "asked --total-gpus is searched first and, until it has a valid plan, one of its "
                        "plans at a time runs to its end (so the limit can be passed by that plan); once it "
                        "has one, one worker at a time gets the other totals their first answer "
                        "(stopped by the limit like the rest: they may end unanswered); the marginal-GPU plans and robustness draws are "
                        "skipped once past it (draws started before it finish); the answer says how far "
                        "each total's best can be from its optimum (branch and bound only)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse plans simulated by earlier runs with the same scenario, profile, rule "
                        "and code (rlvr_sim.sweep.result_cache; folder: $RLVR_SIM_CACHE, default "
                        "~/.cache/rlvr-sim/results; default on)")
    p.add_argument("--out", default=None, help="also save every simulated plan (.parquet or .csv)")
    p.add_argument("--json", action="store_true", help="print the recommendation and frontier as JSON")


def _method(args: argparse.Namespace) -> str:
    return "exhaustive" if args.exhaustive else ("local search" if getattr(args, "local", False) else "branch and bound")


def _plan_steps(table: pd.DataFrame) -> int:
    """RL steps simulated by this run over every plan of the search (the planner's work,
    load-independent; plans read from the result cache count none)."""
    if table.empty or "steps_simulated" not in table:
        return 0
    if "cached" in table:
        table = table[~table["cached"].fillna(False).astype(bool)]
    return int(table["steps_simulated"].fillna(0).sum())


def _steps_range(table: pd.DataFrame) -> str:
    ok = table[table["status"] == "ok"] if "status" in table else table
    if ok.empty or "steps_simulated" not in ok:
        return "?"
    lo, hi = int(ok["steps_simulated"].min()), int(ok["steps_simulated"].max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def check_early_stop(args: argparse.Namespace) -> None:
    """`--gap`, `--time-limit` and `--order`: in range, and only with the branch and bound."""
    gap, limit = getattr(args, "gap", 0.0), getattr(args, "time_limit", None)
    if not (math.isfinite(gap) and 0 <= gap < 1):
        raise UserError(f"--gap {gap}: give a fraction in [0, 1), e.g. 0.05 (0: the exact answer)")
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise UserError(f"--time-limit {limit}: give a positive number of seconds, e.g. 60")
    order = getattr(args, "order", "auto")
    if (gap or limit is not None or order != "auto") and (args.exhaustive or getattr(args, "local", False)):
        flag = "--gap" if gap else ("--time-limit" if limit is not None else f"--order {order}")
        raise UserError(f"{flag} is an option of the branch and bound; it does not apply to "
                        f"{'--exhaustive' if args.exhaustive else '--local'} (drop one of the two)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "cache", True):
        return _run(args)
    with result_cache.turned_off():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    space, base = build_space(args)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps {args.steps}: give at least 1")
    if args.max_steps < 2:
        raise UserError(f"--max-steps {args.max_steps}: give at least 2")
    if args.confirm < 0:
        raise UserError(f"--confirm {args.confirm}: give 0 (off) or the contenders per GPU total, e.g. 3")
    if args.draws < 0:
        raise UserError(f"--draws {args.draws}: give 0 (off) or more")
    if not 0 <= args.length_range < 1:
        raise UserError(f"--length-range {args.length_range}: give a fraction in [0, 1), e.g. 0.15")
    check_early_stop(args)
    started = time.perf_counter()
    pool = open_pool(args.workers, ray_address=args.ray or None, use_ray=args.ray is not None)
    rule = replace(PLANNER_RULE, max_steps=args.max_steps)
    try:
        d = decide(args, space, base, pool, rule, base_scenario(args), progress=not args.json and sys.stderr.isatty())
    finally:
        pool.close()
    result, ev, rec, confirmation, search_s = d.result, d.ev, d.rec, d.confirmation, d.search_s
    advice = _whole_run_advice(args, ev, rec)       # rlvr_sim.schedule; None without a schedule
    wall_s = time.perf_counter() - started
    if args.out:
        write_table(result.table, Path(args.out))
    front = pareto_front(result.table)
    shown = [c for c in FRONT_COLUMNS if c in front.columns]
    counts = result.counts()
    plan_steps = _plan_steps(result.table) + (confirmation.first_steps() if confirmation is not None else 0)
    steps_text = f"{args.steps} steps each" if args.steps is not None else \
        f"each until steady ({_steps_range(result.table)} steps, {plan_steps} in all)"
    if args.json:
        payload = {"recommended": {**asdict(rec), "allocation": asdict(rec.allocation)},
                   "frontier": json.loads(front[shown].to_json(orient="records")),
                   "counts": counts, "plan_steps": plan_steps, "rounds": result.rounds, "steps_per_plan": args.steps or "until steady",
                   "method": _method(args), "wall_s": round(wall_s, 2),
                   "search_s": round(search_s, 2), "engine": compiled.engine_text()}
        if confirmation is not None:
            payload["confirmation"] = asdict(confirmation.report(ev))
        if result.gaps:
            payload["search_gaps"] = [{**asdict(g), "gap": g.gap} for g in result.gaps]
        if d.skipped:
            payload["skipped"] = list(d.skipped)
        if advice is not None:
            payload["whole_run"] = advice.model_dump()
        print(strict_json(payload, indent=2, default=str))
        return 0
    method = _method(args)
    print(f"{method}: {counts['evaluated']} plans simulated "
          + (f"of {counts['space']} in the space ({counts['bounded']} skipped: {_skip_reason(result)}"
             + (f"; {counts['rejected']} rejected unsimulated: they break a scenario rule (e.g. TP "
                "must divide the attention heads) or do not fit in memory" if counts.get('rejected') else "")
             + "), "
             if counts['space'] else "")
          + (f"({counts['bounded']} neighbours skipped: bound above the plan they would replace) "
             if counts['bounded'] and not counts['space'] else "")
          + f"({counts['ok']} valid, {counts['invalid']} invalid skipped, {counts['error']} errors"
          + (f"; {counts['cached']} read from the result cache" if counts.get("cached") else "")
          + (f"; {len(confirmation.first)} confirmed by longer runs" if confirmation is not None and confirmation.first else "")
          + "), "
          f"{steps_text}, {search_s:.1f} s on {pool.workers} worker(s), {compiled.engine_text()}"
          + (f"; robustness {wall_s - search_s:.1f} s" if rec.robustness is not None else ""))
    print(f"\nRecommended: {rec.label}")
    print(rec.reason)
    if rec.robustness is not None:
        print(rec.robustness.sentence())
    print("\nPareto frontier (hours vs dollars):")
    print(front[shown].to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if advice is not None:
        from rlvr_sim.schedule import format_advice

        print("\n" + format_advice(advice))
    return 0


def _skip_reason(result: SearchResult) -> str:
    """Why the branch and bound did not simulate the rest of the space."""
    why = sorted({g.stopped for g in result.gaps if g.stopped != STOP_EXHAUSTED})
    early = f", or the {' / '.join(why)} (see the gaps below)" if why else ""
    return f"bound above their group's best{early}"


WHOLE_RUN_CANDIDATES = 4     # the recommended plan + the next fastest plans of the same GPUs


def _whole_run_advice(args: argparse.Namespace, ev: Evaluator, rec: Recommendation
                      ) -> ResplitAdvice | None:
    """ResplitAdvice over the schedule for the recommended plan and the fastest other plans
    with its GPU type and total (None when off or the scenario has no schedule)."""
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.schedule import plan_over_run

    on = getattr(args, "whole_run", None)
    if on is False or (on is None and not load_scenario(args.scenario, args.set,
                                                        check_fit=False).workload.has_schedule):
        return None
    a0 = rec.allocation
    same = sorted((a for a in ev.seen if a.gpu == a0.gpu and a.total_gpus == a0.total_gpus
                   and a != a0 and ev.hours(a) < float("inf")), key=ev.hours)
    fixed = fixed_plan(args)
    overrides = {a.label(): Plan(fixed.settings + a.plan().settings).overrides()
                 for a in [a0, *same[:WHOLE_RUN_CANDIDATES - 1]]}
    return plan_over_run(args.scenario, overrides, a0.label())
