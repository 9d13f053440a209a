"""Run a list of plans through the simulator in parallel and return one table row per plan.

`run_sweep` is what `rlvr-sim sweep` calls: it builds the jobs, skips those a previous
interrupted run already stored, streams the rest through a pool (local processes or Ray) with a
progress bar, appends finished rows to the store, and returns the table sorted by plan index.
Rows do not depend on the pool: the same plans give the same rows on 1 worker, N processes or Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from rlvr_sim.sim.steady import Rule
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.jobs import STATUS_ERROR, STATUS_INVALID, STATUS_OK, PlanJob, PlanOutcome, make_jobs
from rlvr_sim.sweep.pools import Pool
from rlvr_sim.sweep.store import ResultStore, outcome_row, outcomes_frame


@dataclass
class SweepResult:
    """The table plus what happened: counts per status, resumed rows, whether it was cut short."""

    table: pd.DataFrame
    planned: int
    resumed: int
    interrupted: bool

    def counts(self) -> dict[str, int]:
        if self.table.empty:
            return {STATUS_OK: 0, STATUS_INVALID: 0, STATUS_ERROR: 0}
        status = self.table["status"].value_counts()
        return {key: int(status.get(key, 0)) for key in (STATUS_OK, STATUS_INVALID, STATUS_ERROR)}


def evaluate_all(pool: Pool, jobs: list[PlanJob], progress: bool = False, desc: str = "plans",
                 store: ResultStore | None = None, into: list[PlanOutcome] | None = None) -> list[PlanOutcome]:
    """Run `jobs` on `pool`; outcomes in job order. Each outcome goes to `store` and `into` as it
    arrives, so a caller that catches Ctrl-C still holds what finished."""
    outcomes: list[PlanOutcome] = [] if into is None else into
    with tqdm(total=len(jobs), desc=desc, unit="plan", disable=not progress, leave=False) as bar:
        for outcome in pool.run(jobs):
            outcomes.append(outcome)
            if store is not None:
                store.add(outcome)
            bar.update(1)
    order = {job.plan_id: i for i, job in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.plan_id])


def run_sweep(scenario: str | Path | dict[str, Any], plans: list[Plan], pool: Pool, *,
              steps: int | None = None, seed: int | None = None, out: str | Path | None = None,
              fresh: bool = False, progress: bool = True, steady: Rule | None = None) -> SweepResult:
    """Simulate every plan; with `out`, rows are saved as they finish and a re-run resumes.
    `steps=None` with `steady`: each plan until its step time is steady (rlvr_sim.sim.steady).

    On Ctrl-C the rows finished so far are written to `out` (the parts stay for resuming) and
    the partial result is returned with `interrupted=True`.
    """
    jobs = make_jobs(scenario, plans, steps, seed, steady if steps is None else None)
    store = ResultStore(out, fresh=fresh) if out is not None else None
    done = store.done_ids() if store is not None else set()
    todo = [job for job in jobs if job.plan_id not in done]
    wanted = {job.plan_id for job in jobs}
    interrupted = False
    finished: list[PlanOutcome] = []
    try:
        evaluate_all(pool, todo, progress=progress, desc="sweep", store=store, into=finished)
    except KeyboardInterrupt:
        interrupted = True
    if store is not None:
        frame = store.consolidate(keep_parts=interrupted)
        frame = frame[frame["plan_id"].isin(wanted)].reset_index(drop=True) if not frame.empty else frame
    else:
        frame = outcomes_frame([outcome_row(outcome) for outcome in finished])
    return SweepResult(frame, planned=len(jobs), resumed=len(jobs) - len(todo), interrupted=interrupted)
