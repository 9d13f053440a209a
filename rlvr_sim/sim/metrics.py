"""`Summary`: what a simulated (or measured) run means for a planner, from its step records.

Steady state (rlvr_sim.sim.steady): the first `warmup_steps` steps are excluded from step-time
statistics and rates and reported separately as `warmup_step_time_s`: the MSER truncation of the
step times, at least max_staleness in async modes (whose first steps wait for a pipeline that is
still filling) when the run is longer than that. `steady_state` says whether the steps after it
passed the steady test; when not, `steady_note` says why (e.g. the run is too short). `hours_total` extrapolates the steady mean to the scenario's
`workload.steps` when fewer steps were simulated.

`phase_time_s` is the critical path of a mean step: the parts sum to `step_time_s.mean`.
generate = until the last sample of the step is generated (or, async, until the trainer stops
waiting), verify = the verification tail the trainer still waits for, then switch, train and
weight_sync. `phase_span_s` gives each phase's own duration (they overlap).

`utilization` is the busy fraction of each pool over the simulated wall time: sampler =
prefill + decode seconds of all replicas / (replicas x wall), verifier = service seconds /
(workers x wall), trainer = train + weight-sync seconds / wall. In colocated runs sampler and
trainer are the same GPUs, so their fractions add up (the rest is switching and idling).
`idle_s` = mean step time x (1 - utilization), per pool. `bottleneck` is the pool (or
weight_sync / switch) with the largest share of the critical path. Tokens count prompt plus
generated tokens of every sample (NeMo-RL's tokens/s/GPU); `output_*` only generated ones.
Cost counts GPU-hours of all GPUs at the profile's price; verifier CPUs are not priced.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from pydantic import BaseModel

from rlvr_sim.sim.config import SimConfig
from rlvr_sim.sim.steps import StepLog
from rlvr_sim.sim.steps import critical_path as critical_path  # public here too
from rlvr_sim.sim.steady import Rule, detect

PHASE_POOL = {"generate": "sampler", "verify": "verifier", "train": "trainer",
              "weight_sync": "weight_sync", "switch": "switch"}


class Stat(BaseModel):
    mean: float
    p50: float
    p95: float


class Staleness(BaseModel):
    mean: float
    max: int
    hist: dict[str, int]


class Cost(BaseModel):
    usd_per_gpu_hour: float
    usd_per_step: float
    usd_total: float
    gpu_hours_total: float


class Summary(BaseModel):
    """One simulated run; `model_dump()` is the `simulate --json` object."""

    scenario: str
    mode: str
    gpus: int
    sampler_gpus: int
    trainer_gpus: int
    sampler_replicas: int
    verifier_workers: int
    steps_simulated: int
    workload_steps: int
    warmup_steps: int
    warmup_step_time_s: list[float]
    steady_state: bool = True          # the steps after the warm-up passed the steady test
    steady_note: str = ""              # why not, when steady_state is False
    steady_rel_stderr: float | None = None   # standard error of the steady mean / mean
    # the run was stopped early because it certainly takes longer than this (the planner's race
    # against the plan it was compared with, whose hours this exceeds;
    # rlvr_sim.sim.steady.certainly_above); None: not stopped
    stopped_above_hours: float | None = None
    # stopped by the caller's clock (`simulate(stop_at=...)`, the planner's `--time-limit`), not
    # by a race: `stopped_above_hours` is then what is certain so far (0 when nothing is yet)
    stopped_by_clock: bool = False
    step_time_s: Stat
    phase_time_s: dict[str, float]
    phase_span_s: dict[str, float]
    train_breakdown_s: dict[str, float]
    tokens_per_step: float
    output_tokens_per_step: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    output_tokens_per_s_per_gpu: float
    utilization: dict[str, float]
    idle_s: dict[str, float]
    staleness: Staleness
    cost: Cost
    hours_total: float
    bottleneck: str
    counters: dict[str, float]

    def flat(self) -> dict[str, float | int | str | None]:
        """One row of a sweep table: nested keys joined with dots (lists dropped; None: a value
        not measured, e.g. steady_rel_stderr)."""
        out: dict[str, float | int | str | None] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif value is None or isinstance(value, (float, int, str)):   # the leaves (no list)
                out[prefix] = value

        walk("", self.model_dump())
        return out


def summarize(cfg: SimConfig, steps: StepLog, *, scenario: str, staleness: Counter[int],
              busy_s: dict[str, float], counters: dict[str, float], rule: Rule = Rule(),
              booked_until_s: dict[str, float] | None = None,
              stopped_above_hours: float | None = None, stopped_by_clock: bool = False) -> Summary:
    """Summary of the finished steps; `busy_s` holds sampler (replica-seconds) and verifier
    (worker-seconds) busy time, booked up to `booked_until_s` (default: the last finished step's
    end); the trainer's comes from the step records."""
    n = steps.finished
    times_all = np.frombuffer(steps.times_s, dtype=float) if n else np.zeros(0)
    ready = steps.ready_s.tolist() if n <= 4 * steps.keep else steps.ready_s[:2 * steps.keep].tolist()
    state = detect(times_all.tolist() if n <= 4 * steps.keep else times_all[:2 * steps.keep].tolist(),
                   cfg.staleness_bound, rule, max_warmup=max_warmup(cfg), ready_s=ready)
    warm = min(state.warmup_steps, steps.keep)
    times = times_all[warm:]
    mean_s = float(times.mean())
    wall_s = float(times_all.sum())
    steady = steps.totals(warm)
    everything = steps.totals(0)
    phase = {k: v / steady.steps for k, v in steady.path_s.items()}
    span = {k: v / steady.steps for k, v in steady.span_s.items()}
    train_parts = {k: steady.train_parts_s[k] / steady.steps for k in sorted(steady.train_parts_s)}
    tokens = steady.tokens / steady.steps
    out_tokens = steady.output_tokens / steady.steps
    booked = booked_until_s or {}
    util = {"sampler": busy_s["sampler"] / (cfg.replicas * max(wall_s, booked.get("sampler", 0.0))),
            "verifier": busy_s["verifier"] / (cfg.verifier_workers * max(wall_s, booked.get("verifier", 0.0))),
            "trainer": everything.trainer_busy_s / wall_s}
    total_steps = cfg.workload_steps or cfg.steps
    if n >= total_steps:
        hours = float(times_all[:total_steps].sum()) / 3600
    else:
        # the long-run pace: the steady mean, or the batches' pace while the trainer is still
        # using up batches made ahead (rlvr_sim.sim.steady)
        pace = state.long_run_mean_s if state.warmup_steps == warm else mean_s
        hours = (float(times_all[:warm].sum()) + pace * (total_steps - warm)) / 3600
    gpus = cfg.total_gpus
    n_stale = sum(staleness.values())
    return Summary(
        scenario=scenario, mode=f"{cfg.placement}-{cfg.mode}", gpus=gpus,
        sampler_gpus=cfg.sampler_gpus, trainer_gpus=cfg.trainer_gpus,
        sampler_replicas=cfg.replicas, verifier_workers=cfg.verifier_workers,
        steps_simulated=n, workload_steps=total_steps, warmup_steps=warm,
        warmup_step_time_s=times_all[:warm].tolist(),
        steady_state=state.reached and stopped_above_hours is None,
        steady_note=state.reason if stopped_above_hours is None else (
            f"stopped by the time limit after {n} steps, not steady: certainly slower than "
            f"{stopped_above_hours:.4g} h in all ({state.reason})" if stopped_by_clock else
            f"stopped after {n} steps: certainly slower than {stopped_above_hours:.4g} h in all, so "
            f"slower than the plan it was compared with ({state.reason})"),
        stopped_above_hours=stopped_above_hours, stopped_by_clock=stopped_by_clock,
        steady_rel_stderr=_finite(state.rel_stderr),
        step_time_s=Stat(mean=mean_s, p50=float(np.percentile(times, 50)),
                         p95=float(np.percentile(times, 95))),
        phase_time_s=phase, phase_span_s=span, train_breakdown_s=train_parts,
        tokens_per_step=tokens, output_tokens_per_step=out_tokens,
        tokens_per_s=tokens / mean_s, tokens_per_s_per_gpu=tokens / mean_s / gpus,
        output_tokens_per_s_per_gpu=out_tokens / mean_s / gpus,
        utilization=util, idle_s={k: mean_s * (1 - u) for k, u in util.items()},
        staleness=Staleness(
            mean=sum(s * c for s, c in staleness.items()) / max(n_stale, 1),
            max=max(staleness, default=0), hist={str(s): c for s, c in sorted(staleness.items())}),
        cost=Cost(usd_per_gpu_hour=cfg.usd_per_gpu_hour,
                  usd_per_step=gpus * cfg.usd_per_gpu_hour * mean_s / 3600,
                  usd_total=gpus * cfg.usd_per_gpu_hour * hours, gpu_hours_total=gpus * hours),
        hours_total=hours, bottleneck=PHASE_POOL[max(phase, key=lambda k: phase[k])], counters=counters)


def max_warmup(cfg: SimConfig) -> int | None:
    """Longest warm-up the detection may cut: none in sync runs and async runs with staleness 0
    (every step starts from the same empty pipeline), up to half the run in async ones."""
    return 0 if cfg.staleness_bound == 0 else None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
