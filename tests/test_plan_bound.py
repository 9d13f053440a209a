"""The planner's optimistic bound (rlvr_sim.sweep.bound) against the real simulator: never above
the simulated hours, on random workloads and random allocations (sync, async, colocated), and
per step for sync plans (each step's generation and whole step); hand-computed replica sums."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlvr_sim.scenario import load_scenario
from rlvr_sim.cost import CostModel
from rlvr_sim.errors import UserError
from rlvr_sim.sim import simulate
from rlvr_sim.sim.source import Group
from rlvr_sim.sim.steady import PLANNER_RULE
from rlvr_sim.sweep.bound import PlanBounds, _smallest_prefix_mean
from rlvr_sim.sweep.bound_sampler import (SamplerRates, StepSamples, _NO_ATTENTION, dispatched, replica_of_groups,
                                          replica_work)
from rlvr_sim.sweep.grid import Plan
from rlvr_sim.sweep.jobs import evaluate_plan, make_jobs
from rlvr_sim.sweep.space import SearchSpace, enumerate_space


def workload_scenario(model: str, gpu: str, prompts: int, k: int, mean: float, sigma: float, cap: int,
                      concurrent: int, spec: bool, prefix: bool = True, memory: float = 0.9,
                      verifier: tuple[int, float] | None = None) -> dict:
    sampler = {"gpus": 4, "tp": 1, "max_concurrent_sequences": concurrent, "prefix_caching": prefix,
               "gpu_memory_utilization": memory}
    if spec:
        sampler["speculative"] = {"method": "draft", "draft_tokens": 3, "acceptance_rate": 0.6}
    return {"name": "bound-check", "model": model, "hardware": {"gpu": gpu, "gpus_per_node": 8},
            "workload": {"prompts_per_step": prompts, "samples_per_prompt": k, "steps": 200, "seed": 3,
                         "prompt_tokens": {"dist": "lognormal", "mean": 200, "sigma": 0.5, "cap": 1024},
                         "response_tokens": {"dist": "lognormal", "mean": mean, "sigma": sigma, "cap": cap}},
            "sampler": sampler, "trainer": {"gpus": 4, "tp": 1, "mini_batches": 2},
            **({} if verifier is None else {"verifier": {
                "workers": verifier[0], "latency_s": {"dist": "lognormal", "mean": verifier[1], "sigma": 0.8, "cap": 120},
                "timeout_s": 60, "rpc_latency_s": 0.05}})}


workloads = st.builds(
    workload_scenario, model=st.sampled_from(["qwen2.5-1.5b", "qwen2.5-7b"]),
    gpu=st.sampled_from(["h100-sxm", "h200"]), prompts=st.integers(4, 48), k=st.sampled_from([2, 4, 8]),
    mean=st.floats(50, 1500), sigma=st.floats(0.2, 1.2), cap=st.sampled_from([512, 2048, 8192]),
    concurrent=st.sampled_from([8, 64, 256]), spec=st.booleans(), prefix=st.booleans(),
    memory=st.sampled_from([0.9, 0.3]),
    verifier=st.one_of(st.none(), st.tuples(st.sampled_from([1, 4, 32]), st.sampled_from([0.05, 2.0, 20.0]))))

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


SYNC = [a for a in enumerate_space(SPACE) if a.max_staleness == 0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=workloads, index=st.integers(0, 10_000))
def test_every_sync_step_is_above_its_bound(scenario, index):
    """Per step of a fixed-length sync run: the generation (busiest replica: host call, prefill,
    decode) and the whole step (+ switches, training, weight sync) are above their bounds."""
    a = replace(SYNC[index % len(SYNC)], gpu=scenario["hardware"]["gpu"])
    try:
        sc = load_scenario(scenario, overrides=a.plan().overrides())
        result = simulate(sc, steps=3, trace=False)
    except UserError:          # does not fit (the planner does not simulate it either)
        return
    bounds = PlanBounds(scenario, max_steps=3, steady=False)
    base = bounds._base(a)
    steps = bounds.step_samples(a)
    assert base is not None and steps is not None
    side = bounds.sampler_bound(a, base, steps)
    train, sync = bounds.train_s(a, base, steps)
    for rec in result.steps:
        generate = rec.gen_end_s - rec.gen_start_s
        assert side.generate_s[rec.step] <= generate * (1 + 1e-9), (scenario, a, side.generate_s[rec.step] / generate)
        floor = max(side.generate_s[rec.step] + side.switch_s, steps[rec.step].verify_floor_s) \
            + train[rec.step] + sync + side.switch_s
        assert floor <= rec.time_s * (1 + 1e-9), (scenario, a, floor / rec.time_s)


ASYNC = [a for a in enumerate_space(SPACE) if a.max_staleness > 0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=workloads, index=st.integers(0, 10_000))
def test_every_async_step_is_above_its_training_and_weight_sync(scenario, index):
    """Async: the trainer trains batch j and sends the weights in its own timeline, so every
    step lasts at least step j's training plus the weight sync (the proven part of the bound)."""
    a = replace(ASYNC[index % len(ASYNC)], gpu=scenario["hardware"]["gpu"])
    try:
        result = simulate(load_scenario(scenario, overrides=a.plan().overrides()), steps=4, trace=False)
    except UserError:
        return
    bounds = PlanBounds(scenario, max_steps=4, steady=False)
    base, steps = bounds._base(a), bounds.step_samples(a)
    assert base is not None and steps is not None
    train, sync = bounds.train_s(a, base, steps)
    for rec in result.steps:
        assert train[rec.step] + sync <= rec.time_s * (1 + 1e-9), (scenario, a)


def _hand_step() -> StepSamples:
    groups = (Group(0, 0, 10, (3, 5), 0), Group(0, 1, 6, (2,), 2), Group(0, 2, 4, (1, 1, 4), 3))
    return StepSamples(groups, np.array([10, 6, 4]), np.array([0, 0, 1, 2, 2, 2]), np.array([3, 5, 2, 1, 1, 4]))


def test_replica_sums_by_hand():
    """Dispatch to the least-loaded replica (group 2 joins replica 1, which holds 1 sample
    against 2), then per replica, block 4 tokens, prefix caching (shared = whole prompt blocks):
    replica 0: prompt 10 (8 shared, 2 private), outputs 3 and 5:
      context = 3*10 + 3*2/2 + 5*10 + 5*4/2 = 93; held = 3*2 + 3 + 5*2 + 10 + 5*8 = 69;
      prefill = 10 + 1 * 2 = 12;
    replica 1: prompt 6 (4 shared) output 2; prompt 4 (4 shared, 0 private) outputs 1, 1, 4:
      context = 2*6 + 1 + 4 + 4 + 4*4 + 6 = 43; held = 2*2 + 1 + 2*4 + 0 + 0 + 6 + 4*4 = 35;
      prefill = 6 + 4 + 2 * 0 = 10."""
    step = _hand_step()
    assert replica_of_groups(step.groups, 2).tolist() == [0, 1, 1] == dispatched(step.groups, 2).tolist()
    # groups of one size: round-robin, as `dispatch` itself sends them
    same = tuple(Group(0, i, 5, (1 + i % 3, 2, 7), 3 * i) for i in range(11))
    for replicas in (1, 3, 4, 16):
        assert replica_of_groups(same, replicas).tolist() == dispatched(same, replicas).tolist()
    w = replica_work((step,), 2, 1.0, 4, True)
    assert w.seq_iterations.tolist() == [[8, 8]] and w.decode_tokens.tolist() == [[8, 8]]
    assert w.context.tolist() == [[93, 43]] and w.held.tolist() == [[69, 35]]
    assert w.longest.tolist() == [[5, 4]] and w.prefill_tokens.tolist() == [[12, 10]]
    assert w.samples.tolist() == [[2, 4]]
    pooled = replica_work((step,), None, 1.0, 4, True)
    assert pooled.context.tolist() == [[136]] and pooled.held.tolist() == [[104]] and pooled.longest.tolist() == [[5]]
    # without prefix caching every sample prefills its prompt and holds it privately
    flat = replica_work((step,), 2, 1.0, 4, False)
    assert flat.prefill_tokens.tolist() == [[20, 18]]
    assert flat.held.tolist() == [[3 * 10 + 3 + 5 * 10 + 10, 2 * 6 + 1 + 4 + 4 + 4 * 4 + 6]]
    # decode bound: I = max(8 / 4, 69 / 20, 5) = 5 iterations on replica 0, max(2, 35 / 20, 4) = 4
    # on replica 1; max(1 * 8 + 0.1 * C, 10 * I + 0.01 * C) + 0.5 * 8 + 2 * I
    rates = SamplerRates(True, 1.0, 0.1, 10.0, 0.01, 0.5, 2.0, 4, 20.0, 0.0, 0.0, 1.0, 0.0)
    assert np.allclose(rates.decode_s(w), [[50.93 + 4 + 10, 40.43 + 4 + 8]])
    # the KV capacity binds when it is small: 69 / 10 = 6.9 iterations on replica 0
    tight = replace(rates, kv_capacity_tokens=10.0)
    assert np.allclose(tight.decode_s(w)[0, 0], 69.93 + 4 + 2 * 6.9)


def test_smallest_prefix_mean_by_hand():
    every = np.array([4.0, 1.0, 3.0, 0.5])
    assert _smallest_prefix_mean(every, 2, 4, 10) == 2.125      # means 4, 2.5, 2.667, 2.125
    assert _smallest_prefix_mean(every, 2, 4, 3) == 2.5         # a run of >= 3 steps counts 3
    assert _smallest_prefix_mean(every, 4, 4, 10) == 2.125


@given(splits=st.lists(st.tuples(st.integers(0, 200_000), st.integers(1, 512)), min_size=1, max_size=6),
       tp=st.sampled_from([1, 2, 4]))
@settings(max_examples=60, deadline=None)
def test_one_prefill_without_attention_is_below_any_split(splits, tp):
    """The prefill bound: prefill calls of (tokens, sequences) cost at least one call of all
    their tokens with (almost) no attention term."""
    scenario = workload_scenario("qwen2.5-7b", "h100-sxm", 16, 4, 400, 0.8, 2048, 64, False)
    scenario["sampler"].update(tp=tp, gpus=8)
    scenario["trainer"]["gpus"] = 8
    cm = CostModel.from_scenario(load_scenario(scenario))
    tokens = sum(n for n, _ in splits)
    bound = cm.prefill_s(tokens, tokens * _NO_ATTENTION) if tokens else 0.0
    assert bound <= sum(cm.prefill_s(n, s) for n, s in splits if n > 0) * (1 + 1e-12)


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
        assert mine.weight_sync_s == theirs.weight_sync_s
        assert mine.prefill_s(3000, 12) == theirs.prefill_s(3000, 12)


@pytest.mark.parametrize("case", ["memory", "rules"])
def test_a_plan_loading_rejects_has_an_infinite_bound_and_no_other(case):
    """The bound asks the loader's rules and memory-fit check (on the same variant), so the
    branch and bound never queues a plan the simulator would reject as `invalid`, and never drops
    one it would accept. Spaces: a 32B model on 16 H100s, where small trainer groups do not fit
    (memory); a 7B model with 28 attention heads, where TP 8 breaks a rule (rules)."""
    root = Path(__file__).parent.parent
    if case == "memory":
        scenario = str(root / "scenarios" / "deepseek-r1-zero-like.yaml")
        fixed = Plan((("model", "qwen2.5-32b"), ("hardware.gpu", "h100-sxm")))
        space = SearchSpace(gpus=("h100-sxm",), sizes=(16,), sampler_tps=(2, 4, 8), trainer_tps=(1, 2, 4),
                            staleness=(0, 1), mini_batches=(16,), gpus_per_node=8, trainer_pps=(1, 2))
        problem = "does not fit"
    else:
        scenario = str(root / "scenarios" / "code-rl-verifier-bound.yaml")
        fixed = Plan(())
        space = SearchSpace(gpus=("h100-sxm",), sizes=(8,), sampler_tps=(1, 8), trainer_tps=(1, 8),
                            staleness=(0, 1), mini_batches=(4,), gpus_per_node=8)
        problem = "does not divide num_attention_heads"
    bounds = PlanBounds(scenario, fixed, max_steps=2, steady=False)
    verdict, reasons = {}, set()
    for a in enumerate_space(space):
        try:
            load_scenario(scenario, overrides=Plan(fixed.settings + a.plan().settings).overrides())
            loads = True
        except UserError as exc:
            loads = False
            reasons.add(problem in str(exc))
        verdict[a] = loads
        assert bounds.valid(a) == loads, a.label()
        assert (bounds.quick_hours(a) == math.inf) == (not loads), a.label()
    assert 0 < sum(verdict.values()) < len(verdict)         # both kinds are in the space
    assert True in reasons                                  # rejected for the reason this case is about
