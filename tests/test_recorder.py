"""The recorder only listens (issue 17): it reduces what it is handed, and the simulation's state
(step records, the replicas' counters) lives with the orchestrators and engines."""

from __future__ import annotations

import json

from rlvr_sim.sim import Constant, simulate_config
from rlvr_sim.sim.fake_cost import FakeCostModel
from rlvr_sim.sim.recorder import Recorder
from rlvr_sim.sim.sampler import Finished, StepCounters
from rlvr_sim.sim.steps import StepRecord, StepSamples
from rlvr_sim.sim.verifier import Verified
from test_sim_exact import config


def test_close_step_reduces_the_samples_and_the_counters_it_is_handed():
    rec = Recorder("r", trace=True)
    rec.generated([Finished(0, 3, 0, 4, 5, 3, 1, 1.0, 6.0), Finished(1, 3, 1, 4, 7, 2, 1, 0.5, 8.0)])
    rec.verified([Verified(0, 3, 0, 6.0, 7.5, False, False), Verified(1, 3, 0, 8.0, 9.0, False, False)])
    out = rec.close_step(3, {1: StepCounters(preemptions=2, decode_s=4.0)})
    assert out == StepSamples(gen_start_s=0.5, gen_end_s=8.0, verify_end_s=9.0, sequences=2,
                              prompt_tokens=8, output_tokens=12)
    assert rec.counter_totals.preemptions == 2 and rec.counter_totals.decode_s == 4.0
    assert dict(rec.staleness) == {0: 1, 1: 1}
    gen = rec.frame().query("phase == 'generate'")
    extras = {int(w): json.loads(x) for w, x in zip(gen.worker_id, gen.extra)}
    assert extras[1]["preemptions"] == 2 and "preemptions" not in extras[0]
    assert not hasattr(rec, "steps")
    r = StepRecord(3)
    r.take(out)
    assert (r.gen_end_s, r.verify_end_s, r.sequences, r.output_tokens) == (8.0, 9.0, 2, 12)


def test_engines_hand_over_their_counters_when_a_step_closes():
    # the KV preemption case of test_sim_exact: one preemption, counted once in the summary and
    # no longer held by the engine once its step is closed
    cfg = config(steps=1, prompt_tokens=Constant(2), response_tokens=Constant(4), kv_blocks=8,
                 block_tokens=1, prefix_caching=False, verifier_latency_s=Constant(0.0))
    res = simulate_config(cfg, FakeCostModel(), event_log=True)
    assert res.summary.counters["preemptions"] == 1
    extra = json.loads(res.trace.query("phase == 'generate'").extra.iloc[0])
    assert extra["preemptions"] == 1 and extra["recompute_tokens"] == 3
