"""The executor's dynamic-sampling filter (DAPO / verl filter_groups) on the tiny task."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from executor.steps import round_seed, signal_groups, step_seed
from rlvr_sim.cli import main as cli_main
from rlvr_sim.trace import read_trace
from tests.test_executor_loop import write_scenario


def test_signal_groups_by_hand():
    assert signal_groups([0, 0, 1, 1, 1, 0, 0, 1], 2) == [False, False, True, True]
    assert signal_groups([0.0, 0.5, 0.5, 0.5], 4) == [True]
    assert signal_groups([1, 1, 1], 3) == [False]
    with pytest.raises(ValueError):
        signal_groups([0, 1, 0], 2)
    assert round_seed(3, 5, 0) == step_seed(3, 5) and round_seed(3, 5, 1) != step_seed(3, 5)


def filtered_scenario(tmp_path, steps: int, **ds):
    path = write_scenario(tmp_path, steps=steps)
    data = yaml.safe_load(path.read_text())
    data["workload"]["pass_rate"] = {"points": [{"step": 0, "rate": 0.5}]}
    data["workload"]["dynamic_sampling"] = ds
    path.write_text(yaml.safe_dump(data))
    return path


def rows(df, phase):
    return df[(df.phase == phase) & (df.step >= 0)]


def test_filter_keeps_groups_with_signal_and_generates_another_round(tmp_path, capsys, monkeypatch):
    """4 prompts x 4 samples per step. The verifier is replaced by a rule: reward 1 only for
    rows 0 and 8 of a round (samples of groups 0 and 2), so each round has exactly 2 groups with
    signal and 2 all-zero groups: a step needs 2 rounds (4 + 4 prompts) to keep 4 groups, and
    trains on 4 x 4 = 16 samples."""
    from executor.verifier import VerifierPool

    real_gather = VerifierPool.gather

    def rule(self, futures, submitted_s=None):
        return [dataclasses.replace(r, reward=1.0 if r.index in (0, 8) else 0.0)
                for r in real_gather(self, futures, submitted_s)]

    monkeypatch.setattr(VerifierPool, "gather", rule)
    path = filtered_scenario(tmp_path, steps=2, oversample_factor=1.0, max_rounds=5)
    assert cli_main(["execute", str(path), "--json", "--no-progress"]) == 0
    json.loads(capsys.readouterr().out)
    df = read_trace(tmp_path / "out" / "trace.parquet")
    gen = rows(df, "generate")
    extra = [json.loads(e) for e in gen.extra]
    assert gen.step.tolist() == [0, 0, 1, 1]
    assert [e["round"] for e in extra] == [0, 1, 0, 1]
    assert [e["signal_groups"] for e in extra] == [2, 2, 2, 2]
    assert [e["kept_groups"] for e in extra] == [2, 2, 2, 2]
    assert gen.sequences.tolist() == [16] * 4
    fb = rows(df, "forward_backward")          # 2 mini-batches x num_iterations per step
    per_step = fb.groupby("step").sequences.sum() / (fb.groupby("step").size() / 2)
    assert per_step.tolist() == [16, 16]
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["data_cursor"] for m in metrics] == [8, 16]             # 2 rounds x 4 prompts
    # 2 rewarded samples per round x 2 rounds of 16 samples: 4 / 32, over every generated sample
    assert [m["mean_reward"] for m in metrics] == [4 / 32, 4 / 32]


def test_filter_stops_at_max_rounds_on_the_real_verifier(tmp_path, capsys):
    """Real rewards of a nearly untrained model: rounds stop at max_rounds or when 4 groups are
    kept; whatever happened, the trace and the training agree with the filter."""
    path = filtered_scenario(tmp_path, steps=2, oversample_factor=1.5, max_rounds=2)
    assert cli_main(["execute", str(path), "--json", "--no-progress"]) == 0
    capsys.readouterr()
    df = read_trace(tmp_path / "out" / "trace.parquet")
    gen = rows(df, "generate")
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    cursor = 0
    for step in (0, 1):
        g = gen[gen.step == step]
        extra = [json.loads(e) for e in g.extra]
        assert [e["round"] for e in extra] == list(range(len(extra))) and 1 <= len(extra) <= 2
        assert (g.sequences == 6 * 4).all()                         # ceil(1.5 x 4) prompts x 4
        kept = sum(e["kept_groups"] for e in extra)
        assert kept <= 4 and all(e["kept_groups"] <= e["signal_groups"] for e in extra)
        assert len(extra) == 2 or kept == 4
        fb = rows(df, "forward_backward")
        fb = fb[fb.step == step]
        trained = fb.sequences.sum() / (len(fb) / 2)
        assert trained == (kept * 4 if kept else 24)                # none kept: the last round
        cursor += 6 * len(extra)
        assert metrics[step]["data_cursor"] == cursor
