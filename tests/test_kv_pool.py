"""The sampler replica's KV pool (rlvr_sim.sim.kv_pool): whole blocks, hand-computed, and the
upper bound the fast checks use never below the exact count (hypothesis)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.sim.kv_pool import KVPool
from rlvr_sim.sim.protocols import SamplerCostLike


def test_whole_blocks_of_a_sequence():
    pool = KVPool(10, 4, prefix_caching=True)
    assert [pool.seq_blocks(x) for x in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert pool.seq_blocks(4 * (1 + 1e-12)) == 1          # float noise is not a new block
    assert pool.shared_of(9) == 2 and KVPool(10, 4, prefix_caching=False).shared_of(9) == 0


def test_shared_blocks_are_held_while_any_sample_of_the_group_runs():
    pool = KVPool(10, 4, prefix_caching=True)
    assert pool.join(7, 2) is True and pool.join(7, 2) is False
    assert pool.shared_blocks == 2
    pool.leave(7)
    assert pool.shared_blocks == 2
    pool.leave(7)
    assert pool.shared_blocks == 0 and not pool.groups


def test_iterations_that_fit_stops_before_the_first_overflowing_block():
    # 8 blocks of 4, 1 shared held; private tokens 3 and 6 now (1 and 2 blocks: 4 used).
    # Iteration m holds 3 + (m-1) and 6 + (m-1): m=1: 1+2; m=2: 1+2 (4, 7); m=3: 2+2 (5, 8);
    # m=4..5: 2+3 (6..7, 9..10); m=6: 2+3 (8, 11); m=7: 3+3 (9, 12) -> 1 + 6 = 7;
    # m=8: 3+3 (10, 13 -> 4) = 1 + 7 = 8; m=10: 3+4 (12, 15); m=11: 4+4 -> 9 > 8.
    pool = KVPool(8, 4, prefix_caching=True)
    pool.join(0, 1)
    x = np.array([3.0, 6.0])
    assert pool.used_blocks(x) == 4
    assert pool.iterations_that_fit(x, 1.0, 100) == 10
    assert pool.iterations_that_fit(x, 1.0, 5) == 5
    # 2 tokens per iteration (speculation): m-th holds 3 + 2(m-1), 6 + 2(m-1); m=5: 11, 14 ->
    # 3 + 4 = 7 (+1 shared = 8); m=6: 13, 16 -> 4 + 4 = 9 > 8
    assert pool.iterations_that_fit(x, 2.0, 100) == 5
    full = KVPool(3, 4, prefix_caching=True)
    full.join(0, 1)
    assert full.iterations_that_fit(x, 1.0, 10) == 0          # 1 + 1 + 2 > 3 already


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 5000, allow_nan=False), min_size=1, max_size=50),
       st.integers(1, 256), st.integers(0, 40), st.booleans())
def test_upper_bound_is_never_below_the_exact_count(private, bt, shared, whole):
    x = np.floor(np.array(private)) if whole else np.array(private)
    pool = KVPool(None, bt, prefix_caching=True, whole_tokens=whole)
    pool.shared_blocks = shared
    exact = pool.used_blocks(x)
    assert exact == shared + sum(math.ceil(v / bt - 1e-9) for v in x.tolist())
    assert pool.upper_blocks(shared, float(x.sum()), len(x)) >= exact - 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 30),
       st.integers(1, 4), st.integers(1, 8), st.booleans(), st.sampled_from([1.0, 1.5, 2.0]))
def test_the_engine_never_plans_a_span_past_the_pool(lengths, prompt, k, bt, prefix, tpi):
    """Every planned span's last iteration fits the pool (exact whole blocks), and every sample
    finishes, whatever the lengths, block size, sharing and tokens per iteration."""
    from rlvr_sim.sim.fake_cost import FakeCostModel
    from rlvr_sim.sim.sampler import ReplicaEngine
    from rlvr_sim.sim.source import Group

    capacity = math.ceil((prompt + max(lengths)) / bt) + 2       # the longest fits alone
    e = ReplicaEngine(0, FakeCostModel(tokens_per_iteration=tpi), max_concurrent=64,
                      kv_blocks=capacity, block_tokens=bt, prefix_caching=prefix, max_staleness=0)
    groups = [lengths[i:i + k] for i in range(0, len(lengths), k)]
    first = 0
    for gid, resp in enumerate(groups):
        e.submit(Group(0, gid, prompt, tuple(resp), first))
        first += len(resp)
    done = []
    while e.plan() is not None:         # (a ScenarioError here: a sequence that fits refused)
        seg = e.seg
        assert seg is not None
        held = e._private_tokens() + tpi * (seg.iterations - 1)
        assert e.kv.used_blocks(held) <= capacity
        done.extend(e.finish())
    assert sorted(f.sample for f in done) == list(range(len(lengths)))


def test_residue_closed_forms_by_hand():
    # the example above: B = 4, 1 shared of 8, private 3 and 6 (residues 3 and 2, sum 9)
    pool = KVPool(8, 4, prefix_caching=True)
    pool.join(0, 1)
    counts = [0, 0, 1, 1]
    assert pool.whole_blocks(9, 5, 2, 0) == 3                  # 1 + 2, as used_blocks - shared
    assert pool.iterations_that_fit_unit(9, 5, counts, 100) == 10
    assert pool.iterations_that_fit_unit(9, 5, counts, 5) == 5
    full = KVPool(3, 4, prefix_caching=True)
    full.join(0, 1)
    assert full.iterations_that_fit_unit(9, 5, counts, 10) == 0


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.integers(1, 20),
       st.integers(0, 30), st.integers(0, 80), st.integers(1, 400))
def test_residue_closed_forms_equal_the_vector_count_and_search(private, bt, shared, spare, limit):
    """whole_blocks and iterations_that_fit_unit (O(B), from residue counts) give exactly what
    used_blocks and the binary search over numpy counts give, for any whole private tokens."""
    x = np.array(private, dtype=float)
    probe = KVPool(None, bt, prefix_caching=True)
    exact = probe.used_blocks(x)                    # shared 0
    capacity = shared + max(0, exact - 3) + spare   # below, at and above what is held now
    pool = KVPool(capacity, bt, prefix_caching=True)
    pool.shared_blocks = shared
    counts = [0] * bt
    for v in private:
        counts[v % bt] += 1
    residue_sum = sum(v % bt for v in private)
    assert pool.whole_blocks(sum(private), residue_sum, len(private), counts[0]) == exact
    assert pool.iterations_that_fit_unit(sum(private), residue_sum, counts, limit) == \
        pool.iterations_that_fit(x, 1.0, limit)


@dataclass(frozen=True)
class EngineCase:
    """One replica's workload and the outside events between its spans (see `_run_engine`)."""

    lengths: tuple[int, ...]
    prompt: int
    k: int                      # samples per prompt group
    bt: int
    prefix: bool
    capacity: int
    budget: int | None
    coalesce: float
    interrupt_every: int = 0    # partial rollout: interrupt_all after every n-th span
    cut_every: int = 0          # a wake-up cut_at of the way into every n-th span
    cut_at: float = 0.5
    drain_after: int = 0        # admission stopped after that many spans (a drain)


def _run_engine(case: EngineCase, residues: bool, skip: bool, fast_full: bool,
                cm: SamplerCostLike | None = None, fused: bool = True,
                coalesce_preemptions: bool = False, reload: bool = False) -> tuple[list, list, list]:
    """Spans (whole segments; cuts as ("cut", it, clock)), finishes and per-step counters of
    one replica run to idle with the engine's shortcut flags set as given. The cost model is
    the fake (it costs a span by its mean batch too, so a wrong batch shows in the times), or
    `cm` with Simpson spans (`fused`: spans.FUSED_STEP). `coalesce_preemptions`: fast mode's
    COALESCE_PREEMPTIONS (off: the exact shortcuts alone, compared span for span). `reload`:
    an engine idle with work queued behind a drain admits again (as after a weight load)."""
    import rlvr_sim.sim.sampler as sampler
    import rlvr_sim.sim.spans as spans_module
    from rlvr_sim.sim.fake_cost import FakeCostModel
    from rlvr_sim.sim.sampler import ReplicaEngine
    from rlvr_sim.sim.source import Group

    old = (sampler.RESIDUE_COUNTS, sampler.SKIP_FULL_ADMISSION, sampler.FAST_FULL_PLAN,
           sampler.COALESCE_PREEMPTIONS, spans_module.FUSED_STEP)
    sampler.RESIDUE_COUNTS, sampler.SKIP_FULL_ADMISSION, sampler.FAST_FULL_PLAN = \
        residues, skip, fast_full
    sampler.COALESCE_PREEMPTIONS = coalesce_preemptions
    spans_module.FUSED_STEP = fused
    try:
        e = ReplicaEngine(0, FakeCostModel(decode_s_per_seq=0.25) if cm is None else cm,
                          max_concurrent=64, kv_blocks=case.capacity, block_tokens=case.bt,
                          prefix_caching=case.prefix, max_staleness=0,
                          max_batched_tokens=case.budget, coalesce_fraction=case.coalesce,
                          span_rule="cost_model" if cm is None else "simpson3")
    finally:
        (sampler.RESIDUE_COUNTS, sampler.SKIP_FULL_ADMISSION, sampler.FAST_FULL_PLAN,
         sampler.COALESCE_PREEMPTIONS, spans_module.FUSED_STEP) = old
    assert bool(e.run.block_tokens) == residues
    first = 0
    for gid, i in enumerate(range(0, len(case.lengths), case.k)):
        resp = case.lengths[i:i + case.k]
        e.submit(Group(0, gid, case.prompt, tuple(resp), first))
        first += len(resp)
    spans: list = []
    done: list = []
    while True:
        if e.plan() is None:
            if reload and e.waiting and not e.admit_enabled:
                e.admit_enabled = True
                continue
            break
        seg = e.seg
        assert seg is not None
        spans.append(tuple(seg))        # start, iterations, seconds, batch, context sum, max
        if case.cut_every and len(spans) % case.cut_every == 0:
            done.extend(e.cut(seg.t0_s + case.cut_at * seg.span_s))
            spans.append(("cut", e.it, e.clock))
        else:
            done.extend(e.finish())
        if case.interrupt_every and len(spans) % case.interrupt_every == 0:
            e.interrupt_all()
        if case.drain_after and len(spans) >= case.drain_after:
            e.admit_enabled = False
    counters = [(c.preemptions, c.interruptions, c.recompute_tokens) for c in e.counters.values()]
    return spans, done, counters


def _assert_shortcuts_match_reference(case: EngineCase) -> None:
    """Every combination of the shortcut flags gives the reference path's run (all off)."""
    reference = _run_engine(case, False, False, False)
    assert _run_engine(case, True, True, True) == reference
    assert _run_engine(case, True, True, False) == reference
    assert _run_engine(case, False, True, True) == reference
    assert _run_engine(case, True, False, True) == reference


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=40), st.integers(1, 30),
       st.integers(1, 4), st.integers(1, 8), st.booleans(), st.integers(0, 4),
       st.sampled_from([None, 8, 40]), st.sampled_from([0.0, 0.3]), st.integers(0, 7),
       st.integers(0, 5), st.floats(0.01, 1.0), st.integers(0, 30), st.sampled_from([1, 4, 8]))
def test_the_engine_with_residue_counts_plans_the_same_spans(lengths, prompt, k, bt, prefix, tight,
                                                             budget, coalesce, interrupt_every,
                                                             cut_every, cut_at, drain_after, room):
    """The engine with residue counts (O(B) KV checks, no admission round after a preemption),
    with the full-pool shortcut (no admission round after a span the KV pool cut, nothing
    finishing) and with the full-pool plan (FAST_FULL_PLAN: requeue and KV check inlined, blocks
    counted forward) plans exactly the spans, preemptions and finishes of the engine with numpy
    counts and none of them, in a pool tight enough to preempt, with or without a token budget,
    coalesced finishes, partial-rollout interruptions and cuts (a wake-up `cut_at` of the way
    into every `cut_every`-th span) between spans, and admission stopped after `drain_after`
    spans (a drain before a weight load: no queued work waits, finishes coalesce), in pools
    that hold about `room` of the longest sequences."""
    capacity = room * math.ceil((prompt + max(lengths)) / bt) + tight
    _assert_shortcuts_match_reference(EngineCase(
        tuple(lengths), prompt, k, bt, prefix, capacity, budget, coalesce, interrupt_every,
        cut_every, cut_at, drain_after))


@pytest.mark.parametrize("seed", range(40))
def test_the_shortcuts_match_the_reference_on_larger_thrashing_replicas(seed):
    """As above on seeded workloads larger than hypothesis draws: 40-150 sequences in pools
    holding 4-12 of the longest, so full-pool chains run many spans, with coalescing (the
    k-th finish as a span's target) and drains, cuts and interruptions drawn per seed."""
    rng = random.Random(seed)
    lengths = tuple(rng.randint(1, 120) for _ in range(rng.randint(40, 150)))
    prompt, bt = rng.randint(1, 40), rng.choice([1, 3, 4, 8, 16])
    capacity = rng.randint(4, 12) * math.ceil((prompt + max(lengths)) / bt) + rng.randint(0, 5)
    _assert_shortcuts_match_reference(EngineCase(
        lengths, prompt, rng.randint(1, 8), bt, rng.random() < 0.5, capacity,
        rng.choice([None, None, 64]), rng.choice([0.0, 0.125, 0.3]),
        interrupt_every=rng.choice([0, 0, 0, 50]), cut_every=rng.choice([0, 0, 3, 7]),
        cut_at=rng.random(), drain_after=rng.choice([0, 0, 40, 200])))


@pytest.mark.parametrize("seed", range(6))
def test_fused_step_spans_match_the_cost_models_method(seed):
    """With the facade's cost model and Simpson spans (the simulator's default), the fused step
    (spans.FUSED_STEP) and the shortcuts plan exactly the spans, finishes and counters of the
    reference path calling cm.decode_step_s, with cuts and interruptions between spans."""
    from rlvr_sim.cost import CostModel
    from rlvr_sim.scenario import load_scenario

    sc = load_scenario("scenarios/deepseek-r1-zero-like.yaml",
                       overrides=["model=qwen2.5-32b", "hardware.gpu=h100-sxm", "sampler.tp=4"])
    cm = CostModel.from_scenario(sc)
    rng = random.Random(seed)
    lengths = tuple(rng.randint(1, 400) for _ in range(rng.randint(40, 120)))
    prompt, bt = rng.randint(1, 300), rng.choice([4, 16])
    capacity = rng.randint(4, 10) * math.ceil((prompt + max(lengths)) / bt)
    case = EngineCase(lengths, prompt, rng.randint(1, 8), bt, rng.random() < 0.5, capacity, None,
                      rng.choice([0.0, 0.125]), interrupt_every=rng.choice([0, 40]),
                      cut_every=rng.choice([3, 7]), cut_at=rng.random())
    reference = _run_engine(case, False, False, False, cm=cm, fused=False)
    assert _run_engine(case, True, True, True, cm=cm, fused=True) == reference
    assert _run_engine(case, False, False, False, cm=cm, fused=True) == reference


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-500, 500), st.booleans()), min_size=1, max_size=30),
       st.integers(1, 20), st.integers(0, 200))
def test_running_set_residues_follow_the_private_tokens(offsets, bt, it):
    """RunningSet's residue counts and sum at iteration `it` are those of the private tokens
    (offset + it) of the sequences still running, after takes and frees in any order."""
    from rlvr_sim.sim.running import RunningSet, Seq
    from rlvr_sim.sim.source import Group

    run = RunningSet(bt)
    group = Group(0, 0, 1, (1,), 0)
    kept = []
    for i, (off, stays) in enumerate(offsets):
        seq = Seq(i, group, 1)
        seq.priv_off = float(off + 1000)        # private tokens at `it` >= 0 (as the engine's)
        run.take_slot(seq)
        kept.append((seq, stays))
    for seq, stays in kept:
        if not stays:
            run.free_slot(seq)
    private = [int(seq.priv_off) + it for seq, stays in kept if stays]
    want = [0] * bt
    for p in private:
        want[p % bt] += 1
    assert run.residue_counts(it) == want
    assert run.residue_sum(it) == sum(p % bt for p in private)
    assert sorted(run.private_tokens(1.0, it).tolist()) == sorted(private)


def _same_run_but_the_spans(case: EngineCase) -> tuple[list, list]:
    """Fast mode's coalesced preemptions and the exact shortcuts on one case: (finishes,
    counters) of each, and both runs' spans' total iterations and seconds are checked equal."""
    exact = _run_engine(case, True, True, True)
    fast = _run_engine(case, True, True, True, coalesce_preemptions=True)
    iterations = [sum(s[1] for s in run[0] if s[0] != "cut") for run in (exact, fast)]
    assert iterations[0] == iterations[1]
    seconds = [sum(s[2] for s in run[0] if s[0] != "cut") for run in (exact, fast)]
    assert seconds[1] == pytest.approx(seconds[0], rel=1e-9)
    return [exact[1], exact[2]], [fast[1], fast[2]]


def _same_finishes(done_f: list, done_e: list) -> None:
    """The same samples, steps, tokens and versions in the same order; start and end times equal
    to float rounding (clock values are sums of span seconds, which fast mode groups
    differently: a start at 48.00000000000001 against 48.0 was seen)."""
    assert [d[:-2] for d in done_f] == [d[:-2] for d in done_e]
    for k in (-2, -1):
        assert [d[k] for d in done_f] == pytest.approx([d[k] for d in done_e], rel=1e-9, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=40), st.integers(1, 30),
       st.integers(1, 4), st.integers(1, 8), st.booleans(), st.integers(0, 4),
       st.sampled_from([0.05, 0.125, 0.3, 1.0]), st.sampled_from([1, 2, 4, 8]))
def test_coalesced_preemptions_are_the_reference_preemptions_in_fewer_spans(
        lengths, prompt, k, bt, prefix, tight, coalesce, room):
    """Fast mode (COALESCE_PREEMPTIONS) runs a full pool's overflows inside one span: the same
    victims at the same iterations, so with no outside cut every sample finishes at the same
    iteration with the same preemption and recompute counts as the exact shortcuts; only the
    spans differ, and under a cost linear in the batch (the fake: a victim counts for the share
    of the span it ran) their seconds add up to the reference's, finish times included. A
    mutant that charges a victim for the whole span, or none of it, fails this; so does one
    that counts its generated tokens to the span's start or end."""
    capacity = room * math.ceil((prompt + max(lengths)) / bt) + tight
    case = EngineCase(tuple(lengths), prompt, k, bt, prefix, capacity, None, coalesce)
    (done_e, counters_e), (done_f, counters_f) = _same_run_but_the_spans(case)
    assert counters_f == counters_e
    _same_finishes(done_f, done_e)


@pytest.mark.parametrize("seed", range(30))
def test_coalesced_preemptions_on_larger_thrashing_replicas(seed):
    """As above on seeded workloads of 40-150 sequences in pools of 4-12 of the longest; at
    least one seeded case must really coalesce (fewer spans than the reference)."""
    rng = random.Random(seed)
    lengths = tuple(rng.randint(1, 120) for _ in range(rng.randint(40, 150)))
    prompt, bt = rng.randint(1, 40), rng.choice([1, 3, 4, 8, 16])
    capacity = rng.randint(4, 12) * math.ceil((prompt + max(lengths)) / bt) + rng.randint(0, 5)
    case = EngineCase(lengths, prompt, rng.randint(1, 8), bt, rng.random() < 0.5, capacity, None,
                      rng.choice([0.125, 0.3]))
    (done_e, counters_e), (done_f, counters_f) = _same_run_but_the_spans(case)
    assert counters_f == counters_e
    _same_finishes(done_f, done_e)


def test_coalesced_preemptions_really_merge_spans():
    """A thrashing case where the fast mode plans fewer spans than the reference (else the
    equality tests above would pass on a no-op)."""
    case = EngineCase(tuple(range(100, 400, 5)), 8, 8, 1, False, 4 * (8 + 400), None, 0.125)
    exact = _run_engine(case, True, True, True)
    fast = _run_engine(case, True, True, True, coalesce_preemptions=True)
    preemptions = sum(c[0] for c in exact[2])
    assert preemptions > 100                      # 180 measured
    assert len(fast[0]) < len(exact[0]) - preemptions // 3     # 150 spans, not 234


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=40), st.integers(1, 30),
       st.integers(1, 4), st.integers(1, 8), st.booleans(), st.integers(0, 4),
       st.sampled_from([0.125, 0.3]), st.integers(0, 7), st.integers(1, 5), st.floats(0.01, 1.0),
       st.integers(0, 30), st.sampled_from([1, 2, 4]))
def test_coalesced_preemptions_with_cuts_still_finish_every_sample_once(
        lengths, prompt, k, bt, prefix, tight, coalesce, interrupt_every, cut_every, cut_at,
        drain_after, room):
    """With cuts, interruptions and drains (where fast mode may preempt a victim before a cut
    that the reference would not have reached), every sample still finishes exactly once with
    its full length, after it started, and no counter goes negative."""
    capacity = room * math.ceil((prompt + max(lengths)) / bt) + tight
    case = EngineCase(tuple(lengths), prompt, k, bt, prefix, capacity, None, coalesce,
                      interrupt_every, cut_every, cut_at, drain_after)
    _, done, counters = _run_engine(case, True, True, True, coalesce_preemptions=True,
                                    reload=True)
    assert sorted(d.sample for d in done) == list(range(len(lengths)))
    assert [d.output_tokens for d in sorted(done)] == list(lengths)
    assert all(d.end_s >= d.start_s for d in done)
    assert all(c[0] >= 0 and c[2] >= 0 for c in counters)
