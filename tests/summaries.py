"""Test helper: a typed `Summary` holding only the numbers the planner reads (imported by the
sweep/plan tests; pytest puts this folder on sys.path)."""

from __future__ import annotations

from rlvr_sim.sim.metrics import Cost, Stat, Staleness, Summary


def toy_summary(hours: float, usd: float, step: float, util_sampler: float, util_trainer: float,
                bottleneck: str) -> Summary:
    """A `Summary` holding the numbers the planner reads (the rest zero / empty)."""
    util = {"sampler": util_sampler, "trainer": util_trainer, "verifier": 0.0}
    return Summary(scenario="toy", mode="toy", gpus=1, sampler_gpus=1, trainer_gpus=1, sampler_replicas=1,
                   verifier_workers=1, steps_simulated=4, workload_steps=100, warmup_steps=0,
                   warmup_step_time_s=[], step_time_s=Stat(mean=step, p50=step, p95=step), phase_time_s={},
                   phase_span_s={}, train_breakdown_s={}, tokens_per_step=0.0, output_tokens_per_step=0.0,
                   tokens_per_s=0.0, tokens_per_s_per_gpu=0.0, output_tokens_per_s_per_gpu=0.0,
                   utilization=util, idle_s={k: step * (1 - u) for k, u in util.items()},
                   staleness=Staleness(mean=0.0, max=0, hist={}),
                   cost=Cost(usd_per_gpu_hour=0.0, usd_per_step=0.0, usd_total=usd, gpu_hours_total=0.0),
                   hours_total=hours, bottleneck=bottleneck, counters={})
