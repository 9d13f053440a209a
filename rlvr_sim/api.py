"""Typed entry points for clients of the library (the Streamlit app): requests in, results out.

The requests and results are `rlvr_sim.api_types` (re-exported here). Each function here
composes existing library calls (`load_scenario`, `sim.run.simulate`, the
`plan` search and recommendation, the sweep grid) and adds no numbers of its own. A request is
a frozen dataclass (hashable: clients cache on it); a result is a dataclass holding the
library's typed objects (`Scenario`, `Summary`, `Recommendation`). Input problems raise
`rlvr_sim.errors.UserError` as everywhere else.

What a request adds to a scenario file are the knobs every client shares: the run length
(`workload.steps`), the price (`hardware.usd_per_gpu_hour`) and the hardware profile, each
turned into an ordinary `dotted.key=value` override (`RunSettings.overrides`), so results say
which step count, price and profile they used.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

import pandas as pd
import yaml

from rlvr_sim.commands import plan as plan_command
from rlvr_sim.commands.plan_decision import decide
from rlvr_sim.commands.plan_space import build_space
from rlvr_sim.api_types import (DATASHEET, GridRequest, PlanRequest, PlanResult, RunSettings,
                                ScenarioSource, SimulateRequest, SimulateResult, TrendPoint,
                                step_trend)
from rlvr_sim.distributions import LogNormal
from rlvr_sim.errors import UserError
from rlvr_sim.hardware import HardwareProfile, gpu_names
from rlvr_sim.model_spec import catalog_names
from rlvr_sim.rules import COLOCATED
from rlvr_sim.scenario import Scenario, Workload, apply_overrides, load_scenario
from rlvr_sim.sim.run import simulate as run_simulation
from rlvr_sim.schedule import whole_run
from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep.grid import grid_plans
from rlvr_sim.sweep.jobs import PlanOutcome, make_jobs
from rlvr_sim.sweep.pools import Pool, open_pool, streaming
from rlvr_sim.sweep.store import outcomes_frame

__all__ = [
    "DATASHEET", "ScenarioSource", "RunSettings", "SimulateRequest", "SimulateResult", "PlanRequest", "PlanResult",
    "GridRequest", "Question", "TrendPoint", "step_trend", "ProfileInfo", "ProfileKind", "load", "simulate", "plan", "grid",
    "question_scenario", "question_plan_request", "list_profiles", "default_plan_steps", "model_names",
    "gpu_names", "field_help", "UserError", "run_simulation", "is_colocated", "profile_kind",
    "default_response_sigma", "finite",
]


# --- simulate ----------------------------------------------------------------------------------
def load(source: ScenarioSource, overrides: tuple[str, ...] = (), check_fit: bool = True) -> Scenario:
    """The validated Scenario of `source` with `overrides` (ScenarioError on any problem)."""
    return load_scenario(source.base(), overrides=list(overrides), check_fit=check_fit)


def simulate(request: SimulateRequest) -> SimulateResult:
    """Load and simulate one plan (`sim.run.simulate`; no `sim_steps`: until steady)."""
    if request.sim_steps is not None and request.sim_steps < 1:
        raise UserError(f"steps to simulate {request.sim_steps}: give at least 1, or none to simulate "
                        "until the step time is steady")
    scenario = load(request.source, request.all_overrides())
    # no step count: until steady by the planner's rule (what `plan` does for every plan)
    result = run_simulation(scenario, steps=request.sim_steps, seed=request.seed,
                            until_steady=PLANNER_RULE if request.sim_steps is None else None)
    profile = scenario.hardware_profile
    # a run whose lengths or pass rate change over its steps: hours integrated over the schedule
    estimate = whole_run(scenario) if scenario.workload.has_schedule else None
    return SimulateResult(scenario, scenario.resolved_yaml(), result.summary, result.trace,
                          float(profile.datasheet.usd_per_gpu_hour), profile.source, step_trend(result.steps),
                          estimate)


# --- plan --------------------------------------------------------------------------------------
def default_plan_steps() -> int | None:
    """Simulated steps per plan when a request gives none: the `plan` command's own default."""
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    value = parser.get_default("steps")
    return int(value) if value else None


def _plan_defaults() -> dict[str, Any]:
    """Every option of the `plan` command at its default (the search space's TP, staleness and
    size options), so the app searches exactly what the command searches."""
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    return vars(parser.parse_args(["SCENARIO", "--total-gpus", "1"]))


class _CountingPool:
    """A pool that reports every finished plan to `on_outcome` (a client's progress text)."""

    def __init__(self, inner: Pool, on_outcome: Callable[[PlanOutcome], None] | None):
        self.inner, self.on_outcome = inner, on_outcome
        self.workers = getattr(inner, "workers", 1)
        self._stream = streaming(inner)

    def run(self, jobs: list[Any]) -> Any:
        for outcome in self.inner.run(jobs):
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            yield outcome

    def submit(self, job: Any) -> None:
        """Streaming (rlvr_sim.sweep.pools.Streaming), so the app's searches keep every worker busy."""
        self._stream.submit(job)

    def next_done(self) -> PlanOutcome:
        outcome = self._stream.next_done()
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def close(self) -> None:
        self.inner.close()


def plan(request: PlanRequest, on_outcome: Callable[[PlanOutcome], None] | None = None) -> PlanResult:
    """The `plan` command's search and recommendation for a typed request.

    The base scenario with the request's overrides and settings is resolved (check_fit off: the
    search varies what must fit) and written to a temporary file the search reads; the search
    space comes from the command's own defaults (`commands.plan_space.build_space`)."""
    steps = request.sim_steps if request.sim_steps is not None else default_plan_steps()
    if steps is not None and steps < 1:
        raise UserError(f"steps per plan {steps}: give at least 1")
    base = load(request.source, tuple(request.overrides) + request.settings.overrides(), check_fit=False)
    base_yaml = base.resolved_yaml()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.yaml"
        path.write_text(base_yaml)
        # integration point: when commands.plan takes a typed options object, build it here
        args = argparse.Namespace(**{**_plan_defaults(), "scenario": str(path), "total_gpus": int(request.total_gpus),
                                     "gpu": ",".join(request.gpus) or None, "steps": steps, "seed": request.seed,
                                     "budget_usd": request.budget_usd, "deadline_hours": request.deadline_hours,
                                     "workers": request.workers, "set": [], "gap": request.gap,
                                     "time_limit": request.time_limit_s})
        plan_command.check_early_stop(args)
        space, start = build_space(args)
        pool = _CountingPool(open_pool(request.workers), on_outcome)
        # the command's own rule: each plan simulated until its step time is steady (no fixed steps)
        rule = replace(PLANNER_RULE, max_steps=args.max_steps)
        if request.draws is not None:
            args.draws = request.draws
        try:
            # the command's own decision: search, confirm the closest contenders, recommend, draws
            decision = decide(args, space, start, pool, rule, base)
        finally:
            pool.close()
    result, rec = decision.result, decision.rec
    counts = result.counts()
    return PlanResult(rec, result.table, counts["evaluated"], counts["ok"], counts["invalid"], counts["error"],
                      result.rounds, steps, base_yaml, result.gaps, decision.skipped)


def grid(request: GridRequest, on_outcome: Callable[[PlanOutcome], None] | None = None) -> pd.DataFrame:
    """Simulate the cross product of the axes (`sweep --grid`): one row per plan, invalid plans
    kept as rows with their reason."""
    base = apply_overrides(request.source.mapping(), tuple(request.overrides) + request.settings.overrides()) \
        if request.source.path is None else None
    scenario: str | dict[str, Any]
    if base is None:   # a file: keep its folder for relative paths; overrides go first in every plan
        scenario = request.source.path or ""
        prefix = tuple(request.overrides) + request.settings.overrides()
    else:
        scenario, prefix = base, ()
    plans = grid_plans(list(request.axes))
    if prefix:
        from rlvr_sim.sweep.grid import Plan

        fixed = tuple((k, v) for k, _, v in (o.partition("=") for o in prefix))
        plans = [Plan(fixed + p.settings) for p in plans]
    jobs = make_jobs(scenario, plans, request.sim_steps, None)
    rows: list[dict[str, Any]] = []
    pool = _CountingPool(open_pool(request.workers), on_outcome)
    try:
        for outcome in pool.run(jobs):
            rows.append(outcome.row())
    finally:
        pool.close()
    return outcomes_frame(rows)


# --- the guided question -------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    """"N GPUs of type G, model M, P prompts x K samples, responses ~T up to L tokens, S steps:
    colocated or split, sync or async, hours and dollars?" (deadline or budget optional)."""

    gpus: int
    gpu: str
    model: str
    prompts_per_step: int
    samples_per_prompt: int
    typical_response_tokens: int
    max_response_tokens: int
    steps: int
    deadline_hours: float | None = None
    budget_usd: float | None = None
    usd_per_gpu_hour: float | None = None
    response_sigma: float | None = None   # None: the schema's default spread of response lengths
    sim_steps: int | None = None


def default_response_sigma() -> float:
    """The spread (std of log length) of the schema's default response-length distribution."""
    default = Workload.model_fields["response_tokens"].get_default(call_default_factory=True,
                                                                   validated_data={})
    return float(default.sigma) if isinstance(default, LogNormal) else 1.0


def question_scenario(q: Question) -> dict[str, Any]:
    """The scenario mapping a question describes: the answers, schema defaults for the rest.

    Response lengths: a log-normal whose uncapped mean is the typical length, clipped at the
    maximum (`LogNormal`: the capped mean is lower; the app shows both)."""
    if q.max_response_tokens < q.typical_response_tokens:
        raise UserError(f"max response length {q.max_response_tokens}: below the typical length "
                        f"{q.typical_response_tokens}; give a maximum at least the typical length")
    sigma = default_response_sigma() if q.response_sigma is None else q.response_sigma
    return {
        "name": f"{q.gpus}x {q.gpu} {q.model} {q.prompts_per_step}x{q.samples_per_prompt}",
        "model": q.model,
        "hardware": {"gpu": q.gpu, **({"usd_per_gpu_hour": q.usd_per_gpu_hour} if q.usd_per_gpu_hour else {})},
        "workload": {"prompts_per_step": q.prompts_per_step, "samples_per_prompt": q.samples_per_prompt,
                     "steps": q.steps,
                     "response_tokens": {"dist": "lognormal", "mean": q.typical_response_tokens, "sigma": sigma,
                                         "cap": q.max_response_tokens}},
        "sampler": {"gpus": q.gpus}, "trainer": {"gpus": q.gpus},
    }


def question_plan_request(q: Question, workers: int = 1) -> PlanRequest:
    """The plan request that answers a question (its scenario as YAML text)."""
    text = yaml.safe_dump(question_scenario(q), sort_keys=False)
    return PlanRequest(ScenarioSource("question.yaml", text), total_gpus=q.gpus, sim_steps=q.sim_steps,
                       budget_usd=q.budget_usd, deadline_hours=q.deadline_hours, workers=workers)


# --- profiles ----------------------------------------------------------------------------------
ProfileKind = Literal["datasheet", "public", "calibrated"]


@dataclass(frozen=True)
class ProfileInfo:
    """A hardware profile file and what kind of numbers it holds."""

    path: Path
    gpu: str
    kind: ProfileKind
    source: str


def profile_kind(path: Path, profile: HardwareProfile) -> ProfileKind:
    """calibrated: fitted on a machine (`source: calibrated ...`); public: public component
    measurements (`<gpu>.public.yaml` or `source: public ...`); else datasheet.
    Integration point: the `public` branch's `HardwareProfile` source labels."""
    label = str(getattr(profile, "source_kind", "") or profile.source).lower()
    if label.startswith("calibrated"):
        return "calibrated"
    if label.startswith("public") or path.name.endswith(".public.yaml"):
        return "public"
    return "datasheet"


def list_profiles(folder: Path) -> list[ProfileInfo]:
    """Profiles under `folder` (`*.yaml`, any depth) that load; files that do not are skipped."""
    found = []
    for path in sorted(folder.rglob("*.y*ml")) if folder.is_dir() else []:
        try:
            profile = HardwareProfile.load(path)
        except UserError:
            continue
        found.append(ProfileInfo(path, profile.gpu, profile_kind(path, profile), profile.source))
    return found


# --- catalog and schema ------------------------------------------------------------------------
def model_names() -> list[str]:
    return list(catalog_names())


def field_help(dotted: str) -> str:
    """The scenario schema's `Field(description=...)` of a dotted field ('' when it has none)."""
    model: Any = Scenario
    info = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return ""
        info = fields[part]
        model = next((a for a in (info.annotation, *getattr(info.annotation, "__args__", ()))
                      if hasattr(a, "model_fields")), None)
    return str(info.description or "") if info is not None else ""


def finite(value: float | None) -> float | None:
    """None for a missing or non-finite number (shown as missing, never as 0)."""
    return None if value is None or not math.isfinite(float(value)) else float(value)


def is_colocated(placement: str) -> bool:
    return placement == COLOCATED


