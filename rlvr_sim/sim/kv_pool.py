"""The paged KV pool of one sampler replica: whole blocks held by group-shared prompts and
sequences, as vLLM's block manager allocates them.

A replica holds `capacity` blocks of `block_tokens` (B) tokens. A sequence holds its private
tokens in whole blocks: the prompt's tail past its last full block + everything generated (the
whole prompt without prefix caching); with prefix caching a prompt's full blocks are held once
per prompt group while any of its samples runs. The one formula is `seq_blocks`: a sequence with
x private tokens holds ceil(x / B) blocks. The KV a sequence needs while it decodes its next
token is its prompt + what it has generated (the new token's KV is written by the iteration
after), so its private tokens now are what the next iteration needs; at admission that is the
prompt tail (+ tokens generated before a preemption), with no extra block for the first output.

Checks use an O(1) upper bound first (`upper_blocks`: ceil(x/B) < x/B + 1, or <= x/B + (B-1)/B
for whole tokens) and count exact blocks per sequence (`used_blocks`, O(running)) only when the
bound does not fit; `iterations_that_fit` finds the first block-boundary crossing that overflows
the pool (binary search over the span, O(running log span)). With one token per iteration and
whole tokens both are closed forms over the sequences' residue counts (how many hold r tokens
past their last full block, r < B; rlvr_sim.sim.running keeps them): `whole_blocks` and
`iterations_that_fit_unit`, O(B), identical to the vector ones. rlvr_sim.sim.batch_sync's fast path
applies only where the upper bound fits, where the exact count fits too.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate

import numpy as np

_EPS = 1e-9        # x / B computed in floats: 2.0000000001 blocks is 2


class KVPool:
    """Blocks of one replica; which prompt groups hold shared blocks (`join` / `leave`)."""

    __slots__ = ("capacity", "limited", "block_tokens", "prefix", "round_up", "shared_blocks",
                 "groups")

    def __init__(self, blocks: int | None, block_tokens: int, prefix_caching: bool,
                 whole_tokens: bool = True):
        self.capacity: float = math.inf if blocks is None else blocks
        self.limited = blocks is not None
        self.block_tokens = block_tokens
        self.prefix = prefix_caching
        # most a sequence's block count exceeds x / B: (B-1)/B for whole tokens, else (below) 1
        self.round_up = (block_tokens - 1) / block_tokens if whole_tokens else 1.0
        self.shared_blocks = 0
        self.groups: dict[int, list[int]] = {}    # group id -> [running samples, shared blocks]

    def shared_of(self, prompt_tokens: int) -> int:
        """Full prompt blocks a group shares (0 without prefix caching)."""
        return prompt_tokens // self.block_tokens if self.prefix else 0

    def seq_blocks(self, private_tokens: float) -> int:
        """Whole blocks holding one sequence's `private_tokens`."""
        return math.ceil(private_tokens / self.block_tokens - _EPS)

    def admission_blocks(self, group_id: int, prompt_tokens: int, generated: float) -> int:
        """Blocks a queued sequence takes when admitted: its group's shared prompt blocks unless
        the group is held already, and `seq_blocks` of its private tokens (the prompt's tail past
        the shared blocks + the tokens it generated before a preemption)."""
        shared = self.shared_of(prompt_tokens)
        private = prompt_tokens - shared * self.block_tokens + generated
        return (0 if group_id in self.groups else shared) + self.seq_blocks(private)

    def used_blocks(self, private_tokens: np.ndarray) -> int:
        """Blocks in use: the shared ones + `seq_blocks` of each sequence's private tokens."""
        return self.shared_blocks + int(np.ceil(private_tokens / self.block_tokens - _EPS).sum())

    def upper_blocks(self, shared: float, private_tokens: float, sequences: float) -> float:
        """An upper bound of the blocks of `shared` shared blocks plus `sequences` sequences
        holding `private_tokens` private tokens between them (exact when every one ends a block)."""
        return shared + private_tokens / self.block_tokens + sequences * self.round_up

    def iterations_that_fit(self, private_tokens: np.ndarray, tokens_per_iteration: float,
                            limit: int) -> int:
        """The most iterations m <= `limit` the sequences (private tokens now) may decode: the
        m-th iteration holds private + (m - 1) x tokens_per_iteration tokens each; 0 when not even
        the next one fits."""
        free = self.capacity - self.shared_blocks
        bt, tpi = self.block_tokens, tokens_per_iteration

        def fits(m: int) -> bool:
            return float(np.ceil((private_tokens + tpi * (m - 1)) / bt - _EPS).sum()) <= free

        if fits(limit):
            return limit
        if not fits(1):
            return 0
        lo, hi = 1, limit                      # fits(lo), not fits(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def whole_blocks(self, private_sum: int, residue_sum: int, sequences: int,
                     at_boundary: int) -> int:
        """Blocks of `sequences` sequences holding whole private tokens, `private_sum` between
        them, `residue_sum` of which past their last full block, `at_boundary` of them with none
        past it: `used_blocks` of the same sequences without the shared blocks, O(1): the sum of
        ceil(p / B) is the full blocks (private_sum - residue_sum) / B plus one per sequence with
        a residue."""
        return (private_sum - residue_sum) // self.block_tokens + sequences - at_boundary

    def iterations_that_fit_unit(self, private_sum: int, residue_sum: int, counts: list[int],
                                 limit: int) -> int:
        """`iterations_that_fit` for one token per iteration and whole private tokens (the
        sequences as in `whole_blocks`, counts[r] of them r tokens past their last full block,
        r < B), O(B), the same result: a sequence with residue r holds one more block after d
        more tokens where r + d passes a multiple of B, so after d = a B + b tokens (b < B) the n
        sequences hold full + n a + g(b) blocks, g(0) = n - counts[0] and, for b >= 1,
        g(b) = n + T(b), T(b) = how many have r > B - b; the answer is the last such d (+1) that
        fits, capped at `limit` (>= 1), or 0 when d = 0 does not fit."""
        bt = self.block_tokens
        n = sum(counts)
        avail = self.capacity - self.shared_blocks - (private_sum - residue_sum) // bt
        if n == 0:
            return limit if avail >= 0 else 0
        g0 = n - counts[0]
        if avail < g0:
            return 0
        a = int((avail - g0) // n)             # the last whole round of B tokens whose b = 0 fits
        rem = avail - n * a - n                # room left for T(b), b >= 1
        # T(1..B-1) = 0, counts[B-1], counts[B-1] + counts[B-2], ...: the last b with T(b) <= rem
        b = bisect_right(list(accumulate(counts[:1:-1], initial=0)), rem) if rem >= 0 else 0
        m = a * bt + b + 1
        return limit if m >= limit else m

    def join(self, group_id: int, shared: int) -> bool:
        """A sample of `group_id` starts running; True when its group was not held (its shared
        blocks are taken now and its whole prompt is prefilled)."""
        state = self.groups.get(group_id)
        if state is None:
            self.groups[group_id] = [1, shared]
            self.shared_blocks += shared
            return True
        state[0] += 1
        return False

    def leave(self, group_id: int) -> None:
        """A running sample of `group_id` stops; its group's shared blocks go with the last one."""
        state = self.groups[group_id]
        state[0] -= 1
        if state[0] == 0:
            self.shared_blocks -= state[1]
            del self.groups[group_id]

    def too_long(self, tokens: int) -> str:
        """The message of a sequence that cannot fit even alone."""
        return (f"a sequence of {tokens} tokens does not fit the KV pool of a sampler replica "
                f"({self.capacity} blocks of {self.block_tokens} tokens)")
