"""The typed vocabulary of `rlvr_sim.api`: the requests clients send and the results they get.

A request is a frozen dataclass (hashable: clients cache on it): where the scenario comes from
(`ScenarioSource`), the knobs every client shares (`RunSettings`: run length, price, hardware
profile, as ordinary `dotted.key=value` overrides) and what to run. A result holds the library's
typed objects (`Scenario`, `Summary`, `Recommendation`). The operations are `rlvr_sim.api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from rlvr_sim.errors import ScenarioError
from rlvr_sim.scenario import Scenario
from rlvr_sim.sim.metrics import PHASE_POOL, Summary
from rlvr_sim.sim.steps import StepRecord, critical_path
from rlvr_sim.schedule import RunEstimate
from rlvr_sim.sweep.evaluator import GroupGap
from rlvr_sim.sweep.recommend import Recommendation

# --- requests -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioSource:
    """A base scenario: a file (path set; relative paths in it resolve next to it) or YAML text."""

    label: str
    text: str
    path: str | None = None

    def mapping(self) -> dict[str, Any]:
        """The YAML as a mapping; ScenarioError naming `label` when it is not one (the YAML
        error's own text, line, column and caret, is kept)."""
        try:
            data = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{self.label} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"{self.label} must be a YAML mapping with at least `model:`; "
                                f"got {type(data).__name__}")
        return data

    def base(self) -> str | dict[str, Any]:
        """What `load_scenario` takes: the file path, else the mapping."""
        return self.path if self.path is not None else self.mapping()


DATASHEET = "datasheet"


@dataclass(frozen=True)
class RunSettings:
    """Knobs outside the scenario file. None keeps the file's value.

    profile: None keeps the file's `profile:`; "datasheet" removes it (catalog datasheet and
    default efficiencies); a path loads that profile."""

    run_steps: int | None = None
    usd_per_gpu_hour: float | None = None
    profile: str | None = None

    def overrides(self) -> tuple[str, ...]:
        out = []
        if self.run_steps is not None:
            out.append(f"workload.steps={int(self.run_steps)}")
        if self.usd_per_gpu_hour is not None:
            out.append(f"hardware.usd_per_gpu_hour={float(self.usd_per_gpu_hour):g}")
        if self.profile == DATASHEET:
            out.append("profile=datasheet")
        elif self.profile is not None:
            out.append(f"profile={self.profile}")
        return tuple(out)


@dataclass(frozen=True)
class SimulateRequest:
    """Simulate one plan: base scenario + overrides + shared settings; `sim_steps` RL steps
    (None: every step of the run)."""

    source: ScenarioSource
    overrides: tuple[str, ...] = ()
    settings: RunSettings = RunSettings()
    sim_steps: int | None = None
    seed: int | None = None

    def all_overrides(self) -> tuple[str, ...]:
        return tuple(self.overrides) + self.settings.overrides()


@dataclass(frozen=True)
class TrendPoint:
    """One simulated step: its time, each phase's share of its critical path, its bottleneck."""

    step: int
    step_time_s: float
    phase_share: dict[str, float]
    bottleneck: str


def step_trend(steps: list[StepRecord]) -> list[TrendPoint]:
    """Per-step times and critical-path shares of the simulated steps (`metrics.critical_path`).
    Integration point: the scheduling issue's whole-run trend function replaces this when merged
    (it covers steps that were not simulated)."""
    points = []
    for record in steps:
        path = critical_path(record)
        total = sum(path.values())
        share = {k: v / total for k, v in path.items()} if total > 0 else {k: 0.0 for k in path}
        slowest = max(path, key=lambda phase: path[phase])
        points.append(TrendPoint(record.step, record.time_s, share, PHASE_POOL[slowest]))
    return points


@dataclass
class SimulateResult:
    """One simulated plan. `summary.steps_simulated` / `workload_steps` say how much of the run
    was simulated; `hours_total` and `cost` extrapolate the steady-state mean to the rest."""

    scenario: Scenario
    scenario_yaml: str
    summary: Summary
    trace: pd.DataFrame
    usd_per_gpu_hour: float
    profile_source: str
    trend: list[TrendPoint]
    run_estimate: RunEstimate | None = None   # scenarios with a workload schedule: the whole run


    @property
    def extrapolated(self) -> bool:
        return self.summary.steps_simulated < self.summary.workload_steps


@dataclass(frozen=True)
class PlanRequest:
    """`rlvr-sim plan` as a request: search allocations of at most `total_gpus` GPUs."""

    source: ScenarioSource
    total_gpus: int
    overrides: tuple[str, ...] = ()
    settings: RunSettings = RunSettings()
    sim_steps: int | None = None          # None: the plan command's default steps per plan
    draws: int | None = None              # robustness draws (None: the plan command's default)
    budget_usd: float | None = None
    deadline_hours: float | None = None
    gpus: tuple[str, ...] = ()            # GPU types to compare (default: the scenario's)
    workers: int = 1
    seed: int | None = None
    gap: float = 0.0                      # stop each GPU total within this fraction of its optimum
    time_limit_s: float | None = None     # start no plan after this (`plan --time-limit`)


@dataclass
class PlanResult:
    """The recommendation, every simulated plan (a sweep table with `label`), and the work done."""

    recommendation: Recommendation
    table: pd.DataFrame
    evaluated: int
    valid: int
    invalid: int
    errors: int
    rounds: int
    steps_per_plan: int | None
    base_yaml: str
    gaps: tuple[GroupGap, ...] = ()       # per GPU total: how far its best can be from its optimum
    skipped: tuple[str, ...] = ()         # stages the time limit skipped

    @property
    def robustness(self) -> Any | None:
        """The planner's robustness report of the recommendation, when this build has one
        (integration point: `Recommendation.robustness` from the planner issue)."""
        return getattr(self.recommendation, "robustness", None)

    @property
    def placement(self) -> str:
        return self.recommendation.allocation.placement

    @property
    def synchronous(self) -> bool:
        return self.recommendation.allocation.max_staleness == 0

    def recommended_overrides(self) -> tuple[str, ...]:
        """The overrides that turn the base scenario into the recommended plan."""
        return tuple(self.recommendation.allocation.plan().overrides())


@dataclass(frozen=True)
class GridRequest:
    """A sweep over `axes` (`key=v1,v2` strings) of one base scenario."""

    source: ScenarioSource
    axes: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    settings: RunSettings = RunSettings()
    sim_steps: int | None = None
    workers: int = 1

