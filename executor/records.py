"""What one RL step writes, in one place for every entry point: its `generate` trace row, its
trainer rows and its `StepMetrics` row.

The sync loop (`executor.steps`), the async trainer side (`executor.orchestrator_trainer`),
expert iteration (`executor.self_improve`) and the TRL backend all record through these
functions, so a step looks the same in the trace and metrics whichever path ran it (as
`rlvr_sim/sim/recorder.py` is the simulator's one writer). A learning statistic the step did
not measure (TRL did not log it) is NaN, never 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from executor.sampler import Rollout, SampleTiming
from executor.tracing import StepMetrics, Tracer
from executor.trainer import TrainStats

MISSING = math.nan      # a statistic the run did not measure


@dataclass(frozen=True)
class Learning:
    """The learning statistics of one update (NaN where not measured)."""

    loss: float = MISSING
    kl: float = MISSING
    entropy: float = MISSING
    clip_fraction: float = MISSING
    grad_norm: float = MISSING

    @classmethod
    def of(cls, stats: TrainStats) -> Learning:
        return cls(stats.loss, stats.kl, stats.entropy, stats.clip_fraction, stats.grad_norm)


@dataclass(frozen=True)
class PhaseSeconds:
    """Wall seconds of one step and of its phases."""

    step_s: float
    generate_s: float
    verify_s: float
    train_s: float
    weight_sync_s: float


def step_metrics(step: int, policy_version: int, rewards: Sequence[float],
                 response_tokens_mean: float, finished_fraction: float, learning: Learning,
                 seconds: PhaseSeconds, data_cursor: int) -> StepMetrics:
    """The StepMetrics row of a step: mean reward and accuracy (reward 1) over `rewards`."""
    return StepMetrics(
        step=step, policy_version=policy_version, mean_reward=statistics.fmean(rewards),
        accuracy=sum(r == 1.0 for r in rewards) / len(rewards), kl=learning.kl,
        entropy=learning.entropy, loss=learning.loss, clip_fraction=learning.clip_fraction,
        grad_norm=learning.grad_norm, response_tokens_mean=response_tokens_mean,
        finished_fraction=finished_fraction, step_s=seconds.step_s,
        generate_s=seconds.generate_s, verify_s=seconds.verify_s, train_s=seconds.train_s,
        weight_sync_s=seconds.weight_sync_s, data_cursor=data_cursor)


def rollout_metrics(step: int, policy_version: int, rewards: Sequence[float],
                    rollouts: Sequence[Rollout], learning: Learning, seconds: PhaseSeconds,
                    data_cursor: int) -> StepMetrics:
    """`step_metrics` with the mean response length and finished fraction of `rollouts`."""
    return step_metrics(step, policy_version, rewards,
                        statistics.fmean(len(r.completion_ids) for r in rollouts),
                        sum(r.finished for r in rollouts) / len(rollouts), learning, seconds,
                        data_cursor)


def trace_generate(tracer: Tracer, step: int, version: int, start_perf: float, end_perf: float,
                   timing: SampleTiming, staleness: list[int], **extra: Any) -> None:
    """The sampler's `generate` row of one generate call (perf_counter start/end)."""
    tracer.event("sampler", 0, "generate", step, version, tracer.rel_perf(start_perf),
               tracer.rel_perf(end_perf), timing.sequences, timing.prompt_tokens,
               timing.output_tokens, prefill_s=timing.prefill_s, decode_s=timing.decode_s,
               decode_iterations=timing.decode_iterations, staleness=staleness, **extra)


def trace_train(tracer: Tracer, step: int, version: int, t0: float, stats: TrainStats) -> None:
    """Trainer rows of one step: each timed phase, plus batching/advantages before the first."""
    for ph in stats.phases:
        tracer.event("trainer", 0, ph.name, step, version, tracer.rel_perf(ph.start),
                   tracer.rel_perf(ph.end), ph.sequences, 0, ph.tokens, **ph.extra)
    first = min((ph.start for ph in stats.phases), default=t0)
    if first > t0:
        tracer.event("trainer", 0, "train", step, version, tracer.rel_perf(t0), tracer.rel_perf(first),
                   stats.sequences, 0, stats.tokens, part="batching+advantages")


def trace_weight_sync(tracer: Tracer, step: int, version: int, start_perf: float, end_perf: float,
                      size_bytes: int, pools: tuple[str, ...] = ("trainer", "sampler")) -> None:
    """`weight_sync` rows (policy_version = the version sent) on each of `pools`."""
    for pool in pools:
        tracer.event(pool, 0, "weight_sync", step, version, tracer.rel_perf(start_perf),
                   tracer.rel_perf(end_perf), bytes=size_bytes)
