"""The trainer side of disaggregated/async runs: consume batches, train, send weights, trace.

The trainer process (the caller's) owns the policy and optimiser; the sampler runs in
`executor.sampler_worker`. Per RL step the trainer takes the next batch from the queue (an
`idle` row when it had to wait), drops it if it is older than the bound under
stale_policy="drop", trains on it with the behaviour log-probs as old log-probs, and sends the
new weights (trainer `weight_sync` row: snapshot + enqueue). The sampler's generate / verify /
weight-load / wait rows travel with each batch and are put on the trainer's trace clock.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from tqdm import tqdm

from executor.channels import (Counts, Orchestration, SamplerProcess, next_message, send_weights,
                               start_sampler, stop_sampler, train_on, wait_ready)
from executor.config import RunConfig
from executor.records import (Learning, PhaseSeconds, rollout_metrics, trace_generate, trace_train,
                              trace_weight_sync)
from executor.results import ExecuteResult
from executor.run import (build_policy, seed_everything, start_fresh, summarize,
                          train_config, warm_start, write_result)
from executor.sampler import SamplingParams
from executor.sampler_worker import SampleMessage
from executor.steps import StepContext, evaluate
from executor.tasks import make_task
from executor.trainer import GRPOTrainer, TrainStats
from executor.tracing import StepMetrics, Tracer, append_metrics, save_trace
from executor.verifier import VerifierPool

__all__ = ["run_trainer_side", "seed_everything"]


def _trace_sampler_side(tracer: Tracer, msg: SampleMessage, step: int, staleness: int,
                        counts: Counts, dropped: bool) -> None:
    """The sampler's rows of one batch (generate with per-sample staleness, verify, loads, waits)."""
    v = msg.policy_version
    trace_generate(tracer, step, v, *msg.generate_perf, msg.timing, [staleness] * len(msg.rollouts),
                   batch_index=msg.batch_index, dropped=dropped,
                   **{k: val for k, val in msg.backend_extra.items() if k != "requests"})
    tracer.verify_events(step, v, msg.results)
    for load in msg.weight_loads:
        tracer.event("sampler", 0, "weight_sync", step, load.version, tracer.rel_perf(load.start_perf),
                   tracer.rel_perf(load.end_perf), transfer_s=load.start_perf - load.sent_perf)
    for wait in msg.waits:
        tracer.event("sampler", 0, "idle", step, v, tracer.rel_perf(wait.start_perf),
                   tracer.rel_perf(wait.end_perf), reason=wait.kind)
        if wait.kind == "admission":
            counts.admission_waits += 1
            counts.admission_wait_s += wait.end_perf - wait.start_perf


def _take_batch(tracer: Tracer, batches: Any, proc: Any, step: int, orch: Orchestration,
                counts: Counts) -> tuple[SampleMessage, int]:
    """The next batch usable at trainer version `step` (dropping too-old ones under 'drop')."""
    while True:
        msg = next_message(batches, proc)
        if msg is None:
            raise RuntimeError(f"sampler finished before step {step}")
        staleness = step - msg.policy_version
        if staleness <= orch.max_staleness:
            return msg, staleness
        if orch.stale_policy == "block":
            raise RuntimeError(f"staleness {staleness} > bound {orch.max_staleness} under 'block'")
        counts.dropped_batches += 1
        counts.dropped_samples += len(msg.rollouts)
        _trace_sampler_side(tracer, msg, step, staleness, counts, dropped=True)


def _metrics(step: int, msg: SampleMessage, stats: TrainStats, step_s: float, train_s: float,
             sync_s: float) -> StepMetrics:
    return rollout_metrics(
        step, msg.policy_version, [r.reward for r in msg.results], msg.rollouts, Learning.of(stats),
        PhaseSeconds(step_s, msg.generate_perf[1] - msg.generate_perf[0],
                     msg.verify_perf[1] - msg.verify_perf[0], train_s, sync_s), msg.data_cursor)


def run_trainer_side(cfg: RunConfig, orch: Orchestration, workdir: str,
                     progress: bool) -> tuple[ExecuteResult, Counts]:
    """All RL steps of a disaggregated/async run; returns (ExecuteResult, Counts)."""
    seed_everything(cfg.seed)
    start_fresh(cfg)
    policy, task, tracer, counts = build_policy(cfg), make_task(cfg.spec), Tracer(cfg.run_id), Counts()
    sp = start_sampler(cfg, orch, workdir)                 # starts meanwhile
    try:
        with VerifierPool(task, 1) as eval_pool:
            ctx = StepContext(cfg=cfg, policy=policy, task=task, pool=eval_pool,
                              params=SamplingParams(cfg.samples_per_prompt, cfg.max_new_tokens))
            evals = warm_start(cfg, ctx, tracer, progress)
            ref = copy.deepcopy(policy.model).eval().requires_grad_(False) if cfg.spec.beta > 0 else None
            trainer = GRPOTrainer(policy.model, train_config(cfg), policy.tokenizer.pad_token_id, ref)
            wait_ready(sp.proc, sp.ready)
            rows, wall_s, tokens = _steps(cfg, orch, tracer, trainer, policy, counts,
                                          sp, progress)
            stop_sampler(sp.proc, sp.batches, sp.stop)
            save_trace(tracer, cfg.trace_path, None)
            accuracy_after = evaluate(ctx, policy.model)
    finally:
        stop_sampler(sp.proc, sp.batches, sp.stop)
    counts.wall_s, counts.output_tokens = wall_s, tokens
    result = summarize(cfg, policy, evals, rows, accuracy_after, tokens)
    return write_result(cfg, result, evals), counts


def _steps(cfg: RunConfig, orch: Orchestration, tracer: Tracer, trainer, policy, counts: Counts,
           sp: SamplerProcess, progress: bool) -> tuple[list[StepMetrics], float, int]:
    """The RL steps: take a batch, train, send weights. Returns (metrics, wall_s, tokens)."""
    proc, batches, weights = sp.proc, sp.batches, sp.weights
    rows, tokens = [], 0
    send_weights(policy.model, weights, 0)
    loop_start = last_end = time.perf_counter()
    for step in tqdm(range(cfg.steps), desc=orch.label, disable=not progress):
        w0 = time.perf_counter()
        msg, staleness = _take_batch(tracer, batches, proc, step, orch, counts)
        w1 = time.perf_counter()
        if w1 - w0 > 1e-3:
            tracer.event("trainer", 0, "idle", step, step, tracer.rel_perf(w0), tracer.rel_perf(w1),
                       reason="waiting for a batch")
        counts.staleness_hist[staleness] += len(msg.rollouts)
        _trace_sampler_side(tracer, msg, step, staleness, counts, dropped=False)
        stats = train_on(trainer, msg, cfg.samples_per_prompt)
        t3 = time.perf_counter()
        trace_train(tracer, step, step, w1, stats)
        s0, s1, size = send_weights(policy.model, weights, step + 1)
        trace_weight_sync(tracer, step, step + 1, s0, s1, size, pools=("trainer",))
        rows.append(_metrics(step, msg, stats, s1 - last_end, t3 - w1, s1 - s0))
        append_metrics(cfg.metrics_path, rows[-1])
        tokens += msg.timing.output_tokens
        last_end = s1
    return rows, last_end - loop_start, tokens
