"""A continuous-batching sampler replica (tp x pp GPUs), advanced analytically.

State changes, not tokens, are events: between two state changes (admission, a sequence
finishing, the KV pool filling, a weight update) every running sequence gains
`tokens_per_iteration` tokens per iteration, so the span is costed in one call to
`cm.decode_span_s`. Work per RL step therefore grows with sequences, not tokens.

Modelled:
- admission FCFS, limited by `max_concurrent_sequences` and free KV blocks, one prefill call per
  admission round (`cm.prefill_s(new_tokens, sequences)`); running sequences pause meanwhile
  (chunked prefill mixing is not modelled);
- a token budget per engine step (`max_batched_tokens`, vLLM's max_num_batched_tokens; None: no
  limit): an admission round takes prompts while running + new prefill tokens fit it (the first
  queued prompt always goes, as vLLM chunks it); what the budget leaves queued is admitted at the
  next iteration (the span stops after one). A prompt is not split over steps (vLLM's chunks
  of a prompt that crosses the budget end in the next step, as its admission here);
- paged KV (rlvr_sim.sim.kv_pool): a replica holds `kv_blocks` blocks of `block_tokens`. A
  sequence holds its private tokens (prompt tail + generated); with prefix caching the prompt's
  full blocks are held once per prompt while any of its samples runs (and prefilled once);
  whole blocks, as vLLM allocates them (a block boundary crossing is a state change);
- preemption by recompute: when the next iteration would not fit, the most recently admitted
  sequence goes back to the front of the queue and later re-prefills prompt + generated tokens
  (fast mode runs a full pool's successive preemptions inside one span: COALESCE_PREEMPTIONS);
- staleness gate: a sample of step j is admitted only while `version >= j - max_staleness`;
- partial rollouts: `interrupt_all()` sends every running sequence back with its generated
  tokens (they continue under the new weights after a KV recompute, which is counted).

The engine is split by role: `KVPool` (blocks, one formula), `RunningSet` (rlvr_sim.sim.running:
running sequences, finish order, context sums), span costing (rlvr_sim.sim.spans). This module
decides admission, preemption, span planning, finish times and the per-step counters.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

import numpy as np

from rlvr_sim.errors import ScenarioError
from rlvr_sim.sim.batch_sync import run_whole_batch
from rlvr_sim.sim.kv_pool import _EPS as BLOCK_EPS, KVPool
from rlvr_sim.sim.protocols import SamplerCostLike
from rlvr_sim.sim.running import RunningSet, Seq
from rlvr_sim.sim.source import Group
from rlvr_sim.sim.spans import Segment, iterations_within, span_function

_tuple_new = tuple.__new__     # tuple.__new__(NamedTupleClass, values): the C constructor
# sync runs: a batch admitted whole runs through rlvr_sim.sim.batch_sync (same result, numpy)
WHOLE_BATCH = True
# one token per iteration: exact KV checks from residue counts, O(block) (same result as the
# numpy count over the running sequences, which is kept for other tokens per iteration)
RESIDUE_COUNTS = True
# a span cut by the KV pool that ended with no finish leaves the pool full: the next plan() skips
# the admission round and the KV check that cannot pass (same result; off: the reference path)
SKIP_FULL_ADMISSION = True
# with residue counts, plan() on a full pool takes `_plan_full`: the same preemptions and span,
# with the requeue and the KV check inlined; the blocks count carries over from the span before
# (its overflow, less each victim's blocks) and the check counts forward one residue class per
# iteration (the spans a full pool allows are a few iterations long). Off: the reference path
FAST_FULL_PLAN = True
# fast mode (coalescing on) with residue counts: a span on a full pool runs on past the
# iterations that overflow it, preempting there as the reference does (most recent first, the
# same victims at the same iterations, nothing admitted meanwhile), up to the next planned stop
# or coalesce_fraction x running victims; a victim counts as running for the share of the span
# before it leaves (as coalesced finishes do). Off (or exact mode): a span per overflow
COALESCE_PREEMPTIONS = True

__all__ = ["COALESCE_PREEMPTIONS", "FAST_FULL_PLAN", "Finished", "RESIDUE_COUNTS", "ReplicaEngine", "SKIP_FULL_ADMISSION", "Segment", "StepCounters",
           "WHOLE_BATCH"]


class Finished(NamedTuple):
    """A sample whose generation completed."""

    sample: int
    step: int
    replica: int
    prompt_tokens: int
    output_tokens: int
    version: int           # policy version when its generation started
    versions_spanned: int  # 1 + weight updates it lived through (partial rollouts)
    start_s: float
    end_s: float


@dataclass
class StepCounters:
    """Per RL step, this replica: preemptions, interruptions, recomputed tokens, and the busy
    time of prefills and decode spans (a span serving several steps' samples, in async runs, is
    counted for the step of its oldest running sample)."""

    preemptions: int = 0
    interruptions: int = 0
    recompute_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_iterations: int = 0


class ReplicaEngine:
    """One sampler replica. The orchestrator drives it with plan() / finish() / cut()."""

    def __init__(self, replica: int, cm: SamplerCostLike, *, max_concurrent: int, kv_blocks: int | None,
                 block_tokens: int, prefix_caching: bool, max_staleness: int,
                 coalesce_fraction: float = 0.0, span_rule: str = "cost_model",
                 interpolate_finishes: bool = True, whole_batch: bool | None = None,
                 max_batched_tokens: int | None = None):
        self.replica, self.cm = replica, cm
        self.whole_batch = WHOLE_BATCH if whole_batch is None else whole_batch
        self.coalesce = coalesce_fraction
        self.interpolate = interpolate_finishes
        self.tpi = float(cm.tokens_per_iteration)
        self._span = span_function(cm, span_rule, self.tpi)
        self.max_concurrent = max_concurrent
        self.max_batched_tokens = max_batched_tokens
        self._budget_held = False      # the last admission round left work queued for the budget
        # the span planned was cut by the KV pool (its next iteration does not fit), and, once
        # finished with no sequence done, the pool stays full (`plan` skips the admission round)
        self._kv_cut = False
        self._full = False
        self._skip_full = SKIP_FULL_ADMISSION
        self._fast_full = FAST_FULL_PLAN
        self._coalesce_preemptions = COALESCE_PREEMPTIONS and coalesce_fraction > 0
        # victims of the planned span that left inside it: (iterations run, sequence, its gen0
        # before), so a cut before their iteration takes back what they had not generated yet
        self._left: list[tuple[int, Seq, float]] = []
        # blocks the first iteration after the planned span holds, when `_fit_forward` counted
        # them (the span stopped there); -1: not counted
        self._overflow: float = -1.0
        self.kv = KVPool(kv_blocks, block_tokens, prefix_caching,
                         whole_tokens=self.tpi == int(self.tpi))
        self.eta = max_staleness
        self.clock = 0.0
        self.it = 0
        self.version = 0
        self.admit_enabled = True
        self.waiting: deque[Seq] = deque()
        # one token per iteration, whole tokens: residue counts give O(block) exact KV checks
        unit = RESIDUE_COUNTS and kv_blocks is not None and self.tpi == 1.0
        self.run = RunningSet(block_tokens if unit else 0)
        self.seg: Segment | None = None
        self.busy_s = 0.0
        self.prefill_s = 0.0
        self.segments = 0
        self.counters: dict[int, StepCounters] = {}

    @property
    def running(self) -> dict[int, Seq]:
        """Running sequences by sample id, in admission order."""
        return self.run.seqs

    # ----------------------------------------------------------------- input
    def submit(self, group: Group) -> None:
        self.waiting.extend(map(Seq, group.samples, repeat(group), group.response_tokens))

    @property
    def load(self) -> int:
        """Outstanding sequences (running + waiting): the dispatcher's balance key."""
        return len(self.run.seqs) + len(self.waiting)

    def wake(self, now_s: float) -> None:
        """An idle engine starts no earlier than `now_s`."""
        if self.seg is None and not self.run.seqs:
            self.clock = max(self.clock, now_s)

    def take_counters(self, step: int) -> StepCounters | None:
        """Hand over (and forget) this replica's counters of `step` (None: it did nothing for it)."""
        return self.counters.pop(step, None)

    # ----------------------------------------------------------------- KV
    def _private_tokens(self) -> np.ndarray:
        """Each running sequence's private tokens now (what its next iteration holds)."""
        return self.run.private_tokens(self.tpi, self.it)

    def _iterations_that_fit(self, limit: int) -> int:
        """Iterations (at most `limit`) the running batch may decode before the KV pool is full
        (whole blocks; 0: not even the next one fits)."""
        kv, run, tpi = self.kv, self.run, self.tpi
        if not kv.limited:
            return limit
        n = len(run.seqs)
        # held by iteration `limit` (run.private_sum, inlined)
        last = run.priv_off_sum + n * tpi * self.it + n * tpi * (limit - 1)
        if kv.upper_blocks(kv.shared_blocks, last, n) <= kv.capacity:
            return limit
        if run.block_tokens and limit >= 1:        # one token per iteration: O(block) closed form
            it = self.it
            return kv.iterations_that_fit_unit(int(run.priv_off_sum) + n * it, run.residue_sum(it),
                                               run.residue_counts(it), limit)
        return kv.iterations_that_fit(self._private_tokens(), tpi, limit)

    # ----------------------------------------------------------------- admission
    def _admit(self) -> None:
        """Admit queued sequences FCFS while the concurrency limit, the staleness gate and the
        KV pool allow; one prefill for the round (prompt once per group with prefix caching)."""
        waiting, run = self.waiting, self.run
        running = run.seqs
        self._budget_held = False
        if not (self.admit_enabled and waiting):
            return
        kv, tpi, it = self.kv, self.tpi, self.it
        kv_limited, capacity, max_concurrent = kv.limited, kv.capacity, self.max_concurrent
        gate = self.version + self.eta
        priv_off_sum = run.priv_off_sum
        # blocks the next iteration holds, with the admissions so far: an upper bound (O(1)),
        # counted exactly (O(running), O(block) with residue counts; once per round) when the
        # bound does not fit
        n = len(running)
        used = kv.upper_blocks(kv.shared_blocks, priv_off_sum + n * tpi * it, n) if kv_limited else 0.0
        exact = False
        if kv_limited and 0 < n < max_concurrent:
            # the head's KV check (the loop's first) before the round's setup: with the pool
            # full (KV-bound replicas, most rounds) the round ends here having admitted nothing
            seq = waiting[0]
            g = seq.group
            if g.step <= gate:
                need = kv.admission_blocks(g.group_id, g.prompt_tokens, seq.gen0)
                if used + need > capacity:
                    used, exact = self._exact_blocks(priv_off_sum, n), True
                    if used + need > capacity:
                        return
        bt, groups, prefix, counters = kv.block_tokens, kv.groups, kv.prefix, self.counters
        version, clock = self.version, self.clock
        tpi_it = tpi * it
        finishing, max_heap = run.finishing, run.max_heap
        insort, heappush, ceil, take_slot = bisect.insort, heapq.heappush, math.ceil, run.take_slot
        ctx_off_sum, admits = run.ctx_off_sum, run.admits
        admitted = 0
        new_tokens = 0
        budget = self.max_batched_tokens
        room = math.inf if budget is None else budget - n       # a running sequence decodes 1
        first_step = waiting[0].group.step
        while waiting and n < max_concurrent:
            seq = waiting[0]
            g = seq.group
            if g.step > gate:
                break
            prompt = g.prompt_tokens
            shared = prompt // bt if prefix else 0
            gen0 = seq.gen0
            private = prompt - shared * bt + gen0
            if budget is not None:
                tokens = (prompt if g.group_id not in groups else prompt - shared * bt) + int(gen0)
                if admitted and tokens > room:
                    self._budget_held = True
                    break
                room -= tokens
            if kv_limited:
                # kv.admission_blocks, inlined (its shared and private tokens are those above)
                need = (0 if g.group_id in groups else shared) + ceil(private / bt - BLOCK_EPS)
                if used + need > capacity:
                    if not exact:
                        # exact count now (running includes this round's admissions so far)
                        used, exact = self._exact_blocks(priv_off_sum, n), True
                    if used + need > capacity:
                        if not running and not admitted:
                            raise self._too_long(prompt + seq.target)
                        break
                used += need
            n += 1
            waiting.popleft()
            state = groups.get(g.group_id)                     # kv.join, inlined
            if state is None:
                groups[g.group_id] = [1, shared]
                kv.shared_blocks += shared
                new_tokens += prompt
            else:
                state[0] += 1
                new_tokens += prompt - shared * bt
            if gen0 > 0:
                new_tokens += int(gen0)
                c = counters.get(g.step)
                if c is None:
                    c = counters[g.step] = StepCounters()
                c.recompute_tokens += int(gen0)
            if seq.start_s < 0:
                seq.start_s = clock
            # start the sequence (its offsets make context and private tokens linear in `it`)
            if seq.version < 0:
                seq.version = version
            if seq.last_version != version:
                seq.versions += 1
                seq.last_version = version
            admits += 1
            seq.admit_it = it
            seq.admit_no = admits
            seq.ctx_off = ctx_off = prompt + gen0 - tpi_it
            seq.priv_off = priv_off = private - tpi_it
            ctx_off_sum += ctx_off
            priv_off_sum += priv_off
            sample = seq.sample
            running[sample] = seq
            take_slot(seq)
            todo = ceil((seq.target - gen0) / tpi - 1e-9)       # iterations left, at least 1
            seq.finish_it = finish_it = it + (todo if todo > 1 else 1)
            insort(finishing, (finish_it, admits, sample))
            heappush(max_heap, (-ctx_off, admits, sample))
            admitted += 1
        run.ctx_off_sum, run.priv_off_sum, run.admits = ctx_off_sum, priv_off_sum, admits
        if admitted:
            self._prefill(new_tokens, admitted, first_step)

    def _exact_blocks(self, priv_off_sum: float, n: int) -> float:
        """Blocks the next iteration holds: the shared ones + whole blocks of the `n` running
        sequences (their private-token offsets summing to `priv_off_sum`), counted exactly."""
        kv, run, it = self.kv, self.run, self.it
        if run.block_tokens:                    # O(block): residue counts
            return float(kv.shared_blocks + kv.whole_blocks(
                int(priv_off_sum) + n * it, run.residue_sum(it), n,
                run.residues[-it % run.block_tokens]))
        return float(kv.used_blocks(self._private_tokens()))

    def _too_long(self, tokens: int) -> ScenarioError:
        return ScenarioError(self.kv.too_long(tokens) + ": raise sampler.tp or "
                             "sampler.gpu_memory_utilization, or cap the lengths")

    def _prefill(self, new_tokens: int, sequences: int, step: int) -> None:
        """One prefill call for an admission round, charged to `step` (its first sample's)."""
        p = self.cm.prefill_s(new_tokens, sequences)
        self._counter(step).prefill_s += p
        self.clock += p
        self.busy_s += p
        self.prefill_s += p

    def _counter(self, step: int) -> StepCounters:
        c = self.counters.get(step)
        if c is None:
            c = self.counters[step] = StepCounters()
        return c

    def _generated(self, seq: Seq) -> float:
        return min(float(seq.target), seq.gen0 + self.tpi * (self.it - seq.admit_it))

    def _requeue(self, seq: Seq) -> None:
        """Send a running sequence back to the front of the queue with what it generated."""
        self.run.unschedule(seq)
        self.run.remove(seq)
        self.kv.leave(seq.group.group_id)
        seq.gen0 = self._generated(seq)
        self.waiting.appendleft(seq)

    # ----------------------------------------------------------------- time
    def _span_target(self) -> int:
        """Iterations to the next planned stop: the next finish, or with coalescing the k-th
        next finish (k = coalesce_fraction x running), so finishes close together share a stop."""
        if self._budget_held:                   # queued prompts wait for the next step's budget
            return 1
        n = len(self.run.seqs)
        k = 1
        waiting = self.waiting
        queued = (self.admit_enabled and waiting
                  and waiting[0].group.step <= self.version + self.eta)
        if self.coalesce and not queued:        # a finish that lets queued work in stops a span
            k = min(n, max(1, int(n * self.coalesce)))
        return self.run.finishing[k - 1][0] - self.it

    def plan(self) -> float | None:
        """Admit what fits and plan the next decode span; its end time, or None when idle."""
        if self.seg is not None:
            return self.seg.end_s
        run = self.run
        full = self._full
        if full and self._fast_full and run.block_tokens:
            if self._coalesce_preemptions:
                return self._plan_full_coalesced()      # fast mode (COALESCE_PREEMPTIONS)
            return self._plan_full()                    # same result (FAST_FULL_PLAN)
        self._overflow = -1.0                           # this span's KV check does not count it
        if full:
            # The last span stopped where its next iteration would not fit the KV pool, and
            # nothing finished or left since: the blocks that iteration holds already exceed the
            # capacity, so an admission round admits nothing (every path of `_admit` ends at a
            # KV check or before the loop) and only its reset of the budget flag remains.
            self._full = False
            self._budget_held = False
        else:
            self._admit()
        while True:
            if not run.seqs:
                return None
            if full:                                    # not even the next iteration fits
                full, iters = False, 0
            else:
                target = self._span_target()
                iters = self._iterations_that_fit(target)
                if iters > 0:
                    break
            if len(run.seqs) == 1:
                raise self._outgrows()
            victim = run.seqs[next(reversed(run.seqs))]
            self._counter(victim.group.step).preemptions += 1
            self._requeue(victim)
            if run.block_tokens:
                # One token per iteration, whole tokens: the victim, now at the queue's head,
                # needs back exactly the blocks it freed (its private tokens now, and its group's
                # shared blocks if they left with it), and the pool held more than its capacity
                # (not even the next iteration fit), so an admission round would stop at it
                # having admitted nothing: only its reset of the budget flag remains.
                self._budget_held = False
            else:
                self._admit()
        return self._start_span(iters, target)

    def _outgrows(self) -> ScenarioError:
        """The error of a lone running sequence whose next iteration does not fit the pool."""
        seq = next(iter(self.run.seqs.values()))
        return ScenarioError(
            f"one sequence of {seq.group.prompt_tokens + seq.target} tokens outgrows the KV "
            f"pool of a sampler replica ({self.kv.capacity} blocks of "
            f"{self.kv.block_tokens} tokens): raise sampler.tp or "
            "sampler.gpu_memory_utilization, or lower response_tokens.cap")

    def _plan_full(self) -> float:
        """`plan` on a full pool (the last span stopped where its next iteration did not fit,
        nothing finished since) with residue counts on: preempt the most recently admitted
        sequence until the next iteration fits, then plan the span. The reference's steps in
        its order (`_preempt_newest`, `_span_target`; `_iterations_that_fit` inlined), without the
        admission rounds it skips there (see `plan`). The blocks the next iteration holds are
        the previous span's overflow when `_fit_forward` planned it (`_overflow`; else counted
        exactly), less each victim's blocks and its group's shared ones if they leave with it;
        whole-token integers, as the reference's count."""
        run = self.run
        it = self.it
        self._full = False
        self._budget_held = False
        used = self._overflow
        if used < 0:
            used = self._exact_blocks(run.priv_off_sum, len(run.seqs))
        while True:
            used -= self._preempt_newest(it)[1]
            target = self._span_target()        # no budget held; the victim is the queue's head
            iters = self._fit_forward(used, target)
            if iters > 0:
                return self._start_span(iters, target)

    def _preempt_newest(self, at: int) -> tuple[Seq, int, float]:
        """Preempt the most recently admitted running sequence at iteration `at` (residue counts
        on: one token per iteration, whole tokens): `_requeue` inlined (unschedule, remove,
        leave its group, back to the queue's head with what it generated by `at`). Returns it,
        the blocks it held at `at` (whole private tokens, ceil by integers, plus its group's
        shared blocks if they left with it) and its tokens generated before this admission."""
        run, kv = self.run, self.kv
        seqs = run.seqs
        if len(seqs) == 1:
            raise self._outgrows()
        sample = next(reversed(seqs))
        victim = seqs[sample]
        g = victim.group
        c = self.counters.get(g.step)
        if c is None:
            c = self.counters[g.step] = StepCounters()
        c.preemptions += 1
        finishing = run.finishing
        del finishing[bisect.bisect_left(finishing, (victim.finish_it, victim.admit_no, sample))]
        del seqs[sample]
        run.ctx_off_sum -= victim.ctx_off
        run.priv_off_sum -= victim.priv_off
        run.free_slot(victim)
        shared = kv.shared_blocks
        kv.leave(g.group_id)
        freed = -(-(int(victim.priv_off) + at) // run.block_tokens) + shared - kv.shared_blocks
        gen0 = victim.gen0
        victim.gen0 = min(float(victim.target), gen0 + self.tpi * (at - victim.admit_it))
        self.waiting.appendleft(victim)
        return victim, freed, gen0

    def _plan_full_coalesced(self) -> float:
        """`_plan_full` in fast mode: the same preemptions at the same iterations, in one span.

        From the full pool's next iteration on, one iteration at a time (residue counts, as
        `_fit_forward`): while the next iteration does not fit, the most recently admitted
        sequence is preempted there (its generated tokens counted to that iteration); the span
        ends at the next planned stop (the next finish while work is queued), or at an overflow
        once coalesce_fraction x running sequences have left in it (then, as a KV-cut span, the
        pool stays full and the next call goes on from there). Nothing is admitted inside, as in
        the reference, whose admission rounds admit nothing on a full pool (see `plan`). Only
        the span's cost differs: the victims count for the share of it they ran (`_start_span`)."""
        run, kv = self.run, self.kv
        seqs = run.seqs
        it = self.it
        self._full = False
        self._budget_held = False
        bt, res, capacity = run.block_tokens, run.residues, kv.capacity
        used = self._overflow
        if used < 0:
            used = self._exact_blocks(run.priv_off_sum, len(seqs))
        self._overflow = -1.0
        left = self._left = []
        most = max(1, int(len(seqs) * self.coalesce))
        m = 0                          # iterations of the span so far; `used`: the next one's blocks
        target = 0
        while True:
            while used > capacity:
                if m > 0 and len(left) >= most:        # a KV-cut span: the pool stays full
                    self._overflow = used
                    return self._start_span(m, m + 1)
                victim, freed, gen0 = self._preempt_newest(it + m)
                used -= freed
                if m > 0:
                    left.append((m, victim, gen0))
                target = 0
            if not target:                              # the next planned stop (no budget held)
                target = self._span_target()
            # whole rounds of `bt` iterations that fit: each sequence takes exactly one block
            # per round, and the blocks grow monotonically inside it
            n = len(seqs)
            rounds = min(int(capacity - used) // n, (target - m - 1) // bt)
            if rounds > 0:
                m += rounds * bt
                used += rounds * n
            m += 1
            if m >= target:
                return self._start_span(m, m)
            used += res[-(it + m - 1) % bt]             # residue 0 at iteration m: a block more

    def _fit_forward(self, used: float, limit: int) -> int:
        """`_iterations_that_fit(limit)` with residue counts, counted forward from `used`, the
        exact blocks the next iteration holds: one iteration at a time the sequences whose tokens
        end a block take one more (those of one residue class), up to one round of
        `block_tokens` iterations; past it (a span longer than that fits) the reference answers.
        Integers throughout, so the same answer as the closed form. Sets `_overflow`: the
        blocks of the first iteration that does not fit (-1: not counted)."""
        self._overflow = -1.0
        capacity = self.kv.capacity
        if used > capacity:
            return 0
        run, it = self.run, self.it
        bt, res = run.block_tokens, run.residues
        m = 1
        while m < limit:
            if m > bt:
                return self._iterations_that_fit(limit)
            used += res[-(it + m - 1) % bt]         # residue 0 at iteration m: a block more
            if used > capacity:
                self._overflow = used
                return m
            m += 1
        return limit

    def _start_span(self, iters: int, target: int) -> float:
        """Plan a span of `iters` iterations of the running batch (`target`: those to the next
        planned stop; fewer: the KV pool cut it); its end time."""
        run = self.run
        seqs, finishing = run.seqs, run.finishing
        tpi, it = self.tpi, self.it
        n: float = float(len(seqs))
        ctx_sum = run.ctx_off_sum + n * tpi * it          # run.context_sum, inlined
        heap = run.max_heap                               # run.context_max, inlined
        while True:
            neg_off, admit_no, sample = heap[0]           # (the running set is not empty)
            seq = seqs.get(sample)
            if seq is not None and seq.admit_no == admit_no:
                ctx_max = -neg_off + tpi * it
                break
            heapq.heappop(heap)
        end_it = it + iters
        if finishing[0][0] < end_it:                      # coalesced: some leave early
            for finish_it, _, sample in finishing:
                if finish_it >= end_it:
                    break
                gone = (end_it - finish_it) / iters         # share of the span they are absent
                seq = seqs[sample]
                n -= gone
                ctx_sum -= gone * (seq.ctx_off + tpi * finish_it)
        for m_v, seq, _ in self._left:                   # coalesced preemptions: left at m_v
            ctx_v = seq.ctx_off + tpi * it
            gone = (iters - m_v) / iters
            n += 1 - gone
            ctx_sum += ctx_v - gone * (ctx_v + tpi * m_v)
            if ctx_v > ctx_max:
                ctx_max = ctx_v
        span = self._span(n, ctx_sum, ctx_max, iters)
        t0 = self.clock
        self.seg = _tuple_new(Segment, (t0, iters, span, n, ctx_sum, ctx_max))
        self._kv_cut = iters < target
        self.segments += 1
        return t0 + span                                  # Segment.end_s

    def finish(self) -> list[Finished]:
        """Complete the planned span; the samples that finished at its end."""
        seg = self.seg
        assert seg is not None
        self.seg = None
        if self._left:
            self._left = []
        t0_s, iterations, span_s = seg[0], seg[1], seg[2]
        self._account(span_s, iterations)
        self.it = it = self.it + iterations
        self.clock = t0_s + span_s                        # seg.end_s
        finishing = self.run.finishing
        if finishing[0][0] > it:                          # none done (a span cut by the KV pool)
            self._full = self._skip_full and self._kv_cut
            return []
        done = self._pop_finished(t0_s, span_s / iterations)
        self._full = self._skip_full and self._kv_cut and not done
        return done

    def _account(self, span_s: float, iterations: int) -> None:
        self.busy_s += span_s
        step = next(iter(self.run.seqs.values())).group.step
        c = self.counters.get(step)
        if c is None:
            c = self.counters[step] = StepCounters()
        c.decode_s += span_s
        c.decode_iterations += iterations

    def _pop_finished(self, t0_s: float, s_per_iteration: float) -> list[Finished]:
        """Retire every running sequence whose last iteration is done. A sequence that ended
        inside a coalesced span of `s_per_iteration` started at `t0_s` is reported at its
        interpolated time (its KV was held to the span's end) when `interpolate_finishes` (sync
        runs, whose arrivals are sorted before verification), else at the span's end."""
        run = self.run
        finishing = run.finishing
        it, clock = self.it, self.clock
        if not finishing or finishing[0][0] > it:      # none done (a span cut by the KV pool)
            return []
        done: list[Finished] = []
        m = run.done_by(it)
        interpolate = self.interpolate and s_per_iteration > 0
        it0 = it - round((clock - t0_s) / s_per_iteration) if interpolate else it
        running, leave, replica, free_slot = run.seqs, self.kv.leave, self.replica, run.free_slot
        new = _tuple_new
        ctx_off_sum, priv_off_sum = run.ctx_off_sum, run.priv_off_sum
        for finish_it, _, sample in finishing[:m]:
            seq = running.pop(sample)                   # as RunningSet.remove, inlined
            ctx_off_sum -= seq.ctx_off
            priv_off_sum -= seq.priv_off
            free_slot(seq)
            g = seq.group
            leave(g.group_id)
            end = clock if finish_it == it or not interpolate else \
                t0_s + (finish_it - it0) * s_per_iteration
            done.append(new(Finished, (sample, g.step, replica, g.prompt_tokens, seq.target,
                             seq.version, seq.versions, seq.start_s, end)))
        run.ctx_off_sum, run.priv_off_sum = ctx_off_sum, priv_off_sum
        del finishing[:m]
        return done

    def could_admit(self) -> bool:
        """Whether a queued sequence may join at the next iteration (KV permitting)."""
        return (self.admit_enabled and bool(self.waiting)
                and len(self.run.seqs) < self.max_concurrent
                and self.waiting[0].group.step - self.eta <= self.version)

    def cut(self, now_s: float) -> list[Finished]:
        """Stop the planned span at the first iteration boundary at or after `now_s`.

        Woken during the admission prefill (before the span starts), the span is dropped and
        re-planned from the prefill's end."""
        seg = self.seg
        assert seg is not None
        if now_s <= seg.t0_s:
            self.seg = None
            self._take_back(0)
            return []
        lo = iterations_within(self._span, seg, now_s - seg.t0_s)
        if lo >= seg.iterations:
            return self.finish()
        self._take_back(lo)
        span = self._span(seg.sequences, seg.context_sum, seg.context_max, lo)
        self.seg = None
        self._account(span, lo)
        self.it += lo
        self.clock = seg.t0_s + span
        return self._pop_finished(seg.t0_s, span / lo)   # coalesced spans: some finished before

    def _take_back(self, iterations: int) -> None:
        """A coalesced span cut after `iterations`: its victims preempted later keep only the
        tokens generated by then (they left early: fast mode's approximation)."""
        tpi, end = self.tpi, self.it + iterations
        for m_v, seq, gen0 in self._left:
            if m_v > iterations:
                seq.gen0 = min(float(seq.target), gen0 + tpi * (end - seq.admit_it))
        self._left = []

    # --- in-flight weight update hook (issue 12; orchestrator mode keep_kv) ---------------------
    def continue_in_flight(self) -> None:
        """keep_kv: the running sequences continue under `self.version` on their KV cache as is
        (no recompute); each counts one more policy version spanned. Call after the load, with
        no span planned and `clock` at the load's end."""
        version = self.version
        for seq in self.run.seqs.values():
            if seq.last_version != version:
                seq.versions += 1
                seq.last_version = version

    def interrupt_all(self) -> None:
        """Partial rollout: every running sequence returns to the queue with its tokens."""
        assert self.seg is None
        self._full = False
        running = self.run.seqs
        for sample in reversed(list(running)):
            seq = running[sample]
            self._counter(seq.group.step).interruptions += 1
            self._requeue(seq)

    def run_to_idle(self) -> list[Finished]:
        """Advance until nothing is left to run (sync modes: no outside event can intervene).
        A batch admitted whole runs in one numpy pass (rlvr_sim.sim.batch_sync) unless
        `whole_batch` is off; the span-by-span loop below is the reference."""
        if self.whole_batch and self.max_batched_tokens is None:
            fast = run_whole_batch(self)
            if fast is not None:
                return fast
        done: list[Finished] = []
        while self.plan() is not None:
            done.extend(self.finish())
        return done
