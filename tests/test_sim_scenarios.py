"""The shipped scenarios run, and say what they were written to show."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim import simulate

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
OURS = ["nemo-rl-llama3.1-8b-onpolicy", "nemo-rl-llama3.1-8b-1step-offpolicy",
        "deepseek-r1-zero-like", "qwen3-30b-a3b-moe", "code-rl-verifier-bound", "tiny-cpu"]


@pytest.mark.parametrize("name", OURS)
def test_scenario_runs(name):
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    s = simulate(sc, steps=2).summary
    assert s.step_time_s.mean > 0
    assert sum(s.phase_time_s.values()) == pytest.approx(s.step_time_s.mean)
    assert s.staleness.max <= (sc.orchestration.max_staleness if sc.orchestration.mode == "async" else 0)
    assert 0 < s.utilization["sampler"] <= 1
    assert s.gpus == sc.total_gpus


def test_code_rl_is_verifier_bound_until_more_workers():
    path = SCENARIOS / "code-rl-verifier-bound.yaml"
    assert simulate(load_scenario(path), steps=2).summary.bottleneck == "verifier"
    more = simulate(load_scenario(path, ["verifier.workers=512"]), steps=2).summary
    assert more.bottleneck != "verifier"


def test_one_step_off_policy_has_stale_samples():
    s = simulate(load_scenario(SCENARIOS / "nemo-rl-llama3.1-8b-1step-offpolicy.yaml"), steps=3).summary
    assert s.staleness.max == 1
    assert s.warmup_steps == 1


def test_fast_mode_stays_within_half_a_percent_of_exact():
    sc = load_scenario(SCENARIOS / "nemo-rl-llama3.1-8b-onpolicy.yaml")
    fast = simulate(sc, steps=2).steps
    exact = simulate(sc, steps=2, exact=True).steps
    for f, e in zip(fast, exact):
        assert f.time_s == pytest.approx(e.time_s, rel=5e-3)
        assert f.output_tokens == e.output_tokens


def test_resident_colocated_copies_skip_the_switch():
    path = SCENARIOS / "nemo-rl-llama3.1-8b-onpolicy.yaml"
    offload = simulate(load_scenario(path), steps=2)
    resident = simulate(load_scenario(path, ["orchestration.offload_on_switch=false"]), steps=2)
    fixed = load_scenario(path).hardware_profile.efficiency.switch_fixed_s
    moved = offload.summary.phase_time_s["switch"] - 2 * fixed     # two switches per step
    assert fixed > 0 and moved > 0
    assert resident.summary.phase_time_s["switch"] == pytest.approx(2 * fixed)
    assert resident.summary.step_time_s.mean == pytest.approx(
        offload.summary.step_time_s.mean - moved, rel=1e-9)
