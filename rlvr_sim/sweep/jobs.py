"""One plan's simulation as a picklable job, and its outcome as one table row.

`evaluate_plan` is the only place a sweep touches the simulator: it loads the base scenario
with the plan's overrides, runs `simulate()` (a fixed number of steps, or until the step time is
steady) and keeps the typed `Summary` and the resolved scenario. Readers use `PlanMetrics`, a
typed projection of the Summary fields the planner needs; the Summary is flattened into columns
only where a table is written (rlvr_sim.sweep.store). A plan the scenario validator or the cost model rejects (does not fit in memory, TP
does not divide the GPUs, ...) becomes an `invalid` row with the reason, not an exception; any
other exception becomes an `error` row, so one bad point never loses a long sweep.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rlvr_sim.errors import UserError
from rlvr_sim.sim.metrics import Summary
from rlvr_sim.sim.steady import Rule
from rlvr_sim.sweep.grid import Plan

if TYPE_CHECKING:
    from rlvr_sim.sweep.robust import Perturbation

STATUS_OK = "ok"
STATUS_INVALID = "invalid"
STATUS_ERROR = "error"


@dataclass(frozen=True)
class PlanJob:
    """Everything a worker needs to simulate one plan (no open files, no live objects)."""

    index: int
    plan: Plan
    scenario: str | dict[str, Any]   # absolute path, or the raw scenario mapping
    steps: int | None
    seed: int | None
    plan_id: str
    steady: Rule | None = None                  # with steps None: simulate until steady
    perturb: "Perturbation | None" = None       # robustness draw applied to the scenario
    # race: stop once the plan certainly takes longer than this (`raced`); None: never
    stop_above_hours: float | None = None
    # hard time limit: stop at the first step end past this `time.time()` instant (None: never);
    # the result is then partial, like a race's (`Summary.stopped_by_clock`)
    stop_at: float | None = None

    def raced(self, hours: float | None) -> "PlanJob":
        """This job, stopped once it certainly takes longer than `hours` in all (None or inf: run
        to the end; rlvr_sim.sim.steady.slower_than). Only with a steady rule (an adaptive run);
        a stopped plan is a different result, so it gets its own id."""
        if hours is None or not math.isfinite(hours) or self.steady is None or self.steps is not None:
            return self
        rid = hashlib.sha1(f"{self.plan_id}|stop_above={hours!r}".encode()).hexdigest()[:16]
        return replace(self, stop_above_hours=hours, plan_id=rid)


@dataclass(frozen=True)
class PoolValues:
    """One number per pool."""

    sampler: float
    trainer: float
    verifier: float

    def as_dict(self) -> dict[str, float]:
        return {"sampler": self.sampler, "trainer": self.trainer, "verifier": self.verifier}


@dataclass(frozen=True)
class PlanMetrics:
    """The Summary fields the planner and the recommendation read, typed (`of` is the one place
    they are read, so renaming a Summary field fails here, in tests and in the type check)."""

    hours_total: float
    usd_total: float
    step_time_s: float
    utilization: PoolValues
    idle_s: PoolValues
    bottleneck: str
    steps_simulated: int
    warmup_steps: int
    steady_state: bool
    stopped_above_hours: float | None    # stopped early: certainly slower than this (a race)
    rel_stderr: float | None = None      # standard error of the steady mean / mean (None: unknown)

    @classmethod
    def of(cls, s: Summary) -> "PlanMetrics":
        return cls(hours_total=s.hours_total, usd_total=s.cost.usd_total,
                   step_time_s=s.step_time_s.mean,
                   utilization=PoolValues(s.utilization["sampler"], s.utilization["trainer"],
                                          s.utilization["verifier"]),
                   idle_s=PoolValues(s.idle_s["sampler"], s.idle_s["trainer"], s.idle_s["verifier"]),
                   bottleneck=s.bottleneck, steps_simulated=s.steps_simulated,
                   warmup_steps=s.warmup_steps, steady_state=s.steady_state,
                   stopped_above_hours=s.stopped_above_hours, rel_stderr=s.steady_rel_stderr)


@dataclass
class PlanOutcome:
    """The result of one job: plan columns, status, reason, typed summary, resolved scenario YAML."""

    index: int
    plan_id: str
    columns: dict[str, Any]
    status: str
    error: str | None = None
    summary: Summary | None = None
    scenario_yaml: str | None = None
    cached: bool = False          # read from the result cache, not simulated by this run
    confirmed: bool = False       # a longer run of a close contender (rlvr_sim.sweep.confirm)

    @property
    def metrics(self) -> PlanMetrics | None:
        """What the planner reads; None unless the plan simulated (`status == ok`)."""
        return PlanMetrics.of(self.summary) if self.summary is not None and self.status == STATUS_OK else None

    @property
    def steps_simulated(self) -> int | None:
        return self.summary.steps_simulated if self.summary is not None else None

    def row(self) -> dict[str, Any]:
        """The table row (`rlvr_sim.sweep.store.outcome_row`, where the Summary is flattened)."""
        from rlvr_sim.sweep.store import outcome_row

        return outcome_row(self)


Evaluate = Callable[[PlanJob], PlanOutcome]


def scenario_fingerprint(scenario: str | Path | dict[str, Any]) -> str:
    """Content hash of the base scenario (file bytes, or the canonical JSON of a mapping)."""
    if isinstance(scenario, dict):
        data = json.dumps(scenario, sort_keys=True, default=str).encode()
    else:
        data = Path(scenario).read_bytes()
    return hashlib.sha1(data).hexdigest()


def plan_id(fingerprint: str, plan: Plan, steps: int | None, seed: int | None,
            extra: object = None) -> str:
    """Stable id of (base scenario, overrides, steps, seed[, steady rule / draw]): what resuming
    a sweep matches on."""
    items: list[object] = [fingerprint, plan.overrides(), steps, seed]
    if extra is not None:
        items.append(repr(extra))
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:16]


def make_jobs(scenario: str | Path | dict[str, Any], plans: list[Plan], steps: int | None,
              seed: int | None, steady: Rule | None = None,
              perturb: "Perturbation | None" = None) -> list[PlanJob]:
    """Jobs for `plans` on one base scenario; paths become absolute so any worker can read them."""
    source: str | dict[str, Any] = scenario if isinstance(scenario, dict) else str(Path(scenario).resolve())
    fingerprint = scenario_fingerprint(source)
    extra = None if steady is None and perturb is None else (steady, perturb)
    return [PlanJob(i, plan, source, steps, seed, plan_id(fingerprint, plan, steps, seed, extra), steady, perturb)
            for i, plan in enumerate(plans)]


def evaluate_plan(job: PlanJob, use_cache: bool = True) -> PlanOutcome:
    """Simulate one plan with the real simulator (imported here so workers import it lazily),
    or read its result from the on-disk cache (rlvr_sim.sweep.result_cache: same scenario,
    profile, steps, seed, rule, race and code; `use_cache=False` or RLVR_SIM_CACHE=off: always
    simulate). Errors other than the simulator's rejections are never cached."""
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim.run import simulate
    from rlvr_sim.sweep import result_cache

    columns = job.plan.columns()
    try:
        scenario = load_scenario(job.scenario, overrides=job.plan.overrides())
    except UserError as exc:
        return PlanOutcome(job.index, job.plan_id, columns, STATUS_INVALID, str(exc))
    scenario_yaml = scenario.resolved_yaml()
    profile = None
    key = None
    try:
        if job.perturb is not None:
            scenario, profile = job.perturb.apply(scenario)
        if use_cache:
            key = result_cache.result_key(
                json.dumps(scenario.resolved_dict(), sort_keys=True, default=str),
                (profile or scenario.hardware_profile).model_dump_json(), job.steps, job.seed,
                job.steady if job.steps is None else None)
            hit = result_cache.load(key, job.stop_above_hours)
            if hit is not None:
                return PlanOutcome(job.index, job.plan_id, columns, hit.status, hit.error, hit.summary,
                                   scenario_yaml, cached=True)
        result = simulate(scenario, steps=job.steps, seed=job.seed, trace=False,
                          until_steady=job.steady if job.steps is None else None, profile=profile,
                          stop_above_hours=job.stop_above_hours, stop_at=job.stop_at)
    except UserError as exc:
        if key is not None:
            result_cache.save(key, result_cache.CachedResult(STATUS_INVALID, str(exc), None))
        return PlanOutcome(job.index, job.plan_id, columns, STATUS_INVALID, str(exc), scenario_yaml=scenario_yaml)
    except Exception as exc:  # noqa: BLE001 - a sweep records a simulator failure and goes on
        return PlanOutcome(job.index, job.plan_id, columns, STATUS_ERROR, f"{type(exc).__name__}: {exc}",
                           scenario_yaml=scenario_yaml)
    clock_nothing = result.summary.stopped_by_clock and not result.summary.stopped_above_hours
    if key is not None and not clock_nothing:    # a clock stop that knows nothing is not kept
        result_cache.save(key, result_cache.CachedResult(STATUS_OK, None, result.summary))
    return PlanOutcome(job.index, job.plan_id, columns, STATUS_OK, None, result.summary, scenario_yaml)


def preload_simulator() -> None:
    """Import the scenario loader and simulator now, so forked pool workers inherit them instead of
    each paying the import (about 1 CPU-second) on its first plan."""
    import rlvr_sim.scenario  # noqa: F401
    import rlvr_sim.sim.run  # noqa: F401


def evaluate_chunk(evaluate: Evaluate, jobs: list[PlanJob]) -> list[PlanOutcome]:
    """Run a few jobs in one worker call (fewer round trips than one task per plan)."""
    return [evaluate(job) for job in jobs]
