"""`executor.backend: trl`: TRL's GRPOTrainer configured like our loop, traced in our schema."""

from __future__ import annotations

import json

import pytest

from executor.config import RunConfig
from executor.trl_backend import TrlSpans, capture_trl_profiling, grpo_config, run_trl
from rlvr_sim.scenario import load_scenario
from rlvr_sim.trace import extra_field, read_trace

SMALL = ["workload.prompts_per_step=2", "workload.samples_per_prompt=4", "executor.sft_steps=3",
         "executor.eval_problems=4", "executor.threads=1", "verifier.workers=1",
         "executor.backend=trl"]


def _scenario(*overrides: str):
    return load_scenario("scenarios/tiny-cpu-execute.yaml", overrides=SMALL + list(overrides))


def test_grpo_config_matches_the_scenario(tmp_path):
    cfg = RunConfig.from_scenario(_scenario("workload.steps=5", "trainer.mini_batches=2", "executor.lr=0.002",
                                   "executor.loss_type=grpo", "executor.epsilon_high=0.3"))
    c = grpo_config(cfg, str(tmp_path))
    assert (c.per_device_train_batch_size, c.steps_per_generation, c.num_generations) == (4, 2, 4)
    assert c.max_steps == 5 * 2 * cfg.spec.num_iterations and c.gradient_accumulation_steps == 1
    assert (c.learning_rate, c.loss_type, c.epsilon, c.epsilon_high) == (0.002, "grpo", 0.2, 0.3)
    assert c.max_completion_length == cfg.max_new_tokens and c.lr_scheduler_type == "constant"
    assert c.use_cpu and not c.bf16 and c.report_to in ([], "none", ["none"])
    assert c.shuffle_dataset is False and c.beta == cfg.spec.beta


def test_grpo_config_rejects_uneven_mini_batches(tmp_path):
    cfg = RunConfig.from_scenario(_scenario("trainer.mini_batches=3"))
    with pytest.raises(ValueError, match="mini_batches=3"):
        grpo_config(cfg, str(tmp_path))


def test_profiling_capture_records_and_restores():
    from trl.extras import profiling

    original = profiling.ProfilingContext.__exit__
    rec = TrlSpans()
    with capture_trl_profiling(rec):
        with profiling.ProfilingContext("GRPOTrainer.transformers.generate", report_to=[]):
            pass
    assert [s.name for s in rec.spans] == ["transformers.generate"]
    assert rec.spans[0].end >= rec.spans[0].start
    assert profiling.ProfilingContext.__exit__ is original


@pytest.mark.parametrize("iterations", [1, 2])
def test_trl_run_is_traced_per_rl_step(tmp_path, iterations):
    result = run_trl(_scenario("workload.steps=2", "trainer.mini_batches=2",
                               f"executor.num_iterations={iterations}"), out_dir=str(tmp_path),
                     progress=False)
    assert result.steps == 2
    trace = read_trace(result.trace_path)
    gen = trace[trace["phase"] == "generate"]
    assert gen["step"].tolist() == [0, 1] and gen["sequences"].tolist() == [8, 8]
    assert extra_field(gen, "problems").tolist() == [[0, 1], [2, 3]]     # our loop's data order
    for phase in ("forward_backward", "optimizer"):
        assert trace[trace["phase"] == phase].groupby("step").size().tolist() == [2 * iterations] * 2
    verify = trace[trace["phase"] == "verify"]
    assert verify.groupby("step")["sequences"].sum().tolist() == [8, 8]
    rows = [line for line in open(result.metrics_path).read().splitlines() if line]
    assert len(rows) == 2


def test_execute_cli_dispatches_the_trl_backend(tmp_path, capsys):
    from rlvr_sim.cli import main

    args = ["execute", "scenarios/tiny-cpu-execute.yaml", "--steps", "2", "--json", "--out",
            str(tmp_path)]
    for override in SMALL + ["trainer.mini_batches=2", "executor.num_iterations=1"]:
        args += ["--set", override]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 2
    trace = read_trace(result["trace_path"])
    gen = trace[trace["phase"] == "generate"]
    assert gen["step"].tolist() == [0, 1] and set(extra_field(gen, "backend")) == {"trl"}
    assert {"verify", "forward_backward", "optimizer"} <= set(trace["phase"])
    assert trace[trace["phase"] == "optimizer"].groupby("step").size().tolist() == [2, 2]
    assert main(args + ["--resume"]) == 2
    assert "error: --resume is not supported for executor.backend=trl" in capsys.readouterr().err
