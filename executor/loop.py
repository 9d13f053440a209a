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
import shutil
import sys

from tqdm import tqdm

from executor.checkpoint import RunState, checkpoint_identity, find_resume_point, load_checkpoint, \
    save_checkpoint
from executor.config import RunConfig
from executor.results import Evals, ExecuteResult
from executor.run import (build_policy, seed_everything, start_fresh, summarize,
                          train_config, warm_start, write_result)
from executor.sampler import HFSampler, SamplingParams
from executor.steps import StepContext, evaluate, run_step
from executor.tasks import make_task
from executor.tracing import Tracer, append_metrics, load_previous_trace, read_evals, read_metrics, \
    save_trace, truncate_metrics, write_atomic
from executor.trainer import GRPOTrainer
from executor.verifier import VerifierPool
from rlvr_sim import rules
from rlvr_sim.errors import UserError

# the run builder's names, re-exported for callers of the older home
__all__ = ["ExecuteResult", "build_policy", "check_core_mode", "run_grpo", "train_config",
           "warm_start"]


def check_core_mode(cfg: RunConfig) -> None:
    """UserError unless the run is what this loop executes: hf backend, colocated sync."""
    if cfg.spec.backend != "hf":
        raise UserError(f"executor.backend={cfg.spec.backend!r} is not run by the core loop; use "
                        "'hf' here, or `rlvr-sim execute` (it dispatches vllm/trl to their modules)")
    orch = cfg.scenario.orchestration
    if not rules.core_loop_runs(orch.placement, orch.mode, cfg.spec.backend):
        raise UserError(f"orchestration placement={orch.placement!r} mode={orch.mode!r}: the core "
                        "loop runs colocated sync only; use executor.orchestrator.run_orchestrated "
                        "(or `rlvr-sim execute`) for other modes")


def run_grpo(cfg: RunConfig, resume: bool = False, progress: bool = True) -> ExecuteResult:
    """Run (or resume) cfg.steps RL steps; returns the summary (also written to result.json)."""
    check_core_mode(cfg)
    spec = cfg.spec
    seed_everything(cfg.seed)
    identity = checkpoint_identity(cfg.scenario)
    point = find_resume_point(cfg.checkpoint_dir, identity) if resume else None   # never deletes
    ckpt = point.path if point is not None else None
    if point is not None:
        print("\n".join(point.explain()), file=sys.stderr)
    elif resume:
        print(f"resume: no checkpoint under {cfg.checkpoint_dir}; starting at step 0",
              file=sys.stderr)
    if ckpt is None:
        start_fresh(cfg, cfg.out_dir / "evals.json")
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
        evals: Evals | None = None
        if ckpt is None:
            evals = warm_start(cfg, ctx, tracer, progress)
            write_atomic(cfg.out_dir / "evals.json", evals.to_json())
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
    resumed = int(ckpt.name.split("_")[1]) if ckpt is not None else None
    return write_result(cfg, summarize(cfg, policy, evals, read_metrics(cfg.metrics_path),
                                       accuracy_after, ctx.output_tokens, resumed))
