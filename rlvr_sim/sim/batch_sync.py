"""A sync step of one sampler replica in one pass, when its whole batch is admitted at once.

`run_whole_batch(engine)` does what `ReplicaEngine.run_to_idle()` does (same admission round, same
coalesced decode spans costed by the same `engine._span` calls, same finish times and counters),
with the per-sample work in numpy instead of a Python loop per sample and sequence. It applies
only when the engine starts idle and every queued sequence is admitted in the first round and
never preempted: all of one step, fresh (nothing generated yet), at most `max_concurrent`, and
the KV pool's upper bound of whole blocks (KVPool.upper_blocks) holding them at every span's
last iteration (checked before anything changes; where the bound fits, the exact count fits). Otherwise it returns
None and the caller runs the event engine, which stays the reference (tests compare both on
every shipped scenario; differences are float rounding, ~1e-12 relative).

Per span it mirrors `ReplicaEngine.plan()`: n = running sequences, context sum and max of the
running ones, coalescing to the k-th next finish (k = coalesce_fraction x running), finishes
inside the span leaving early for the span's cost, interpolated finish times in sync runs.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rlvr_sim.sim.sampler import Finished, ReplicaEngine


def run_whole_batch(e: "ReplicaEngine") -> "list[Finished] | None":
    """The finished samples of the engine's queued batch, or None when the fast path does not apply
    (see the module docstring); on None nothing in the engine has changed."""
    from rlvr_sim.sim.sampler import Finished, StepCounters

    waiting = e.waiting
    count = len(waiting)
    if (e.running or e.seg is not None or not e.admit_enabled or count == 0 or count > e.max_concurrent
            or e.coalesce <= 0):
        return None
    first = waiting[0]
    step = first.group.step
    if step > e.version + e.eta:
        return None
    seqs = list(waiting)
    for seq in seqs:
        if seq.group.step != step or seq.gen0 > 0 or seq.start_s >= 0:
            return None
    pool = e.kv
    bt, tpi = pool.block_tokens, e.tpi
    groups = [seq.group for seq in seqs]
    prompt = np.fromiter((g.prompt_tokens for g in groups), dtype=np.int64, count=count)
    target = np.fromiter((seq.target for seq in seqs), dtype=np.int64, count=count)
    gid = np.fromiter((g.group_id for g in groups), dtype=np.int64, count=count)
    shared = prompt // bt if pool.prefix else np.zeros(count, dtype=np.int64)
    private = (prompt - shared * bt).astype(float)
    # a group's first queued sample brings the shared prompt blocks (and prefills the whole prompt)
    _, first_of_group = np.unique(gid, return_index=True)
    is_first = np.zeros(count, dtype=bool)
    is_first[first_of_group] = True
    it0 = e.it
    kv = pool.capacity
    shared_all = float(shared[is_first].sum())
    if pool.limited and pool.upper_blocks(shared_all, private.sum(), count) > kv:
        return None
    todo = np.maximum(np.ceil((target / tpi) - 1e-9), 1).astype(np.int64)
    finish = it0 + todo
    admit_no = e.run.admits + 1 + np.arange(count)
    order = np.lexsort((admit_no, finish))          # finishing order: (finish_it, admit_no)
    f_it = finish[order]
    f_prompt = prompt[order].astype(float)
    f_private = private[order]
    # running set at finish-position m = positions >= m: suffix sums and maxima
    ctx_suffix = np.append(np.cumsum(f_prompt[::-1])[::-1], 0.0)
    priv_suffix = np.append(np.cumsum(f_private[::-1])[::-1], 0.0)
    max_suffix = np.append(np.maximum.accumulate(f_prompt[::-1])[::-1], 0.0)
    # shared blocks held at position m: groups whose last finishing sample is at >= m
    f_gid = gid[order]
    last_pos = np.zeros(count, dtype=float)
    _, last_rev = np.unique(f_gid[::-1], return_index=True)
    last = count - 1 - last_rev
    last_pos[last] = shared[order][last]
    shared_suffix = np.append(np.cumsum(last_pos[::-1])[::-1], 0.0)
    # plan the spans (integers and sums only: nothing changes in the engine yet)
    f_list = f_it.tolist()
    gone_w = f_prompt + tpi * (f_it - it0)  # context a finished sequence had at its finish
    f_cum = np.append(0.0, np.cumsum(f_it.astype(float))).tolist()
    w_cum = np.append(0.0, np.cumsum(gone_w)).tolist()
    fw_cum = np.append(0.0, np.cumsum(f_it * gone_w)).tolist()
    ctx_l, priv_l, max_l, shared_l = (ctx_suffix.tolist(), priv_suffix.tolist(), max_suffix.tolist(),
                                      shared_suffix.tolist())
    spans: list[tuple[int, int, int, float, float, float]] = []   # (m, end_m, iters, n, ctx_sum, ctx_max)
    m, it = 0, it0
    coalesce = e.coalesce
    kv_limited = pool.limited
    left, right = bisect.bisect_left, bisect.bisect_right
    while m < count:
        n_run = count - m
        k = min(n_run, max(1, int(n_run * coalesce)))
        iters = f_list[m + k - 1] - it
        rel = it - it0
        # the span's last iteration holds private + (rel + iters - 1) x tpi tokens per sequence
        if kv_limited and pool.upper_blocks(shared_l[m], priv_l[m] + n_run * tpi * (rel + iters - 1),
                                            n_run) > kv:
            return None
        end_it = it + iters
        inside = left(f_list, end_it, m)      # finishes before the span's end leave early
        n = float(n_run)
        ctx_sum = ctx_l[m] + n_run * tpi * rel
        if inside > m:
            n -= ((inside - m) * end_it - (f_cum[inside] - f_cum[m])) / iters
            ctx_sum -= (end_it * (w_cum[inside] - w_cum[m]) - (fw_cum[inside] - fw_cum[m])) / iters
        end_m = right(f_list, end_it, inside)
        spans.append((m, end_m, iters, n, ctx_sum, max_l[m] + tpi * rel))
        m, it = end_m, end_it
    # commit: the admission round, then each span
    waiting.clear()
    new_tokens = int(np.where(is_first, prompt, prompt - shared * bt).sum())
    start_s = e.clock
    e.run.admits += count
    counter = e.counters.get(step)
    if counter is None:
        counter = e.counters[step] = StepCounters()
    p = e.cm.prefill_s(new_tokens, count)
    counter.prefill_s += p
    e.clock += p
    e.busy_s += p
    e.prefill_s += p
    span_fn = e._span
    it = it0
    t0s, rates, its = [], [], []
    for m, end_m, iters, n, ctx_sum, ctx_max in spans:
        t0 = e.clock
        span = span_fn(n, ctx_sum, ctx_max, iters)
        e.segments += 1
        e.busy_s += span
        counter.decode_s += span
        counter.decode_iterations += iters
        it += iters
        e.clock = t0 + span
        t0s.append(t0)
        rates.append(span / iters)
        its.append(it)
    # finish times: the span's end, or (sync) interpolated inside a coalesced span
    sizes = [end_m - m for m, end_m, *_ in spans]
    t0_a, rate_a, it_a, iters_a = (np.repeat(np.array(x, dtype=float), sizes)
                                   for x in (t0s, rates, its, [sp[2] for sp in spans]))
    end_a = t0_a + rate_a * iters_a                 # the span's end (its t0 + span)
    if e.interpolate:
        start_it = it_a - np.rint((end_a - t0_a) / np.where(rate_a > 0, rate_a, 1.0))
        ends = np.where((f_it == it_a) | (rate_a <= 0), end_a, t0_a + (f_it - start_it) * rate_a)
    else:
        ends = end_a
    e.it = it
    samples = [seqs[i].sample for i in order.tolist()]
    new = tuple.__new__
    replica, version = e.replica, e.version
    return [new(Finished, (s, step, replica, pt, tg, version, 1, start_s, end))
            for s, pt, tg, end in zip(samples, prompt[order].tolist(), target[order].tolist(), ends.tolist())]
