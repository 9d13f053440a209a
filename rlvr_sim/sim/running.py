"""The running set of one sampler replica: which sequences decode, in admission order, and when
each finishes.

Between two state changes every running sequence gains `tpi` tokens per iteration, so a
sequence's context and private tokens are linear in the replica's iteration counter `it`: a
sequence stores offsets (`ctx_off`, `priv_off`) with context = ctx_off + tpi x it, and the set
keeps their sums, so the batch's context sum is O(1) at any iteration. `finishing` is sorted by
(finish iteration, admission number); the context max comes from a lazy max-heap of offsets.
The private-token offsets are also kept in a numpy array by slot (a finished sequence's slot
takes the last one's), so the KV pool's exact block count is one vector operation. With one token
per iteration and whole tokens (`block_tokens` given), the set also counts its sequences by the
residue of their private-token offset modulo the block size: a sequence's residue class is fixed
while it runs (every sequence gains one token per iteration), so the residues at any iteration
are a rotation of these counts and the exact block count and the first overflowing iteration are
O(block_tokens) (KVPool.whole_blocks, KVPool.iterations_that_fit_unit).
"""

from __future__ import annotations

import bisect
import heapq
import math

import numpy as np

from rlvr_sim.sim.source import Group


class Seq:
    """One sample as the engine runs it (`gen0`: tokens generated before its latest admission)."""

    __slots__ = ("sample", "group", "target", "gen0", "version", "versions", "admit_it", "admit_no",
                 "ctx_off", "priv_off", "start_s", "last_version", "finish_it", "slot", "rclass")

    def __init__(self, sample: int, group: Group, target: int):
        self.sample, self.group, self.target = sample, group, target
        self.gen0 = 0.0
        self.version = -1
        self.versions = 0
        self.last_version = -1
        self.start_s = -1.0
        self.admit_it = 0
        self.admit_no = 0
        self.ctx_off = 0.0
        self.priv_off = 0.0
        self.finish_it = 0
        self.slot = -1
        self.rclass = 0        # priv_off modulo block_tokens (RunningSet residue counts)


class RunningSet:
    """Running sequences of one replica (dict in admission order: the last is preempted first).

    `block_tokens` > 0 keeps residue counts (valid for one token per iteration only: the engine
    passes 0 otherwise); a private-token offset that is not a whole number turns them off
    (`block_tokens` becomes 0) for good."""

    __slots__ = ("seqs", "finishing", "max_heap", "ctx_off_sum", "priv_off_sum", "admits", "priv",
                 "at", "block_tokens", "residues", "rclass_sum")

    def __init__(self, block_tokens: int = 0) -> None:
        self.seqs: dict[int, Seq] = {}
        self.finishing: list[tuple[int, int, int]] = []   # sorted (finish_it, admit_no, sample)
        self.max_heap: list[tuple[float, int, int]] = []  # (-ctx_off, admit_no, sample), lazy
        self.ctx_off_sum = 0.0
        self.priv_off_sum = 0.0
        self.admits = 0
        self.priv = np.empty(64)                          # priv_off by slot
        self.at: list[Seq] = []                           # the sequence in each slot
        self.block_tokens = block_tokens
        self.residues = [0] * block_tokens                # sequences by priv_off mod block_tokens
        self.rclass_sum = 0                               # their priv_off mod block_tokens summed

    def take_slot(self, seq: Seq) -> None:
        """Give a newly running sequence (its priv_off set) the next slot."""
        n = len(self.at)
        if n == len(self.priv):
            self.priv = np.concatenate([self.priv, np.empty(n)])
        off = seq.priv_off
        self.priv[n] = off
        seq.slot = n
        self.at.append(seq)
        bt = self.block_tokens
        if bt:
            whole = int(off)
            if whole == off:
                seq.rclass = r = whole % bt
                self.residues[r] += 1
                self.rclass_sum += r
            else:                                         # not whole tokens: counts are off
                self.block_tokens = 0

    def free_slot(self, seq: Seq) -> None:
        """Release a stopping sequence's slot (the last slot's sequence moves into it)."""
        if self.block_tokens:
            self.residues[seq.rclass] -= 1
            self.rclass_sum -= seq.rclass
        last = self.at.pop()
        if last is not seq:
            i = seq.slot
            self.at[i] = last
            last.slot = i
            self.priv[i] = self.priv[len(self.at)]

    def private_tokens(self, tpi: float, it: int) -> np.ndarray:
        """Each running sequence's private tokens at iteration `it` (in slot order)."""
        return self.priv[:len(self.at)] + tpi * it

    def residue_counts(self, it: int) -> list[int]:
        """How many running sequences hold r private tokens past their last full block, for r in
        [0, block_tokens), at iteration `it` (residue counts on: one token per iteration)."""
        res, k = self.residues, it % self.block_tokens
        return res[-k:] + res[:-k] if k else res[:]

    def residue_sum(self, it: int) -> int:
        """The running sequences' private tokens past their last full block at iteration `it`,
        summed (residue counts on): each class c is at (c + it) mod block_tokens, so the sum is
        the classes' sum + n (it mod B) less B for each class that wrapped."""
        bt = self.block_tokens
        k = it % bt
        if not k:
            return self.rclass_sum
        return self.rclass_sum + len(self.at) * k - bt * sum(self.residues[bt - k:])

    def __len__(self) -> int:
        return len(self.seqs)

    def context_sum(self, tpi: float, it: int) -> float:
        return self.ctx_off_sum + len(self.seqs) * tpi * it

    def private_sum(self, tpi: float, it: int) -> float:
        return self.priv_off_sum + len(self.seqs) * tpi * it

    def context_max(self, tpi: float, it: int) -> float:
        """The longest running context at iteration `it` (0 when none runs)."""
        heap, seqs = self.max_heap, self.seqs
        while heap:
            neg_off, admit_no, sample = heap[0]
            seq = seqs.get(sample)
            if seq is not None and seq.admit_no == admit_no:
                return -neg_off + tpi * it
            heapq.heappop(heap)
        return 0.0

    def remove(self, seq: Seq) -> None:
        """Take a running sequence out (its finishing entry stays: see `unschedule`)."""
        del self.seqs[seq.sample]
        self.ctx_off_sum -= seq.ctx_off
        self.priv_off_sum -= seq.priv_off
        self.free_slot(seq)

    def unschedule(self, seq: Seq) -> None:
        """Drop a sequence's finishing entry (preempted or interrupted before its finish): found
        by bisection (entries are unique), removed by one move of the list's tail."""
        finishing = self.finishing
        key = (seq.finish_it, seq.admit_no, seq.sample)
        i = bisect.bisect_left(finishing, key)
        assert finishing[i] == key, "a sequence not scheduled to finish"
        del finishing[i]

    def done_by(self, it: int) -> int:
        """How many of `finishing` end at or before iteration `it`."""
        return bisect.bisect_right(self.finishing, (it, math.inf, math.inf))
