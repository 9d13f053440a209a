"""The run builder every executor entry point uses (sync loop, async orchestrator, expert
iteration, TRL backend): seeding, the policy, the trainer settings, the SFT warm-start,
clearing a previous run's outputs, and the one run summary (`ExecuteResult`, result.json).

What differs between the entry points (the step loop) stays in their modules; what a run is
made of and what it reports is decided here once.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from executor.config import RunConfig
from executor.policy import Policy, build_random_policy, load_policy
from executor.results import Evals, ExecuteResult, PhaseTimes, StepTimeStats
from executor.sft import run_sft
from executor.steps import StepContext, evaluate
from executor.tracing import StepMetrics, Tracer
from executor.trainer import LossConfig, TrainConfig


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_policy(cfg: RunConfig) -> Policy:
    """The scenario's policy: a local checkpoint (executor.model_path) or a seeded random init."""
    spec = cfg.spec
    if spec.model_path:
        return load_policy(spec.model_path, spec.device, spec.dtype, spec.threads)
    return build_random_policy(cfg.scenario.model.to_hf_config_dict(), spec.device, spec.dtype,
                               spec.threads, seed=cfg.seed)


def train_config(cfg: RunConfig) -> TrainConfig:
    s = cfg.spec
    return TrainConfig(
        lr=s.lr, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
        loss=LossConfig(s.loss_type, s.beta, s.epsilon_low, s.epsilon_high, cfg.max_new_tokens),
        scale_rewards=s.scale_rewards, mini_batches=cfg.mini_batches,
        num_iterations=s.num_iterations, temperature=s.temperature,
        warmup_updates=s.warmup_steps * cfg.mini_batches * s.num_iterations)


def start_fresh(cfg: RunConfig, *more: Path) -> None:
    """Remove a previous run's metrics and trace (and `more`) and create cfg.out_dir."""
    for stale in (cfg.metrics_path, cfg.trace_path, *more):
        stale.unlink(missing_ok=True)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)


def warm_start(cfg: RunConfig, ctx: StepContext, tracer: Tracer, progress: bool) -> Evals:
    """SFT warm-start and held-out accuracy before/after it."""
    spec, policy = cfg.spec, ctx.policy
    initial, final_loss = evaluate(ctx, policy.model), None
    if spec.sft_steps:
        sft = run_sft(policy.model, policy.tokenizer, ctx.task, cfg.seed, spec.sft_steps,
                      spec.sft_lr, spec.sft_batch_size, progress)
        tracer.event("trainer", 0, "sft", -1, 0, tracer.rel_perf(sft.start), tracer.rel_perf(sft.end),
                   sft.sequences, 0, 0, steps=sft.steps, tokens=sft.tokens, final_loss=sft.final_loss)
        final_loss = sft.final_loss
    return Evals(initial, evaluate(ctx, policy.model), final_loss)


def summarize(cfg: RunConfig, policy: Policy, evals: Evals | None, rows: list[StepMetrics],
              accuracy_after: float, output_tokens: int,
              resumed_from_step: int | None = None) -> ExecuteResult:
    """The run summary from its StepMetrics rows (mean rewards of the first/last quarter of
    steps, step time mean/p50, summed phase seconds, generated tokens per generate second).
    What no step measured is NaN (no rows) and unknown evaluations are None, never 0."""
    rewards = [m.mean_reward for m in rows]
    quarter = max(len(rewards) // 4, 1)
    times = [m.step_s for m in rows]
    phases = PhaseTimes(generate=sum(m.generate_s for m in rows), verify=sum(m.verify_s for m in rows),
                        train=sum(m.train_s for m in rows),
                        weight_sync=sum(m.weight_sync_s for m in rows))
    return ExecuteResult(
        run_id=cfg.run_id, steps=len(rows), resumed_from_step=resumed_from_step,
        policy=policy.describe(),
        accuracy_initial=evals.accuracy_initial if evals is not None else None,
        accuracy_after_sft=evals.accuracy_after_sft if evals is not None else None,
        accuracy_after_grpo=accuracy_after,
        mean_reward_first=statistics.fmean(rewards[:quarter]) if rewards else math.nan,
        mean_reward_last=statistics.fmean(rewards[-quarter:]) if rewards else math.nan,
        step_time_s=StepTimeStats(mean=statistics.fmean(times) if times else math.nan,
                                  p50=statistics.median(times) if times else math.nan),
        phase_time_s=phases,
        output_tokens_per_s=output_tokens / phases.generate if phases.generate > 0 else math.nan,
        trace_path=str(cfg.trace_path), metrics_path=str(cfg.metrics_path))


def write_result(cfg: RunConfig, result: ExecuteResult, evals: Evals | None = None,
                 extra: dict[str, Any] | None = None) -> ExecuteResult:
    """result.json (the summary, plus `extra` fields of the entry point) and evals.json."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    if evals is not None:
        (cfg.out_dir / "evals.json").write_text(evals.to_json())
    (cfg.out_dir / "result.json").write_text(json.dumps({**asdict(result), **(extra or {})}, indent=2))
    return result
