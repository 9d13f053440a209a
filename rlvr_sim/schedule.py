"""Whole-run estimates: step time integrated over a workload that changes as the run trains.

`simulate` alone multiplies one step's time by the number of steps. Real RLVR runs are not
stationary (responses grow, the pass rate moves, so dynamic sampling needs more or fewer rounds),
so `whole_run(scenario)` cuts the run into segments, simulates a few steps of the workload frozen
at each segment's representative step (`Workload.at_step`), and integrates:

    hours_total = sum over segments [a, b) of (b - a) x step_time_s(rep step) / 3600

Segments: the schedule's breakpoints (steps where a piecewise schedule jumps, a growth starts or
ends, a cap is raised, a pass-rate point sits) plus a uniform grid of `points` pieces. Within a
piece of a piecewise-constant schedule every step is alike, so the sum is exact up to the
simulation's own noise; for smooth growth it is the midpoint rule. Where two neighbouring
segments have different bottlenecks, `refine` bisects between their representative steps
(a simulation per halving) to say at which step the bottleneck moves; the segments themselves
are not changed by that search.

`RunEstimate.trend()` is the step-time trend the app plots: one `TrendPoint` per segment
(step, step time, phase shares of the critical path, bottleneck). Limits: each representative
step is simulated from an empty pipeline (async warm-up excluded by Summary); one cost model for
the whole run (the sampler's KV plan is redone per step from that step's lengths).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from rlvr_sim import rules

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario
    from rlvr_sim.sim.protocols import PlannedCostModelLike


class StepMeasure(BaseModel):
    """One representative step: what a few simulated steps of the frozen workload gave."""

    step: int
    step_time_s: float
    phase_time_s: dict[str, float]       # critical path; sums to step_time_s
    bottleneck: str
    response_tokens_mean: float
    pass_rate: float | None = None
    generation_rounds: float | None = None       # dynamic sampling: rounds per step
    wasted_output_tokens: float | None = None    # generated but not trained, per step

    @property
    def phase_share(self) -> dict[str, float]:
        t = self.step_time_s
        return {k: (v / t if t else 0.0) for k, v in self.phase_time_s.items()}


class SegmentEstimate(BaseModel):
    """Steps [start_step, end_step) priced at their representative step's measure."""

    start_step: int
    end_step: int
    measure: StepMeasure
    hours: float
    usd: float

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step


class BottleneckShift(BaseModel):
    """The bottleneck is `before` up to step `step` - 1 and `after` from `step` on (to within
    `resolution_steps`: the last bisection bracket)."""

    step: int
    before: str
    after: str
    resolution_steps: int


class TrendPoint(BaseModel):
    """One point of the step-time trend (for plots): a representative step."""

    step: int
    step_time_s: float
    phase_share: dict[str, float]
    bottleneck: str
    response_tokens_mean: float
    generation_rounds: float | None = None


class RunEstimate(BaseModel):
    """Hours and dollars of the whole run, integrated over its schedule."""

    scenario: str
    steps: int
    gpus: int
    usd_per_gpu_hour: float
    hours_total: float
    usd_total: float
    gpu_hours_total: float
    segments: list[SegmentEstimate]
    shifts: list[BottleneckShift]

    def trend(self) -> list[TrendPoint]:
        """The step-time trend over the run: one point per segment, in step order."""
        return [TrendPoint(step=s.measure.step, step_time_s=s.measure.step_time_s,
                           phase_share=s.measure.phase_share, bottleneck=s.measure.bottleneck,
                           response_tokens_mean=s.measure.response_tokens_mean,
                           generation_rounds=s.measure.generation_rounds)
                for s in self.segments]


# --- pure pieces (tested by hand) -----------------------------------------------------------
def segment_bounds(steps: int, breakpoints: list[int], points: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) covering 0..steps: breakpoints plus a uniform grid of `points` pieces."""
    if steps < 1 or points < 1:
        raise ValueError("steps and points must be >= 1")
    cuts = {0, steps} | {s for s in breakpoints if 0 < s < steps}
    cuts |= {round(i * steps / points) for i in range(1, points)}
    edges = sorted(cuts)
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def representative_step(a: int, b: int) -> int:
    """The middle step of [a, b) (midpoint rule)."""
    return (a + b - 1) // 2


def integrate_s(bounds: list[tuple[int, int]], step_time_s: list[float]) -> float:
    """Seconds of the run: sum of (b - a) x step time of each segment."""
    if len(bounds) != len(step_time_s):
        raise ValueError("one step time per segment")
    return sum((b - a) * t for (a, b), t in zip(bounds, step_time_s))


# --- simulation-backed measure ---------------------------------------------------------------
Measure = Callable[[int], StepMeasure]


def _scenario_cost_model(sc: "Scenario") -> "PlannedCostModelLike":
    """rlvr_sim.cost.CostModel of `sc`."""
    from rlvr_sim.cost import CostModel

    return CostModel.from_scenario(sc)


def simulated_measure(scenario: "Scenario", steps_per_point: int = 2,
                      cost_model: "Callable[[Scenario], PlannedCostModelLike] | None" = None,
                      exact: bool = False) -> Measure:
    """step -> StepMeasure from `steps_per_point` simulated steps of the workload frozen at that
    step (plus the async warm-up, which Summary excludes). `cost_model` builds the cost model of
    a frozen scenario (default: rlvr_sim.cost.CostModel.from_scenario)."""
    from rlvr_sim.sim.run import config_from_scenario, simulate_config

    build = cost_model if cost_model is not None else _scenario_cost_model
    o = scenario.orchestration
    warm = rules.staleness_steps(o.mode, o.max_staleness)

    def measure(step: int) -> StepMeasure:
        frozen = scenario.model_copy(update={"workload": scenario.workload.at_step(step)})
        cm = build(frozen)
        cfg = config_from_scenario(frozen, cm, steps=steps_per_point + warm,
                                   seed=scenario.workload.seed + step, exact=exact)
        s = simulate_config(cfg, cm, scenario_name=scenario.name or "scenario").summary
        w = frozen.workload
        return StepMeasure(step=step, step_time_s=s.step_time_s.mean, phase_time_s=s.phase_time_s,
                           bottleneck=s.bottleneck,
                           response_tokens_mean=w.response_tokens.mean_value(),
                           pass_rate=w.pass_rate_at(0),
                           generation_rounds=s.counters.get("generation_rounds_per_step"),
                           wasted_output_tokens=s.counters.get("wasted_output_tokens_per_step"))

    return measure


def whole_run(scenario: "Scenario", points: int = 8, steps_per_point: int = 2,
              refine: int = 4, measure: Measure | None = None) -> RunEstimate:
    """Integrate step time over the scenario's schedule (see the module docstring).

    points: uniform segments (plus the schedule's breakpoints); steps_per_point: simulated steps
    per representative step; refine: bisection halvings per bottleneck change (0: report the
    change at the later segment's first step); measure: step -> StepMeasure (default: simulate)."""
    w = scenario.workload
    measure = measure or simulated_measure(scenario, steps_per_point)
    bounds = segment_bounds(w.steps, w.schedule_breakpoints(), points)
    cache: dict[int, StepMeasure] = {}

    def at(step: int) -> StepMeasure:
        if step not in cache:
            cache[step] = measure(step)
        return cache[step]

    measures = [at(representative_step(a, b)) for a, b in bounds]
    gpus = scenario.total_gpus
    price = float(scenario.hardware_profile.datasheet.usd_per_gpu_hour)
    segments = []
    for (a, b), m in zip(bounds, measures):
        hours = (b - a) * m.step_time_s / 3600
        segments.append(SegmentEstimate(start_step=a, end_step=b, measure=m, hours=hours,
                                        usd=hours * gpus * price))
    shifts = [bottleneck_shift(at, m0, m1, refine)
              for m0, m1 in zip(measures, measures[1:]) if m0.bottleneck != m1.bottleneck]
    hours = integrate_s(bounds, [m.step_time_s for m in measures]) / 3600
    return RunEstimate(scenario=scenario.name or "scenario", steps=w.steps, gpus=gpus,
                       usd_per_gpu_hour=price, hours_total=hours, usd_total=hours * gpus * price,
                       gpu_hours_total=hours * gpus, segments=segments, shifts=shifts)


def bottleneck_shift(at: Measure, m0: StepMeasure, m1: StepMeasure, refine: int) -> BottleneckShift:
    """Bisect between two representative steps with different bottlenecks: the first step
    whose bottleneck is no longer m0's (assumes one change in between)."""
    lo, hi = m0.step, m1.step                  # bottleneck(lo) = before, bottleneck(hi) != before
    for _ in range(refine):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if at(mid).bottleneck == m0.bottleneck:
            lo = mid
        else:
            hi = mid
    return BottleneckShift(step=hi, before=m0.bottleneck, after=at(hi).bottleneck,
                           resolution_steps=hi - lo)


def format_estimate(est: RunEstimate) -> str:
    """A readable table: segments, the trend and where the bottleneck moves."""
    lines = [f"whole run over the schedule: {est.steps} steps, {est.hours_total:,.1f} h, "
             f"{est.gpu_hours_total:,.0f} GPU-h, ${est.usd_total:,.0f}",
             f"  {'steps':>13} {'rep':>6} {'resp.mean':>9} {'pass':>5} {'rounds':>6} "
             f"{'step s':>9} {'hours':>8}  bottleneck  critical-path shares"]
    for s in est.segments:
        m = s.measure
        shares = ", ".join(f"{k} {v:.0%}" for k, v in m.phase_share.items() if v >= 0.005)
        rate = f"{m.pass_rate:.2f}" if m.pass_rate is not None else "-"
        rounds = f"{m.generation_rounds:.2f}" if m.generation_rounds is not None else "-"
        lines.append(f"  {s.start_step:>6}-{s.end_step - 1:<6} {m.step:>6} "
                     f"{m.response_tokens_mean:>9,.0f} {rate:>5} {rounds:>6} {m.step_time_s:>9.1f} "
                     f"{s.hours:>8.2f}  {m.bottleneck:<10}  {shares}")
    for sh in est.shifts:
        lines.append(f"bottleneck moves from {sh.before} to {sh.after} at step {sh.step} "
                     f"(+/- {sh.resolution_steps} steps)")
    if not est.shifts:
        lines.append("bottleneck does not move over the run")
    return "\n".join(lines)


# --- plan: the recommended allocation over the whole run, and where a re-split would pay -----
class PlanSegment(BaseModel):
    """Steps [start_step, end_step): the fastest candidate allocation there."""

    start_step: int
    end_step: int
    label: str
    step_time_s: float
    bottleneck: str


class ResplitAdvice(BaseModel):
    """The recommended plan re-evaluated over the schedule, and the best candidate per segment.

    Candidates share the recommended plan's GPU type and GPU total, so switching between them
    mid-run is a re-split of the same machines. `resplit_hours` sums each segment's fastest
    candidate and ignores the cost of re-sharding (a checkpoint reload, minutes): it is an upper
    bound on what a re-split saves. `switches` are the steps where the fastest candidate changes."""

    recommended: str
    recommended_estimate: RunEstimate
    candidates: dict[str, float]              # label -> whole-run hours
    per_segment: list[PlanSegment]
    resplit_hours: float
    switches: list[BottleneckShift]           # before/after are plan labels here

    @property
    def saving_hours(self) -> float:
        return self.recommended_estimate.hours_total - self.resplit_hours


def resplit_advice(estimates: dict[str, RunEstimate], recommended: str) -> ResplitAdvice:
    """Pick the fastest candidate per segment (all estimates must share their segments)."""
    base = estimates[recommended]
    bounds = [(s.start_step, s.end_step) for s in base.segments]
    for label, est in estimates.items():
        if [(s.start_step, s.end_step) for s in est.segments] != bounds:
            raise ValueError(f"{label}: segments differ from the recommended plan's")
    per_segment = []
    for i, (a, b) in enumerate(bounds):
        label = min(estimates, key=lambda lb: (estimates[lb].segments[i].measure.step_time_s,
                                               lb != recommended, lb))
        m = estimates[label].segments[i].measure
        per_segment.append(PlanSegment(start_step=a, end_step=b, label=label,
                                       step_time_s=m.step_time_s, bottleneck=m.bottleneck))
    switches = [BottleneckShift(step=s1.start_step, before=s0.label, after=s1.label,
                                resolution_steps=s1.start_step - s0.start_step)
                for s0, s1 in zip(per_segment, per_segment[1:]) if s0.label != s1.label]
    hours = integrate_s(bounds, [p.step_time_s for p in per_segment]) / 3600
    return ResplitAdvice(recommended=recommended, recommended_estimate=base,
                         candidates={lb: e.hours_total for lb, e in estimates.items()},
                         per_segment=per_segment, resplit_hours=hours, switches=switches)


def plan_over_run(scenario: "str | Path | dict[str, Any]", overrides: dict[str, list[str]],
                  recommended: str, points: int = 8, steps_per_point: int = 2) -> ResplitAdvice:
    """Whole-run estimates of candidate allocations (label -> scenario overrides) of one base
    scenario, and the re-split advice; `recommended` must be one of the labels."""
    from rlvr_sim.scenario import load_scenario

    estimates = {label: whole_run(load_scenario(scenario, ov), points=points,
                                  steps_per_point=steps_per_point)
                 for label, ov in overrides.items()}
    return resplit_advice(estimates, recommended)


def format_advice(adv: ResplitAdvice) -> str:
    """The recommended plan over the run, then the re-split, for the plan command."""
    lines = [f"Recommended plan over the whole schedule: {adv.recommended}",
             format_estimate(adv.recommended_estimate), "",
             "Candidates (same GPUs) over the whole schedule: " + "; ".join(
                 f"{lb} {h:,.1f} h" for lb, h in sorted(adv.candidates.items(), key=lambda x: x[1]))]
    if adv.switches:
        for sw in adv.switches:
            lines.append(f"re-split at step {sw.step}: {sw.before} -> {sw.after}")
        lines.append(f"with re-splits: {adv.resplit_hours:,.1f} h vs {adv.recommended_estimate.hours_total:,.1f} h "
                     f"(saves at most {adv.saving_hours:,.1f} h; re-sharding time not counted)")
    else:
        lines.append("no re-split helps: one allocation is fastest in every segment")
    return "\n".join(lines)
