"""Sweeps through the real simulator on a small scenario: CLI end to end, invalid plans counted,
the resolved scenario of every row, and Ray == local process pool (Ray started locally)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rlvr_sim.cli import main
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sweep.grid import grid_plans
from rlvr_sim.sweep.pools import InlinePool, LocalPool, RayPool
from rlvr_sim.sweep.runner import run_sweep

SMALL = (Path(__file__).parent / "data" / "small-qwen1.5b.yaml").read_text() + """
orchestration: {placement: disaggregated, mode: sync}
"""


@pytest.fixture()
def scenario_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_cli_sweep_rows_summary_and_resolved_scenarios(scenario_file, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    code = main(["sweep", str(scenario_file), "--grid", "sampler.tp=1,2,3", "--grid", "orchestration.mode=sync,async",
                 "--steps", "2", "--workers", "2", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["planned"] == 6 and report["counts"] == {"ok": 4, "invalid": 2, "error": 0}
    table = pd.read_parquet(out)
    assert table["plan_index"].tolist() == list(range(6))
    assert {"sampler.tp", "orchestration.mode", "status", "hours_total", "cost.usd_total",
            "step_time_s.mean", "scenario_yaml"} <= set(table.columns)
    invalid = table[table["status"] == "invalid"]
    assert (invalid["sampler.tp"] == 3).all()
    assert invalid["error"].str.contains("sampler.tp=3").all()          # the reason names the field
    ok = table[table["status"] == "ok"]
    assert (ok["hours_total"] > 0).all() and (ok["cost.usd_total"] > 0).all()
    for row in ok.to_dict("records"):
        resolved = load_scenario(yaml.safe_load(row["scenario_yaml"]))
        assert (resolved.sampler.tp, resolved.orchestration.mode) == (row["sampler.tp"], row["orchestration.mode"])
    assert len(report["frontier"]) >= 1


def test_resolved_scenario_reproduces_the_row(scenario_file):
    plans = grid_plans(["sampler.gpus=2,6", "orchestration.mode=async"])
    table = run_sweep(scenario_file, plans, InlinePool(), steps=2, progress=False).table
    from rlvr_sim.sim.run import simulate

    for row in table.to_dict("records"):
        again = simulate(load_scenario(yaml.safe_load(row["scenario_yaml"])), steps=2)
        assert again.summary.flat()["hours_total"] == pytest.approx(row["hours_total"])
        assert load_scenario(yaml.safe_load(row["scenario_yaml"])).sampler.gpus == row["sampler.gpus"]


def test_process_pool_rows_equal_inline_rows(scenario_file):
    plans = grid_plans(["sampler.gpus=2,4", "trainer.gpus=2,4", "orchestration.mode=sync,async"])
    inline = run_sweep(scenario_file, plans, InlinePool(), steps=2, progress=False).table
    pool = LocalPool(2)
    try:
        parallel = run_sweep(scenario_file, plans, pool, steps=2, progress=False).table
    finally:
        pool.close()
    pd.testing.assert_frame_equal(inline, parallel)
    assert inline["hours_total"].nunique() > 1


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (the sweep extra)")
def test_ray_rows_equal_local_pool_rows(scenario_file):
    plans = grid_plans(["sampler.gpus=2,4", "orchestration.mode=sync,async", "sampler.tp=1,3"])
    local = LocalPool(2)
    try:
        expected = run_sweep(scenario_file, plans, local, steps=2, progress=False).table
    finally:
        local.close()
    ray_pool = RayPool(2)
    try:
        got = run_sweep(scenario_file, plans, ray_pool, steps=2, progress=False).table
    finally:
        ray_pool.close()
    pd.testing.assert_frame_equal(expected, got)
    assert (got["status"] == "ok").sum() == 4 and (got["status"] == "invalid").sum() == 4
