"""Confirmation: the search's closest contenders simulated again, for longer, before one is
recommended.

Why. The search simulates each plan until its mean step time is known to the planner rule's
tolerance (`PLANNER_RULE`: 2 %) or until its step cap, and ranks plans by those estimates. Two
things then go wrong on real spaces (benchmarks/bench_steady.py, the closing notes of issue 14):
- among plans within that tolerance of each other, the lowest estimate wins, and the lowest of
  several noisy estimates is the one most likely to be low (the winner's curse: the README's
  64-GPU pick was 545.9 h by its 12-step estimate and 557-558 h over 48 steps);
- a plan still not steady at the cap is ranked by a biased estimate (NeMo 8B's
  `S6(tp1) T10(tp1pp2) async2`: a slow step every ~6, -1.5 % at the 64-step cap).

What. In each (GPU type, total) group, the contenders are the plans simulated to the end (a plan
stopped by a race is certainly slower and never one) whose hours are within `z` combined standard
errors (and at least `floor` of the hours) of the group's best, fewest hours first, at most
`per_group`, always the best itself. Each is simulated again under `confirm_rule` of the search's
rule (tolerance halved, twice the steady steps and twice the step cap; no race) and that outcome
replaces the search's: the table says `confirmed`. A confirmed best can come out slower than its
first estimate, so the search is resumed (`resume`: the branch and bound simulates plans it had
skipped whose bound is now below the group's best, and plans raced out below it; a plan
simulated to the end is not simulated again) and the contenders are chosen again, until every group's are confirmed (at most `rounds`;
contenders still unconfirmed then are listed in `unconfirmed`, and a recommended plan among
them says so).

Limits. The longer run has the same seed, so its first steps are the first estimate's own: the
confirmed hours are more precise, not independent (a fresh seed would be, but it would also
change the batches the plans are compared on). Plans outside the margin keep their first
estimates. Each confirmation costs roughly 4x the steps of a first estimate (half the tolerance).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from rlvr_sim.sim.steady import Rule
from rlvr_sim.sweep.evaluator import Evaluator
from rlvr_sim.sweep.jobs import PlanMetrics, PlanOutcome
from rlvr_sim.sweep.space import Allocation

# contenders: within this many combined standard errors of the group's best ...
CONFIRM_Z = 2.0
# ... or within this fraction of its hours (standard errors of a few steps can be tiny)
CONFIRM_FLOOR = 0.01
CONFIRM_PER_GROUP = 3
CONFIRM_ROUNDS = 8


def confirm_rule(rule: Rule) -> Rule:
    """The rule a contender is simulated again under: `rule` with its tolerance halved and twice
    the steady steps and step cap (a mean known to half the error needs ~4x the steps)."""
    return replace(rule, rel_tol=rule.rel_tol / 2, min_steady=2 * rule.min_steady,
                   min_steady_pipelined=2 * rule.min_steady_pipelined, max_steps=2 * rule.max_steps)


@dataclass(frozen=True)
class FirstEstimate:
    """A confirmed plan's estimate from the search, kept for the report."""

    label: str
    hours_total: float
    steps_simulated: int
    steady_state: bool
    cached: bool              # read from the result cache (no steps simulated by this run)


@dataclass(frozen=True)
class ConfirmedPlan:
    """One confirmed plan: the search's estimate and the longer run's (None: it failed)."""

    label: str
    first_hours: float
    first_steps: int
    first_steady: bool
    hours: float | None
    steps: int | None
    steady: bool | None


@dataclass(frozen=True)
class ConfirmationReport:
    """The confirmation stage in `plan --json`."""

    rel_tol: float
    max_steps: int
    rounds: int
    steps: int                  # RL steps the longer runs simulated (cached ones count none)
    plans: list[ConfirmedPlan]
    unconfirmed: list[str] = field(default_factory=list)   # contenders left at the round cap / time limit


@dataclass
class Confirmation:
    """What the confirmation did: the plans confirmed (with their first estimates), the RL
    steps it simulated, and how many contender rounds it took."""

    rule: Rule
    steps: int = 0
    rounds: int = 0
    unconfirmed: tuple[str, ...] = ()     # contenders left when the rounds (or the time) ran out
    cut: list[str] = field(default_factory=list)   # longer runs stopped by the time limit
    # the search's outcomes of the confirmed plans, which the longer runs replaced in `ev`
    searched: dict[Allocation, PlanOutcome] = field(default_factory=dict, repr=False)

    @property
    def first(self) -> dict[Allocation, FirstEstimate]:
        """Each confirmed plan's estimate from the search (read off `searched`)."""
        out = {}
        for a, outcome in self.searched.items():
            m = outcome.metrics
            assert m is not None, "a contender was simulated"
            out[a] = FirstEstimate(a.label(), m.hours_total, m.steps_simulated, m.steady_state, outcome.cached)
        return out

    def as_searched(self, ev: Evaluator) -> Evaluator:
        """`ev` with the search's own outcomes of the confirmed plans back (every plan under the
        search's rule): what plans simulated under that rule are compared with (the marginal
        GPUs of rlvr_sim.sweep.recommend)."""
        return replace(ev, seen={**ev.seen, **self.searched})

    def first_steps(self) -> int:
        """RL steps this run simulated for the first estimates that confirmation replaced (the
        table holds the confirmation runs' steps instead)."""
        return sum(f.steps_simulated for f in self.first.values() if not f.cached)

    def report(self, ev: Evaluator) -> "ConfirmationReport":
        """What `plan --json` shows: the rule and, per confirmed plan, both estimates."""
        plans = []
        for a, f in self.first.items():
            m = ev.metrics(a)
            plans.append(ConfirmedPlan(f.label, f.hours_total, f.steps_simulated, f.steady_state,
                                       None if m is None else m.hours_total,
                                       None if m is None else m.steps_simulated,
                                       None if m is None else m.steady_state))
        return ConfirmationReport(self.rule.rel_tol, self.rule.max_steps, self.rounds, self.steps, plans,
                                  list(self.unconfirmed))

    def sentence(self, recommended: Allocation, ev: Evaluator) -> str:
        """One line on the recommended plan: its confirmed hours against its first estimate."""
        first = self.first.get(recommended)
        m = ev.metrics(recommended)
        if first is None and m is not None and recommended.label() in self.unconfirmed:
            why = ("its longer run was stopped by the time limit" if recommended.label() in self.cut else
                   f"the confirmation stage stopped after {self.rounds} round(s) with this plan newly among "
                   "the contenders")
            return (f"NOT confirmed: {why}; its hours are the search's {m.steps_simulated}-step estimate "
                    "(the plans the search ranks first tend to be the ones estimated low).")
        if first is None or m is None:
            return ""
        change = m.hours_total / first.hours_total - 1 if first.hours_total > 0 else math.nan
        others = len(self.first) - 1
        return (f"Confirmed by a longer run ({m.steps_simulated} steps, mean known to "
                f"{self.rule.rel_tol:.0%}): {m.hours_total:,.2f} h, {change:+.1%} from the search's "
                f"{first.steps_simulated}-step estimate of {first.hours_total:,.2f} h"
                + (f"; {others} close contender(s) confirmed too." if others else "."))


def _rel_se(m: PlanMetrics) -> float:
    """The relative standard error of a plan's steady mean (0 when unknown: the floor decides)."""
    se = m.rel_stderr
    return se if se is not None and math.isfinite(se) else 0.0


def contenders(ev: Evaluator, done: set[Allocation], z: float = CONFIRM_Z, floor: float = CONFIRM_FLOOR,
               per_group: int = CONFIRM_PER_GROUP) -> list[Allocation]:
    """The plans to confirm that are not in `done` (module docstring), each group's in order of
    hours: within `z` combined standard errors or `floor` of the group's best."""
    groups: dict[tuple[str, int], list[tuple[tuple[float, float, Allocation], PlanMetrics]]] = {}
    for a in ev.seen:
        m = ev.metrics(a)
        if m is None or m.stopped_above_hours is not None:
            continue
        groups.setdefault((a.gpu, a.total_gpus), []).append((ev.key(a), m))
    wanted: list[Allocation] = []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda item: item[0])
        bm = ranked[0][1]                  # the group's best (always within its own margin)
        for (hours, _, a), m in ranked[:per_group]:
            margin = max(z * math.hypot(_rel_se(m), _rel_se(bm)), floor) * bm.hours_total
            if hours <= bm.hours_total + margin and a not in done:
                wanted.append(a)
    return wanted


def confirm(ev: Evaluator, rule: Rule, resume: Callable[[], object] | None = None,
            z: float = CONFIRM_Z, floor: float = CONFIRM_FLOOR, per_group: int = CONFIRM_PER_GROUP,
            rounds: int = CONFIRM_ROUNDS, deadline: float | None = None,
            clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> Confirmation:
    """Simulate each group's contenders again under `confirm_rule(rule)` and put those outcomes in
    `ev.seen` (module docstring); `resume` re-runs the search after each round (a confirmed best
    may be slower, which un-skips plans). The confirmation runs use `ev`'s pool, scenario, seed
    and robustness draw, and the result cache. No round starts once `clock()` is past `deadline`
    (`plan --time-limit`), and a longer run still going then stops at its next simulated step
    (`PlanJob.stop_at`, on the `wall` clock): that plan keeps its search estimate and is listed
    as unconfirmed."""
    longer = confirm_rule(rule)
    report = Confirmation(longer)
    checker = Evaluator(ev.scenario, ev.pool, None, ev.seed, progress=ev.progress, fixed=ev.fixed,
                        steady=longer, perturb=ev.perturb)
    for _ in range(rounds):
        if deadline is not None and clock() >= deadline:
            break
        wanted = contenders(ev, set(report.searched), z, floor, per_group)
        if not wanted:
            break
        report.rounds += 1
        report.searched.update((a, ev.seen[a]) for a in wanted)
        stop_at = None if deadline is None else wall() + deadline - clock()
        checker.evaluate(wanted, "plan: confirming the closest contenders", stop_at=stop_at)
        for a in wanted:
            outcome = checker.seen[a]
            if outcome.summary is not None and outcome.summary.stopped_by_clock:
                del report.searched[a]          # cut by the time limit: the search's estimate stays
                report.cut.append(a.label())
                continue
            ev.seen[a] = replace(outcome, confirmed=True)
            if not outcome.cached and outcome.steps_simulated:
                report.steps += outcome.steps_simulated
        if resume is not None:
            resume()
    # contenders never confirmed: past the round cap, or cut by the time limit (not in `searched`)
    report.unconfirmed = tuple(a.label() for a in contenders(ev, set(report.searched), z, floor, per_group))
    return report
