"""Data-parallel load balance of a training batch of variable-length sequences.

A data-parallel step waits for its slowest rank at every gradient reduction (once per
mini-batch), so the trainer's compute time is the mean rank's time x `imbalance`, where
imbalance = max over ranks of the rank's work / mean rank work. How the work is laid out:
- packing (verl `use_dynamic_bsz` + `balance_batch`, NeMo-RL sequence packing): sequences are
  packed into micro-batches with a token budget and balanced across ranks, longest first, onto
  the least-loaded rank (greedy LPT); no padding, the imbalance is what LPT leaves;
- padding (fixed micro-batch of `micro_batch_sequences` sequences, padded to its longest one):
  sequences go to ranks in order (contiguous chunks, as a distributed sampler does), every
  micro-batch costs sequences x its longest length; `pad_factor` = padded / real tokens.

`batch_balance(lengths, ...)` is a pure function of the lengths it is given (hand-computable);
the cost model feeds it one seeded draw of the workload's lengths (an expectation over steps).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Balance:
    """Work layout of one RL step's training batch on the data-parallel ranks."""

    imbalance: float = 1.0        # busiest rank's (padded) tokens / mean rank's, >= 1
    pad_factor: float = 1.0       # computed tokens / real tokens, >= 1 (1 with packing)
    micro_batch_tokens: float = 0.0   # mean tokens of one micro-batch on one rank (0: unknown)


def _lpt(lengths: Sequence[int], ranks: int) -> list[int]:
    """Greedy longest-processing-time assignment: per-rank token sums."""
    loads = [(0, r) for r in range(ranks)]
    heapq.heapify(loads)
    for n in sorted(lengths, reverse=True):
        load, r = loads[0]
        heapq.heapreplace(loads, (load + n, r))
    return [load for load, _ in loads]


def minibatch_balance(lengths: Sequence[int], ranks: int, packing: bool,
                      micro_batch_sequences: int = 1) -> tuple[float, float, float, int]:
    """(max rank work, sum of rank work, real tokens, micro-batches on the busiest rank) of one
    mini-batch of `lengths` over `ranks` data-parallel ranks."""
    ranks = max(int(ranks), 1)
    real = float(sum(lengths))
    if packing:
        loads = _lpt(lengths, ranks)
        return float(max(loads)), float(sum(loads)), real, 1
    n = len(lengths)
    per_rank = -(-n // ranks)
    work, most_micro = [], 0
    for r in range(ranks):
        chunk = list(lengths[r * per_rank:(r + 1) * per_rank])
        m = max(int(micro_batch_sequences), 1)
        micro = [chunk[i:i + m] for i in range(0, len(chunk), m)]
        most_micro = max(most_micro, len(micro))
        work.append(float(sum(len(mb) * max(mb) for mb in micro)))
    return max(work), sum(work), real, most_micro


def batch_balance(lengths: Sequence[int], ranks: int, mini_batches: int, packing: bool = True,
                  micro_batch_sequences: int = 1, micro_batch_tokens: int | None = None) -> Balance:
    """Balance of a step's batch (`lengths`: tokens per sequence, prompt + response, in arrival
    order) split into `mini_batches` consecutive mini-batches, each spread over `ranks` ranks.

    imbalance = sum over mini-batches of the busiest rank's work / sum of the mean rank's work
    (the step is the sum of its mini-batches, each as slow as its slowest rank)."""
    lengths = [int(n) for n in lengths if n > 0]
    if not lengths:
        return Balance()
    mb = max(int(mini_batches), 1)
    per = -(-len(lengths) // mb)
    slowest = mean = real = computed = 0.0
    micro_tokens, micro_count = 0.0, 0
    for i in range(0, len(lengths), per):
        chunk = lengths[i:i + per]
        hi, total, tokens, micro = minibatch_balance(chunk, ranks, packing, micro_batch_sequences)
        slowest += hi
        mean += total / max(ranks, 1)
        real += tokens
        computed += total
        if packing:
            per_rank = total / max(ranks, 1)
            k = max(1, -(-int(per_rank) // micro_batch_tokens)) if micro_batch_tokens else 1
            micro_tokens += per_rank
            micro_count += k
        else:
            micro_tokens += hi
            micro_count += micro
    return Balance(imbalance=slowest / mean if mean else 1.0,
                   pad_factor=computed / real if real else 1.0,
                   micro_batch_tokens=micro_tokens / max(micro_count, 1))
