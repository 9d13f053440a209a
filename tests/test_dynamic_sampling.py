"""Dynamic sampling (DAPO filter): hand-computed expectations, and the simulator against them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.dynamic_sampling import (RewardSpec, beta_moment, estimate, expected_rounds,
                                       prompts_per_round, signal_probability)
from rlvr_sim.sim import Constant, SimConfig, simulate_config
from rlvr_sim.sim.fake_cost import FakeCostModel
from rlvr_sim.sim.source import PromptSource


def test_signal_probability_by_hand():
    # k = 2, p = 0.5: rewards (1,1) 1/4, (0,0) 1/4 -> signal 1/2
    assert signal_probability(0.5, 2) == pytest.approx(0.5)
    # k = 4, p = 0.25: 1 - 0.25^4 - 0.75^4 = 1 - 1/256 - 81/256 = 174/256
    assert signal_probability(0.25, 4) == pytest.approx(174 / 256)
    # no signal possible at p in {0, 1} or k = 1
    assert signal_probability(0.0, 8) == signal_probability(1.0, 8) == signal_probability(0.5, 1) == 0
    # Beta(1/2, 1/2) (p = 0.5, concentration 1), k = 2: E[p^2] = (1/2)(3/2) / (1 x 2) = 3/8
    # -> 1 - 3/8 - 3/8 = 1/4 (mixed difficulty: fewer groups with signal than at a fixed 0.5)
    assert beta_moment(0.5, 0.5, 2) == pytest.approx(3 / 8)
    assert signal_probability(0.5, 2, concentration=1.0) == pytest.approx(0.25)


def test_prompts_per_round():
    assert prompts_per_round(64, 1.0) == 64
    assert prompts_per_round(64, 1.5) == 96
    assert prompts_per_round(10, 1.01) == 11      # ceil(10.1)


def test_expected_rounds_one_prompt_geometric():
    # P = 1 prompt, m = 1 per round, q = 1/2: rounds = 1 + 1/2 + 1/4 with max 3 (geometric,
    # capped); trained = 1 - P(no signal in 3 rounds) = 7/8; waste = 1.75 - 0.875
    e = expected_rounds(1, 1, 0.5, 3)
    assert e.rounds_mean == pytest.approx(1.75)
    assert e.trained_groups_mean == pytest.approx(0.875)
    assert e.wasted_groups_mean == pytest.approx(0.875)
    assert e.p_short == pytest.approx(0.125)
    # uncapped in the limit: 1/q rounds
    assert expected_rounds(1, 1, 0.5, 60).rounds_mean == pytest.approx(2.0)


def test_expected_rounds_two_prompts_by_hand():
    # P = 2, m = 2, q = 1/2, max 2 rounds.
    # round 1 fills the batch iff both groups have signal: 1/4 -> E[rounds] = 1 + 3/4 = 1.75
    # trained: filled in round 1 (1/4) -> 2; else S_1 = 0 (1/4): 2 more groups, E[min(X, 2)] = 1;
    # S_1 = 1 (1/2): min(1 + X, 2) = 1 w.p. 1/4, 2 w.p. 3/4 -> 1.75
    # E[trained] = 1/4 x 2 + 1/4 x 1 + 1/2 x 1.75 = 1.625; generated = 1.75 x 2 = 3.5
    e = expected_rounds(2, 2, 0.5, 2)
    assert e.rounds_mean == pytest.approx(1.75)
    assert e.generated_groups_mean == pytest.approx(3.5)
    assert e.trained_groups_mean == pytest.approx(1.625)
    assert e.wasted_groups_mean == pytest.approx(1.875)
    assert e.p_short == pytest.approx(5 / 16)        # P(Bin(4, 1/2) < 2)


def test_estimate_oversampling_and_cap():
    # k = 2, p = 0.5 -> q = 0.5; P = 2, oversample 2 -> m = 4, max 1 round:
    # rounds 1; trained = E[min(Bin(4, 1/2), 2)] = 0 x 1/16 + 1 x 4/16 + 2 x 11/16 = 26/16
    e = estimate(2, 2, 0.5, oversample_factor=2.0, max_rounds=1)
    assert e.prompts_per_round == 4 and e.rounds_mean == 1.0
    assert e.trained_groups_mean == pytest.approx(26 / 16)
    assert e.waste_fraction == pytest.approx((4 - 26 / 16) / 4)
    # pass rate 1: nothing has signal, every step runs max_rounds and trains nothing
    e = estimate(8, 4, 1.0, max_rounds=5)
    assert e.rounds_mean == 5 and e.trained_groups_mean == 0 and e.p_short == 1


def fixed_config(**kw) -> SimConfig:
    base = dict(prompts_per_step=1, samples_per_prompt=2, steps=2, prompt_tokens=Constant(4),
                response_tokens=Constant(3), sampler_gpus=1, trainer_gpus=1, verifier_workers=1,
                verifier_latency_s=Constant(1.0))
    base.update(kw)
    return SimConfig(**base)


def test_sim_rounds_run_one_after_another_exact_times():
    # pass rate 1: no group ever has signal -> every step generates max_rounds = 3 rounds.
    # One round (1 prompt x 2 samples, length 3, FakeCostModel): prefill [0, 0.5], 3 decode
    # iterations -> both samples at 3.5; one verifier worker 1 s each: 4.5 and 5.5. The next
    # round starts when the last reward is known (5.5): rounds end at 5.5, 11, 16.5; train 10 s
    # -> step 26.5 s. No group has a signal: the last round is trained as is (2 samples x 3).
    cfg = fixed_config(rewards=RewardSpec(pass_rate=1.0, filter_groups=True, max_rounds=3))
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    gen = [e for e in res.log if e[0] == "generated"]
    assert [t for _, _, t in gen][:6] == [3.5, 3.5, 9.0, 9.0, 14.5, 14.5]
    assert res.summary.step_time_s.mean == pytest.approx(26.5)
    assert res.steps[0].sequences == 2 and res.steps[0].output_tokens == 6
    c = res.summary.counters
    assert c["generation_rounds_per_step"] == 3 and c["trained_groups_per_step"] == 1
    assert c["signal_groups_per_step"] == 0
    assert c["wasted_output_tokens_per_step"] == 3 * 2 * 3 - 6
    # the trace keeps every generated sample: 3 rounds x 2 samples per step
    gen_rows = res.trace[res.trace.phase == "generate"]
    assert gen_rows.groupby("step").sequences.sum().tolist() == [6, 6]


def test_sim_without_filter_is_unchanged_by_rewards():
    base = simulate_config(fixed_config(), FakeCostModel())
    drawn = simulate_config(fixed_config(rewards=RewardSpec(pass_rate=0.3)), FakeCostModel())
    assert drawn.summary.step_time_s.mean == base.summary.step_time_s.mean == pytest.approx(15.5)
    assert drawn.summary.counters["generation_rounds_per_step"] == 1


@pytest.mark.parametrize("rate, oversample, max_rounds", [(0.9, 1.0, 6), (0.2, 1.5, 4),
                                                           (0.5, 1.0, 2)])
def test_source_rounds_match_the_expectation(rate, oversample, max_rounds):
    """Mean rounds/trained groups over 400 seeded steps vs the exact expectation (within 4 s.e.)."""
    p, k, n = 16, 4, 400
    cfg = fixed_config(prompts_per_step=p, samples_per_prompt=k, steps=n,
                       rewards=RewardSpec(pass_rate=rate, filter_groups=True,
                                          oversample_factor=oversample, max_rounds=max_rounds))
    source = PromptSource(cfg)
    stats = [source.trained(j) for j in range(n)]
    exp = estimate(p, k, rate, oversample, max_rounds)
    rounds = [s.rounds for s in stats]
    mean = sum(rounds) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in rounds) / (n - 1))
    assert abs(mean - exp.rounds_mean) <= 4 * sd / math.sqrt(n) + 1e-6
    trained = [0 if s.fallback else s.trained_groups for s in stats]    # groups with signal
    tmean = sum(trained) / n
    tsd = math.sqrt(sum((t - tmean) ** 2 for t in trained) / (n - 1))
    # (a shortfall rarer than 1/n may not show: it moves the mean by at most p x p_short)
    assert abs(tmean - exp.trained_groups_mean) <= 4 * tsd / math.sqrt(n) + p * exp.p_short + 1e-9
    for s in stats:        # invariants of every step
        assert s.trained_groups <= p and s.rounds <= max_rounds
        assert s.generated_groups == s.rounds * prompts_per_round(p, oversample)
        assert s.fallback == (s.signal_groups == 0)
        assert s.trained_groups == (prompts_per_round(p, oversample) if s.fallback
                                    else min(p, s.signal_groups))
        assert s.rounds == max_rounds or s.signal_groups >= p


def test_source_rounds_are_deterministic_and_ids_unique():
    cfg = fixed_config(prompts_per_step=4, samples_per_prompt=2, steps=3,
                       rewards=RewardSpec(pass_rate=0.5, filter_groups=True, max_rounds=5))
    a, b = PromptSource(cfg), PromptSource(cfg)
    ids = []
    for j in range(3):
        ra, rb = a.rounds(j), b.rounds(j)
        assert [x.rewards for x in ra] == [x.rewards for x in rb]
        ids += [s for x in ra for g in x.groups for s in g.samples]
        merged = a.batch(j)
        assert [s for g in merged.groups for s in g.samples] == list(
            range(merged.first_sample, merged.first_sample + merged.size))
    assert len(ids) == len(set(ids))


@settings(max_examples=60, deadline=None)
@given(p=st.integers(1, 12), m_extra=st.integers(0, 6), q=st.floats(0.0, 1.0),
       max_rounds=st.integers(1, 6))
def test_expected_rounds_invariants(p, m_extra, q, max_rounds):
    m = p + m_extra
    e = expected_rounds(p, m, q, max_rounds)
    assert 1.0 - 1e-9 <= e.rounds_mean <= max_rounds + 1e-9
    assert e.generated_groups_mean == pytest.approx(e.rounds_mean * m)
    assert -1e-9 <= e.trained_groups_mean <= p + 1e-9
    assert e.wasted_groups_mean >= -1e-9
    more = expected_rounds(p, m, q, max_rounds + 1)          # one more round allowed
    assert more.rounds_mean >= e.rounds_mean - 1e-9
    assert more.trained_groups_mean >= e.trained_groups_mean - 1e-9
    assert more.p_short <= e.p_short + 1e-9
    if q == 0.0:
        assert e.rounds_mean == max_rounds and e.trained_groups_mean == 0
