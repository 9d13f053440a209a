"""Prompt source: the prompts x samples of each RL step, with seeded lengths and verifier draws.

Batch `j` is drawn from its own generator `default_rng([seed, j])`, in a fixed order (prompt
lengths, response lengths, verifier latencies, verifier failures), so a batch's content does not
depend on the orchestration mode or on event order: sync and async runs of one scenario see the
same samples, and the same seed gives the same trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_sim.sim.config import SimConfig


@dataclass(frozen=True)
class Group:
    """One prompt and its k samples; the k samples share the prompt's KV prefix."""

    step: int                      # the RL step (batch) that trains these samples
    group_id: int                  # global prompt index
    prompt_tokens: int
    response_tokens: tuple[int, ...]
    first_sample: int              # global index of sample 0 of this group

    @property
    def samples(self) -> range:
        return range(self.first_sample, self.first_sample + len(self.response_tokens))


@dataclass(frozen=True)
class Batch:
    """The samples of one RL step plus their (pre-drawn) verification outcome."""

    step: int
    groups: tuple[Group, ...]
    verify_s: list[float]          # per sample, already capped at the timeout
    timed_out: list[bool]          # per sample
    failed: list[bool]             # per sample (checker error: reward 0)

    @property
    def first_sample(self) -> int:
        return self.groups[0].first_sample

    @property
    def size(self) -> int:
        return len(self.verify_s)


class PromptSource:
    """Draws batch j on demand; deterministic in (seed, j)."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg

    def batch(self, step: int) -> Batch:
        cfg = self.cfg
        p, k = cfg.prompts_per_step, cfg.samples_per_prompt
        rng = np.random.default_rng([cfg.seed, step])
        prompt = _tokens(cfg.prompt_tokens.sample(rng, p))
        response = _tokens(cfg.response_tokens.sample(rng, p * k))
        latency = np.maximum(np.asarray(cfg.verifier_latency_s.sample(rng, p * k), dtype=float), 0.0)
        failed = rng.random(p * k) < cfg.verifier_failure_rate
        timed_out = latency > cfg.verifier_timeout_s
        first = step * p * k
        prompts, responses = prompt.tolist(), response.tolist()      # Python ints
        groups = tuple(Group(step, step * p + g, prompts[g], tuple(responses[g * k:(g + 1) * k]),
                             first + g * k)
                       for g in range(p))
        return Batch(step, groups, np.minimum(latency, cfg.verifier_timeout_s).tolist(),
                     timed_out.tolist(), failed.tolist())


def _tokens(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.rint(np.asarray(x, dtype=float)), 1).astype(np.int64)
