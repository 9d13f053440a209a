"""Exact event logs of tiny runs, computed by hand (SimPy-style `(event, time)` checks).

Cost model: rlvr_sim.sim.fake_cost.FakeCostModel, decode iteration 1 s, prefill 0.5 s per
admission round, training 10 s per step, weight sync / switch as given per test.
"""

from __future__ import annotations

import pytest

from rlvr_sim.sim import Constant, SimConfig, simulate_config
from rlvr_sim.sim.fake_cost import FakeCostModel


class Lengths:
    """Response lengths cycling through a fixed list (prompt order, then sample order)."""

    def __init__(self, *values: int):
        self.values = values

    def sample(self, rng, n):
        import numpy as np
        return np.array([self.values[i % len(self.values)] for i in range(n)], dtype=float)


def config(**kw) -> SimConfig:
    base = dict(prompts_per_step=1, samples_per_prompt=2, steps=2, prompt_tokens=Constant(4),
                response_tokens=Lengths(3, 5), sampler_gpus=1, trainer_gpus=1,
                verifier_workers=1, verifier_latency_s=Constant(1.0))
    base.update(kw)
    return SimConfig(**base)


def times(result, what: str) -> list[tuple]:
    return [e for e in result.log if e[0] == what]


def test_disaggregated_sync_log():
    # step 0: prefill both samples of the prompt once [0, 0.5]; 3 iterations -> s0 done 3.5;
    # 2 more -> s1 done 5.5. Verifier (1 worker, 1 s): s0 [3.5, 4.5], s1 [5.5, 6.5].
    # train [6.5, 16.5], weight sync [16.5, 18.5]. step 1 = step 0 shifted by 18.5.
    cm = FakeCostModel(weight_sync_s=2.0)
    res = simulate_config(config(), cm, event_log=True)
    assert times(res, "generated") == [("generated", 0, 3.5), ("generated", 1, 5.5),
                                       ("generated", 2, 22.0), ("generated", 3, 24.0)]
    assert times(res, "verified") == [("verified", 0, 4.5), ("verified", 1, 6.5),
                                      ("verified", 2, 23.0), ("verified", 3, 25.0)]
    assert times(res, "trainer0 forward_backward") == [
        ("trainer0 forward_backward", 0, 6.5, 16.5), ("trainer0 forward_backward", 1, 25.0, 35.0)]
    assert times(res, "trainer0 weight_sync") == [
        ("trainer0 weight_sync", 0, 16.5, 18.5), ("trainer0 weight_sync", 1, 35.0, 37.0)]
    s = res.summary
    assert s.step_time_s.mean == pytest.approx(18.5)
    # critical path: generate 5.5, verify tail 1, train 10, sync 2
    assert s.phase_time_s == pytest.approx(
        {"generate": 5.5, "verify": 1.0, "switch": 0.0, "train": 10.0, "weight_sync": 2.0})
    # sampler busy 5.5 of 18.5 s per step; verifier 2 of 18.5; trainer (train+sync) 12 of 18.5
    assert s.utilization == pytest.approx({"sampler": 5.5 / 18.5, "verifier": 2 / 18.5,
                                           "trainer": 12 / 18.5})
    assert s.bottleneck == "trainer"
    # the generate rows carry the replica's prefill / decode split of each step
    import json
    gen = res.trace[res.trace.phase == "generate"]
    extras = [json.loads(x) for x in gen.extra]
    assert [(e["prefill_s"], e["decode_s"], e["decode_iterations"]) for e in extras] == [
        (0.5, 5.0, 5), (0.5, 5.0, 5)]
    assert [e["staleness"] for e in extras] == [[0, 0], [0, 0]]


def test_colocated_sync_adds_two_switches():
    # generation ends 5.5; switch to train [5.5, 6.5] overlaps the verify tail (ends 6.5);
    # train [6.5, 16.5]; sync [16.5, 18.5]; switch back [18.5, 19.5]; step 1 starts 19.5.
    cm = FakeCostModel(weight_sync_s=2.0, switch_s=1.0)
    res = simulate_config(config(placement="colocated"), cm, event_log=True)
    assert times(res, "trainer0 switch") == [
        ("trainer0 switch", 0, 5.5, 6.5), ("trainer0 switch", 0, 18.5, 19.5),
        ("trainer0 switch", 1, 25.0, 26.0), ("trainer0 switch", 1, 38.0, 39.0)]
    assert [r.end_s for r in res.steps] == [19.5, 39.0]
    assert res.summary.phase_time_s == pytest.approx(
        {"generate": 5.5, "verify": 0.0, "switch": 2.0, "train": 10.0, "weight_sync": 2.0})


def test_kv_preemption_by_recompute():
    # bt=1 (blocks = tokens), 8 blocks, no prefix caching; prompt 2, responses 4 and 4.
    # An iteration holds the prompt + the tokens generated before it (the new token's KV is
    # written by the next one): the m-th iteration after admission holds 2 + (m - 1) each.
    # Both admitted (2 + 2 = 4 <= 8), prefill [0, 0.5]. Iteration m needs 2 (m + 1) blocks:
    # 3 iterations fit -> 3.5. The 4th needs 10 > 8: preempt s1 (latest) with 3 tokens. s0
    # alone: 1 more iteration (5 blocks) -> done 4.5. s1 re-prefills 2+3 tokens [4.5, 5.0],
    # 1 iteration -> done 6.0.
    cfg = config(steps=1, prompt_tokens=Constant(2), response_tokens=Constant(4), kv_blocks=8,
                 block_tokens=1, prefix_caching=False, verifier_latency_s=Constant(0.0))
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert times(res, "generated") == [("generated", 0, 4.5), ("generated", 1, 6.0)]
    assert res.summary.counters["preemptions"] == 1
    assert res.summary.counters["recompute_tokens"] == 3


def test_kv_whole_blocks_a_block_boundary_is_a_state_change():
    # bt=4, 4 blocks, prefix caching: prompt 6 = 1 shared block + a 2-token private tail.
    # Responses 6 and 6. Admission: 1 shared + 1 + 1 private blocks = 3 <= 4; prefill [0, 0.5].
    # Iteration m holds 2 + (m - 1) private tokens each: 1 block each for m <= 3, 2 from m = 4
    # (1 + 2 + 2 = 5 > 4). So 3 iterations fit -> 3.5; then s1 (latest, 3 tokens generated) is
    # preempted. s0 alone holds 5..7 private tokens (2 blocks, 3 with the shared one): 3 more
    # iterations -> done 6.5, its group's shared block goes with it. s1 re-admitted: shared 1 +
    # ceil((2 + 3) / 4) = 2 private; prefill of prompt + 3 tokens [6.5, 7.0]; 3 iterations -> 10.0.
    cfg = config(steps=1, prompt_tokens=Constant(6), response_tokens=Constant(6), kv_blocks=4,
                 block_tokens=4, prefix_caching=True, verifier_latency_s=Constant(0.0))
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert times(res, "generated") == [("generated", 0, 6.5), ("generated", 1, 10.0)]
    assert res.summary.counters["preemptions"] == 1
    assert res.summary.counters["recompute_tokens"] == 3
    # one block more and nothing is preempted: 1 + 2 + 2 = 5 blocks from the 4th iteration on,
    # 1 + 2 + 2 up to the last (private 2 + 5 = 7 tokens: 2 blocks): both done at 6.5
    roomy = simulate_config(config(steps=1, prompt_tokens=Constant(6), response_tokens=Constant(6),
                                   kv_blocks=5, block_tokens=4, prefix_caching=True,
                                   verifier_latency_s=Constant(0.0)), FakeCostModel(), event_log=True)
    assert times(roomy, "generated") == [("generated", 0, 6.5), ("generated", 1, 6.5)]
    assert roomy.summary.counters["preemptions"] == 0


def test_prefix_sharing_admits_more_under_the_same_memory():
    # prompt 8 tokens, block 4 -> 2 full blocks. 2 samples of 1 token each (the prefill's token:
    # the only iteration holds the prompt). 3 blocks.
    # Without sharing each sample holds its 2 blocks: 4 > 3, so they run one after the other:
    # [0,0.5] prefill, 1 iteration -> s0 1.5; prefill [1.5, 2.0], 1 iteration -> s1 3.0.
    # With sharing: 2 shared + 0 private blocks each = 2 <= 3: both together, done at 1.5.
    base = dict(steps=1, prompt_tokens=Constant(8), response_tokens=Constant(1), kv_blocks=3,
                block_tokens=4, verifier_latency_s=Constant(0.0))
    alone = simulate_config(config(prefix_caching=False, **base), FakeCostModel(), event_log=True)
    shared = simulate_config(config(prefix_caching=True, **base), FakeCostModel(), event_log=True)
    assert times(alone, "generated") == [("generated", 0, 1.5), ("generated", 1, 3.0)]
    assert times(shared, "generated") == [("generated", 0, 1.5), ("generated", 1, 1.5)]


def test_async_one_step_off_policy_log():
    # 1 sample per step, response 2 tokens, instant verifier, train 10 s, sync 1 s, eta 1.
    # t=0: batches 0 and 1 admissible (j <= 0 + 1): one prefill [0, 0.5], 2 iterations -> both
    # done 2.5. Trainer: step 0 [2.5, 12.5], publishes v1 (batch 2 admissible), sync to 13.5.
    # Replica loads v1 [12.5, 13.5], s2 prefill [13.5, 14.0], done 16.0 (staleness 2-1 = 1).
    # Trainer: step 1 [13.5, 23.5] + sync -> 24.5; step 2 [24.5, 34.5] + sync -> 35.5.
    cfg = config(prompts_per_step=1, samples_per_prompt=1, steps=3, response_tokens=Constant(2),
                 verifier_latency_s=Constant(0.0), mode="async", max_staleness=1)
    res = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0), event_log=True)
    assert times(res, "generated") == [("generated", 0, 2.5), ("generated", 1, 2.5),
                                       ("generated", 2, 16.0)]
    # the idle replica loads each new version as the trainer sends it (the last one too)
    assert times(res, "sampler0 weight_sync") == [("sampler0 weight_sync", 0, 12.5, 13.5),
                                                  ("sampler0 weight_sync", 1, 23.5, 24.5),
                                                  ("sampler0 weight_sync", 2, 34.5, 35.5)]
    assert [r.end_s for r in res.steps] == [13.5, 24.5, 35.5]
    assert res.summary.staleness.hist == {"0": 1, "1": 2}
    assert res.summary.warmup_steps == 1
    assert res.summary.step_time_s.mean == pytest.approx(11.0)


@pytest.mark.parametrize("partial", [True, False])
def test_async_weight_update_mid_generation(partial):
    # response 20 tokens, eta 1, 3 steps. Batches 0, 1: prefill [0, 0.5], done 20.5.
    # step 0 trains [20.5, 30.5], publishes v1; replica loads [30.5, 31.5]; s2 prefill -> 32.0.
    # step 1 trains [31.5, 41.5] and publishes v2 while s2 has run 9.5 iterations.
    # partial: the running iteration ends at 42.0 (10 tokens); interrupt, load [42, 43],
    #   re-prefill 4+10 tokens [43, 43.5], 10 iterations -> 53.5. Step 2 trains [53.5, 63.5].
    # drain: s2 finishes its 20 tokens at 52.0, then loads [52, 53]; step 2 trains [52, 62].
    # Either way the idle replica loads v3 as the trainer sends it after step 2.
    cfg = config(prompts_per_step=1, samples_per_prompt=1, steps=3, response_tokens=Constant(20),
                 verifier_latency_s=Constant(0.0), mode="async", max_staleness=1,
                 partial_rollout=partial)
    res = simulate_config(cfg, FakeCostModel(weight_sync_s=1.0), event_log=True)
    loads = [e[2:] for e in times(res, "sampler0 weight_sync")]
    if partial:
        assert times(res, "generated")[-1] == ("generated", 2, 53.5)
        assert loads == [(30.5, 31.5), (42.0, 43.0), (63.5, 64.5)]
        assert [r.end_s for r in res.steps] == [31.5, 42.5, 64.5]
        assert res.summary.counters["interruptions"] == 1
        assert res.summary.counters["recompute_tokens"] == 10
    else:
        assert times(res, "generated")[-1] == ("generated", 2, 52.0)
        assert loads == [(30.5, 31.5), (52.0, 53.0), (62.0, 63.0)]
        assert [r.end_s for r in res.steps] == [31.5, 42.5, 63.0]
        assert res.summary.counters["interruptions"] == 0
    assert res.summary.staleness.hist == {"0": 1, "1": 2}


def test_verifier_queue_and_timeout():
    # 1 worker, latency 3 s capped by a 2 s timeout. Responses 3 and 5: arrivals 3.5 and 5.5;
    # service [3.5, 5.5] and [5.5, 7.5]; both time out. Two workers do not change this here.
    cfg = config(steps=1, verifier_latency_s=Constant(3.0), verifier_timeout_s=2.0)
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert times(res, "verified") == [("verified", 0, 5.5), ("verified", 1, 7.5)]
    assert res.summary.counters["verifier_timeouts"] == 2
    # a 4 s latency with 1 worker queues: s1 waits for s0 (3.5 + 4 = 7.5), ends 11.5
    cfg = config(steps=1, verifier_latency_s=Constant(4.0))
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert times(res, "verified") == [("verified", 0, 7.5), ("verified", 1, 11.5)]


def test_verifier_rpc_latency_delays_rewards_but_not_workers():
    # 1 worker, 4 s service, 0.5 s round trip: s0 served [3.5, 7.5], reward at 8.0; the worker is
    # free at 7.5, so s1 (arrived 5.5) is served [7.5, 11.5], reward at 12.0; train starts 12.0.
    cfg = config(steps=1, verifier_latency_s=Constant(4.0), verifier_rpc_s=0.5)
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert times(res, "verified") == [("verified", 0, 8.0), ("verified", 1, 12.0)]
    assert times(res, "trainer0 forward_backward") == [("trainer0 forward_backward", 0, 12.0, 22.0)]
    assert res.summary.utilization["verifier"] == pytest.approx(8.0 / res.summary.step_time_s.mean)
    with pytest.raises(Exception, match="verifier.rpc_latency_s"):
        config(verifier_rpc_s=-1.0)


def test_speculative_tokens_per_iteration():
    # 2.5 accepted tokens per iteration: 5 tokens take 2 iterations, 3 tokens take 2 (ceil 1.2).
    cfg = config(steps=1, verifier_latency_s=Constant(0.0))
    res = simulate_config(cfg, FakeCostModel(tokens_per_iteration=2.5), event_log=True)
    assert times(res, "generated") == [("generated", 0, 2.5), ("generated", 1, 2.5)]


def test_two_replicas_split_prompts_least_loaded():
    # 2 prompts x 1 sample on 2 replicas (1 GPU each): one prompt per replica, both in parallel.
    cfg = config(prompts_per_step=2, samples_per_prompt=1, steps=1, sampler_gpus=2,
                 response_tokens=Lengths(3, 5), verifier_latency_s=Constant(0.0))
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert times(res, "generated") == [("generated", 0, 3.5), ("generated", 1, 5.5)]
    gen = res.trace[res.trace.phase == "generate"]
    assert sorted(gen.worker_id) == [0, 1]
