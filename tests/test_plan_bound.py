"""The planner's optimistic bound (rlvr_sim.sweep.bound) against the real simulator: never above
the simulated hours, on random workloads and random allocations (sync, async, colocated)."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlvr_sim.scenario import load_scenario
from rlvr_sim.cost import CostModel
from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep.bound import PlanBounds
from rlvr_sim.sweep.jobs import evaluate_plan, make_jobs
from rlvr_sim.sweep.space import SearchSpace, enumerate_space


def workload_scenario(model: str, gpu: str, prompts: int, k: int, mean: float, sigma: float, cap: int,
                      concurrent: int, spec: bool) -> dict:
    sampler = {"gpus": 4, "tp": 1, "max_concurrent_sequences": concurrent}
    if spec:
        sampler["speculative"] = {"method": "draft", "draft_tokens": 3, "acceptance_rate": 0.6}
    return {"name": "bound-check", "model": model, "hardware": {"gpu": gpu, "gpus_per_node": 8},
            "workload": {"prompts_per_step": prompts, "samples_per_prompt": k, "steps": 200, "seed": 3,
                         "prompt_tokens": {"dist": "lognormal", "mean": 200, "sigma": 0.5, "cap": 1024},
                         "response_tokens": {"dist": "lognormal", "mean": mean, "sigma": sigma, "cap": cap}},
            "sampler": sampler, "trainer": {"gpus": 4, "tp": 1, "mini_batches": 2}}


workloads = st.builds(
    workload_scenario, model=st.sampled_from(["qwen2.5-1.5b", "qwen2.5-7b"]),
    gpu=st.sampled_from(["h100-sxm", "h200"]), prompts=st.integers(4, 48), k=st.sampled_from([2, 4, 8]),
    mean=st.floats(50, 1500), sigma=st.floats(0.2, 1.2), cap=st.sampled_from([512, 2048, 8192]),
    concurrent=st.sampled_from([8, 64, 256]), spec=st.booleans())

SPACE = SearchSpace(gpus=("h100-sxm",), sizes=(8, 4, 2), sampler_tps=(1, 2), trainer_tps=(1, 2),
                    staleness=(0, 1, 2, 4), mini_batches=(1, 2, 4), gpus_per_node=8, trainer_pps=(1, 2))


def simulated_and_bound(scenario: dict, index: int) -> tuple[float, float] | None:
    allocations = enumerate_space(SPACE)
    a = allocations[index % len(allocations)]
    a = replace(a, gpu=scenario["hardware"]["gpu"])
    outcome = evaluate_plan(make_jobs(scenario, [a.plan()], None, None, PLANNER_RULE)[0])
    m = outcome.metrics
    if m is None:
        return None
    bounds = PlanBounds(scenario, max_steps=PLANNER_RULE.max_steps)
    assert bounds.quick_hours(a) <= bounds.hours(a)
    return m.hours_total, bounds.hours(a)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=workloads, index=st.integers(0, 10_000))
def test_bound_never_exceeds_the_simulated_hours(scenario, index):
    got = simulated_and_bound(scenario, index)
    if got is None:
        return
    hours, bound = got
    assert 0 < bound <= hours * (1 + 1e-9), (scenario, index, bound / hours)


def test_bound_cost_model_equals_the_validated_scenarios():
    """The bound builds each plan's cost model without re-validating the scenario: it must equal
    the one the simulator builds from a validated load."""
    scenario = workload_scenario("qwen2.5-7b", "h100-sxm", 16, 4, 400, 0.8, 2048, 64, False)
    bounds = PlanBounds(scenario)
    for a in enumerate_space(SPACE)[::7]:
        try:
            sc = load_scenario(scenario, overrides=a.plan().overrides())
        except Exception:   # noqa: BLE001 - plans that do not fit are not simulated either
            continue
        mine, theirs = bounds.cost_model(a), CostModel.from_scenario(sc)
        assert mine is not None
        assert mine.train_step(64, 64 * 200, 64 * 400).total_s == theirs.train_step(64, 64 * 200, 64 * 400).total_s
        assert mine.decode_step_s(8, 4000.0, 900.0) == theirs.decode_step_s(8, 4000.0, 900.0)
        assert mine.switch_s == theirs.switch_s and mine.sampler_plan == theirs.sampler_plan


@given(prompt=st.integers(0, 10**7), output=st.integers(0, 10**8), more=st.integers(0, 10**7))
@settings(max_examples=50, deadline=None)
def test_train_step_grows_with_tokens(prompt, output, more):
    """The bound trains the step with the fewest tokens: train_step must not fall as tokens grow."""
    scenario = workload_scenario("qwen2.5-7b", "h100-sxm", 16, 4, 400, 0.8, 2048, 64, False)
    cm = CostModel.from_scenario(load_scenario(scenario, overrides=["trainer.tp=2", "trainer.pp=2"]))
    base = cm.train_step(64, prompt, output).total_s
    assert cm.train_step(64, prompt + more, output).total_s >= base * (1 - 1e-12)
    assert cm.train_step(64, prompt, output + more).total_s >= base * (1 - 1e-12)
    assert math.isfinite(base)
