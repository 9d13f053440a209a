"""Sampling: the `Sampler` interface every backend implements, and the HF transformers backend.

A backend takes prompts (token ids) and returns, per sample, the completion token ids, the
behaviour policy's per-token log-probs (of the temperature-scaled logits, as the trainer
computes them; top-p is applied to sampling only) and timing split into prefill and decode.
Samples come prompt-major: the k samples of prompt i are rows i*k .. i*k+k-1.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. greedy=True ignores temperature/top_p (evaluation)."""

    samples_per_prompt: int = 1
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


@dataclass
class Rollout:
    """One sampled completion."""

    group: int                    # index of its prompt in the request
    prompt_ids: list[int]
    completion_ids: list[int]     # includes the eos token when the sample finished
    logprobs: list[float]         # behaviour log-prob of each completion token
    finished: bool                # ended with eos (else truncated at max_new_tokens)
    policy_version: int


@dataclass
class SampleTiming:
    """Wall-clock split of one generate call (seconds) and its token counts."""

    prefill_s: float
    decode_s: float
    sequences: int
    prompt_tokens: int            # unique prompt tokens prefilled (prompts, not samples)
    output_tokens: int
    decode_iterations: int

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s


@dataclass
class SampleBatch:
    rollouts: list[Rollout]
    timing: SampleTiming
    extra: dict = field(default_factory=dict)   # backend-specific trace details


class Sampler(abc.ABC):
    """What the loop needs from a generation backend (HF here; vLLM in a later module).

    `policy_version` counts weight updates received; every Rollout carries the version that
    produced it. Implementations must be deterministic for a given `seed`.
    """

    policy_version: int = 0

    @abc.abstractmethod
    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 seed: int | None = None) -> SampleBatch:
        """k = params.samples_per_prompt samples for each prompt, prompt-major."""

    @abc.abstractmethod
    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace the sampling weights (the policy's new state) in place."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pick_tokens(logits: torch.Tensor, params: SamplingParams,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, their log-probs) for a [rows, vocab] logits tensor.

    Log-probs are of softmax(logits / temperature) (temperature 1 when greedy), the same
    quantity the trainer computes; top-p only narrows what is sampled.
    """
    logits = logits.float()
    if params.greedy:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logits.argmax(dim=-1)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
    logp = torch.log_softmax(logits / params.temperature, dim=-1)
    probs = logp.exp()
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > params.top_p   # keeps at least the top token
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


class HFSampler(Sampler):
    """Batched generation with transformers' KV cache on one model copy.

    Prompts are left-padded and prefilled once; the cache is then repeated k times (the k
    samples share their prompt's prefill, like prefix caching). Decoding stops when every
    sample has produced eos or max_new_tokens. `on_finished(row, rollout)` (optional) is called
    as soon as each sample ends, so a verifier can score it while the others still decode.
    """

    def __init__(self, model: torch.nn.Module, eos_id: int, pad_id: int):
        self.model = model.eval()
        self.eos_id, self.pad_id = eos_id, pad_id
        self.device = next(model.parameters()).device
        self.policy_version = 0

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict)

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], params: SamplingParams, seed: int | None = None,
                 on_finished: Callable[[int, Rollout], None] | None = None) -> SampleBatch:
        k = params.samples_per_prompt
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(seed)
        ids, mask = self._left_pad(prompts)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        _sync(self.device)
        t0 = time.perf_counter()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1)
        cache, logits = out.past_key_values, out.logits[:, -1]
        if k > 1:
            cache.batch_repeat_interleave(k)
            logits, mask = logits.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
            positions = positions.repeat_interleave(k, 0)
        _sync(self.device)
        t1 = time.perf_counter()
        rows = logits.shape[0]
        last_pos = positions[:, -1]
        finished = torch.zeros(rows, dtype=torch.bool, device=self.device)
        reported = torch.zeros(rows, dtype=torch.bool, device=self.device)
        tokens, logps = [], []
        for step in range(params.max_new_tokens):
            nxt, lp = pick_tokens(logits, params, gen)
            nxt = torch.where(finished, torch.full_like(nxt, self.pad_id), nxt)
            tokens.append(nxt)
            logps.append(lp)
            finished = finished | (nxt == self.eos_id)
            last = bool(finished.all()) or step == params.max_new_tokens - 1
            if on_finished is not None:
                reported = self._report(prompts, k, tokens, logps, ~reported if last else
                                        finished & ~reported, reported, on_finished)
            if last:
                break
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=self.device)], 1)
            last_pos = last_pos + 1
            out = self.model(input_ids=nxt[:, None], attention_mask=mask,
                             position_ids=last_pos[:, None], past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1]
        _sync(self.device)
        t2 = time.perf_counter()
        rollouts = self._collect(prompts, k, torch.stack(tokens, 1).cpu(), torch.stack(logps, 1).cpu())
        timing = SampleTiming(
            prefill_s=t1 - t0, decode_s=t2 - t1, sequences=rows,
            prompt_tokens=sum(len(p) for p in prompts),
            output_tokens=sum(len(r.completion_ids) for r in rollouts), decode_iterations=len(tokens))
        return SampleBatch(rollouts=rollouts, timing=timing)

    def _rollout(self, prompts, k: int, row: int, ids: list[int], logps: torch.Tensor) -> Rollout:
        """Row `row` cut after its eos (inclusive); pads after eos are dropped."""
        end = ids.index(self.eos_id) + 1 if self.eos_id in ids else len(ids)
        return Rollout(group=row // k, prompt_ids=list(prompts[row // k]), completion_ids=ids[:end],
                       logprobs=logps[:end].tolist(), finished=self.eos_id in ids[:end],
                       policy_version=self.policy_version)

    def _report(self, prompts, k, tokens, logps, rows: torch.Tensor, reported: torch.Tensor,
                on_finished) -> torch.Tensor:
        """Hand the samples flagged in `rows` to `on_finished`; returns the updated `reported`."""
        if bool(rows.any()):
            ids, lps = torch.stack(tokens, 1).cpu(), torch.stack(logps, 1).cpu()
            for row in rows.nonzero().flatten().tolist():
                on_finished(row, self._rollout(prompts, k, row, ids[row].tolist(), lps[row]))
        return reported | rows

    def _collect(self, prompts, k, tokens: torch.Tensor, logps: torch.Tensor) -> list[Rollout]:
        return [self._rollout(prompts, k, row, tokens[row].tolist(), logps[row])
                for row in range(tokens.shape[0])]
