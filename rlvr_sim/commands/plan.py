"""`rlvr-sim plan SCENARIO --total-gpus N`: search allocations, print the frontier and a recommendation."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Callable
from pathlib import Path

from rlvr_sim.errors import UserError
from rlvr_sim.cli_output import strict_json
from rlvr_sim.input_limits import seed_arg
from rlvr_sim.sim.steady import PLANNER_RULE, Rule
from rlvr_sim.sweep import result_cache
from rlvr_sim.sweep.bound import PlanBounds
from rlvr_sim.sweep.branch_bound import STOP_EXHAUSTED
from rlvr_sim.sweep.evaluator import GroupGap
from rlvr_sim.sweep.confirm import CONFIRM_PER_GROUP, Confirmation, confirm
from rlvr_sim.sweep.grid import Plan, parse_grid_option
from rlvr_sim.sweep.pareto import DOLLARS, HOURS, pareto_front
from rlvr_sim.sweep.planner import Evaluator, exhaustive, search
from rlvr_sim.sweep.pools import open_pool
from rlvr_sim.sweep.recommend import Constraints, Recommendation, recommend
from rlvr_sim.sweep.robust import DEFAULT_LENGTH_RANGE, NEAR_EQUAL, Robustness, assess, prefer_rival
from rlvr_sim.sweep.space import Allocation, SearchSpace, default_sizes
from rlvr_sim.sweep.store import write_table

if TYPE_CHECKING:
    import pandas as pd

    from rlvr_sim.schedule import ResplitAdvice
    from rlvr_sim.scenario import Scenario
    from rlvr_sim.sweep.planner import SearchResult
    from rlvr_sim.sweep.pools import Pool
    from rlvr_sim.sweep.robust import Perturbation

FRONT_COLUMNS = ["label", HOURS, DOLLARS, "step_time_s.mean", "bottleneck", "steps_simulated", "warmup_steps",
                 "steady_state"]


def _int_list(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError as exc:
        raise UserError(f"{flag} {text!r}: expected comma-separated integers such as 1,2,4") from exc
    if not values or min(values) < 0:
        raise UserError(f"{flag} {text!r}: expected non-negative integers such as 1,2,4")
    return values


def _options(flag: str, text: str | None, scenario_value: int) -> tuple[int, ...]:
    """Option list from a flag, else the scenario's value alone."""
    values = _int_list(flag, text) if text else (int(scenario_value),)
    if min(values) < 1:
        raise UserError(f"{flag} {text!r}: every option must be at least 1")
    return values


def _start(options: tuple[int, ...], scenario_value: int) -> int:
    """Where the search starts: the scenario's value when offered, else the smallest option."""
    return int(scenario_value) if int(scenario_value) in options else min(options)


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
                   help="start no plan after this many seconds (plans running finish; each GPU total "
                        "keeps its first valid plan); confirmation and robustness draws are skipped once "
                        "past it; the answer says how far each total's best can be from its optimum "
                        "(branch and bound only)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse plans simulated by earlier runs with the same scenario, profile, rule "
                        "and code (rlvr_sim.sweep.result_cache; folder: $RLVR_SIM_CACHE, default "
                        "~/.cache/rlvr-sim/results; default on)")
    p.add_argument("--out", default=None, help="also save every simulated plan (.parquet or .csv)")
    p.add_argument("--json", action="store_true", help="print the recommendation and frontier as JSON")


def _method(args: argparse.Namespace) -> str:
    return "exhaustive" if args.exhaustive else ("local search" if getattr(args, "local", False) else "branch and bound")


def fixed_plan(args: argparse.Namespace) -> Plan:
    """The `--set` overrides as one plan prefix (one value per key)."""
    pairs = [parse_grid_option(item) for item in getattr(args, "set", [])]
    for key, values in pairs:
        if len(values) != 1:
            raise UserError(f"--set {key}={','.join(values)}: give one value (use `rlvr-sim sweep --grid` for several)")
    return Plan(tuple((key, values[0]) for key, values in pairs))


MAX_TOTAL_GPUS = 65_536   # the largest pool the split search is meant for (a hang beyond, not a plan)


def build_space(args: argparse.Namespace) -> tuple[SearchSpace, Allocation]:
    """The search space from the flags and the base allocation from the scenario."""
    from rlvr_sim.scenario import load_scenario

    if not Path(args.scenario).is_file():
        raise UserError(f"scenario {args.scenario!r}: no such file")
    if args.total_gpus < 1:
        raise UserError(f"--total-gpus {args.total_gpus}: give at least 1 GPU")
    if args.total_gpus > MAX_TOTAL_GPUS:
        raise UserError(f"--total-gpus {args.total_gpus:,}: more than {MAX_TOTAL_GPUS:,} GPUs ; the search "
                        "enumerates splits of the whole pool, so plan a realistic size (e.g. --total-gpus 1024)")
    fixed = fixed_plan(args)
    scenario = load_scenario(args.scenario, overrides=fixed.overrides(), check_fit=False)   # the search varies what must fit
    gpus = tuple(g.strip() for g in args.gpu.split(",") if g.strip()) if args.gpu else (scenario.hardware.gpu,)
    for gpu in gpus:   # an unknown GPU name is the user's typo, not a search result
        load_scenario(args.scenario, overrides=[*fixed.overrides(), f"hardware.gpu={gpu}"], check_fit=False)
    per_node = int(scenario.hardware.gpus_per_node)
    sizes = (_int_list("--sizes", args.sizes) if args.sizes else default_sizes(args.total_gpus, per_node))
    if max(sizes) > args.total_gpus or min(sizes) < 1:
        raise UserError(f"--sizes {args.sizes!r}: every size must be between 1 and --total-gpus {args.total_gpus}")
    mini = _int_list("--mini-batches", args.mini_batches) if args.mini_batches else (int(scenario.trainer.mini_batches),)
    knobs = tuple((key, tuple(values)) for key, values in (parse_grid_option(k) for k in getattr(args, "knob", [])))
    for key, values in knobs:      # a knob the scenario does not accept is the user's typo
        for value in values:
            load_scenario(args.scenario, overrides=[*fixed.overrides(), f"{key}={value}"], check_fit=False)
    space = SearchSpace(gpus=gpus, sizes=tuple(sorted(sizes, reverse=True)),
                        sampler_tps=_int_list("--sampler-tp", args.sampler_tp),
                        trainer_tps=_int_list("--trainer-tp", args.trainer_tp),
                        staleness=_int_list("--staleness", args.staleness), mini_batches=mini, gpus_per_node=per_node,
                        sampler_pps=_options("--sampler-pp", args.sampler_pp, scenario.sampler.pp),
                        trainer_pps=_options("--trainer-pp", args.trainer_pp, scenario.trainer.pp), knobs=knobs)
    base_tp_s = _start(space.sampler_tps, scenario.sampler.tp)
    base_tp_t = _start(space.trainer_tps, scenario.trainer.tp)
    base = Allocation(gpus[0], sizes[0], "colocated", sizes[0], base_tp_s, sizes[0], base_tp_t, 0, mini[0],
                      _start(space.sampler_pps, scenario.sampler.pp), _start(space.trainer_pps, scenario.trainer.pp),
                      tuple((key, values[0]) for key, values in knobs))
    return space, base


def _base_scenario(args: argparse.Namespace) -> Scenario:
    from rlvr_sim.scenario import load_scenario

    return load_scenario(args.scenario, overrides=fixed_plan(args).overrides(), check_fit=False)


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


def frontier_allocations(result: SearchResult) -> list[Allocation]:
    """The allocations on the hours-vs-dollars frontier of a search (the robustness candidates)."""
    front = pareto_front(result.table)
    return [result.allocations[pid] for pid in front["plan_id"]] if not front.empty else []


def robustness_candidates(result: SearchResult, ev: Evaluator, runners_up: int = 3) -> list[Allocation]:
    """The frontier plus the `runners_up` next-best plans by the search's order (fewest hours,
    then dollars): within one GPU type and total the frontier holds one plan, so "does it stay
    best" is asked against its closest competitors too."""
    ranked = sorted((a for a in ev.seen if ev.metrics(a) is not None), key=ev.key)
    return list(dict.fromkeys([*frontier_allocations(result), *ranked[:runners_up + 1]]))


def make_evaluator(args: argparse.Namespace, pool: Pool, rule: Rule, progress: bool = False
                   ) -> tuple[Evaluator, "Callable[[Perturbation], PlanBounds] | None"]:
    """The search's evaluator (with the cost-model bounds of rlvr_sim.sweep.bound unless `--local`:
    branch and bound) and the bounds of a robustness draw (None with `--exhaustive`: every
    candidate simulated in every draw)."""
    steady = args.steps is None
    bounds = PlanBounds(args.scenario, fixed_plan(args), args.steps or rule.max_steps, args.seed, steady=steady,
                        rule=rule)
    exact = not getattr(args, "local", False) and not args.exhaustive
    ev = Evaluator(args.scenario, pool, args.steps, args.seed, progress=progress, fixed=fixed_plan(args),
                   steady=rule if steady else None, bound=bounds.hours if exact else None,
                   quick_bound=bounds.quick_hours if exact else None,
                   prune_bound=bounds.hours if getattr(args, "prune", True) and not exact else None,
                   race=bool(getattr(args, "race", True)) and not args.exhaustive)
    if args.exhaustive:
        return ev, None

    def draw_bounds(pert: "Perturbation") -> PlanBounds:
        return PlanBounds(args.scenario, fixed_plan(args), args.steps or rule.max_steps, args.seed, steady=steady,
                          perturb=pert, rule=rule)

    return ev, draw_bounds


@dataclass
class Decision:
    """What `decide` found: the search (its last pass), the evaluator holding every simulated
    plan, the recommendation, the confirmation stage (None: off), the seconds to the
    recommendation (before the robustness draws) and what the time limit skipped."""

    result: SearchResult
    ev: Evaluator
    rec: Recommendation
    confirmation: Confirmation | None
    search_s: float
    skipped: tuple[str, ...] = ()


def _hours_text(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:.3g}"


def gap_sentence(gaps: tuple[GroupGap, ...], recommended: Allocation) -> str:
    """One sentence on a search stopped early (`--gap`, `--time-limit`): how far the recommended
    plan's GPU total's best can be from its optimum, and the other totals' ("" when exact)."""
    early = [g for g in gaps if g.stopped != STOP_EXHAUSTED and g.best_hours < math.inf]
    if not early:
        return ""
    mine = [g for g in early if (g.gpu, g.total_gpus) == (recommended.gpu, recommended.total_gpus)]
    others = [g for g in early if g not in mine]

    def within(g: GroupGap) -> str:
        return "an unknown amount (plans without a bound were left)" if g.gap == math.inf else f"{g.gap:.1%}"

    parts = []
    if mine:
        g = mine[0]
        parts.append(f"Search stopped early ({g.stopped}): this plan is within {within(g)} of the fastest "
                     f"{g.total_gpus}x {g.gpu} plan (no plan left unsimulated can take less than "
                     f"{_hours_text(g.floor_hours)} h by the cost-model bound)")
    if others:
        parts.append(("the other totals' best within " if mine else "Search stopped early: the best plans are within ")
                     + ", ".join(f"{within(g)} ({g.total_gpus}x {g.gpu}, {g.stopped})" for g in others)
                     + " of their optima")
    return "; ".join(parts) + "."


def decide(args: argparse.Namespace, space: SearchSpace, base: Allocation, pool: Pool, rule: Rule,
           base_scenario: Scenario, progress: bool = False) -> Decision:
    """Search, confirm the closest contenders (`--confirm`, runs until steady only), recommend
    and assess the recommendation's robustness (`--draws`): the `plan` command's decision, shared
    with the app (rlvr_sim.api.plan). `pool` stays open."""
    started = time.perf_counter()
    limit = getattr(args, "time_limit", None)
    deadline = None if limit is None else time.monotonic() + limit
    gap = float(getattr(args, "gap", 0.0) or 0.0)
    ev, draw_bounds = make_evaluator(args, pool, rule, progress=progress)

    def searched() -> SearchResult:
        return exhaustive(space, ev) if args.exhaustive else search(space, base, ev, gap=gap, deadline=deadline,
                                                                     order=getattr(args, "order", "auto"))

    def past_deadline() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    result = searched()
    confirmation: Confirmation | None = None
    skipped: list[str] = []
    if args.confirm and args.steps is None:
        if past_deadline():
            skipped.append("confirmation")
        else:
            def resume() -> None:             # the search again, after each round of confirmations
                nonlocal result
                result = searched()

            confirmation = confirm(ev, rule, resume, per_group=args.confirm, deadline=deadline)
    constraints = Constraints(args.budget_usd, args.deadline_hours)
    marginal_ev = confirmation.as_searched(ev) if confirmation is not None else None

    def recommended(chosen: tuple[Allocation, str] | None = None) -> Recommendation:
        r = recommend(result, ev, constraints, marginal_ev, chosen)
        if confirmation is not None:
            r.reason = " ".join(filter(None, [r.reason, confirmation.sentence(r.allocation, ev)]))
        r.reason = " ".join(filter(None, [r.reason, gap_sentence(result.gaps, r.allocation)]))
        return r

    rec = recommended()
    search_s = time.perf_counter() - started
    if args.draws and past_deadline():
        skipped.append("robustness draws")
    elif args.draws:
        candidates = robustness_candidates(result, ev)

        def drawn(a: Allocation) -> Robustness:
            return assess(ev, a, candidates, base_scenario, args.draws, args.deadline_hours, args.budget_usd,
                          args.length_range, seed=args.seed or 0, bounds=draw_bounds)

        rec.robustness = drawn(rec.allocation)
        if getattr(args, "choose", "robust") == "robust":
            # minimax regret among the nominal pick and every plan a draw picks instead
            others = {a: drawn(a) for a in challengers(rec.robustness, candidates, ev, constraints)}
            better = [a for a, r in others.items() if prefer_rival(rec.robustness, r)]
            if better:
                rival = min(better, key=lambda a: (others[a].regret_max, a.label()))
                nominal = rec
                rec = recommended((rival, "most robust plan (smallest worst-case regret over the draws)"))
                rec.robustness, rec.nominal, rec.nominal_robustness = others[rival], nominal.label, nominal.robustness
                rec.reason = robust_choice_sentence(nominal, rec) + " " + rec.reason
    if skipped:
        rec.reason += f" Skipped (past the {limit:g} s time limit): {' and '.join(skipped)}."
    return Decision(result, ev, rec, confirmation, search_s, tuple(skipped))


def challengers(rob: Robustness, candidates: list[Allocation], ev: Evaluator, constraints: Constraints
                ) -> list[Allocation]:
    """The plans the draws pick instead of the recommended one (most often first), when the
    recommendation is neither robust nor near-equal; each simulated to the end and meeting the
    budget / deadline as simulated."""
    if rob.robust or rob.near_equal:
        return []
    by_label = {c.label(): c for c in candidates}
    out = []
    for label, _ in sorted(rob.winners.items(), key=lambda kv: (-kv[1], kv[0])):
        a = by_label.get(label)
        m = None if a is None or label == rob.recommended_label else ev.metrics(a)
        if a is None or m is None or m.stopped_above_hours is not None:
            continue
        if (constraints.budget_usd is not None and m.usd_total > constraints.budget_usd) or \
                (constraints.deadline_hours is not None and m.hours_total > constraints.deadline_hours):
            continue
        out.append(a)
    return out


def robust_choice_sentence(nominal: Recommendation, chosen: Recommendation) -> str:
    """Why the robust choice replaced the nominal pick (both reports are over the same draws)."""
    a, b = nominal.robustness, chosen.robustness
    assert a is not None and b is not None
    worse = "more expensive" if nominal.rule.startswith("cheapest") else "slower"
    return (f"Chosen for robustness over the nominal pick ({nominal.rule}) {nominal.label} "
            f"({nominal.hours_total:,.2f} h, ${nominal.usd_total:,.0f} as simulated; this plan "
            f"{chosen.hours_total / nominal.hours_total - 1:+.1%} hours, {chosen.usd_total / nominal.usd_total - 1:+.1%} "
            f"dollars): over {a.draws} draws that plan is picked in {round(a.share_best * a.draws)} and up to "
            f"{a.regret_max:.1%} {worse} than the draw's pick where it is not; this plan is picked in "
            f"{round(b.share_best * b.draws)} and at most {b.regret_max:.1%} {worse} "
            f"(`--choose nominal` recommends the nominal pick).")


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
        d = decide(args, space, base, pool, rule, _base_scenario(args), progress=not args.json and sys.stderr.isatty())
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
                   "search_s": round(search_s, 2)}
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
          + (f"of {counts['space']} in the space ({counts['bounded']} skipped: {_skip_reason(result)}), "
             if counts['space'] else "")
          + (f"({counts['bounded']} neighbours skipped: bound above the plan they would replace) "
             if counts['bounded'] and not counts['space'] else "")
          + f"({counts['ok']} valid, {counts['invalid']} invalid skipped, {counts['error']} errors"
          + (f"; {counts['cached']} read from the result cache" if counts.get("cached") else "")
          + (f"; {len(confirmation.first)} confirmed by longer runs" if confirmation is not None and confirmation.first else "")
          + "), "
          f"{steps_text}, {search_s:.1f} s on {pool.workers} worker(s)"
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
