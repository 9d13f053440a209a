"""`rlvr-sim plan`'s decision, shared with the app (rlvr_sim.api.plan): search, confirm the closest
contenders, recommend, assess robustness over draws and, by default, prefer a rival of smaller
worst-case regret; plus the sentences that explain an early stop or a robust choice."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from rlvr_sim.commands.plan_space import fixed_plan
from rlvr_sim.sim.steady import Rule
from rlvr_sim.sweep.bound import PlanBounds
from rlvr_sim.sweep.branch_bound import STOP_EXHAUSTED, STOP_TIME
from rlvr_sim.sweep.confirm import Confirmation, confirm
from rlvr_sim.sweep.evaluator import GroupGap
from rlvr_sim.sweep.pareto import pareto_front
from rlvr_sim.sweep.planner import Evaluator, exhaustive, search
from rlvr_sim.sweep.recommend import Constraints, Recommendation, meets, recommend
from rlvr_sim.sweep.robust import Robustness, assess, prefer_rival
from rlvr_sim.sweep.space import Allocation, SearchSpace

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario
    from rlvr_sim.sweep.planner import SearchResult
    from rlvr_sim.sweep.pools import Pool
    from rlvr_sim.sweep.robust import Perturbation


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
    plan's GPU total's best can be from its optimum, the other totals', and the totals that have
    no plan simulated to the end within a time limit ("" when exact)."""
    early = [g for g in gaps if g.stopped != STOP_EXHAUSTED and g.best_hours < math.inf]
    unanswered = [g for g in gaps if g.stopped == STOP_TIME and g.best_hours == math.inf]
    if not early:
        return "" if not unanswered else "No plan finished within the time limit for " + _totals(unanswered) + "."
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
    if unanswered:
        parts.append("no plan finished within the time limit for " + _totals(unanswered))
    return "; ".join(parts) + "."


def _totals(gaps: list[GroupGap]) -> str:
    return ", ".join(f"{g.total_gpus}x {g.gpu}" for g in gaps)


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

    # the marginal plans (one more replica / trainer group) are simulated only within the limit
    with_marginals = not past_deadline()
    if not with_marginals:
        skipped.append("the marginal-GPU plans")

    def recommended(chosen: tuple[Allocation, str] | None = None) -> Recommendation:
        r = recommend(result, ev, constraints, marginal_ev, chosen, with_marginals=with_marginals)
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
        listed = skipped[0] if len(skipped) == 1 else ", ".join(skipped[:-1]) + " and " + skipped[-1]
        rec.reason += f" Skipped (past the {limit:g} s time limit): {listed}."
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
        if not meets(m.hours_total, m.usd_total, constraints):
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
