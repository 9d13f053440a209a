"""Micro-benchmarks that drive the executor's own components over grids.

What is timed is exactly what the executor runs in a step:
- decode: `executor.sampler.HFSampler.generate` with an eos id that never occurs, so every row
  decodes exactly `iterations` tokens (forced lengths); its own `decode_s` timer. Rows are k
  copies of a few prompts (the sampler repeats the prompt's KV cache k times), which keeps the
  untimed prefill small while the timed decode sees `sequences` full KV caches. Mixed-length
  rows use prompts of different lengths (left-padded, as the executor pads them).
- prefill: the same call's `prefill_s` over `prompts` prompts of `prompt_len` tokens.
- train: `executor.trainer.GRPOTrainer.step` on synthetic rollouts of fixed lengths, with a
  reference model (beta > 0) so the reference log-prob forward is timed too; its own phase timers
  give forward+backward, optimizer and log-prob seconds.
- weight_sync: the whole `executor.weight_sync.sync_weights` call into a separate sampler copy,
  right after each training step of the train case (the loop's order, so the caches hold what a
  training step leaves in them); a model without training rows gets a standalone sync case
  after an untimed pass over a buffer larger than the cache.
- verify: what the loop's verify phase waits for: a burst of `items` completions is detokenized
  and submitted to `executor.verifier.VerifierPool` (the loop does this inside generation, as
  samples finish), then the time until every reward is back is the row's time, per task, pool
  size and burst size (the fit separates a per-burst round trip from per-item service); every
  verification's in-worker latency is kept in `details_json`.
Every grid point is capped in FLOPs so the full grid stays minutes on two CPU cores.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from calibration.harness import BenchCase, BenchKey, rows_to_frame, run_cases
from calibration.models import BENCH_MODELS, QUICK_MODELS, model_json
from rlvr_sim.cost.params import param_counts
from rlvr_sim.model_spec import ModelSpec

FIRST_CHAR_ID = 4  # executor.tokenizer: ids below are specials
FLUSH_BYTES = 256 * 2**20  # larger than any CPU's last-level cache share


@dataclass(frozen=True)
class Grid:
    """Which points to measure. `flop_cap` bounds one case's work (FLOPs, forward-equivalent)."""

    models: tuple[str, ...]
    decode_rows: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    decode_iterations: int
    prefill_prompts: tuple[int, ...]
    prefill_lens: tuple[int, ...]
    train_sequences: tuple[int, ...]
    train_completion_lens: tuple[int, ...]
    train_mini_batches: tuple[int, ...]
    verify_tasks: tuple[str, ...]
    verify_workers: tuple[int, ...]
    verify_items: tuple[int, ...]
    repeats: int
    flop_cap: float = 1.5e10
    train_flop_cap: float = 1.1e11   # training rows (8 x params x tokens): reaches the bigger models
    train_prompt_len: int = 12


FULL = Grid(models=tuple(BENCH_MODELS), decode_rows=(1, 8, 32, 96), decode_contexts=(16, 128, 384),
            decode_iterations=8, prefill_prompts=(1, 4, 16), prefill_lens=(16, 64, 192),
            train_sequences=(8, 32), train_completion_lens=(16, 48), train_mini_batches=(1, 4),
            verify_tasks=("math", "countdown", "code"), verify_workers=(1, 2), verify_items=(4, 16, 48),
            repeats=8)
QUICK = Grid(models=QUICK_MODELS, decode_rows=(1, 16, 64), decode_contexts=(16, 256),
             decode_iterations=6, prefill_prompts=(1, 8), prefill_lens=(16, 128),
             train_sequences=(8, 32), train_completion_lens=(16,), train_mini_batches=(1, 4),
             verify_tasks=("math", "code"), verify_workers=(2,), verify_items=(8, 24),
             repeats=3, flop_cap=6e9, train_flop_cap=4e10)


def _params(name: str) -> int:
    return param_counts(ModelSpec.from_hf_config_dict(BENCH_MODELS[name])).total


@dataclass(frozen=True)
class Spec:
    """One grid point: how to build its case, and the keys it measures."""

    kind: str                 # decode | prefill | train | weight_sync | verify
    model: str = ""
    prompts: int = 1
    k: int = 1
    prompt_len: int = 0
    mixed: bool = False
    iterations: int = 0
    completion_len: int = 0
    mini_batches: int = 1
    task: str = ""
    workers: int = 0
    items: int = 0

    def prompt_lens(self) -> list[int]:
        """Mixed: half the prompts at full length, half at an eighth."""
        if not self.mixed:
            return [self.prompt_len] * self.prompts
        return [self.prompt_len if i % 2 == 0 else max(self.prompt_len // 8, 2)
                for i in range(self.prompts)]

    def keys(self) -> list[BenchKey]:
        cfg = BENCH_MODELS.get(self.model)
        params = _params(self.model) if cfg else 0
        base: dict[str, Any] = dict(model=self.model, model_json=model_json(cfg) if cfg else "",
                                    params=params)
        if self.kind == "decode":
            lens = self.prompt_lens()
            width = max(lens)
            return [BenchKey(kind="decode", sequences=self.prompts * self.k,
                             context_tokens_sum=self.k * sum(lens) if self.mixed else
                             self.prompts * self.k * width,
                             context_tokens_max=width, iterations=self.iterations, **base)]
        if self.kind == "prefill":
            return [BenchKey(kind="prefill", sequences=self.prompts,
                             prompt_tokens=self.prompts * self.prompt_len, **base)]
        if self.kind == "train":
            common: dict[str, Any] = dict(sequences=self.prompts * self.k, prompt_tokens=self.prompts * self.k *
                          self.prompt_len, output_tokens=self.prompts * self.k * self.completion_len,
                          mini_batches=self.mini_batches, **base)
            return [BenchKey(kind="train_fb", **common), BenchKey(kind="optimizer", **common),
                    BenchKey(kind="logprob", **common),
                    BenchKey(kind="weight_sync", payload_bytes=4 * params, **common)]
        if self.kind == "weight_sync":
            return [BenchKey(kind="weight_sync", payload_bytes=4 * params, **base)]
        if self.kind == "verify":
            return [BenchKey(kind="verify", task=self.task, workers=self.workers,
                             sequences=self.items)]
        raise ValueError(f"unknown spec kind {self.kind}")


def plan(grid: Grid) -> list[Spec]:
    """All grid points under the FLOP cap (pure: the synthetic-recovery test uses it too)."""
    specs: list[Spec] = []
    for m in grid.models:
        p = _params(m)
        for rows in grid.decode_rows:
            for ctx in grid.decode_contexts:
                prompts = 2 if rows >= 2 else 1
                k = max(rows // prompts, 1)
                if 2 * p * rows * grid.decode_iterations + 2 * p * prompts * ctx <= grid.flop_cap:
                    specs.append(Spec("decode", m, prompts=prompts, k=k, prompt_len=ctx,
                                      iterations=grid.decode_iterations))
        big_ctx = max(grid.decode_contexts)
        rows = max(r for r in grid.decode_rows if 2 * p * r * grid.decode_iterations <= grid.flop_cap / 2)
        if rows >= 4:
            specs.append(Spec("decode", m, prompts=4, k=rows // 4, prompt_len=big_ctx, mixed=True,
                              iterations=grid.decode_iterations))
        for n in grid.prefill_prompts:
            for ln in grid.prefill_lens:
                if 2 * p * n * ln <= grid.flop_cap:
                    specs.append(Spec("prefill", m, prompts=n, prompt_len=ln, iterations=1))
        for seqs in grid.train_sequences:
            for cl in grid.train_completion_lens:
                for mb in grid.train_mini_batches:
                    tokens = seqs * (grid.train_prompt_len + cl)
                    if 8 * p * tokens <= grid.train_flop_cap and seqs % (4 * mb) == 0:
                        specs.append(Spec("train", m, prompts=seqs // 4, k=4,
                                          prompt_len=grid.train_prompt_len, completion_len=cl,
                                          mini_batches=mb))
        if not any(s.kind == "train" and s.model == m for s in specs):
            specs.append(Spec("weight_sync", m))
    for task in grid.verify_tasks:
        for w in grid.verify_workers:
            for n in grid.verify_items:
                specs.append(Spec("verify", task=task, workers=w, items=n))
    return specs


def planned_keys(grid: Grid) -> list[BenchKey]:
    return [k for s in plan(grid) for k in s.keys()]


# --------------------------------------------------------------------------------------------
# cases (torch; imported lazily so `plan` stays importable without the executor extra)

class _Models:
    """Builds each benchmarked policy once (and its sampler copy / reference copy on demand)."""

    def __init__(self, device: str, threads: int):
        self.device, self.threads = device, threads
        self._pol: dict = {}

    def policy(self, name: str):
        if name not in self._pol:
            from executor.policy import build_random_policy
            self._pol[name] = build_random_policy(BENCH_MODELS[name], device=self.device,
                                                  dtype="fp32", threads=self.threads, seed=0)
        return self._pol[name]


def _prompts(lens: list[int], rng: random.Random) -> list[list[int]]:
    return [[rng.randrange(FIRST_CHAR_ID, 100) for _ in range(n)] for n in lens]


def _sampler_case(spec: Spec, models: _Models) -> Callable[[], list[float]]:
    from executor.sampler import HFSampler, SamplingParams

    pol = models.policy(spec.model)
    sampler = HFSampler(pol.model, eos_id=-1, pad_id=pol.tokenizer.pad_token_id)  # never stops early
    prompts = _prompts(spec.prompt_lens(), random.Random(1))
    params = SamplingParams(samples_per_prompt=spec.k, max_new_tokens=spec.iterations + 1)
    field = "decode_s" if spec.kind == "decode" else "prefill_s"

    def run() -> list[float]:
        return [getattr(sampler.generate(prompts, params, seed=0).timing, field)]
    return run


def _train_case(spec: Spec, models: _Models) -> Callable[[], list[float]]:
    import time

    from executor.sampler import HFSampler, Rollout
    from executor.trainer import GRPOTrainer, LossConfig, TrainConfig
    from executor.weight_sync import sync_weights

    pol = models.policy(spec.model)
    model = copy.deepcopy(pol.model)
    sampler = HFSampler(copy.deepcopy(pol.model), pol.tokenizer.eos_token_id,
                        pol.tokenizer.pad_token_id)
    ref = copy.deepcopy(pol.model).eval()
    cfg = TrainConfig(lr=1e-6, mini_batches=spec.mini_batches,
                      loss=LossConfig(beta=0.01, max_completion_length=spec.completion_len))
    trainer = GRPOTrainer(model, cfg, pol.tokenizer.pad_token_id, ref_model=ref)
    rng = random.Random(2)
    prompts = _prompts([spec.prompt_len] * spec.prompts, rng)
    rollouts = [Rollout(group=i // spec.k, prompt_ids=prompts[i // spec.k],
                        completion_ids=_prompts([spec.completion_len], rng)[0],
                        logprobs=[-4.6] * spec.completion_len, finished=False, policy_version=0)
                for i in range(spec.prompts * spec.k)]
    rewards = [float(rng.random() < 0.5) for _ in rollouts]

    def run() -> list[float]:
        stats = trainer.step(rollouts, rewards, spec.k)
        t0 = time.perf_counter()
        sync_weights(model, sampler)
        return [stats.seconds("forward_backward"), stats.seconds("optimizer"),
                stats.seconds("ref_logprob"), time.perf_counter() - t0]
    return run


def _sync_case(spec: Spec, models: _Models) -> Callable[[], list[float]]:
    """Times the whole `sync_weights` call (state-dict walk included), as the loop's
    weight_sync phase does, from a cold cache (an untimed pass over `FLUSH_BYTES` first). Only
    for models without training rows: a cold cache over-states the sync of a model small enough
    to stay cached through a training step (measured +30-80% at 0.5M parameters)."""
    import time

    import torch

    from executor.sampler import HFSampler
    from executor.weight_sync import sync_weights

    pol = models.policy(spec.model)
    sampler = HFSampler(copy.deepcopy(pol.model), pol.tokenizer.eos_token_id,
                        pol.tokenizer.pad_token_id)
    flush = torch.zeros(FLUSH_BYTES // 4, dtype=torch.float32)

    def run() -> list[float]:
        flush.add_(1.0)
        t0 = time.perf_counter()
        sync_weights(pol.model, sampler)
        return [time.perf_counter() - t0]
    return run


def _verify_case(spec: Spec, pools: dict, case: BenchCase,
                 idle_s: float = 0.3) -> Callable[[], list[float]]:
    """Times what the loop's verify phase waits for: `items` completions are detokenized and
    submitted at once (untimed: in the loop this is part of generation), then the wait until
    every reward is back is timed. Workers idle `idle_s` before each burst, as they do while
    the loop generates, so their wake-up is in the measurement too."""
    import time

    from executor.steps import decode
    from executor.tasks import make_task, problems
    from executor.tokenizer import build_char_tokenizer
    from executor.verifier import VerifierPool
    from rlvr_sim.executor_spec import ExecutorSpec

    task = make_task(ExecutorSpec(task=spec.task))
    if (spec.task, spec.workers) not in pools:
        pool = VerifierPool(task, spec.workers)
        pool.warm_up()
        pools[(spec.task, spec.workers)] = pool
    pool = pools[(spec.task, spec.workers)]
    tok = build_char_tokenizer()
    rng = random.Random(3)
    probs = problems(task, 0, 0, spec.items)
    texts = [p.reference if i % 2 == 0 else "".join(rng.choice("0123456789+-= x") for _ in range(24))
             for i, p in enumerate(probs)]
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]

    def run() -> list[float]:
        time.sleep(idle_s)
        futures = [pool.submit(i, p, decode(tok, x)) for i, (p, x) in enumerate(zip(probs, ids))]
        t0 = time.perf_counter()
        results = pool.gather(futures)
        elapsed = time.perf_counter() - t0
        case.details.extend(r.latency_s for r in results)
        return [elapsed]
    return run


def build_cases(specs: list[Spec], device: str, threads: int, pools: dict) -> list[BenchCase]:
    """Runnable cases for `specs` (models built once; verifier pools kept in `pools`)."""
    models = _Models(device, threads)
    cases = []
    for s in specs:
        case = BenchCase(keys=s.keys(), run=lambda: [])
        if s.kind in ("decode", "prefill"):
            case.run = _sampler_case(s, models)
        elif s.kind == "train":
            case.run = _train_case(s, models)
        elif s.kind == "weight_sync":
            case.run = _sync_case(s, models)
        elif s.kind == "verify":
            case.run = _verify_case(s, pools, case)
            case.cpu_bound = False
        cases.append(case)
    return cases


def run_grid(grid: Grid, device: str, threads: int, progress: bool = True,
             seed: int = 0) -> pd.DataFrame:
    """Measure every point of `grid`; returns the benchmark table (one row per key).

    Verifier pools run in their own processes and are timed in a separate interleaved pass
    so their worker processes do not compete with the torch cases.
    """
    from executor.policy import set_threads

    set_threads(threads)
    specs = plan(grid)
    pools: dict = {}
    try:
        torch_specs = [s for s in specs if s.kind != "verify"]
        verify_specs = [s for s in specs if s.kind == "verify"]
        rows = run_cases(build_cases(torch_specs, device, threads, pools), grid.repeats, threads,
                         device, seed=seed, progress=progress, desc="microbench")
        if verify_specs:
            rows += run_cases(build_cases(verify_specs, device, threads, pools), grid.repeats,
                              threads, device, seed=seed, progress=progress, desc="verifier")
    finally:
        for pool in pools.values():
            pool.close()
    return rows_to_frame(rows)
