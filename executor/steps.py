"""One synchronous colocated RL step, and greedy held-out evaluation.

`run_step` does sample -> verify -> train -> weight sync for one step, writes its trace rows
and returns its StepMetrics. The sampling seed is a function of (run seed, step), so a resumed
run reproduces the draws of an uninterrupted one.
With `workload.dynamic_sampling` enabled, `run_filtered_step` generates rounds and keeps only
groups whose rewards are not all equal (DAPO / verl filter_groups); only this core loop
(`run_grpo`) implements it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from executor.config import RunConfig
from executor.policy import Policy
from executor.records import (Learning, PhaseSeconds, rollout_metrics, step_metrics, trace_generate,
                              trace_train, trace_weight_sync)
from executor.sampler import HFSampler, Rollout, SamplingParams
from executor.tasks import Problem, Task, problems
from executor.tracing import StepMetrics, Tracer
from executor.trainer import GRPOTrainer
from executor.verifier import VerifierPool
from executor.weight_sync import sync_weights
from rlvr_sim.dynamic_sampling import prompts_per_round

__all__ = ["StepContext", "decode", "evaluate", "round_seed", "run_filtered_step", "run_step",
           "signal_groups", "step_seed", "trace_train"]


@dataclass
class StepContext:
    """Everything a step needs; `data_cursor` advances by prompts_per_step each step."""

    cfg: RunConfig
    policy: Policy
    task: Task
    pool: VerifierPool
    params: SamplingParams
    sampler: HFSampler | None = None      # the core loop generates with the HF backend
    trainer: GRPOTrainer | None = None
    tracer: Tracer | None = None
    data_cursor: int = 0
    output_tokens: int = field(default=0)

    def parts(self) -> tuple[HFSampler, GRPOTrainer, Tracer]:
        """The sampler, trainer and tracer a step needs (set by the loop before the first)."""
        if self.sampler is None or self.trainer is None or self.tracer is None:
            raise RuntimeError("StepContext: set sampler, trainer and tracer before running a step")
        return self.sampler, self.trainer, self.tracer


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + 17) % (2**63)


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


@torch.no_grad()
def evaluate(ctx: StepContext, model: torch.nn.Module) -> float:
    """Greedy accuracy on held-out problems 0..eval_problems-1 of the "eval" stream."""
    n = ctx.cfg.spec.eval_problems
    if n == 0:
        return float("nan")
    tok = ctx.policy.tokenizer
    probs = problems(ctx.task, ctx.cfg.seed, 0, n, stream="eval")
    sampler = HFSampler(model, tok.eos_token_id, tok.pad_token_id)
    batch = sampler.generate([tok.encode(p.prompt, add_special_tokens=False) for p in probs],
                             SamplingParams(1, ctx.cfg.max_new_tokens, greedy=True))
    results = ctx.pool.score([(p, decode(tok, r.completion_ids)) for p, r in zip(probs, batch.rollouts)])
    return sum(r.reward for r in results) / n


def run_step(ctx: StepContext, step: int) -> StepMetrics:
    """Sample -> verify -> train -> sync for RL step `step` (dynamic sampling: see
    `run_filtered_step`)."""
    ds = ctx.cfg.scenario.workload.dynamic_sampling
    if ds is not None and ds.enabled:
        return run_filtered_step(ctx, step, ds)
    sampler, trainer, tracer = ctx.parts()
    cfg, tok = ctx.cfg, ctx.policy.tokenizer
    version = sampler.policy_version
    probs = problems(ctx.task, cfg.seed, ctx.data_cursor, cfg.prompts_per_step)
    ctx.data_cursor += cfg.prompts_per_step
    futures: dict[int, Future] = {}

    def verify_now(row: int, r: Rollout) -> None:      # scored while the other samples still decode
        futures[row] = ctx.pool.submit(row, probs[r.group], decode(tok, r.completion_ids))

    t0 = time.perf_counter()
    batch = sampler.generate([tok.encode(p.prompt, add_special_tokens=False) for p in probs],
                             ctx.params, seed=step_seed(cfg.seed, step), on_finished=verify_now)
    t1 = time.perf_counter()
    results = ctx.pool.gather([futures[row] for row in range(len(batch.rollouts))], t0)
    t2 = time.perf_counter()
    rewards = [r.reward for r in results]
    stats = trainer.step(batch.rollouts, rewards, cfg.samples_per_prompt)
    t3 = time.perf_counter()
    sync = sync_weights(ctx.policy.model, sampler)
    t4 = time.perf_counter()
    ctx.output_tokens += batch.timing.output_tokens
    trace_generate(tracer, step, version, t0, t1, batch.timing,
                   [version - r.policy_version for r in batch.rollouts])
    tracer.verify_events(step, version, results)
    trace_train(tracer, step, version, t2, stats)
    trace_weight_sync(tracer, step, sync.policy_version, sync.start, sync.end, sync.bytes)
    return rollout_metrics(step, version, rewards, batch.rollouts, Learning.of(stats),
                           PhaseSeconds(t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3), ctx.data_cursor)


# --- dynamic sampling (DAPO / verl `filter_groups`) ------------------------------------------
def signal_groups(rewards: list[float], k: int) -> list[bool]:
    """Per group of k consecutive (prompt-major) rewards: True when they are not all equal,
    i.e. the group has a GRPO signal (all-equal groups get zero advantages)."""
    if k < 1 or len(rewards) % k:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {k}")
    return [len(set(rewards[i:i + k])) > 1 for i in range(0, len(rewards), k)]


def round_seed(seed: int, step: int, rnd: int) -> int:
    """Sampling seed of generation round `rnd` of a step (round 0: the step's own seed)."""
    return (step_seed(seed, step) + rnd * 104_729) % (2**63)


def run_filtered_step(ctx: StepContext, step: int, ds) -> StepMetrics:
    """One RL step with dynamic sampling: generate rounds of ceil(oversample x prompts_per_step)
    fresh prompts, score them, keep the groups whose k rewards are not all equal, until
    prompts_per_step groups are kept (the surplus of the last round is dropped, as verl trims
    the batch) or `ds.max_rounds` rounds ran; then train on the kept groups. If no group had
    a signal after max_rounds, the last round is trained as is (all advantages 0; verl raises
    an error there instead). Each round is a `generate` trace row with extra round,
    signal_groups and kept_groups; learning metrics (reward, accuracy, lengths) cover every
    generated sample, the step's timings every round."""

    sampler, trainer, tracer = ctx.parts()
    cfg, tok = ctx.cfg, ctx.policy.tokenizer
    version = sampler.policy_version
    k, target = cfg.samples_per_prompt, cfg.prompts_per_step
    m = prompts_per_round(target, ds.oversample_factor)
    kept_rollouts: list[Rollout] = []
    kept_rewards: list[float] = []
    all_rewards: list[float] = []
    lengths: list[int] = []
    finished: list[bool] = []
    generate_s = verify_s = 0.0
    last: tuple[list[Rollout], list[float]] = ([], [])
    t_start = time.perf_counter()
    for rnd in range(ds.max_rounds):
        probs = problems(ctx.task, cfg.seed, ctx.data_cursor, m)
        ctx.data_cursor += m
        futures: dict[int, Future] = {}

        def verify_now(row: int, r: Rollout, probs: list[Problem] = probs,
                       futures: dict[int, Future] = futures) -> None:
            futures[row] = ctx.pool.submit(row, probs[r.group], decode(tok, r.completion_ids))

        t0 = time.perf_counter()
        batch = sampler.generate([tok.encode(p.prompt, add_special_tokens=False) for p in probs],
                                 ctx.params, seed=round_seed(cfg.seed, step, rnd),
                                 on_finished=verify_now)
        t1 = time.perf_counter()
        results = ctx.pool.gather([futures[row] for row in range(len(batch.rollouts))], t0)
        t2 = time.perf_counter()
        generate_s, verify_s = generate_s + t1 - t0, verify_s + t2 - t1
        rewards = [r.reward for r in results]
        signal = signal_groups(rewards, k)
        kept_before = len(kept_rollouts) // k
        for g, ok in enumerate(signal):
            if ok and len(kept_rollouts) < target * k:
                kept_rollouts += batch.rollouts[g * k:(g + 1) * k]
                kept_rewards += rewards[g * k:(g + 1) * k]
        ctx.output_tokens += batch.timing.output_tokens
        trace_generate(tracer, step, version, t0, t1, batch.timing,
                       [version - r.policy_version for r in batch.rollouts], round=rnd,
                       signal_groups=sum(signal), kept_groups=len(kept_rollouts) // k - kept_before)
        tracer.verify_events(step, version, results)
        all_rewards += rewards
        lengths += [len(r.completion_ids) for r in batch.rollouts]
        finished += [r.finished for r in batch.rollouts]
        last = (batch.rollouts, rewards)
        if len(kept_rollouts) >= target * k:
            break
    if not kept_rollouts:
        kept_rollouts, kept_rewards = last
    t2 = time.perf_counter()
    stats = trainer.step(kept_rollouts, kept_rewards, k)
    t3 = time.perf_counter()
    sync = sync_weights(ctx.policy.model, sampler)
    t4 = time.perf_counter()
    trace_train(tracer, step, version, t2, stats)
    trace_weight_sync(tracer, step, sync.policy_version, sync.start, sync.end, sync.bytes)
    return step_metrics(step, version, all_rewards, sum(lengths) / len(lengths),
                        sum(finished) / len(lengths), Learning.of(stats),
                        PhaseSeconds(t4 - t_start, generate_s, verify_s, t3 - t2, t4 - t3),
                        ctx.data_cursor)
