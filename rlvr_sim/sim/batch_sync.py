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

`sync_round(engines, verifier, rec, step, batch, dispatch)` (what rlvr_sim.sim.rounds calls for a
synchronous round) does the same for every replica at once and keeps the step's samples as
columns (rlvr_sim.sim.columns) through arrival order, the verifier pool
(`VerifierPool.serve_columns`) and the recorder, so a step costs a fixed number of numpy calls
over its samples plus a few Python operations per replica and per verifier worker, not per
sample. Per replica its conditions are run_whole_batch's; a replica that fails them runs the
event engine beside the others. Spans: a span whose first finish position is m depends on m
only, so the next span is computed for every position at once and each replica's chain of spans
is then followed (one numpy step per span of the longest chain); all spans are costed in one
call of `cm.decode_steps_s` (the vectorised `decode_step_s`, rlvr_sim.cost.sampler_vec) with the
engines' 3-point Simpson rule, or span by span with the engine's own rule when the cost model has
no vectorised form (tests' fake). Clocks and busy times accumulate span by span in the same order
of float additions as the engine (np.cumsum down a passes x replicas table).
Same statistical treatment as the event engine: each replica gets its own samples (nothing is
reused between replicas, so the max-of-replicas tail of a sync step is kept).
"""

from __future__ import annotations

import bisect
from itertools import chain
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from rlvr_sim.sim.columns import FinishedColumns
    from rlvr_sim.sim.orchestrator import Dispatch
    from rlvr_sim.sim.recorder import Recorder
    from rlvr_sim.sim.sampler import Finished, ReplicaEngine
    from rlvr_sim.sim.source import Batch, Group
    from rlvr_sim.sim.verifier import VerifierPool


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


# ---------------------------------------------------------------------------------------------
# All replicas of a sync round at once, kept as columns up to the recorder.


class _Queue:
    """Stands in for a ReplicaEngine in `dispatch`: takes its load, records the groups it gets."""

    __slots__ = ("replica", "load", "groups")

    def __init__(self, replica: int, load: int):
        self.replica, self.load = replica, load
        self.groups: "list[Group]" = []

    def submit(self, group: "Group") -> None:
        self.groups.append(group)


def sync_round(engines: "list[ReplicaEngine]", verifier: "VerifierPool", rec: "Recorder", step: int,
               batch: "Batch", dispatch: "Dispatch"
               ) -> float | None:
    """One synchronous generation round of `batch` on every replica, verified and recorded, with
    numpy over all the replicas' samples at once; the time its last reward is known, or None
    (nothing changed) when the path does not apply (an engine not idle or not coalescing, engines
    that differ, whole-batch off, a token budget per engine step: max_batched_tokens, a profile
    with a per-call host cost: sampler_call_s). The groups go where `dispatch` sends them; a replica whose batch
    does not fit whole (concurrency or KV pool: see the module docstring) runs the event engine.
    Same results as `run_to_idle` per replica + `arrival_order` + `VerifierPool.serve`, to float
    rounding (tests/test_sim_whole_batch.py compares them on every shipped scenario)."""
    from rlvr_sim.sim.columns import FinishedColumns

    if (not engines or not batch.groups or not all(g.response_tokens for g in batch.groups)
            or not hasattr(engines[0], "_span")):
        return None
    e0 = engines[0]
    cm, same = e0.cm, _shape(e0)
    if cm.sampler_call_s(1) > 0:    # a generate call's host cost (rounds.generate_and_verify)
        return None
    for e in engines:
        if (not e.whole_batch or e.max_batched_tokens is not None or e.running or e.seg is not None
                or e.waiting or not e.admit_enabled or e.coalesce <= 0 or step > e.version + e.eta
                or e.cm is not cm or _shape(e) != same):
            return None
    queues = [_Queue(e.replica, e.load) for e in engines]
    dispatch(batch.groups, queues)
    blocks, fallback = _columns_of_round(engines, queues, step)
    for r in fallback:
        e = engines[r]
        for g in queues[r].groups:
            e.submit(g)
        blocks.append(FinishedColumns.from_finished(step, e.run_to_idle()))
    finished = FinishedColumns.concat(step, blocks)
    finished = finished.take(finished.arrival_order())
    rec.generated_columns(finished)
    verified = verifier.serve_columns(finished, batch)
    rec.verified_columns(verified)
    return float(verified.end_s.max())


def _simpson(e: "ReplicaEngine") -> bool:
    """Whether the engine costs spans with the 3-point Simpson rule on cm.decode_step_s."""
    from rlvr_sim.sim.spans import is_simpson_span

    return is_simpson_span(getattr(e, "_span", None))


def _shape(e: "ReplicaEngine") -> tuple[int, bool, float, float, float, float, bool, int, bool]:
    """What the numpy pass takes from the first engine for all: equal on every engine or no pass."""
    kv = e.kv
    return (kv.block_tokens, kv.prefix, kv.capacity, kv.round_up, e.tpi, e.coalesce, e.interpolate,
            e.max_concurrent, _simpson(e))


def _columns_of_round(engines: "list[ReplicaEngine]", queues: list[_Queue], step: int
                      ) -> "tuple[list[FinishedColumns], list[int]]":
    """Run every replica's queued groups (`queues`) as one admitted batch each, all replicas in
    one numpy pass: the finished samples as column blocks, and the replicas left to the event
    engine (nothing changed in them). Mirrors `run_whole_batch` replica by replica."""
    from rlvr_sim.sim.columns import FinishedColumns
    from rlvr_sim.sim.sampler import StepCounters

    e0 = engines[0]
    pool = e0.kv
    bt, tpi, coalesce = pool.block_tokens, e0.tpi, e0.coalesce
    kv, round_up, kv_limited = pool.capacity, pool.round_up, pool.limited
    n_rep = len(engines)
    groups = [g for q in queues for g in q.groups]
    if not groups:
        return [], []
    k_of = np.fromiter((len(g.response_tokens) for g in groups), dtype=np.int64, count=len(groups))
    g_rep = np.repeat(np.arange(n_rep), [len(q.groups) for q in queues])
    count = np.bincount(g_rep, weights=k_of, minlength=n_rep).astype(np.int64)
    max_conc = e0.max_concurrent
    ok = (count > 0) & (count <= max_conc)
    n = int(k_of.sum())
    g_prompt = np.fromiter((g.prompt_tokens for g in groups), dtype=np.int64, count=len(groups))
    g_first = np.fromiter((g.first_sample for g in groups), dtype=np.int64, count=len(groups))
    target = np.fromiter(chain.from_iterable(g.response_tokens for g in groups), dtype=np.int64, count=n)
    gidx = np.repeat(np.arange(len(groups)), k_of)               # group of each queued sample
    g_start = np.cumsum(k_of) - k_of
    at = np.arange(n)
    sample = g_first[gidx] + (at - g_start[gidx])
    prompt = g_prompt[gidx]
    rep = g_rep[gidx]
    rep_start = np.cumsum(count) - count                          # queue offset of each replica
    pos = at - rep_start[rep]                           # position in its replica's queue
    it0_r = np.array([e.it for e in engines], dtype=np.int64)
    g_shared = g_prompt // bt if pool.prefix else np.zeros(len(groups), dtype=np.int64)
    shared = g_shared[gidx]
    private = (prompt - shared * bt).astype(float)
    # the admission round's KV check (a group's first sample brings its shared blocks):
    # KVPool.upper_blocks of the round, as run_whole_batch
    shared_r = np.bincount(g_rep, weights=g_shared.astype(float), minlength=n_rep)
    private_r = np.bincount(rep, weights=private, minlength=n_rep)
    if kv_limited:
        ok &= ~(shared_r + private_r / bt + count * round_up > kv)
    todo = np.maximum(np.ceil((target / tpi) - 1e-9), 1).astype(np.int64)
    finish = it0_r[rep] + todo
    # per replica, finishing order (finish, admission): one sort of a unique integer key
    span_it = int(todo.max()) + 1
    order = np.argsort((rep * span_it + todo) * (int(count.max()) + 1) + pos)
    f_it, f_rep = finish[order], rep[order]
    f_prompt = prompt[order].astype(float)
    f_private = private[order]
    rep_end = rep_start + count
    # running set at a finish position m of a replica = its positions >= m: suffix sums, maxima
    def suffix(x: np.ndarray) -> np.ndarray:
        s = np.append(np.cumsum(x[::-1])[::-1], 0.0)
        out: np.ndarray = s - s[rep_end][f_rep_ext]
        return out
    f_rep_ext = np.append(f_rep, n_rep - 1)
    ctx_suffix = suffix(f_prompt)
    priv_suffix = suffix(f_private)
    big = int(prompt.max()) + 1
    lift = (n_rep - f_rep) * big
    max_suffix = np.append(np.maximum.accumulate((prompt[order] + lift)[::-1])[::-1] - lift, 0)
    last_of_group = np.zeros(n, dtype=float)        # shared blocks held while the group runs
    where = np.empty(n, dtype=np.int64)
    where[order] = at                               # sorted position of each queued sample
    last = np.maximum.reduceat(where, g_start)      # a group's samples are contiguous in the queue
    last_of_group[last] = g_shared
    shared_suffix = suffix(last_of_group)
    # prefix sums over finishes, relative to each replica's first iteration
    f_rel = f_it - it0_r[f_rep]
    gone_w = f_prompt + tpi * f_rel                 # context a finished sequence had at its finish
    f_cum = np.append(0.0, np.cumsum(f_rel.astype(float)))
    w_cum = np.append(0.0, np.cumsum(gone_w))
    fw_cum = np.append(0.0, np.cumsum(f_rel * gone_w))
    key_base = int(f_it.max()) + 1
    key = f_rep * key_base + f_it                   # sorted: replica, then finish iteration
    # plan the spans. A span that starts with finish position m next (its replica's running set:
    # positions >= m) depends on m alone: it starts at iteration f_it[m - 1] (the replica's it0 at
    # its first position) and ends at the k-th next finish; so the next span's m is computed for
    # every position at once, and each replica's chain of spans is followed from its first one.
    stop_pos = rep_end[f_rep]
    it_at = np.append(0, f_it[:-1])
    first_pos = rep_start[f_rep] == at
    it_at[first_pos] = it0_r[f_rep[first_pos]]
    left_all = stop_pos - at
    k_all = np.minimum(left_all, np.maximum(1, (left_all * coalesce).astype(np.int64)))
    end_it_all = f_it[at + k_all - 1]
    next_m = np.searchsorted(key, f_rep * key_base + end_it_all, "right")
    live = np.flatnonzero(ok)
    cur = rep_start[live]
    walk: list[np.ndarray] = []
    while len(cur):
        walk.append(cur)
        nxt = next_m[cur]
        cur = nxt[nxt < stop_pos[cur]]
    if not walk:
        return [], np.flatnonzero((count > 0) & ~ok).tolist()
    passes = len(walk)
    pass_no = np.repeat(np.arange(passes), [len(c) for c in walk])
    mm = np.concatenate(walk)
    s_rep = f_rep[mm]
    n_run = stop_pos[mm] - mm
    it_m = it_at[mm]
    s_it = end_it_all[mm]
    s_iters = s_it - it_m
    rel = it_m - it0_r[s_rep]
    if kv_limited:
        # the span's last iteration holds private + (rel + iters - 1) x tpi tokens per sequence:
        # KVPool.upper_blocks must fit there (then the exact whole-block count fits all along)
        bad = shared_suffix[mm] + (priv_suffix[mm] + n_run * tpi * (rel + s_iters - 1)) / bt \
            + n_run * round_up > kv
        if bad.any():
            ok[s_rep[bad]] = False
            keep = ok[s_rep]
            if not keep.any():
                return [], np.flatnonzero((count > 0) & ~ok).tolist()
            mm, s_rep, n_run, it_m, s_it, s_iters, rel, pass_no = (
                x[keep] for x in (mm, s_rep, n_run, it_m, s_it, s_iters, rel, pass_no))
    s_end = next_m[mm]
    inside = np.searchsorted(key, s_rep * key_base + s_it, "left")   # finishes before the end
    end_rel = s_it - it0_r[s_rep]                                     # leave early
    s_n = n_run.astype(float)
    s_sum = ctx_suffix[mm] + n_run * tpi * rel
    early = inside > mm
    if early.any():
        s_n = s_n - np.where(early, ((inside - mm) * end_rel - (f_cum[inside] - f_cum[mm])) / s_iters, 0.0)
        s_sum = s_sum - np.where(early, (end_rel * (w_cum[inside] - w_cum[mm])
                                         - (fw_cum[inside] - fw_cum[mm])) / s_iters, 0.0)
    s_max = max_suffix[mm] + tpi * rel
    s_m = mm
    span = _span_costs(engines, s_rep, s_n, s_sum, s_max, s_iters)
    # per replica, in span order: t0 of each span = clock after prefill + earlier spans
    reps = np.flatnonzero(ok)
    new_tokens = np.bincount(rep, weights=np.where(_first_of_group(gidx, n), prompt, prompt - shared * bt),
                             minlength=n_rep)
    table = np.zeros((passes + 1, n_rep))
    table[pass_no + 1, s_rep] = span
    busy_table = table.copy()
    decode_table = table.copy()
    counters = []
    start_r = np.zeros(n_rep)
    for r in reps.tolist():
        e = engines[r]
        c = e.counters.get(step)
        if c is None:
            c = e.counters[step] = StepCounters()
        counters.append(c)
        p = e.cm.prefill_s(int(new_tokens[r]), int(count[r]))
        c.prefill_s += p
        start_r[r] = e.clock
        e.clock += p
        e.busy_s += p
        e.prefill_s += p
        table[0, r] = e.clock
        busy_table[0, r] = e.busy_s
        decode_table[0, r] = c.decode_s
    clock_at = np.cumsum(table, axis=0)               # row j: t0 of pass j's span (sequential sums)
    busy_end = np.cumsum(busy_table, axis=0)[-1]
    decode_end = np.cumsum(decode_table, axis=0)[-1]
    spans_of = np.bincount(s_rep, minlength=n_rep)
    iters_of = np.bincount(s_rep, weights=s_iters, minlength=n_rep)
    last_it = f_it[np.maximum(rep_end - 1, 0)]         # a replica's last span ends at its last finish
    for c, r in zip(counters, reps.tolist()):
        e = engines[r]
        e.segments += int(spans_of[r])
        e.busy_s = float(busy_end[r])
        e.clock = float(clock_at[-1, r])
        e.it = int(last_it[r])
        e.run.admits += int(count[r])
        c.decode_s = float(decode_end[r])
        c.decode_iterations += int(iters_of[r])
    # finish times: the span's end, or (sync) interpolated inside a coalesced span
    t0 = clock_at[pass_no, s_rep]
    end_s = clock_at[pass_no + 1, s_rep]
    rate = span / s_iters
    by_rep = np.argsort(s_m)                        # spans in finish-position order
    sizes = (s_end - s_m)[by_rep]
    pick = np.repeat(by_rep, sizes)
    rows = np.flatnonzero(ok[f_rep])                 # sorted positions of the replicas run here
    t0_a, end_a, rate_a, it_a = t0[pick], end_s[pick], rate[pick], s_it[pick]
    fi = f_it[rows]
    if e0.interpolate:
        positive = rate_a > 0
        start_it = it_a - np.rint((end_a - t0_a) / np.where(positive, rate_a, 1.0))
        ends = np.where((fi == it_a) | ~positive, end_a, t0_a + (fi - start_it) * rate_a)
    else:
        ends = end_a
    src = order[rows]
    version = np.array([e.version for e in engines], dtype=np.int64)
    out = FinishedColumns(step, sample[src], rep[src], prompt[src], target[src], version[rep[src]],
                          np.ones(len(src), dtype=np.int64), start_r[rep[src]], ends)
    return [out], np.flatnonzero((count > 0) & ~ok).tolist()


def _first_of_group(gidx: np.ndarray, n: int) -> np.ndarray:
    """Whether each queued sample is its group's first (it prefills the whole prompt)."""
    first = np.ones(n, dtype=bool)
    first[1:] = gidx[1:] != gidx[:-1]
    return first


def _span_costs(engines: "list[ReplicaEngine]", rep: np.ndarray, n: np.ndarray, ctx_sum: np.ndarray,
                ctx_max: np.ndarray, iters: np.ndarray) -> np.ndarray:
    """Seconds of each planned span: the engines' Simpson rule on the cost model's vectorised
    step time (`cm.decode_steps_s`) when both are there, else each engine's own span function."""
    e0 = engines[0]
    # optional on a cost model (the facade has it): step seconds of arrays of
    # (sequences, context sum, context max)
    steps: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = getattr(
        e0.cm, "decode_steps_s", None)
    if steps is None or not _simpson(e0):
        return np.array([engines[r]._span(a, b, c, i) for r, a, b, c, i in
                         zip(rep.tolist(), n.tolist(), ctx_sum.tolist(), ctx_max.tolist(),
                             iters.tolist())], dtype=float)
    tpi = e0.tpi
    last_i = iters - 1
    mid_i = last_i / 2
    k = len(n)
    t = steps(np.concatenate([n, n, n]),
              np.concatenate([ctx_sum, ctx_sum + last_i * tpi * n, ctx_sum + mid_i * tpi * n]),
              np.concatenate([ctx_max, ctx_max + last_i * tpi, ctx_max + mid_i * tpi]))
    first, last, mid = t[:k], t[k:2 * k], t[2 * k:]
    return np.where(iters == 1, first,
                    np.where(iters == 2, first + last, iters * (first + 4 * mid + last) / 6))
