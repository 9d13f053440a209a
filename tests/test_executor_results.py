"""The run summary is typed end to end: hand-computed summaries, NaN/None (never 0) for what no
step measured, the JSON shape `--json` and result.json keep, and evals.json round trips."""

import json
import math
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from executor.results import (PHASES, Evals, ExecuteResult, PhaseTimes, PolicyInfo, StepTimeStats,
                              execute_lines)
from executor.run import summarize
from executor.tracing import StepMetrics, read_evals

INFO = PolicyInfo(device="cpu", dtype="fp32", threads=1, source="random-init:t", params=1234,
                  vocab_size=64, torch="2.x")
CFG = SimpleNamespace(run_id="r", trace_path=Path("out/trace.parquet"),
                      metrics_path=Path("out/metrics.jsonl"))
POLICY = SimpleNamespace(describe=lambda: INFO)


def row(step: int, reward: float, step_s: float, gen_s: float) -> StepMetrics:
    return StepMetrics(step=step, policy_version=step, mean_reward=reward, accuracy=reward,
                       kl=math.nan, entropy=1.0, loss=0.1, clip_fraction=0.0, grad_norm=1.0,
                       response_tokens_mean=3.0, finished_fraction=1.0, step_s=step_s,
                       generate_s=gen_s, verify_s=0.5, train_s=1.0, weight_sync_s=0.25,
                       data_cursor=4 * (step + 1))


def test_summary_by_hand():
    rows = [row(0, 0.0, 2.0, 1.0), row(1, 0.25, 4.0, 2.0), row(2, 0.5, 3.0, 1.0),
            row(3, 0.75, 9.0, 4.0)]
    res = summarize(CFG, POLICY, Evals(0.1, 0.2, 0.3), rows, 0.9, output_tokens=400)
    assert res.steps == 4 and res.policy == INFO and res.resumed_from_step is None
    assert (res.accuracy_initial, res.accuracy_after_sft, res.accuracy_after_grpo) == (0.1, 0.2, 0.9)
    assert (res.mean_reward_first, res.mean_reward_last) == (0.0, 0.75)       # quarter = 1 step
    assert res.step_time_s == StepTimeStats(mean=4.5, p50=3.5)
    assert res.phase_time_s == PhaseTimes(generate=8.0, verify=2.0, train=4.0, weight_sync=1.0)
    assert res.output_tokens_per_s == 400 / 8.0


def test_summary_without_steps_or_evals_is_missing_not_zero():
    res = summarize(CFG, POLICY, None, [], 0.5, output_tokens=0)
    assert res.accuracy_initial is None and res.accuracy_after_sft is None
    assert math.isnan(res.step_time_s.mean) and math.isnan(res.step_time_s.p50)
    assert math.isnan(res.output_tokens_per_s) and math.isnan(res.mean_reward_first)
    assert res.phase_time_s == PhaseTimes(0.0, 0.0, 0.0, 0.0)     # no step: nothing summed


def test_result_json_keeps_its_shape():
    """`rlvr-sim execute --json` / result.json: the same keys as before the types (nested
    objects for policy, step_time_s and phase_time_s)."""
    res = summarize(CFG, POLICY, Evals(0.1, 0.2), [row(0, 1.0, 2.0, 1.0)], 0.9, 10)
    data = json.loads(json.dumps(asdict(res)))
    assert list(data) == ["run_id", "steps", "resumed_from_step", "policy", "accuracy_initial",
                          "accuracy_after_sft", "accuracy_after_grpo", "mean_reward_first",
                          "mean_reward_last", "step_time_s", "phase_time_s",
                          "output_tokens_per_s", "trace_path", "metrics_path"]
    assert list(data["policy"]) == ["device", "dtype", "threads", "source", "params",
                                    "vocab_size", "torch"]
    assert data["step_time_s"] == {"mean": 2.0, "p50": 2.0}
    assert list(data["phase_time_s"]) == list(PHASES) == ["generate", "verify", "train", "weight_sync"]
    assert set(f for f in ExecuteResult.__dataclass_fields__) == set(data)


def test_human_summary_lines():
    res = summarize(CFG, POLICY, None, [row(0, 1.0, 2.0, 1.0)], 0.5, 10)
    lines = execute_lines(res)
    assert lines[0] == "r: 1 steps on cpu (1,234 params, 1 threads)"
    assert not any("accuracy initial" in ln for ln in lines)          # unknown: not shown as 0
    assert "step time mean 2.000 s; phases (s): generate 1.00, verify 0.50, train 1.00, " \
           "weight_sync 0.25" in lines[3]


def test_evals_json_round_trip_and_damage(tmp_path):
    with_sft, without = Evals(0.25, 0.5, 1.5), Evals(0.25, 0.5)
    assert json.loads(with_sft.to_json()) == {"accuracy_initial": 0.25, "sft_final_loss": 1.5,
                                              "accuracy_after_sft": 0.5}
    assert "sft_final_loss" not in json.loads(without.to_json())
    path = tmp_path / "evals.json"
    for evals in (with_sft, without):
        path.write_text(evals.to_json())
        assert read_evals(path) == evals
    for damaged in ("{", "[]", '{"accuracy_initial": 0.1}', '{"accuracy_initial": "x", '
                    '"accuracy_after_sft": 0.2}'):
        path.write_text(damaged)
        assert read_evals(path) is None
    assert read_evals(tmp_path / "missing.json") is None


@pytest.mark.parametrize("phase", PHASES)
def test_phase_names_are_step_metrics_fields(phase):
    """Each summed phase has its `<phase>_s` column in StepMetrics (summarize reads it)."""
    assert f"{phase}_s" in StepMetrics.__dataclass_fields__
