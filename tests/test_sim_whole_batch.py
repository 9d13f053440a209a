"""The whole-batch sync path (rlvr_sim.sim.batch_sync) against the span-by-span event engine, the
reference: same step times (to float rounding, far inside the 1 % the planner may differ by), same
finishes and counters, on every shipped scenario, and a fallback where the KV pool forces preemption."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlvr_sim.sim.sampler as sampler_module
from rlvr_sim.errors import ScenarioError
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim.config import Constant, SimConfig
from rlvr_sim.sim.fake_cost import FakeCostModel
from rlvr_sim.sim.run import simulate, simulate_config

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def _both(run):
    out = {}
    for whole in (False, True):
        sampler_module.WHOLE_BATCH = whole
        try:
            out[whole] = run()
        finally:
            sampler_module.WHOLE_BATCH = True
    return out[False], out[True]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
@pytest.mark.parametrize("mode", ["as-written", "sync"])
def test_whole_batch_matches_the_event_engine(path, mode):
    overrides = [] if mode == "as-written" else ["orchestration.mode=sync"]
    try:
        sc = load_scenario(path, overrides)
    except ScenarioError as exc:      # async-only settings (streaming, fractional staleness...)
        if mode == "as-written":
            raise
        pytest.skip(f"{path.stem} has async-only settings: {str(exc).splitlines()[1:2]}")
    event, whole = _both(lambda: simulate(sc, steps=2))
    for a, b in zip(event.steps, whole.steps):
        assert b.time_s == pytest.approx(a.time_s, rel=1e-9)
        assert (b.sequences, b.output_tokens, b.gen_end_s) == pytest.approx((a.sequences, a.output_tokens, a.gen_end_s),
                                                                            rel=1e-9)
    assert whole.summary.counters == pytest.approx(event.summary.counters, rel=1e-9)
    assert whole.summary.utilization == pytest.approx(event.summary.utilization, rel=1e-9)
    gen_a = event.trace[event.trace.phase == "generate"].reset_index(drop=True)
    gen_b = whole.trace[whole.trace.phase == "generate"].reset_index(drop=True)
    assert gen_b[["worker_id", "sequences", "output_tokens"]].equals(gen_a[["worker_id", "sequences", "output_tokens"]])
    assert gen_b["end_s"].tolist() == pytest.approx(gen_a["end_s"].tolist(), rel=1e-9)


def test_kv_pressure_falls_back_to_the_event_engine():
    # 4 samples of 8 prompt + 12 response tokens in 12 blocks of 4: all four are admitted but
    # outgrow the pool, so the whole-batch path must decline and the event engine preempts.
    cfg = SimConfig(prompts_per_step=1, samples_per_prompt=4, steps=1, prompt_tokens=Constant(8),
                    response_tokens=Constant(12), sampler_gpus=1, trainer_gpus=1, kv_blocks=12,
                    block_tokens=4, verifier_latency_s=Constant(0.0), coalesce_fraction=0.25,
                    span_rule="simpson3")
    event, whole = _both(lambda: simulate_config(cfg, FakeCostModel(), event_log=True))
    assert event.summary.counters["preemptions"] > 0
    assert whole.log == event.log
    assert whole.summary == event.summary
