"""rlvr_sim.rules: each rule by hand, and every client (scenario loading, SimConfig, the planner's
space, the executor's dispatch) deciding colocated => sync through the same function."""

import pytest

from rlvr_sim import rules
from rlvr_sim.errors import ScenarioError
from rlvr_sim.model_spec import catalog_model
from rlvr_sim.rules import Violation
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim.config import Constant, SimConfig
from rlvr_sim.sweep.space import Allocation, SearchSpace

LLAMA_8B = catalog_model("llama-3.1-8b")      # 32 query heads, 8 KV heads, 32 layers, dense


def test_violation_names_field_value_problem_and_fix():
    v = Violation("sampler.tp", 3, "does not divide x", "use 1 or 2")
    assert str(v) == "sampler.tp=3 does not divide x; use 1 or 2"
    assert str(Violation("trainer.streaming", True, "p", "f", shown="true")) == "trainer.streaming=true p; f"


def test_tp_degrees_by_hand():
    # divisors of 32 that divide 8 or are multiples of 8: 1 2 4 8 16 32
    assert rules.tp_degrees(LLAMA_8B) == [1, 2, 4, 8, 16, 32]
    [v] = rules.tensor_parallel("sampler", 3, LLAMA_8B, 8)
    assert (v.field, v.value, v.fix) == ("sampler.tp", 3, "use 1, 2, 4 or 8")
    assert "does not divide num_attention_heads=32" in v.problem
    assert rules.tensor_parallel("sampler", 16, LLAMA_8B, 8) == []        # two whole nodes
    [v] = rules.tensor_parallel("trainer", 16, LLAMA_8B, 6)               # 16 % 6 != 0
    assert "spans nodes" in v.problem and v.fix.startswith("use 1, 2 or 4 or a multiple of 6")


def test_pool_shape_rules():
    assert rules.pool_divides("trainer", 12, 2, 2, 2) == [
        Violation("trainer.gpus", 12, "is not a multiple of trainer.tp x trainer.pp x trainer.cp = 8",
                  "use 8, 16, 24 or 32")]
    [v] = rules.pipeline_parallel("sampler", 33, LLAMA_8B)
    assert (v.field, v.value, v.fix) == ("sampler.pp", 33, "use at most 32")
    [v] = rules.expert_parallel("trainer", 2, LLAMA_8B, 8, "trainer.gpus")
    assert v.fix == "llama-3.1-8b is dense: set trainer.ep: 1"
    [v] = rules.fsdp_shard(3, True, 16, 2, 1, 1)                            # dp = 8
    assert (v.value, v.fix) == (3, "use a divisor of 8")
    assert rules.fsdp_shard(3, False, 16, 2, 1, 1) == []


def test_mode_rules():
    assert [v.field for v in rules.async_only(0.5, "keep_kv", "sync")] == [
        "orchestration.staleness_threshold", "orchestration.weight_update"]
    assert rules.async_only(0.5, "keep_kv", "async") == []
    assert [str(v) for v in rules.inference_only(False, 2.0, "colocated", "sync")] == [
        "orchestration.arrival_qps=2 applies to inference runs; set orchestration.inference_only: "
        "true or remove it"]
    assert rules.inference_only(True, None, "disaggregated", "sync") == []
    assert rules.ipc_needs_colocated("ipc", "disaggregated")[0].field == "orchestration.weight_sync.method"
    assert rules.ipc_needs_colocated("ipc", "colocated") == []
    assert rules.colocated_shares_gpus("colocated", 8, 4)[0].value == 4
    assert rules.colocated_shares_gpus("disaggregated", 8, 4) == []


@pytest.mark.parametrize("placement,mode,broken", [
    ("colocated", "sync", False), ("colocated", "async", True),
    ("disaggregated", "sync", False), ("disaggregated", "async", False)])
def test_every_client_decides_colocated_sync_the_same_way(placement, mode, broken):
    assert bool(rules.colocated_is_sync(placement, mode)) == broken
    # scenario loading
    data = {"model": "qwen2.5-1.5b", "hardware": {"gpu": "h100-sxm"},
            "orchestration": {"placement": placement, "mode": mode},
            "sampler": {"gpus": 4}, "trainer": {"gpus": 4}}
    if broken:
        with pytest.raises(ScenarioError, match="orchestration.mode=async needs separate pools"):
            load_scenario(data, check_fit=False)
    else:
        load_scenario(data, check_fit=False)
    # SimConfig
    kw = dict(prompts_per_step=1, samples_per_prompt=1, steps=1, prompt_tokens=Constant(1),
              response_tokens=Constant(1), sampler_gpus=4, trainer_gpus=4, placement=placement,
              mode=mode)
    if broken:
        with pytest.raises(ScenarioError, match="orchestration.mode=async needs separate pools"):
            SimConfig(**kw)
    else:
        SimConfig(**kw)
    # the planner's space
    space = SearchSpace(gpus=("h100-sxm",), sizes=(8,), sampler_tps=(1,), trainer_tps=(1,),
                        staleness=(0, 1), mini_batches=(1,), gpus_per_node=8)
    s_gpus = 8 if placement == "colocated" else 4
    a = Allocation("h100-sxm", 8, placement, s_gpus, 1, 8 if placement == "colocated" else 4, 1,
                   1 if mode == "async" else 0, 1)
    assert space.allows(a) == (not broken)
    # the executor: only colocated sync on hf runs in the core loop
    assert rules.core_loop_runs(placement, mode, "hf") == (placement == "colocated" and mode == "sync")
    assert not rules.core_loop_runs(placement, mode, "vllm")


def test_memory_fit_is_a_cost_model_result_asked_after_the_rules():
    from rlvr_sim.cost.fit import memory_fit
    from rlvr_sim.scenario_checks import scenario_problems

    sc = load_scenario({"model": "llama-3.1-70b"}, check_fit=False)   # rules pass, fit not asked
    fit = memory_fit(sc)
    # 70.6B params x 2 bytes at tp=1 on one 80 GB GPU: the sampler's weights alone do not fit
    assert not fit.fits and not fit.sampler.fits and fit.sampler.weight_bytes_per_gpu > 80e9
    assert fit.problems()[0].startswith("sampler: model does not fit")
    assert scenario_problems(sc) == fit.problems()
    with pytest.raises(ScenarioError, match="sampler: model does not fit"):
        load_scenario({"model": "llama-3.1-70b"})
    inference = load_scenario({"model": "llama-3.1-8b", "orchestration": {
        "placement": "disaggregated", "inference_only": True}})
    assert memory_fit(inference).trainer is None and memory_fit(inference).fits


def test_derived_quantities():
    assert rules.run_gpus("colocated", False, 8, 8) == 8
    assert rules.run_gpus("disaggregated", False, 8, 4) == 12
    assert rules.run_gpus("disaggregated", True, 8, 4) == 8          # no trainer pool
    assert rules.staleness_steps("async", 3) == 3 and rules.staleness_steps("sync", 3) == 0
