"""`Summary`: what a simulated (or measured) run means for a planner, from its step records.

Steady state: the first `warmup_steps` steps are excluded from step-time statistics and rates
(0 in sync modes, where every step starts from the same empty state; max_staleness in async
modes, whose first steps wait for a pipeline that is still filling) and reported separately as
`warmup_step_time_s`. `hours_total` extrapolates the steady mean to the scenario's
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

from collections import Counter

import numpy as np
from pydantic import BaseModel

from rlvr_sim.sim.config import SimConfig
from rlvr_sim.sim.recorder import StepRecord

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

    def flat(self) -> dict[str, float | int | str]:
        """One row of a sweep table: nested keys joined with dots (lists dropped)."""
        out: dict[str, float | int | str] = {}

        def walk(prefix: str, value) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif not isinstance(value, list):
                out[prefix] = value

        walk("", self.model_dump())
        return out


def critical_path(r: StepRecord) -> dict[str, float]:
    """Split one step's time into the parts the trainer waited for; they sum to r.time_s."""
    switch_in = r.switch_s / 2 if r.switch_s else 0.0
    pre = r.train_start_s - r.start_s
    generate = min(max(r.gen_end_s - r.start_s, 0.0), max(pre - switch_in, 0.0))
    return {"generate": generate, "verify": max(pre - switch_in - generate, 0.0),
            "switch": r.switch_s, "train": r.train_end_s - r.train_start_s,
            "weight_sync": r.weight_sync_s}


def summarize(cfg: SimConfig, steps: list[StepRecord], *, scenario: str, staleness: Counter,
              busy_s: dict[str, float], counters: dict[str, float]) -> Summary:
    """Summary of the simulated steps; `busy_s` holds sampler (replica-seconds), verifier
    (worker-seconds) and trainer (pool-seconds) busy time."""
    warm = cfg.staleness_bound if len(steps) > cfg.staleness_bound else 0
    steady = steps[warm:]
    times = np.array([r.time_s for r in steady])
    mean_s = float(times.mean())
    wall_s = steps[-1].end_s
    paths = [critical_path(r) for r in steady]
    phase = {k: float(np.mean([p[k] for p in paths])) for k in paths[0]}
    span = {"generate": _mean(r.gen_end_s - r.gen_start_s for r in steady),
            "verify_after_generate": _mean(max(r.verify_end_s - r.gen_end_s, 0.0) for r in steady),
            "train": _mean(r.train_end_s - r.train_start_s for r in steady),
            "weight_sync": _mean(r.weight_sync_s for r in steady)}
    parts = sorted({k for r in steady for k in r.train_parts_s})
    train_parts = {k: _mean(r.train_parts_s.get(k, 0.0) for r in steady) for k in parts}
    tokens = _mean(r.prompt_tokens + r.output_tokens for r in steady)
    out_tokens = _mean(r.output_tokens for r in steady)
    util = {"sampler": busy_s["sampler"] / (cfg.replicas * wall_s),
            "verifier": busy_s["verifier"] / (cfg.verifier_workers * wall_s),
            "trainer": busy_s["trainer"] / wall_s}
    total_steps = cfg.workload_steps or cfg.steps
    if len(steps) >= total_steps:
        hours = steps[total_steps - 1].end_s / 3600
    else:
        hours = (sum(r.time_s for r in steps[:warm]) + mean_s * (total_steps - warm)) / 3600
    gpus = cfg.total_gpus
    n_stale = sum(staleness.values())
    return Summary(
        scenario=scenario, mode=f"{cfg.placement}-{cfg.mode}", gpus=gpus,
        sampler_gpus=cfg.sampler_gpus, trainer_gpus=cfg.trainer_gpus,
        sampler_replicas=cfg.replicas, verifier_workers=cfg.verifier_workers,
        steps_simulated=len(steps), workload_steps=total_steps, warmup_steps=warm,
        warmup_step_time_s=[r.time_s for r in steps[:warm]],
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
        hours_total=hours, bottleneck=PHASE_POOL[max(phase, key=phase.get)], counters=counters)


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0
