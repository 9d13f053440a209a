"""Short supervised warm-start: teach the format (and some answers) so GRPO has signal.

A random tiny model scores 0 on every sample (all advantages 0, nothing to learn). A few SFT
steps on reference completions of training problems (cross-entropy on completion tokens
only, eos included) bring it to partial accuracy; GRPO then improves on that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from executor.sampler import Rollout
from executor.tasks import Task, problems
from executor.trainer import make_batch, token_logps


@dataclass
class SFTResult:
    steps: int
    final_loss: float
    start: float            # perf_counter
    end: float
    sequences: int
    tokens: int
    data_cursor: int        # next unused problem index of the SFT stream


def sft_update(model: torch.nn.Module, opt: torch.optim.Optimizer, batch) -> float:
    """One supervised step: mean negative log-likelihood of the batch's completion tokens
    (the mask), gradient clipped to norm 1. Returns the loss."""
    logps, _ = token_logps(model, batch, temperature=1.0)
    loss = -(logps * batch.mask).sum() / batch.mask.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.detach())


def run_sft(model: torch.nn.Module, tokenizer, task: Task, seed: int, steps: int, lr: float,
            batch_size: int, progress: bool = False) -> SFTResult:
    """`steps` AdamW steps on batches of reference completions (stream "sft", own optimizer)."""
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    t0, loss_value, seqs, toks = time.perf_counter(), float("nan"), 0, 0
    for step in tqdm(range(steps), desc="sft", disable=not progress, leave=False):
        batch_problems = problems(task, seed, step * batch_size, batch_size, stream="sft")
        rollouts = [Rollout(0, tokenizer.encode(p.prompt, add_special_tokens=False),
                            tokenizer.encode(p.reference, add_special_tokens=False)
                            + [tokenizer.eos_token_id], [], True, 0) for p in batch_problems]
        batch = make_batch(rollouts, tokenizer.pad_token_id, device)
        loss_value = sft_update(model, opt, batch)
        seqs += len(rollouts)
        toks += int(batch.attention.sum())
    return SFTResult(steps, loss_value, t0, time.perf_counter(), seqs, toks, steps * batch_size)
