"""Pick the plan to recommend from a search and explain it: bottleneck, idle time, marginal GPUs.

Choice rule: with `--deadline-hours`, the cheapest plan that meets the deadline (and the budget);
otherwise the fastest plan within the budget (ties: cheaper). "What one more GPU buys" is
simulated, not extrapolated: the recommended plan is re-run with one more sampler replica and,
separately, one more trainer TP group (colocated: one more group of both), outside the GPU limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.jobs import STATUS_OK
from rlvr_sim.sweep.pareto import DOLLARS, HOURS, RACED
from rlvr_sim.sweep.planner import Evaluator, SearchResult
from rlvr_sim.sweep.space import COLOCATED, Allocation
from rlvr_sim.sweep.ties import Tie, ties, ties_sentence

if TYPE_CHECKING:
    from rlvr_sim.sweep.robust import Robustness

POOLS = ("sampler", "trainer", "verifier")


@dataclass(frozen=True)
class Constraints:
    budget_usd: float | None = None
    deadline_hours: float | None = None


@dataclass
class Marginal:
    """The recommended plan with `extra_gpus` more GPUs added to one pool."""

    change: str
    extra_gpus: int
    label: str
    status: str
    hours_total: float | None = None
    usd_total: float | None = None
    hours_saved_per_gpu: float | None = None
    reason: str | None = None


@dataclass
class Recommendation:
    allocation: Allocation
    label: str
    hours_total: float
    usd_total: float
    step_time_s: float | None
    rule: str
    bottleneck: str | None
    utilization: dict[str, float] = field(default_factory=dict)
    idle_s: dict[str, float] = field(default_factory=dict)
    marginals: list[Marginal] = field(default_factory=list)
    reason: str = ""
    steps_simulated: int | None = None     # steps the recommended plan needed to be steady
    warmup_steps: int | None = None        # of which warm-up / pipeline fill, excluded
    steady_state: bool | None = None
    robustness: "Robustness | None" = None
    # the robust choice replaced the nominal pick: that plan's label and its report
    nominal: str | None = None
    nominal_robustness: "Robustness | None" = None
    # the plans of its GPU type and total within the simulation's noise of it (rlvr_sim.sweep.ties)
    ties: list[Tie] = field(default_factory=list)


def one_line(message: object, width: int = 240) -> str:
    """A multi-line error as one line (whitespace collapsed), cut to `width` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _invalid_reasons(result: SearchResult, limit: int = 3) -> str:
    bad = result.table[result.table["status"] != STATUS_OK] if not result.table.empty else result.table
    if bad.empty:
        space = result.space
        return (f"no allocation of {', '.join(map(str, space.sizes))} GPUs holds whole model-parallel groups "
                f"(sampler tp {space.sampler_tps} x pp {space.sampler_pps}, trainer tp {space.trainer_tps} x pp "
                f"{space.trainer_pps}, at most {space.gpus_per_node} GPUs of TP per node)")
    # the plans with the most GPUs and the widest model parallelism came closest: show theirs first
    size = [c for c in ("total_gpus", "sampler.tp", "sampler.pp", "trainer.tp", "trainer.pp") if c in bad]
    closest = bad.assign(_rank=bad[size].prod(axis=1) if size else 0).sort_values("_rank", ascending=False, kind="stable")
    messages = closest["error"].fillna("unknown").map(lambda e: one_line(e, 700))
    counts = messages.value_counts()
    shown = list(dict.fromkeys(messages))[:limit]
    return "; ".join(f"[{counts[m]} plan(s)] {m}" for m in shown)


def meets(hours: float, usd: float, constraints: Constraints) -> bool:
    """Whether a plan of these hours and dollars keeps the budget and the deadline."""
    return (constraints.budget_usd is None or usd <= constraints.budget_usd) and \
        (constraints.deadline_hours is None or hours <= constraints.deadline_hours)


def choose(result: SearchResult, constraints: Constraints) -> tuple[Allocation, str]:
    """The recommended allocation and the rule that picked it; `UserError` when none qualifies."""
    ok = result.table[result.table["status"] == STATUS_OK] if not result.table.empty else result.table
    if RACED in ok:     # a raced plan's hours are a partial estimate: never the choice
        ok = ok[ok[RACED].isna()]
    if ok.empty:
        raise UserError(f"no valid plan in the search space ({result.counts()['evaluated']} tried; closest first): "
                        f"{_invalid_reasons(result)}. Try more GPUs (--total-gpus), another --gpu, or more model "
                        "parallelism (--sampler-tp/--sampler-pp/--trainer-tp/--trainer-pp).")
    feasible = ok[[meets(h, usd, constraints) for h, usd in zip(ok[HOURS], ok[DOLLARS])]]
    if feasible.empty:
        cheapest = ok.loc[ok[DOLLARS].idxmin()]
        fastest = ok.loc[ok[HOURS].idxmin()]
        raise UserError(
            f"no plan meets --budget-usd {constraints.budget_usd} / --deadline-hours {constraints.deadline_hours}: "
            f"the cheapest plan costs ${cheapest[DOLLARS]:,.0f} ({cheapest['label']}, {cheapest[HOURS]:.1f} h) and "
            f"the fastest takes {fastest[HOURS]:.1f} h ({fastest['label']}, ${fastest[DOLLARS]:,.0f}); "
            "raise the budget or the deadline")
    if constraints.deadline_hours is not None:
        pick = feasible.sort_values([DOLLARS, HOURS, "label"], kind="stable").iloc[0]
        rule = f"cheapest plan that finishes within {constraints.deadline_hours:g} h"
    else:
        pick = feasible.sort_values([HOURS, DOLLARS, "label"], kind="stable").iloc[0]
        rule = "fastest plan" + (f" within ${constraints.budget_usd:,.0f}" if constraints.budget_usd is not None else "")
    return result.allocations[pick["plan_id"]], rule


def _marginal_allocations(a: Allocation, sampler_unit: int, trainer_unit: int) -> list[tuple[str, int, Allocation]]:
    if a.placement == COLOCATED:
        extra = math.lcm(sampler_unit, trainer_unit)
        return [("one more colocated group", extra, replace(a, total_gpus=a.total_gpus + extra,
                                                          sampler_gpus=a.sampler_gpus + extra,
                                                          trainer_gpus=a.trainer_gpus + extra))]
    return [("one more sampler replica", sampler_unit, replace(a, total_gpus=a.total_gpus + sampler_unit,
                                                             sampler_gpus=a.sampler_gpus + sampler_unit)),
            ("one more trainer model-parallel group", trainer_unit,
             replace(a, total_gpus=a.total_gpus + trainer_unit, trainer_gpus=a.trainer_gpus + trainer_unit))]


def marginals(base_ev: Evaluator, a: Allocation) -> list[Marginal]:
    """Simulate what adding GPUs to each pool of `a` buys (in a separate evaluator: these plans
    exceed the GPU limit and must not enter the search table). A plan the search simulated
    already (a larger GPU total of the space) is reused, not simulated again."""
    ev = Evaluator(base_ev.scenario, base_ev.pool, base_ev.steps, base_ev.seed, fixed=base_ev.fixed,
                   steady=base_ev.steady, perturb=base_ev.perturb)
    options = _marginal_allocations(a, a.sampler_unit, a.trainer_unit)
    ev.seen.update({alloc: base_ev.seen[alloc] for _, _, alloc in options if alloc in base_ev.seen})
    ev.evaluate([alloc for _, _, alloc in options], "plan: marginal GPUs")
    base_hours = base_ev.hours(a)
    found = []
    for change, extra, alloc in options:
        outcome = ev.seen[alloc]
        m = outcome.metrics
        if m is None:
            found.append(Marginal(change, extra, alloc.label(), outcome.status, reason=outcome.error))
            continue
        found.append(Marginal(change, extra, alloc.label(), outcome.status, m.hours_total, m.usd_total,
                              (base_hours - m.hours_total) / extra))
    return found


def recommend(result: SearchResult, ev: Evaluator, constraints: Constraints,
              marginal_ev: Evaluator | None = None, chosen: tuple[Allocation, str] | None = None,
              with_marginals: bool = True) -> Recommendation:
    """The chosen plan with its reason (see module docstring). The marginal plans are compared
    with the recommended plan's hours in `marginal_ev` (default `ev`): the confirmation stage
    passes the search's own estimates, simulated under the same rule as the marginal plans.
    `chosen` (allocation, rule) replaces `choose` (the robust choice of rlvr_sim.sweep.robust).
    `with_marginals=False` simulates no marginal plan (past a time limit; `marginals` empty)."""
    allocation, rule = chosen if chosen is not None else choose(result, constraints)
    m = ev.metrics(allocation)
    assert m is not None, "choose() picks a simulated plan"
    rec = Recommendation(
        allocation=allocation, label=allocation.label(), hours_total=m.hours_total,
        usd_total=m.usd_total, step_time_s=m.step_time_s, rule=rule,
        bottleneck=m.bottleneck, utilization=m.utilization.as_dict(),
        idle_s=m.idle_s.as_dict(),
        marginals=marginals(marginal_ev or ev, allocation) if with_marginals else [],
        steps_simulated=m.steps_simulated, warmup_steps=m.warmup_steps, steady_state=m.steady_state,
        ties=[t for t in ties(ev, allocation) if meets(t.hours_total, t.usd_total, constraints)])
    rec.reason = explain(rec, result.counts()["ok"])
    return rec


def steady_sentence(rec: Recommendation) -> str:
    """How many steps the recommended plan was simulated for, and whether it was steady."""
    if rec.steps_simulated is None:
        return ""
    state = "steady" if rec.steady_state else "NOT steady (step cap reached)"
    return (f"Simulated {rec.steps_simulated} steps ({rec.warmup_steps} warm-up / pipeline-fill "
            f"excluded): {state}.")


def explain(rec: Recommendation, valid_plans: int) -> str:
    """One paragraph: rule, plan, bottleneck, idle time per pool, the plans tied with it, what
    more GPUs buy."""
    parts = [f"{rec.rule} of {valid_plans} valid simulated plans: {rec.label}, "
             f"{rec.hours_total:.2f} h, ${rec.usd_total:,.0f}."]
    if rec.bottleneck:
        parts.append(f"Bottleneck: {rec.bottleneck}.")
    if rec.utilization:
        parts.append("Utilisation " + ", ".join(f"{p} {u:.0%}" for p, u in rec.utilization.items()) + ".")
    if rec.idle_s:
        shared = " (colocated: each pool's idle time is mostly the other phases on the same GPUs)" \
            if rec.allocation.placement == COLOCATED else ""
        parts.append("Idle per step: " + ", ".join(f"{p} {s:,.1f} s" for p, s in rec.idle_s.items()) + shared + ".")
    parts.append(steady_sentence(rec))
    parts.append(ties_sentence(rec.ties, rec.allocation))
    for m in rec.marginals:
        change = m.change[0].upper() + m.change[1:]
        if m.hours_total is None:
            parts.append(f"{change} (+{m.extra_gpus} GPUs): not valid ({one_line(m.reason, 200)}).")
        else:
            saved = m.hours_saved_per_gpu
            if saved is None:
                per_gpu = "n/a"
            else:
                per_gpu = f"{saved:+.2f} h" if abs(saved) >= 1 else f"{saved * 60:+.1f} min"
            parts.append(f"{change} (+{m.extra_gpus} GPUs): {m.hours_total:.2f} h ({per_gpu} saved per added GPU), "
                         f"${m.usd_total:,.0f}.")
    return " ".join(p for p in parts if p)
