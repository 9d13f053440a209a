"""Asynchrony and serving mechanisms of issue 12 as exact `(event, time)` logs, computed by hand.

Cost model: FakeCostModel (decode iteration 1 s, prefill 0.5 s per admission round, training as
given per test). Helpers from tests/test_sim_exact.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rlvr_sim.sim import Constant, simulate_config
from rlvr_sim.sim.fake_cost import FakeCostModel
from test_sim_exact import Lengths, config, times


def test_fractional_staleness_starts_half_of_the_next_batch_early():
    # B = 2 (2 prompts x 1 sample), response 2 tokens, instant verifier, train 10 s, sync 1 s,
    # staleness 0.5: samples with index < (published + 1.5) x 2 may start.
    # t=0 (published 0, limit 3): s0, s1 (batch 0) and s2 (first half of batch 1): one prefill
    #   [0, 0.5], 2 iterations -> all three at 2.5. Step 0 trains [2.5, 12.5], publishes v1
    #   (limit 5: s3 and s4), syncs to 13.5; the idle replica loads v1 [12.5, 13.5], prefills
    #   s3, s4 [13.5, 14.0] -> 16.0. Step 1 (s2, s3) trains [16, 26] (limit 7: s5), sync -> 27;
    #   replica loads v2 [26, 27], s5 [27, 27.5] -> 29.5. Step 2 trains [29.5, 39.5] -> 40.5.
    cfg = config(prompts_per_step=2, samples_per_prompt=1, steps=3, response_tokens=Constant(2),
                 verifier_latency_s=Constant(0.0), mode="async", max_staleness=0,
                 staleness_fraction=0.5)
    res = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0), event_log=True)
    assert times(res, "generated") == [("generated", 0, 2.5), ("generated", 1, 2.5),
                                       ("generated", 2, 2.5), ("generated", 3, 16.0),
                                       ("generated", 4, 16.0), ("generated", 5, 29.5)]
    assert [e[2:] for e in times(res, "sampler0 weight_sync")] == [(12.5, 13.5), (26.0, 27.0),
                                                                   (39.5, 40.5)]
    assert [r.end_s for r in res.steps] == [13.5, 27.0, 40.5]
    # s2 (step 1, v0) and s4 (step 2, v1) are one version stale: at most 0.5 x B per step
    assert res.summary.staleness.hist == {"0": 4, "1": 2}
    assert cfg.staleness_bound == 1
    # without the fraction (max_staleness 0) every sample is on-policy
    sync_like = simulate_config(replace(cfg, staleness_fraction=None), FakeCostModel(weight_sync_s=1.0))
    assert sync_like.summary.staleness.hist == {"0": 6}


def test_streaming_trainer_trains_the_first_mini_batch_during_generation():
    # B = 4, lengths 2, 2, 6, 6, one replica: prefill [0, 0.5], s0, s1 at 2.5, s2, s3 at 6.5.
    # Training 1 s per token (prompt 4): mini-batch 0 = s0, s1 = 12 tokens, mini-batch 1 = 20.
    # streaming: mb0 [2.5, 14.5] (starts while s2, s3 generate), mb1 [14.5, 34.5], sync -> 35.5.
    # whole batch: train 32 tokens [6.5, 38.5], sync -> 39.5.
    cfg = config(prompts_per_step=4, samples_per_prompt=1, steps=1,
                 response_tokens=Lengths(2, 2, 6, 6), verifier_latency_s=Constant(0.0),
                 mode="async", max_staleness=0, streaming=True, mini_batches=2)
    cm = FakeCostModel(weight_sync_s=1.0, train_s_fixed=0.0, train_s_per_token=1.0)
    res = simulate_config(cfg, cm, event_log=True)
    assert times(res, "trainer0 forward_backward") == [
        ("trainer0 forward_backward", 0, 2.5, 14.5), ("trainer0 forward_backward", 0, 14.5, 34.5)]
    assert [r.end_s for r in res.steps] == [35.5]
    assert res.steps[0].train_start_s == 2.5 and res.steps[0].train_parts_s["forward_backward"] == 32
    whole = simulate_config(replace(cfg, streaming=False), cm, event_log=True)
    assert times(whole, "trainer0 forward_backward") == [("trainer0 forward_backward", 0, 6.5, 38.5)]
    assert [r.end_s for r in whole.steps] == [39.5]


def test_streaming_mini_batches_follow_reward_order_not_generation_order():
    # Verifier 1 worker, 3 s each: rewards at 5.5, 8.5, 11.5, 14.5 for s0..s3 generated at 2.5,
    # 2.5, 6.5, 6.5 -> mb0 (s0, s1) ready at 8.5, mb1 at 14.5.
    cfg = config(prompts_per_step=4, samples_per_prompt=1, steps=1,
                 response_tokens=Lengths(2, 2, 6, 6), verifier_latency_s=Constant(3.0),
                 mode="async", max_staleness=0, streaming=True, mini_batches=2)
    cm = FakeCostModel(train_s_fixed=1.0)
    res = simulate_config(cfg, cm, event_log=True)
    assert [e[2] for e in times(res, "verified")] == [5.5, 8.5, 11.5, 14.5]
    assert times(res, "trainer0 forward_backward") == [
        ("trainer0 forward_backward", 0, 8.5, 9.5), ("trainer0 forward_backward", 0, 14.5, 15.5)]


def test_in_flight_update_keeps_the_kv_cache():
    # As tests/test_sim_exact.py::test_async_weight_update_mid_generation (response 20, eta 1):
    # step 1 publishes v2 at 41.5 while s2 (decoding from 32.0) is in its 10th iteration. keep_kv:
    # the iteration ends at 42.0, load [42, 43], the same sequence continues its last 10
    # iterations on its KV cache -> 53.0 (recompute: a 14-token re-prefill first -> 53.5; drain:
    # the load waits for 52.0). Step 2 trains [53, 63], sync -> 64; the replica loads v3 [63, 64].
    cfg = config(prompts_per_step=1, samples_per_prompt=1, steps=3, response_tokens=Constant(20),
                 verifier_latency_s=Constant(0.0), mode="async", max_staleness=1,
                 weight_update="keep_kv")
    res = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0), event_log=True)
    assert times(res, "generated")[-1] == ("generated", 2, 53.0)
    assert [e[2:] for e in times(res, "sampler0 weight_sync")] == [(30.5, 31.5), (42.0, 43.0),
                                                                   (63.0, 64.0)]
    assert [r.end_s for r in res.steps] == [31.5, 42.5, 64.0]
    assert res.summary.counters["interruptions"] == 0
    assert res.summary.counters["recompute_tokens"] == 0
    gen = res.trace[(res.trace.phase == "generate") & (res.trace.step == 2)]
    assert '"multi_version_samples": 1' in gen.extra.iloc[0]       # s2 lived through v1 and v2
    assert res.summary.staleness.hist == {"0": 1, "1": 2}


def test_update_mode_defaults_follow_partial_rollout():
    base = config(mode="async", max_staleness=1)
    assert base.update_mode == "drain"
    assert replace(base, partial_rollout=True).update_mode == "recompute"
    assert replace(base, partial_rollout=True, weight_update="keep_kv").update_mode == "keep_kv"


def test_inference_only_closed_batches():
    # no trainer: step 0 prefill [0, 0.5], s0 (3 tokens) at 3.5, s1 (5) at 5.5; step 1's batch
    # arrives when step 0 completes: [5.5, 6.0], s2 at 9.0, s3 at 11.0.
    cfg = config(steps=2, inference_only=True)
    res = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0, train_s_fixed=10.0), event_log=True)
    assert times(res, "generated") == [("generated", 0, 3.5), ("generated", 1, 5.5),
                                       ("generated", 2, 9.0), ("generated", 3, 11.0)]
    assert [r.end_s for r in res.steps] == [5.5, 11.0]
    assert set(res.trace.phase) == {"generate", "verify"}          # no train, no weight sync
    assert res.summary.gpus == 1 and res.summary.step_time_s.mean == pytest.approx(5.5)
    assert res.summary.staleness.hist == {"0": 4}


def test_inference_only_poisson_arrivals_start_at_their_arrival():
    # 1 group of 1 sample per step arriving at rate 0.01/s: gaps (drawn as the simulator draws
    # them) are far longer than a request (0.5 + 3 s), so each starts at its own arrival time.
    cfg = config(prompts_per_step=1, samples_per_prompt=1, steps=3, response_tokens=Constant(3),
                 inference_only=True, arrival_qps=0.01, seed=7)
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    t, arrivals = 0.0, []
    for j in range(3):
        t += float(np.random.default_rng([7, 0xA77, j]).exponential(100.0, 1)[0])
        arrivals.append(t)
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) > 3.5
    assert [e[2] for e in times(res, "generated")] == pytest.approx([a + 3.5 for a in arrivals])


def test_serving_report_mfu_and_bandwidth_by_hand():
    from rlvr_sim.cost import CostModel
    from rlvr_sim.cost.params import attention_flop_per_context_token
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim.run import simulate
    from rlvr_sim.sim.serving import serving_report

    sc = load_scenario({
        "model": "llama-3.1-70b", "hardware": {"gpu": "h100-sxm"},
        "workload": {"prompts_per_step": 64, "samples_per_prompt": 1, "steps": 2,
                     "prompt_tokens": {"dist": "fixed", "value": 1000},
                     "response_tokens": {"dist": "fixed", "value": 1000}},
        "sampler": {"gpus": 8, "tp": 4, "max_concurrent_sequences": 64},
        "orchestration": {"placement": "disaggregated", "inference_only": True}})
    res = simulate(sc, exact=True)
    cm = CostModel.from_scenario(sc)
    rep = serving_report(res, cm)
    assert rep.sequences == 128 and rep.output_tokens == 128_000
    assert sc.total_gpus == 8 and res.summary.gpus == 8
    attn = attention_flop_per_context_token(cm.model)
    flop = 2 * cm.params.active * 128 * 2000 + attn * 1500 * 128_000      # mean context 1500
    assert rep.model_flop == pytest.approx(flop)
    assert rep.mfu == pytest.approx(flop / (res.steps[-1].end_s * 8 * 989.4e12))
    # memory-bound decode cannot beat its roofline share of HBM
    assert 0.3 < rep.hbm_bw_fraction < 0.8
    assert rep.output_tokens_per_s == pytest.approx(128_000 / res.steps[-1].end_s)


def test_tree_speculation_by_hand():
    from rlvr_sim.cost.sampler import Speculative
    from rlvr_sim.scenario import ACCEPTANCE_DEFAULTS, load_scenario

    chain = Speculative(method="eagle", draft_tokens=3, acceptance_rate=0.6)
    tree = Speculative(method="eagle", draft_tokens=3, acceptance_rate=0.6, tree_width=2)
    assert chain.tokens_per_iteration == pytest.approx(1 + 0.6 + 0.36 + 0.216)
    p = 1 - 0.4 ** 2                                                   # 0.84
    assert tree.tokens_per_iteration == pytest.approx(1 + p + p ** 2 + p ** 3)
    assert (chain.verify_width, tree.verify_width) == (4, 7)
    sc = load_scenario({"model": "llama-3.1-8b", "sampler": {"speculative": {"method": "mtp"}}})
    assert sc.sampler.speculative.acceptance_rate == ACCEPTANCE_DEFAULTS["mtp"][0] == 0.85
    assert "DeepSeek-V3" in ACCEPTANCE_DEFAULTS["mtp"][1]


def test_streaming_fetches_require_batches_mini_batches_at_once():
    # as test_streaming_trainer_trains_the_first_mini_batch_during_generation, 4 mini-batches of
    # one sample each fetched 2 at a time: s0, s1 rewarded at 2.5 -> mb0 [2.5, 8.5] (6 tokens),
    # mb1 [8.5, 14.5]; s2, s3 at 6.5 -> mb2 [14.5, 24.5], mb3 [24.5, 34.5]; sync -> 35.5.
    cfg = config(prompts_per_step=4, samples_per_prompt=1, steps=1,
                 response_tokens=Lengths(2, 2, 6, 6), verifier_latency_s=Constant(0.0),
                 mode="async", max_staleness=0, streaming=True, mini_batches=4, stream_batches=2)
    cm = FakeCostModel(weight_sync_s=1.0, train_s_fixed=0.0, train_s_per_token=1.0)
    res = simulate_config(cfg, cm, event_log=True)
    assert [e[2:] for e in times(res, "trainer0 forward_backward")] == [
        (2.5, 8.5), (8.5, 14.5), (14.5, 24.5), (24.5, 34.5)]
    # fetched one at a time, mb2 could not start before s2's reward either: same here, but a
    # chunk of 4 waits for all four rewards
    whole = simulate_config(replace(cfg, stream_batches=4), cm, event_log=True)
    assert times(whole, "trainer0 forward_backward")[0][2] == 6.5


def test_mechanism_fields_are_checked_with_a_fix():
    from rlvr_sim.errors import ScenarioError
    from rlvr_sim.scenario import load_scenario

    cases = {
        "sampler.ep=2 needs a mixture-of-experts model": {"sampler": {"ep": 2}},
        "trainer.gpus=8 is not a multiple of trainer.tp x trainer.pp x trainer.cp = 16":
            {"trainer": {"cp": 16}},
        "orchestration.staleness_threshold=0.5 applies to async runs":
            {"orchestration": {"staleness_threshold": 0.5}},
        "trainer.streaming=true streams mini-batches of an async run": {"trainer": {"streaming": True}},
        "orchestration.weight_sync.method=ipc shares GPU memory":
            {"orchestration": {"placement": "disaggregated", "weight_sync": {"method": "ipc"}}},
        "orchestration.arrival_qps=2 applies to inference runs": {"orchestration": {"arrival_qps": 2}},
    }
    for expected, data in cases.items():
        with pytest.raises(ScenarioError) as info:
            load_scenario({"model": "llama-3.1-8b", **data})
        assert expected in str(info.value), str(info.value)
    moe = {"model": "qwen3-30b-a3b", "trainer": {"gpus": 8, "ep": 3}}
    with pytest.raises(ScenarioError, match="trainer.ep=3 does not divide num_experts=128"):
        load_scenario(moe)
    # TP across nodes is allowed in whole nodes (TP16 on 8-GPU nodes), not in fractions of one
    ok = load_scenario({"model": "deepseek-v3", "sampler": {"gpus": 16, "tp": 16},
                        "trainer": {"gpus": 16}}, check_fit=False)
    assert ok.sampler.tp == 16
    with pytest.raises(ScenarioError, match="spans nodes but is not a multiple"):
        load_scenario({"model": "deepseek-v3", "hardware": {"gpus_per_node": 8},
                       "sampler": {"gpus": 32, "tp": 32}, "trainer": {"gpus": 32}}, ["hardware.gpus_per_node=6"],
                      check_fit=False)
