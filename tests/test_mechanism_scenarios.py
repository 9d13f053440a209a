"""The issue-12 scenarios load, simulate, and exercise the mechanism each was written for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr_sim.cost import CostModel
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim import simulate
from rlvr_sim.sim.serving import serving_report

SC = Path(__file__).resolve().parents[1] / "scenarios"
NEW = ["verl-fully-async-qwen2.5-math-7b-h20", "nemo-rl-deepseek-v3-ep16-tp32",
       "nemo-rl-qwen3-30b-a3b-ep8", "verl-dapo-qwen3-8b-fp8-train",
       "verl-dapo-qwen2.5-32b-offload", "decode-benchmark-llama3.1-8b-fp8-h100"]


def _train(sc):
    w = sc.workload
    b = w.sequences_per_step
    return CostModel.from_scenario(sc).train_step(
        b, int(w.prompt_tokens.mean_value() * b), int(w.response_tokens.mean_value() * b))


@pytest.mark.parametrize("name", NEW)
def test_new_scenarios_run(name):
    sc = load_scenario(SC / f"{name}.yaml")
    s = simulate(sc, steps=2).summary
    assert s.step_time_s.mean > 0 and s.gpus == sc.total_gpus
    assert sum(s.phase_time_s.values()) == pytest.approx(s.step_time_s.mean)
    assert 0 < s.utilization["sampler"] <= 1 and 0 <= s.utilization["trainer"] <= 1


def test_verl_fully_async_streams_with_fractional_staleness():
    sc = load_scenario(SC / "verl-fully-async-qwen2.5-math-7b-h20.yaml")
    assert sc.orchestration.staleness == 0.5 and sc.trainer.streaming
    res = simulate(sc, steps=3)
    assert res.summary.staleness.max <= 1
    gen = res.trace[res.trace.phase == "generate"]
    for _, rows in gen.groupby("step"):
        stale = [x for e in rows.extra for x in json.loads(e)["staleness"]]
        assert sum(x == 1 for x in stale) <= 0.5 * sc.workload.sequences_per_step
    fb = res.trace[(res.trace.phase == "forward_backward") & (res.trace.step == 1)]
    assert len(fb) == sc.trainer.mini_batches                       # one per mini-batch


def test_moe_scenarios_pay_expert_parallel_all_to_all():
    for name in ("nemo-rl-deepseek-v3-ep16-tp32", "nemo-rl-qwen3-30b-a3b-ep8"):
        tb = _train(load_scenario(SC / f"{name}.yaml"))
        assert 0 < tb.ep_all_to_all_s < tb.total_s
    dsv3 = CostModel.from_scenario(load_scenario(SC / "nemo-rl-deepseek-v3-ep16-tp32.yaml"))
    nvl = CostModel.from_scenario(load_scenario(SC / "nemo-rl-deepseek-v3-ep16-tp32.yaml",
                                                ["hardware.gpus_per_node=32"]))
    # TP32 spans 4 nodes: its all-reduces run over the network
    assert dsv3.decode_breakdown(32, 32_000, 1000).comm_s > nvl.decode_breakdown(32, 32_000, 1000).comm_s


def test_fp8_and_offload_scenarios_change_their_terms():
    fp8 = SC / "verl-dapo-qwen3-8b-fp8-train.yaml"
    assert _train(load_scenario(fp8)).forward_backward_s < \
        _train(load_scenario(fp8, ["trainer.fp8=false"])).forward_backward_s
    off = SC / "verl-dapo-qwen2.5-32b-offload.yaml"
    on = load_scenario(off)
    resident = load_scenario(off, ["trainer.offload_optimizer=false", "trainer.offload_params=false"],
                             check_fit=False)
    assert CostModel.from_scenario(on).trainer_memory.total_bytes < \
        CostModel.from_scenario(resident).trainer_memory.total_bytes
    assert _train(on).optimizer_s > _train(resident).optimizer_s


def test_decode_benchmark_has_no_trainer_and_reports_mfu():
    sc = load_scenario(SC / "decode-benchmark-llama3.1-8b-fp8-h100.yaml")
    res = simulate(sc, steps=2)
    assert not {"forward_backward", "weight_sync", "switch"} & set(res.trace.phase)
    assert res.summary.gpus == 1 and res.summary.trainer_gpus == 0
    rep = serving_report(res, CostModel.from_scenario(sc))
    assert 0 < rep.mfu < 1 and 0 < rep.hbm_bw_fraction < 1
