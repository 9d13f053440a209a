"""One plan's simulation as a picklable job, and its outcome as one table row.

`evaluate_plan` is the only place a sweep touches the simulator: it loads the base scenario
with the plan's overrides, runs `simulate()` and keeps the flat summary and the resolved
scenario. A plan the scenario validator or the cost model rejects (does not fit in memory, TP
does not divide the GPUs, ...) becomes an `invalid` row with the reason, not an exception; any
other exception becomes an `error` row, so one bad point never loses a long sweep.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.grid import Plan

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


@dataclass
class PlanOutcome:
    """The result of one job: plan columns, status, reason, flat summary, resolved scenario YAML."""

    index: int
    plan_id: str
    columns: dict[str, Any]
    status: str
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    scenario_yaml: str | None = None

    def row(self) -> dict[str, Any]:
        """One table row: ids, plan values, status, summary columns, `scenario_yaml` last."""
        return {"plan_index": self.index, "plan_id": self.plan_id, **self.columns, "status": self.status,
                "error": self.error, **self.summary, "scenario_yaml": self.scenario_yaml}


Evaluate = Callable[[PlanJob], PlanOutcome]


def scenario_fingerprint(scenario: str | Path | dict[str, Any]) -> str:
    """Content hash of the base scenario (file bytes, or the canonical JSON of a mapping)."""
    if isinstance(scenario, dict):
        data = json.dumps(scenario, sort_keys=True, default=str).encode()
    else:
        data = Path(scenario).read_bytes()
    return hashlib.sha1(data).hexdigest()


def plan_id(fingerprint: str, plan: Plan, steps: int | None, seed: int | None) -> str:
    """Stable id of (base scenario, overrides, steps, seed): what resuming a sweep matches on."""
    text = json.dumps([fingerprint, plan.overrides(), steps, seed])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def make_jobs(scenario: str | Path | dict[str, Any], plans: list[Plan], steps: int | None,
              seed: int | None) -> list[PlanJob]:
    """Jobs for `plans` on one base scenario; paths become absolute so any worker can read them."""
    source: str | dict[str, Any] = scenario if isinstance(scenario, dict) else str(Path(scenario).resolve())
    fingerprint = scenario_fingerprint(source)
    return [PlanJob(i, plan, source, steps, seed, plan_id(fingerprint, plan, steps, seed))
            for i, plan in enumerate(plans)]


def _cell(value: Any) -> Any:
    """Scalar table cell: lists/dicts become JSON text so every column stores in Parquet."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def evaluate_plan(job: PlanJob) -> PlanOutcome:
    """Simulate one plan with the real simulator (imported here so workers import it lazily)."""
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim.run import simulate

    columns = job.plan.columns()
    try:
        scenario = load_scenario(job.scenario, overrides=job.plan.overrides())
    except UserError as exc:
        return PlanOutcome(job.index, job.plan_id, columns, STATUS_INVALID, str(exc))
    scenario_yaml = scenario.resolved_yaml()
    try:
        result = simulate(scenario, steps=job.steps, seed=job.seed)
    except UserError as exc:
        return PlanOutcome(job.index, job.plan_id, columns, STATUS_INVALID, str(exc), scenario_yaml=scenario_yaml)
    except Exception as exc:  # noqa: BLE001 - a sweep records a simulator failure and goes on
        return PlanOutcome(job.index, job.plan_id, columns, STATUS_ERROR, f"{type(exc).__name__}: {exc}",
                           scenario_yaml=scenario_yaml)
    summary = {key: _cell(value) for key, value in result.summary.flat().items()}
    return PlanOutcome(job.index, job.plan_id, columns, STATUS_OK, None, summary, scenario_yaml)


def preload_simulator() -> None:
    """Import the scenario loader and simulator now, so forked pool workers inherit them instead of
    each paying the import (about 1 CPU-second) on its first plan."""
    import rlvr_sim.scenario  # noqa: F401
    import rlvr_sim.sim.run  # noqa: F401


def evaluate_chunk(evaluate: Evaluate, jobs: list[PlanJob]) -> list[PlanOutcome]:
    """Run a few jobs in one worker call (fewer round trips than one task per plan)."""
    return [evaluate(job) for job in jobs]
