"""Synchronous colocated GRPO: sample -> verify -> train -> sync sampler weights, seeded.

`run_grpo(cfg)` builds every piece from a RunConfig, optionally warm-starts with SFT, scores a
held-out set greedily before and after, and writes the trace, the per-step metrics and
atomic checkpoints under cfg.out_dir. With `resume=True` it continues from the latest
checkpoint: steps after it are redone, so the metrics/trace step sequence has no gap and no
duplicate. Sampling seeds derive from (seed, step), so a resumed run draws what an
uninterrupted one would have.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import statistics
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch

from executor.checkpoint import RunState, checkpoint_identity, find_resume_point, load_checkpoint, \
    save_checkpoint
from executor.config import RunConfig
from executor.policy import Policy, build_random_policy, load_policy
from executor.sampler import HFSampler, SamplingParams
from executor.sft import run_sft
from executor.steps import StepContext, evaluate, run_step
from executor.tasks import make_task
from executor.tracing import Tracer, append_metrics, load_previous_trace, read_evals, read_metrics, \
    save_trace, truncate_metrics, write_atomic
from executor.trainer import GRPOTrainer, LossConfig, TrainConfig
from executor.verifier import VerifierPool
from rlvr_sim.errors import UserError


@dataclass
class ExecuteResult:
    """What `rlvr-sim execute --json` prints."""

    run_id: str
    steps: int
    resumed_from_step: int | None
    policy: dict
    accuracy_initial: float | None       # held-out greedy accuracy before SFT (fresh runs)
    accuracy_after_sft: float | None     # ... after SFT = before GRPO
    accuracy_after_grpo: float
    mean_reward_first: float             # mean reward of the first / last quarter of steps
    mean_reward_last: float
    step_time_s: dict
    phase_time_s: dict
    output_tokens_per_s: float
    trace_path: str
    metrics_path: str


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_policy(cfg: RunConfig) -> Policy:
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


def warm_start(cfg: RunConfig, ctx: StepContext, tracer: Tracer, progress: bool) -> dict:
    """SFT warm-start and held-out accuracy before/after it; returns the eval record."""
    spec, policy = cfg.spec, ctx.policy
    record = {"accuracy_initial": evaluate(ctx, policy.model)}
    if spec.sft_steps:
        sft = run_sft(policy.model, policy.tokenizer, ctx.task, cfg.seed, spec.sft_steps,
                      spec.sft_lr, spec.sft_batch_size, progress)
        tracer.add("trainer", 0, "sft", -1, 0, tracer.rel_perf(sft.start), tracer.rel_perf(sft.end),
                   sft.sequences, 0, 0, steps=sft.steps, tokens=sft.tokens, final_loss=sft.final_loss)
        record["sft_final_loss"] = sft.final_loss
    record["accuracy_after_sft"] = evaluate(ctx, policy.model)
    return record


def _summary(cfg: RunConfig, ctx: StepContext, evals: dict, resumed: int | None,
             accuracy_after: float) -> ExecuteResult:
    rows = read_metrics(cfg.metrics_path)
    rewards = [m.mean_reward for m in rows]
    quarter = max(len(rewards) // 4, 1)
    times = [m.step_s for m in rows] or [0.0]
    phases = {k: sum(getattr(m, f"{k}_s") for m in rows)
              for k in ("generate", "verify", "train", "weight_sync")}
    return ExecuteResult(
        run_id=cfg.run_id, steps=len(rows), resumed_from_step=resumed, policy=ctx.policy.describe(),
        accuracy_initial=evals.get("accuracy_initial"),
        accuracy_after_sft=evals.get("accuracy_after_sft"), accuracy_after_grpo=accuracy_after,
        mean_reward_first=statistics.fmean(rewards[:quarter]) if rewards else 0.0,
        mean_reward_last=statistics.fmean(rewards[-quarter:]) if rewards else 0.0,
        step_time_s={"mean": statistics.fmean(times), "p50": statistics.median(times)},
        phase_time_s=phases, output_tokens_per_s=ctx.output_tokens / max(phases["generate"], 1e-9),
        trace_path=str(cfg.trace_path), metrics_path=str(cfg.metrics_path))


def check_core_mode(cfg: RunConfig) -> None:
    """UserError unless the run is what this loop executes: hf backend, colocated sync."""
    if cfg.spec.backend != "hf":
        raise UserError(f"executor.backend={cfg.spec.backend!r} is not run by the core loop; use "
                        "'hf' here, or `rlvr-sim execute` (it dispatches vllm/trl to their modules)")
    orch = cfg.scenario.orchestration
    if orch.placement != "colocated" or orch.mode != "sync":
        raise UserError(f"orchestration placement={orch.placement!r} mode={orch.mode!r}: the core "
                        "loop runs colocated sync only; use executor.orchestrator.run_orchestrated "
                        "(or `rlvr-sim execute`) for other modes")


def run_grpo(cfg: RunConfig, resume: bool = False, progress: bool = True) -> ExecuteResult:
    """Run (or resume) cfg.steps RL steps; returns the summary (also written to result.json)."""
    from tqdm import tqdm

    check_core_mode(cfg)
    spec = cfg.spec
    _seed_everything(cfg.seed)
    identity = checkpoint_identity(cfg.scenario)
    point = find_resume_point(cfg.checkpoint_dir, identity) if resume else None   # never deletes
    ckpt = point.path if point is not None else None
    if point is not None:
        print("\n".join(point.explain()), file=sys.stderr)
    elif resume:
        print(f"resume: no checkpoint under {cfg.checkpoint_dir}; starting at step 0",
              file=sys.stderr)
    if ckpt is None:
        for stale in (cfg.metrics_path, cfg.trace_path, cfg.out_dir / "evals.json"):
            stale.unlink(missing_ok=True)
        if any(cfg.checkpoint_dir.glob("step_*")):
            print(f"starting over: replacing the checkpoints in {cfg.checkpoint_dir} (--resume "
                  "continues from them instead)", file=sys.stderr)
        shutil.rmtree(cfg.checkpoint_dir, ignore_errors=True)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    policy = build_policy(cfg)
    task = make_task(spec)
    with VerifierPool(task, cfg.verifier_workers) as pool:
        pool.warm_up()
        params = SamplingParams(cfg.samples_per_prompt, cfg.max_new_tokens, spec.temperature, spec.top_p)
        ctx = StepContext(cfg=cfg, policy=policy, task=task, pool=pool, params=params)
        state, previous, tracer = RunState(0, 0, 0, False), None, Tracer(cfg.run_id)
        if ckpt is None:
            evals = warm_start(cfg, ctx, tracer, progress)
            write_atomic(cfg.out_dir / "evals.json", json.dumps(evals))
        ref_model = copy.deepcopy(policy.model).eval().requires_grad_(False) if spec.beta > 0 else None
        trainer = GRPOTrainer(policy.model, train_config(cfg), policy.tokenizer.pad_token_id, ref_model)
        if ckpt is not None:
            state = load_checkpoint(ckpt, policy.model, trainer.optimizer, ref_model)
            evals = read_evals(cfg.out_dir / "evals.json")
            previous = load_previous_trace(cfg.trace_path, state.steps_done - 1)
            truncate_metrics(cfg.metrics_path, state.steps_done - 1)
            tracer = Tracer(cfg.run_id, float(previous["end_s"].max()) if previous is not None
                            and len(previous) else 0.0)
        sampler = HFSampler(copy.deepcopy(policy.model), policy.tokenizer.eos_token_id,
                            policy.tokenizer.pad_token_id)
        sampler.policy_version = state.policy_version
        ctx.sampler, ctx.trainer, ctx.tracer = sampler, trainer, tracer
        ctx.data_cursor = state.data_cursor
        for step in tqdm(range(state.steps_done, cfg.steps), desc="grpo", disable=not progress,
                         initial=state.steps_done, total=cfg.steps):
            append_metrics(cfg.metrics_path, run_step(ctx, step))
            state = RunState(step + 1, ctx.data_cursor, sampler.policy_version, True)
            if spec.checkpoint_every and (step + 1) % spec.checkpoint_every == 0:
                save_trace(tracer, cfg.trace_path, previous)
                save_checkpoint(cfg.checkpoint_dir, state, policy.model, trainer.optimizer, ref_model,
                                identity=identity)
        save_trace(tracer, cfg.trace_path, previous)
        save_checkpoint(cfg.checkpoint_dir, state, policy.model, trainer.optimizer, ref_model,
                        identity=identity)
        accuracy_after = evaluate(ctx, policy.model)
    result = _summary(cfg, ctx, evals, ckpt and int(ckpt.name.split("_")[1]), accuracy_after)
    (cfg.out_dir / "result.json").write_text(json.dumps(asdict(result), indent=2))
    return result
