"""The planner's evaluator: simulates allocations once each on a pool (batch or streamed), and
the typed result of a search (`SearchResult`, `best_per_group`). Shared by the local search
(rlvr_sim.sweep.local_search), the branch and bound (rlvr_sim.sweep.branch_bound) and the
robustness draws; `rlvr_sim.sweep.planner` puts them together."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from rlvr_sim.sim.steady import Rule
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.jobs import STATUS_ERROR, STATUS_INVALID, STATUS_OK, PlanMetrics, PlanOutcome, make_jobs
from rlvr_sim.sweep.pools import Pool, Streaming, streaming
from rlvr_sim.sweep.runner import evaluate_all
from rlvr_sim.sweep.store import outcome_row
from rlvr_sim.sweep.space import Allocation, SearchSpace

if TYPE_CHECKING:
    from rlvr_sim.sweep.robust import Perturbation


@dataclass
class Evaluator:
    """Simulates allocations on a pool, once each (a cache keyed by allocation)."""

    scenario: str | Path | dict[str, Any]
    pool: Pool
    steps: int | None
    seed: int | None
    progress: bool = False
    fixed: Plan = Plan(())   # overrides applied to every plan first (`plan --set key=value`)
    steady: Rule | None = None   # with steps None: each plan simulated until its step time is steady
    perturb: "Perturbation | None" = None   # a robustness draw applied to every plan
    bound: Callable[[Allocation], float] | None = None   # lower bound of a plan's simulated hours
    quick_bound: Callable[[Allocation], float] | None = None   # a cheaper bound <= `bound`
    # local search only: skip a neighbour whose lower bound of hours is above the hours of the
    # plan it would replace (it cannot be an improving move; `local_search`)
    prune_bound: Callable[[Allocation], float] | None = None
    # race a candidate against the plan it is compared with: stop simulating it once it certainly
    # takes longer (rlvr_sim.sim.steady.slower_than; only for runs until steady)
    race: bool = False
    seen: dict[Allocation, PlanOutcome] = field(default_factory=dict)
    _stream: Streaming | None = field(default=None, repr=False)
    _flying: dict[str, list[Allocation]] = field(default_factory=dict, repr=False)   # plan_id -> allocations

    def evaluate(self, allocations: list[Allocation], desc: str = "plan",
                 above: dict[Allocation, float] | None = None, stop_at: float | None = None) -> None:
        """Simulate the allocations not seen yet as one parallel batch (waits for all). With
        `race`, an allocation in `above` stops once it certainly takes longer than its hours
        there (it cannot beat the plan it is compared with; `PlanJob.raced`). `stop_at`: each
        stops at its first step end past that `time.time()` instant (`PlanJob.stop_at`)."""
        new = list(dict.fromkeys(a for a in allocations if a not in self.seen))
        if not new:
            return
        plans = [Plan(self.fixed.settings + a.plan().settings) for a in new]
        jobs = make_jobs(self.scenario, plans, self.steps, self.seed, self.steady, self.perturb)
        if self.race and above:
            jobs = [job.raced(above.get(a)) for a, job in zip(new, jobs)]
        if stop_at is not None:
            jobs = [replace(job, stop_at=stop_at) for job in jobs]
        for allocation, outcome in zip(new, evaluate_all(self.pool, jobs, self.progress, desc)):
            self.seen[allocation] = outcome

    # ------------------------------------------------------------------ streaming
    @property
    def in_flight(self) -> int:
        """Allocations submitted and not yet handed back by `next_done`."""
        return sum(len(group) for group in self._flying.values())

    def submit(self, a: Allocation, above: float | None = None, again: bool = False,
               stop_at: float | None = None) -> bool:
        """Start simulating `a` on the pool (rlvr_sim.sweep.pools.Streaming); False (nothing
        started) when it was simulated already or is in flight: a plan is never simulated twice,
        except with `again` when its result is not `settled` for `above`. With `race` and
        `above`, it stops once it certainly takes longer than `above` hours; with `stop_at` (a
        `time.time()` instant) at the first step end past it (a partial result, `PlanJob.stop_at`)."""
        if any(a in group for group in self._flying.values()):
            return False
        if a in self.seen and (not again or self.settled(a, -math.inf if above is None else above)):
            return False
        if self._stream is None:
            self._stream = streaming(self.pool)
        plan = Plan(self.fixed.settings + a.plan().settings)
        job = make_jobs(self.scenario, [plan], self.steps, self.seed, self.steady, self.perturb)[0]
        job = replace(job, index=len(self.seen) + self.in_flight, stop_at=stop_at)
        if self.race:
            job = job.raced(above)
        self._flying.setdefault(job.plan_id, []).append(a)
        if len(self._flying[job.plan_id]) == 1:      # two allocations with one plan: one simulation
            self._stream.submit(job)
        return True

    def next_done(self) -> list[Allocation]:
        """Wait for the next submitted plan to finish; the allocations it answers (usually one),
        now in `seen`."""
        assert self._stream is not None and self._flying, "next_done: nothing submitted"
        outcome = self._stream.next_done()
        done = self._flying.pop(outcome.plan_id)
        for a in done:
            self.seen[a] = outcome
        return done

    def settled(self, a: Allocation, above: float) -> bool:
        """Whether `a`'s result is known well enough to compare it with a plan of `above` hours:
        simulated to the end, or stopped as certainly slower than at least `above` (a plan it
        raced against that was as fast or faster)."""
        if a not in self.seen:
            return False
        m = self.metrics(a)
        return m is None or m.stopped_above_hours is None or m.stopped_above_hours >= above

    def metrics(self, a: Allocation) -> PlanMetrics | None:
        """The plan's typed results; None when not simulated, invalid or failed."""
        outcome = self.seen.get(a)
        return None if outcome is None else outcome.metrics

    def hours(self, a: Allocation) -> float:
        """Simulated hours to finish, infinite for a plan that is invalid or failed."""
        m = self.metrics(a)
        return math.inf if m is None else m.hours_total

    def final_hours(self, a: Allocation) -> float:
        """`hours` of a plan simulated to the end; infinite also for a plan stopped by a race
        (its estimate is partial: it only says the plan is slower than its stop level)."""
        m = self.metrics(a)
        return math.inf if m is None or m.stopped_above_hours is not None else m.hours_total

    def key(self, a: Allocation) -> tuple[float, float, Allocation]:
        """Order of preference: fewer hours, then fewer dollars, then a fixed tie-break."""
        m = self.metrics(a)
        return (math.inf, math.inf, a) if m is None else (m.hours_total, m.usd_total, a)

    def table(self) -> pd.DataFrame:
        """Every evaluated allocation as a sweep row plus `label` and `total_gpus`."""
        rows = []
        for allocation, outcome in self.seen.items():
            row = outcome_row(outcome)
            row.update(label=allocation.label(), total_gpus=allocation.total_gpus)
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class GroupGap:
    """How close a (GPU type, total)'s best simulated plan is certain to be to the group's optimum
    (rlvr_sim.sweep.branch_bound): no plan of the group can take less than `floor_hours`."""

    gpu: str
    total_gpus: int
    best_hours: float          # the group's best simulated hours (inf: no valid plan)
    floor_hours: float         # the least hours any plan of the group can take (<= best_hours)
    stopped: str               # "exact", "gap" or "time limit" (branch_bound.STOP_*)

    @property
    def gap(self) -> float:
        """best / floor - 1: 0 when the best is certainly the group's optimum, inf when nothing
        is known (a plan without a bound was left unsimulated)."""
        if self.floor_hours >= self.best_hours:
            return 0.0
        return self.best_hours / self.floor_hours - 1.0 if self.floor_hours > 0 else math.inf


@dataclass
class SearchResult:
    """All simulated plans (`table`), the per-(GPU, total) optima, and how much work it took;
    `gaps` (branch and bound only) how far each group's best can be from its optimum."""

    table: pd.DataFrame
    optima: list[Allocation]
    allocations: dict[str, Allocation]   # plan_id -> allocation
    rounds: int
    space: SearchSpace
    bounded: int = 0           # plans skipped because their bound exceeded their group's best
    space_size: int = 0        # allocations in the space (0: not enumerated)
    gaps: tuple[GroupGap, ...] = ()
    # plans not simulated because scenario loading would reject them: a broken rule (TP must divide
    # the attention heads, ...) or no memory fit (the bound's inf, PlanBounds.valid; branch and bound only)
    rejected: int = 0

    def counts(self) -> dict[str, int]:
        status = self.table["status"].value_counts() if not self.table.empty else {}
        cached = int(self.table["cached"].fillna(False).astype(bool).sum()) if "cached" in self.table else 0
        return {"evaluated": len(self.table), **{k: int(status.get(k, 0)) for k in (STATUS_OK, STATUS_INVALID, STATUS_ERROR)},
                "bounded": self.bounded, "rejected": self.rejected, "space": self.space_size, "cached": cached}


def search_result(ev: Evaluator, optima: list[Allocation], rounds: int, space: SearchSpace,
                  bounded: int = 0, space_size: int = 0, gaps: tuple[GroupGap, ...] = (),
                  rejected: int = 0) -> SearchResult:
    return SearchResult(ev.table(), optima, {o.plan_id: a for a, o in ev.seen.items()}, rounds, space,
                        bounded, space_size, gaps, rejected)


def best_per_group(ev: Evaluator) -> list[Allocation]:
    """The best allocation simulated to the end of each (GPU type, GPU total) that has one."""
    groups: dict[tuple[str, int], Allocation] = {}
    for a in ev.seen:
        if ev.final_hours(a) == math.inf:     # invalid, or raced out (partial)
            continue
        key = (a.gpu, a.total_gpus)
        if key not in groups or ev.key(a) < ev.key(groups[key]):
            groups[key] = a
    return [groups[key] for key in sorted(groups)]
