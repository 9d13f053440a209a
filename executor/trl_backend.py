"""`executor.backend: trl`: TRL 1.16's GRPOTrainer on the same scenario, traced like our loop.

Same model (our policy, after the same SFT warm-start), same task problems in the same order
(shuffle off: RL step s sees training problems s*P .. s*P+P-1, as the core loop does), same
reward (the task checker in our verifier pool), same k, batch, response cap, lr, loss type,
epsilons, beta, mini-batches and iterations (TRL: steps_per_generation = mini_batches, so one
RL step is mini_batches x num_iterations TRL optimizer steps), temperature/top_p, AdamW with our weight decay, constant lr,
on CPU (`use_cpu=True, bf16=False, report_to="none"`).

Timing: TRL's own `profiling_context` blocks (`transformers.generate`, the reward function,
per-token log-prob forwards) are captured by wrapping `ProfilingContext.__exit__` for the
duration of the run; optimizer steps come from trainer callbacks, backward from a wrapper on
`accelerator.backward`. Limits: TRL generates with plain `model.generate` (no prefix sharing
across the k samples, no separate sampler copy, so no weight-sync row).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field

from executor.config import RunConfig
from executor.records import Learning, PhaseSeconds, step_metrics
from executor.results import ExecuteResult
from executor.run import (build_policy, seed_everything, start_fresh, summarize,
                          warm_start, write_result)
from executor.sampler import SamplingParams
from executor.steps import StepContext, evaluate
from executor.tasks import make_task, problems
from executor.tracing import StepMetrics, Tracer, append_metrics, save_trace
from executor.verifier import VerifierPool
from rlvr_sim.errors import UserError


@dataclass
class Span:
    name: str
    start: float          # perf_counter
    end: float
    global_step: int      # TRL optimizer steps completed when it started
    info: dict = field(default_factory=dict)


@dataclass
class TrlSpans:
    """Everything timed during a TRL run, in TRL's global-step terms (spans, turned into trace
    rows by `trace_rl_steps`; not a trace writer like the simulator's Recorder)."""

    spans: list[Span] = field(default_factory=list)
    global_step: int = 0
    rewards: list[list[float]] = field(default_factory=list)       # one list per generation
    verify: list[list] = field(default_factory=list)               # VerifyResults per generation
    problems: list[list[int]] = field(default_factory=list)        # problem indices per generation

    def add(self, name: str, start: float, end: float, **info) -> None:
        self.spans.append(Span(name, start, end, self.global_step, info))


Recorder = TrlSpans         # the older name, kept for one release


@contextlib.contextmanager
def capture_trl_profiling(rec: TrlSpans):
    """Record every TRL `profiling_context` block (name without the class prefix, start, end)."""
    from trl.extras import profiling

    original = profiling.ProfilingContext.__exit__

    def __exit__(self, exc_type, exc, tb):
        if self._start_time is not None:
            rec.add(self.name.partition(".")[2] or self.name, self._start_time, time.perf_counter())
        return original(self, exc_type, exc, tb)

    profiling.ProfilingContext.__exit__ = __exit__  # type: ignore[method-assign]
    try:
        yield rec
    finally:
        profiling.ProfilingContext.__exit__ = original  # type: ignore[method-assign]


def make_callback(rec: TrlSpans):
    from transformers import TrainerCallback

    class TimingCallback(TrainerCallback):
        """Step and optimizer boundaries (perf_counter) keyed by TRL's global step."""

        def on_step_begin(self, args, state, control, **kw):
            rec.global_step = state.global_step
            self._step0 = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kw):
            self._opt0 = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):
            rec.add("optimizer", self._opt0, time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            rec.add("step", self._step0, time.perf_counter())

    return TimingCallback()


def make_reward_fn(task, pool, by_index: dict, rec: TrlSpans):
    """TRL reward function: the task checker run in our verifier pool (same reward as ours)."""

    def exact_answer(prompts, completions, completion_ids, index, **kwargs) -> list[float]:
        results = pool.score([(by_index[i], c) for i, c in zip(index, completions)])
        rec.verify.append(results)
        rec.problems.append(sorted(set(index)))
        rec.rewards.append([r.reward for r in results])
        return [r.reward for r in results]

    return exact_answer


def grpo_config(cfg: RunConfig, out_dir: str):
    """TRL GRPOConfig equal to our run's settings (see the module docstring)."""
    from trl import GRPOConfig

    s, m = cfg.spec, cfg.mini_batches
    batch = cfg.prompts_per_step * cfg.samples_per_prompt
    if batch % m:
        raise ValueError(f"trainer.mini_batches={m} must divide prompts_per_step x samples_per_prompt "
                         f"= {batch} for the TRL backend")
    return GRPOConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=cfg.seed, data_seed=cfg.seed, shuffle_dataset=False,
        per_device_train_batch_size=batch // m, steps_per_generation=m, gradient_accumulation_steps=1,
        num_generations=cfg.samples_per_prompt, max_completion_length=cfg.max_new_tokens,
        max_steps=cfg.steps * m * s.num_iterations, learning_rate=s.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm or 0.0, beta=s.beta,
        epsilon=s.epsilon_low, epsilon_high=s.epsilon_high, loss_type=s.loss_type,
        scale_rewards=s.scale_rewards, num_iterations=s.num_iterations, temperature=s.temperature,
        top_p=s.top_p, top_k=0, dataloader_num_workers=0, log_completions=False)


def _wrap_phases(trainer, rec: TrlSpans) -> None:
    """Time backward passes and whole generation+scoring batches (with their token counts)."""
    backward = trainer.accelerator.backward
    gen_and_score = trainer._generate_and_score_completions

    def timed_backward(loss, **kw):
        t0 = time.perf_counter()
        out = backward(loss, **kw)
        rec.add("backward", t0, time.perf_counter())
        return out

    def timed_gen_and_score(inputs):
        t0 = time.perf_counter()
        out = gen_and_score(inputs)
        rec.add("generate_and_score", t0, time.perf_counter(),
                prompt_tokens=int(out["prompt_mask"].sum()), output_tokens=int(out["completion_mask"].sum()),
                sequences=int(out["completion_mask"].shape[0]))
        return out

    trainer.accelerator.backward = timed_backward
    trainer._generate_and_score_completions = timed_gen_and_score


def run_trl(scenario, steps: int | None = None, out_dir: str | None = None,
            trace_path: str | None = None, progress: bool = True,
            resume: bool = False) -> ExecuteResult:
    """Train the scenario with TRL's GRPOTrainer; returns the run summary."""
    from datasets import Dataset                     # lazy: the TRL stack is optional
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    if resume:
        raise UserError("--resume is not supported for executor.backend=trl")
    cfg = RunConfig.from_scenario(scenario, steps, out_dir, trace_path)
    start_fresh(cfg)
    seed_everything(cfg.seed)
    policy, task, tracer, rec = build_policy(cfg), make_task(cfg.spec), Tracer(cfg.run_id), TrlSpans()
    probs = problems(task, cfg.seed, 0, cfg.steps * cfg.prompts_per_step)
    dataset = Dataset.from_list([{"prompt": p.prompt, "index": p.index} for p in probs])
    with VerifierPool(task, cfg.verifier_workers) as pool, \
            tempfile.TemporaryDirectory(prefix="rlvr-trl-") as trl_dir:
        pool.warm_up()
        ctx = StepContext(cfg=cfg, policy=policy, task=task, pool=pool,
                          params=SamplingParams(cfg.samples_per_prompt, cfg.max_new_tokens))
        evals = warm_start(cfg, ctx, tracer, progress)
        trainer = GRPOTrainer(
            model=policy.model, processing_class=policy.tokenizer, train_dataset=dataset,
            reward_funcs=[make_reward_fn(task, pool, {p.index: p for p in probs}, rec)],
            args=grpo_config(cfg, trl_dir), callbacks=[make_callback(rec)])
        _wrap_phases(trainer, rec)
        trainer.remove_callback(PrinterCallback)      # it prints every log dict to stdout
        with capture_trl_profiling(rec):
            trainer.train()
        rows = trace_rl_steps(tracer, rec, trainer.state.log_history, cfg)
        for row in rows:
            append_metrics(cfg.metrics_path, row)
        save_trace(tracer, cfg.trace_path, None)
        accuracy_after = evaluate(ctx, policy.model)
    tokens = sum(s.info.get("output_tokens", 0) for s in rec.spans if s.name == "generate_and_score")
    return write_result(cfg, summarize(cfg, policy, evals, rows, accuracy_after, tokens), evals)


def _within(span: Span, outer: list[Span]) -> bool:
    return any(o.start <= span.start and span.end <= o.end for o in outer)


def logged_mean(entries: list[dict], key: str) -> float:
    """Mean of TRL log key `key` over an RL step's optimizer-step log entries; NaN when TRL did
    not log it (e.g. `kl` with beta = 0), never a stand-in 0."""
    values = [e[key] for e in entries if key in e and e[key] is not None]
    return statistics.fmean(values) if values else math.nan


def trace_rl_steps(tracer: Tracer, rec: TrlSpans, log_history: list[dict],
                   cfg: RunConfig) -> list[StepMetrics]:
    """Trace rows + StepMetrics per RL step (= mini_batches x num_iterations TRL optimizer steps)."""
    m, rows = cfg.mini_batches * cfg.spec.num_iterations, []
    gens = [s for s in rec.spans if s.name == "generate_and_score"]
    logs = {entry["step"]: entry for entry in log_history if "step" in entry and "loss" in entry}
    for step in range(cfg.steps):
        mine = [s for s in rec.spans if step * m <= s.global_step < (step + 1) * m]
        gen = next((s for s in mine if s.name == "generate_and_score"), None)
        if gen is None:
            break

        def by(name: str, mine: list[Span] = mine) -> list[Span]:
            return [s for s in mine if s.name == name]

        def add(pool: str, phase: str, s: Span, step: int = step, **kw) -> None:
            tracer.event(pool, 0, phase, step, step, tracer.rel_perf(s.start), tracer.rel_perf(s.end),
                       **kw)

        for s in by("transformers.generate"):
            add("sampler", "generate", s, sequences=gen.info["sequences"],
                prompt_tokens=gen.info["prompt_tokens"], output_tokens=gen.info["output_tokens"],
                staleness=[0] * gen.info["sequences"], backend="trl",
                problems=rec.problems[gens.index(gen)])
        results = rec.verify[gens.index(gen)]
        tracer.verify_events(step, step, results)
        for s in by("_get_per_token_logps_and_entropies"):
            if _within(s, [gen]):
                add("trainer", "old_logprob", s, sequences=gen.info["sequences"])
        losses, backs = by("compute_loss"), by("backward")
        per_mini = gen.info["sequences"] // cfg.mini_batches
        for loss, back in zip(losses, backs):
            add("trainer", "forward_backward", Span("fb", loss.start, back.end, step),
                sequences=per_mini, forward_s=loss.end - loss.start, backward_s=back.end - back.start)
        for s in by("optimizer"):
            add("trainer", "optimizer", s, sequences=per_mini)
        step_s = sum(s.end - s.start for s in by("step"))
        gen_s = sum(s.end - s.start for s in by("transformers.generate"))
        verify_s = max(r.end_s for r in results) - min(r.start_s for r in results)
        entries = [logs[g] for g in range(step * m + 1, (step + 1) * m + 1) if g in logs]
        learning = Learning(loss=logged_mean(entries, "loss"), kl=logged_mean(entries, "kl"),
                            entropy=logged_mean(entries, "entropy"),
                            clip_fraction=logged_mean(entries, "clip_ratio/region_mean"),
                            grad_norm=logged_mean(entries, "grad_norm"))
        rewards = rec.rewards[gens.index(gen)]
        row = step_metrics(
            step, step, rewards, gen.info["output_tokens"] / gen.info["sequences"],
            1.0 - logged_mean(entries, "completions/clipped_ratio"), learning,
            PhaseSeconds(step_s, gen_s, verify_s, step_s - (gen.end - gen.start), 0.0),
            (step + 1) * cfg.prompts_per_step)
        rows.append(row)
    return rows
