"""A continuous-batching sampler replica (tp x pp GPUs), advanced analytically.

State changes, not tokens, are events: between two state changes (admission, a sequence
finishing, the KV pool filling, a weight update) every running sequence gains
`tokens_per_iteration` tokens per iteration, so the span is costed in one call to
`cm.decode_span_s`. Work per RL step therefore grows with sequences, not tokens.

Modelled:
- admission FCFS, limited by `max_concurrent_sequences` and free KV blocks, one prefill call per
  admission round (`cm.prefill_s(new_tokens, sequences)`); running sequences pause meanwhile
  (chunked prefill mixing is not modelled);
- paged KV: a replica holds `kv_blocks` blocks of `block_tokens`. A sequence holds its private
  tokens (prompt tail + generated); with prefix caching the prompt's full blocks are held once per
  prompt while any of its samples runs (and prefilled once). Block rounding is taken in
  expectation: used = shared + (private tokens)/B + n (B-1)/(2B); exact for B = 1;
- preemption by recompute: when the next iteration would not fit, the most recently admitted
  sequence goes back to the front of the queue and later re-prefills prompt + generated tokens;
- staleness gate: a sample of step j is admitted only while `version >= j - max_staleness`;
- partial rollouts: `interrupt_all()` sends every running sequence back with its generated
  tokens (they continue under the new weights after a KV recompute, which is counted).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from itertools import repeat
from dataclasses import dataclass
from typing import NamedTuple

from rlvr_sim.errors import ScenarioError
from rlvr_sim.sim.batch_sync import run_whole_batch
from rlvr_sim.sim.protocols import CostModelLike
from rlvr_sim.sim.source import Group


_tuple_new = tuple.__new__     # tuple.__new__(NamedTupleClass, values): the C constructor
# sync runs: a batch admitted whole runs through rlvr_sim.sim.batch_sync (same result, numpy)
WHOLE_BATCH = True


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


class Segment(NamedTuple):
    """A planned decode span: `iterations` iterations of the current batch from `t0_s`."""

    t0_s: float
    iterations: int
    span_s: float
    sequences: float       # mean running sequences over the span (coalesced finishes leave early)
    context_sum: float
    context_max: float

    @property
    def end_s(self) -> float:
        return self.t0_s + self.span_s


class _Seq:
    __slots__ = ("sample", "group", "target", "gen0", "version", "versions", "admit_it", "admit_no",
                 "ctx_off", "priv_off", "start_s", "last_version", "finish_it")

    def __init__(self, sample: int, group: Group, target: int):
        self.sample, self.group, self.target = sample, group, target
        self.gen0 = 0.0
        self.version = -1
        self.versions = 0
        self.last_version = -1
        self.start_s = -1.0


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

    def __init__(self, replica: int, cm: CostModelLike, *, max_concurrent: int, kv_blocks: int | None,
                 block_tokens: int, prefix_caching: bool, max_staleness: int,
                 coalesce_fraction: float = 0.0, span_rule: str = "cost_model",
                 interpolate_finishes: bool = True, whole_batch: bool | None = None):
        self.replica, self.cm = replica, cm
        self.whole_batch = WHOLE_BATCH if whole_batch is None else whole_batch
        self.coalesce = coalesce_fraction
        self.interpolate = interpolate_finishes
        step = getattr(cm, "decode_step_s", None)
        self._span = (self._simpson_span if span_rule == "simpson3" and step is not None
                      else cm.decode_span_s)
        self.max_concurrent = max_concurrent
        self.kv_blocks = math.inf if kv_blocks is None else kv_blocks
        self.bt = block_tokens
        self.prefix = prefix_caching
        self.eta = max_staleness
        self.tpi = float(cm.tokens_per_iteration)
        self.frag = (block_tokens - 1) / (2 * block_tokens)
        self.clock = 0.0
        self.it = 0
        self.version = 0
        self.admit_enabled = True
        self.waiting: deque[_Seq] = deque()
        self.running: dict[int, _Seq] = {}
        self._finishing: list[tuple[int, int, int]] = []   # sorted (finish_it, admit_no, sample)
        self._max_heap: list[tuple[float, int, int]] = []
        self._groups: dict[int, list[int]] = {}     # group_id -> [running samples, shared blocks]
        self._shared_blocks = 0
        self._ctx_off_sum = 0.0
        self._priv_off_sum = 0.0
        self._admits = 0
        self.seg: Segment | None = None
        self.busy_s = 0.0
        self.prefill_s = 0.0
        self.segments = 0
        self.counters: dict[int, StepCounters] = {}

    # ----------------------------------------------------------------- input
    def submit(self, group: Group) -> None:
        self.waiting.extend(map(_Seq, group.samples, repeat(group), group.response_tokens))

    @property
    def load(self) -> int:
        """Outstanding sequences (running + waiting): the dispatcher's balance key."""
        return len(self.running) + len(self.waiting)

    def wake(self, now_s: float) -> None:
        """An idle engine starts no earlier than `now_s`."""
        if self.seg is None and not self.running:
            self.clock = max(self.clock, now_s)

    # ----------------------------------------------------------------- KV arithmetic
    def _blocks_after(self, iterations: int, extra_private: float = 0.0, extra_seqs: int = 0,
                      extra_shared: int = 0) -> float:
        n = len(self.running) + extra_seqs
        private = self._priv_off_sum + len(self.running) * self.tpi * self.it + extra_private
        return (self._shared_blocks + extra_shared
                + (private + n * self.tpi * iterations) / self.bt + n * self.frag)

    def _iterations_that_fit(self, limit: int) -> int:
        if self.kv_blocks == math.inf or self._blocks_after(limit) <= self.kv_blocks:
            return limit
        n = len(self.running)
        private = self._priv_off_sum + n * self.tpi * self.it
        room_tokens = (self.kv_blocks - self._shared_blocks - n * self.frag) * self.bt - private
        return max(0, min(limit, math.floor(room_tokens / (n * self.tpi) + 1e-9)))

    # ----------------------------------------------------------------- admission
    def _admit(self) -> None:
        """Admit queued sequences FCFS while the concurrency limit, the staleness gate and the
        KV pool allow; one prefill for the round (prompt once per group with prefix caching)."""
        waiting, running, groups = self.waiting, self.running, self._groups
        if not (self.admit_enabled and waiting):
            return
        gate = self.version + self.eta
        kv, bt, frag, tpi = self.kv_blocks, self.bt, self.frag, self.tpi
        kv_limited = kv != math.inf
        prefix, max_concurrent = self.prefix, self.max_concurrent
        version, it, clock = self.version, self.it, self.clock
        tpi_it = tpi * it
        finishing, max_heap = self._finishing, self._max_heap
        insort, heappush, ceil = bisect.insort, heapq.heappush, math.ceil
        ctx_off_sum, priv_off_sum, admits = self._ctx_off_sum, self._priv_off_sum, self._admits
        # KV after one more iteration, as _blocks_after(1) with the admissions so far
        n = len(running)
        private_sum = priv_off_sum + n * tpi * it
        shared_sum = self._shared_blocks
        admitted = 0
        new_tokens = 0
        first_step = waiting[0].group.step
        while waiting and n < max_concurrent:
            seq = waiting[0]
            g = seq.group
            if g.step > gate:
                break
            prompt = g.prompt_tokens
            shared = prompt // bt if prefix else 0
            state = groups.get(g.group_id)
            gen0 = seq.gen0
            private = prompt - shared * bt + gen0
            if kv_limited:
                add_shared = 0 if state else shared
                if (shared_sum + add_shared + (private_sum + private + (n + 1) * tpi) / bt
                        + (n + 1) * frag) > kv:
                    if not running and not admitted:
                        raise self._too_long(prompt + seq.target)
                    break
                shared_sum += add_shared
                private_sum += private
            n += 1
            waiting.popleft()
            if state is None:
                state = groups[g.group_id] = [0, shared]
                self._shared_blocks += shared
                new_tokens += prompt
            else:
                new_tokens += prompt - shared * bt
            if gen0 > 0:
                new_tokens += int(gen0)
                self._counter(g.step).recompute_tokens += int(gen0)
            state[0] += 1
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
            todo = ceil((seq.target - gen0) / tpi - 1e-9)       # iterations left, at least 1
            seq.finish_it = finish_it = it + (todo if todo > 1 else 1)
            insort(finishing, (finish_it, admits, sample))
            heappush(max_heap, (-ctx_off, admits, sample))
            admitted += 1
        self._ctx_off_sum, self._priv_off_sum, self._admits = ctx_off_sum, priv_off_sum, admits
        if admitted:
            self._prefill(new_tokens, admitted, first_step)

    def _too_long(self, tokens: int) -> ScenarioError:
        return ScenarioError(
            f"a sequence of {tokens} tokens does not fit the KV pool of a sampler replica "
            f"({self.kv_blocks} blocks of {self.bt} tokens): raise sampler.tp or "
            "sampler.gpu_memory_utilization, or cap the lengths")

    def _prefill(self, new_tokens: int, sequences: int, step: int) -> None:
        """One prefill call for an admission round, charged to `step` (its first sample's)."""
        p = self.cm.prefill_s(new_tokens, sequences)
        self._counter(step).prefill_s += p
        self.clock += p
        self.busy_s += p
        self.prefill_s += p

    def _stop(self, seq: _Seq) -> None:
        """Remove a running sequence (finished, preempted or interrupted)."""
        del self.running[seq.sample]
        self._ctx_off_sum -= seq.ctx_off
        self._priv_off_sum -= seq.priv_off
        state = self._groups[seq.group.group_id]
        state[0] -= 1
        if state[0] == 0:
            self._shared_blocks -= state[1]
            del self._groups[seq.group.group_id]

    def _counter(self, step: int) -> StepCounters:
        c = self.counters.get(step)
        if c is None:
            c = self.counters[step] = StepCounters()
        return c

    def _generated(self, seq: _Seq) -> float:
        return min(float(seq.target), seq.gen0 + self.tpi * (self.it - seq.admit_it))

    def _requeue(self, seq: _Seq) -> None:
        self._finishing.remove((seq.finish_it, seq.admit_no, seq.sample))
        self._stop(seq)
        seq.gen0 = self._generated(seq)
        self.waiting.appendleft(seq)

    # ----------------------------------------------------------------- time
    def _context_max(self) -> float:
        heap = self._max_heap
        while heap:
            neg_off, admit_no, sample = heap[0]
            seq = self.running.get(sample)
            if seq is not None and seq.admit_no == admit_no:
                return -neg_off + self.tpi * self.it
            heapq.heappop(heap)
        return 0.0

    def _simpson_span(self, sequences: float, context_sum: float, context_max: float,
                      iterations: int) -> float:
        """`iterations` iterations from three `cm.decode_step_s` calls (first, middle and last
        iteration, Simpson's rule): exact for iteration times quadratic in the index; a cheaper
        stand-in for cm.decode_span_s (its 9-point rule); worst case seen on random spans of the
        shipped scenarios 1.9 % (skew term with a 4x max/mean context), typical < 0.01 %."""
        step = self.cm.decode_step_s
        tpi = self.tpi
        first = step(sequences, context_sum, context_max)
        if iterations == 1:
            return first
        last_i = iterations - 1
        last = step(sequences, context_sum + last_i * tpi * sequences, context_max + last_i * tpi)
        if iterations == 2:
            return first + last
        mid_i = last_i / 2
        mid = step(sequences, context_sum + mid_i * tpi * sequences, context_max + mid_i * tpi)
        return iterations * (first + 4 * mid + last) / 6

    def _span_target(self) -> int:
        """Iterations to the next planned stop: the next finish, or with coalescing the k-th
        next finish (k = coalesce_fraction x running), so finishes close together share a stop."""
        n = len(self.running)
        k = 1
        waiting = self.waiting
        queued = (self.admit_enabled and waiting
                  and waiting[0].group.step <= self.version + self.eta)
        if self.coalesce and not queued:        # a finish that lets queued work in stops a span
            k = min(n, max(1, int(n * self.coalesce)))
        return self._finishing[k - 1][0] - self.it

    def plan(self) -> float | None:
        """Admit what fits and plan the next decode span; its end time, or None when idle."""
        if self.seg is not None:
            return self.seg.end_s
        while True:
            self._admit()
            if not self.running:
                return None
            iters = self._iterations_that_fit(self._span_target())
            if iters > 0:
                break
            if len(self.running) == 1:
                seq = next(iter(self.running.values()))
                raise ScenarioError(
                    f"one sequence of {seq.group.prompt_tokens + seq.target} tokens outgrows the KV "
                    f"pool of a sampler replica ({self.kv_blocks} blocks of {self.bt} tokens): raise "
                    "sampler.tp or sampler.gpu_memory_utilization, or lower response_tokens.cap")
            victim = self.running[next(reversed(self.running))]
            self._counter(victim.group.step).preemptions += 1
            self._requeue(victim)
        n: float = len(self.running)
        ctx_sum = self._ctx_off_sum + n * self.tpi * self.it
        ctx_max = self._context_max()
        end_it = self.it + iters
        for finish_it, _, sample in self._finishing:       # coalesced: some leave early
            if finish_it >= end_it:
                break
            gone = (end_it - finish_it) / iters             # share of the span they are absent
            seq = self.running[sample]
            n -= gone
            ctx_sum -= gone * (seq.ctx_off + self.tpi * finish_it)
        span = self._span(n, ctx_sum, ctx_max, iters)
        self.seg = Segment(self.clock, iters, span, n, ctx_sum, ctx_max)
        self.segments += 1
        return self.seg.end_s

    def finish(self) -> list[Finished]:
        """Complete the planned span; the samples that finished at its end."""
        seg = self.seg
        assert seg is not None
        self.seg = None
        self._account(seg.span_s, seg.iterations)
        self.it += seg.iterations
        self.clock = seg.end_s
        return self._pop_finished(seg.t0_s, seg.span_s / seg.iterations)

    def _account(self, span_s: float, iterations: int) -> None:
        self.busy_s += span_s
        c = self._counter(next(iter(self.running.values())).group.step)
        c.decode_s += span_s
        c.decode_iterations += iterations

    def _pop_finished(self, t0_s: float, s_per_iteration: float) -> list[Finished]:
        """Retire every running sequence whose last iteration is done. A sequence that ended
        inside a coalesced span of `s_per_iteration` started at `t0_s` is reported at its
        interpolated time (its KV was held to the span's end) when `interpolate_finishes` (sync
        runs, whose arrivals are sorted before verification), else at the span's end."""
        done: list[Finished] = []
        finishing = self._finishing
        it, clock = self.it, self.clock
        m = bisect.bisect_right(finishing, (it, math.inf, math.inf))
        interpolate = self.interpolate and s_per_iteration > 0
        it0 = it - round((clock - t0_s) / s_per_iteration) if interpolate else it
        running, groups, replica = self.running, self._groups, self.replica
        new = _tuple_new
        ctx_off_sum, priv_off_sum = self._ctx_off_sum, self._priv_off_sum
        for finish_it, _, sample in finishing[:m]:
            seq = running.pop(sample)                   # as _stop, inlined
            ctx_off_sum -= seq.ctx_off
            priv_off_sum -= seq.priv_off
            g = seq.group
            state = groups[g.group_id]
            state[0] -= 1
            if state[0] == 0:
                self._shared_blocks -= state[1]
                del groups[g.group_id]
            end = clock if finish_it == it or not interpolate else \
                t0_s + (finish_it - it0) * s_per_iteration
            done.append(new(Finished, (sample, g.step, replica, g.prompt_tokens, seq.target,
                             seq.version, seq.versions, seq.start_s, end)))
        self._ctx_off_sum, self._priv_off_sum = ctx_off_sum, priv_off_sum
        del finishing[:m]
        return done

    def could_admit(self) -> bool:
        """Whether a queued sequence may join at the next iteration (KV permitting)."""
        return (self.admit_enabled and bool(self.waiting)
                and len(self.running) < self.max_concurrent
                and self.waiting[0].group.step - self.eta <= self.version)

    def cut(self, now_s: float) -> list[Finished]:
        """Stop the planned span at the first iteration boundary at or after `now_s`.

        Woken during the admission prefill (before the span starts), the span is dropped and
        re-planned from the prefill's end."""
        seg = self.seg
        assert seg is not None
        if now_s <= seg.t0_s:
            self.seg = None
            return []
        lo, hi = 1, seg.iterations          # smallest i with span(i) >= elapsed
        elapsed = now_s - seg.t0_s
        while lo < hi:
            mid = (lo + hi) // 2
            if self._span(seg.sequences, seg.context_sum, seg.context_max, mid) >= elapsed:
                hi = mid
            else:
                lo = mid + 1
        if lo >= seg.iterations:
            return self.finish()
        span = self._span(seg.sequences, seg.context_sum, seg.context_max, lo)
        self.seg = None
        self._account(span, lo)
        self.it += lo
        self.clock = seg.t0_s + span
        return self._pop_finished(seg.t0_s, span / lo)   # coalesced spans: some finished before

    # --- in-flight weight update hook (issue 12; orchestrator mode keep_kv) ---------------------
    def continue_in_flight(self) -> None:
        """keep_kv: the running sequences continue under `self.version` on their KV cache as is
        (no recompute); each counts one more policy version spanned. Call after the load, with
        no span planned and `clock` at the load's end."""
        version = self.version
        for seq in self.running.values():
            if seq.last_version != version:
                seq.versions += 1
                seq.last_version = version

    def interrupt_all(self) -> None:
        """Partial rollout: every running sequence returns to the queue with its tokens."""
        assert self.seg is None
        for sample in reversed(list(self.running)):
            seq = self.running[sample]
            self._counter(seq.group.step).interruptions += 1
            self._requeue(seq)

    def run_to_idle(self) -> list[Finished]:
        """Advance until nothing is left to run (sync modes: no outside event can intervene).
        A batch admitted whole runs in one numpy pass (rlvr_sim.sim.batch_sync) unless
        `whole_batch` is off; the span-by-span loop below is the reference."""
        if self.whole_batch:
            fast = run_whole_batch(self)
            if fast is not None:
                return fast
        done: list[Finished] = []
        while self.plan() is not None:
            done.extend(self.finish())
        return done
