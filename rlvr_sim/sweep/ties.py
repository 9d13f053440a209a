"""Which simulated plans the simulator cannot tell apart from the recommended one.

Each plan's hours come from a steady mean over a finite number of simulated steps, known to its
standard error (`PlanMetrics.rel_stderr`, 0.5-2 % under the planner's rules). Two plans of the
same GPU type and total whose hours differ by less than `z` combined standard errors are tied:
which of them comes out first is decided by where each run happened to stop, not by the plans
(the README's 64-GPU example: five plans that differ only in the trainer's parallelism lie within
0.7 % of each other, each known to about 1 %). The recommendation lists them, and which plan
settings they differ in, so a user chooses among them on other grounds instead of trusting a
ranking the simulation does not support. `recommend` keeps only the ties that meet the budget
and the deadline (one of them must be a choice the constraints allow).

Limits: only plans this run simulated to the end are compared (a plan skipped by the bound or
stopped by a race is not listed, whatever its true hours); plans of other GPU totals are not ties
(the choice of total is the frontier's). A plan with no standard error (a fixed step count, fewer
than 2 steady steps) counts as exact, so it ties only through the other plan's error. The plans
are simulated on the same batches (one seed), so their errors are positively correlated and
their difference is known better than the combined error says: the list errs towards too many
ties (the README example's 48 include plans 4 % slower, whose first estimates are known to 2 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlvr_sim.sweep.confirm import CONFIRM_Z
from rlvr_sim.sweep.evaluator import Evaluator
from rlvr_sim.sweep.jobs import PlanMetrics
from rlvr_sim.sweep.space import Allocation


@dataclass(frozen=True)
class Tie:
    """A plan within the simulation's noise of the recommended one."""

    label: str
    hours_total: float
    usd_total: float
    rel_stderr: float | None     # its steady mean's relative standard error (None: unknown)
    confirmed: bool              # simulated again for longer (rlvr_sim.sweep.confirm)
    differs_in: tuple[str, ...]  # the plan settings (scenario fields) whose values differ


def _se_hours(m: PlanMetrics) -> float:
    """The standard error of a plan's hours (0 when unknown)."""
    se = m.rel_stderr
    return se * m.hours_total if se is not None and math.isfinite(se) else 0.0


def ties(ev: Evaluator, a: Allocation, z: float = CONFIRM_Z) -> list[Tie]:
    """The other plans of `a`'s GPU type and total, simulated to the end, whose hours are within
    `z` combined standard errors of `a`'s (module docstring), fewest hours first; [] when `a`
    was not simulated."""
    m0 = ev.metrics(a)
    if m0 is None:
        return []
    mine = dict(a.plan().settings)
    found = []
    for b, outcome in ev.seen.items():
        m = outcome.metrics
        if b == a or m is None or b.gpu != a.gpu or b.total_gpus != a.total_gpus \
                or m.stopped_above_hours is not None:
            continue
        if abs(m.hours_total - m0.hours_total) <= z * math.hypot(_se_hours(m), _se_hours(m0)):
            differs = tuple(k for k, v in b.plan().settings if mine.get(k) != v)
            found.append(Tie(b.label(), m.hours_total, m.usd_total, m.rel_stderr, outcome.confirmed, differs))
    return sorted(found, key=lambda t: (t.hours_total, t.label))


def ties_sentence(found: list[Tie], a: Allocation, z: float = CONFIRM_Z, shown: int = 4) -> str:
    """One sentence on the ties of `a` ("" when none): how many, their hours, and the `shown`
    closest with the settings each changes."""
    if not found:
        return ""
    lo, hi = min(t.hours_total for t in found), max(t.hours_total for t in found)
    span = f"{lo:,.1f} h" if lo == hi else f"{lo:,.1f}-{hi:,.1f} h"
    closest = "; ".join(f"{t.label}, {t.hours_total:,.1f} h (changes {', '.join(t.differs_in)})"
                        for t in found[:shown])
    more = f"; and {len(found) - shown} more" if len(found) > shown else ""
    return (f"Within the simulation's noise of it ({z:g} combined standard errors of the steady means): "
            f"{len(found)} other simulated plan(s) of {a.total_gpus}x {a.gpu}, {span}; closest: {closest}{more}. "
            "The simulation does not rank these apart: choose among them on other grounds, or simulate "
            "them for longer.")
