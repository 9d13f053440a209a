"""Grid and plan-file parsing, and the Pareto frontier (hand cases + hypothesis invariants)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.grid import Plan, combine, grid_plans, load_plan_file, parse_grid_option
from rlvr_sim.sweep.pareto import pareto_front, pareto_mask


def test_grid_cross_product_order_and_types():
    plans = grid_plans(["sampler.tp=1,2", "orchestration.mode=sync,async"])
    assert [p.overrides() for p in plans] == [
        ["sampler.tp=1", "orchestration.mode=sync"], ["sampler.tp=1", "orchestration.mode=async"],
        ["sampler.tp=2", "orchestration.mode=sync"], ["sampler.tp=2", "orchestration.mode=async"]]
    assert plans[3].columns() == {"sampler.tp": 2, "orchestration.mode": "async"}
    assert grid_plans([]) == [Plan(())]


@pytest.mark.parametrize("spec, fragment", [
    ("sampler.tp", "expected dotted.key"), ("=1,2", "expected dotted.key"),
    ("sampler.tp=1,,2", "empty value"), ("sampler.tp=1,1", "repeated")])
def test_grid_errors_name_the_option(spec, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_grid_option(spec)


def test_grid_repeated_key_is_an_error():
    with pytest.raises(UserError, match="given twice"):
        grid_plans(["sampler.tp=1", "sampler.tp=2"])


def test_plan_files_yaml_nested_and_csv(tmp_path):
    yaml_file = tmp_path / "plans.yaml"
    yaml_file.write_text("- {sampler.gpus: 8, trainer: {gpus: 8, fsdp: true}}\n- {sampler.gpus: 16}\n")
    plans = load_plan_file(yaml_file)
    assert plans[0].overrides() == ["sampler.gpus=8", "trainer.gpus=8", "trainer.fsdp=true"]
    assert plans[1].overrides() == ["sampler.gpus=16"]
    csv_file = tmp_path / "plans.csv"
    csv_file.write_text("sampler.gpus,trainer.gpus\n8,8\n16,\n")
    assert [p.overrides() for p in load_plan_file(csv_file)] == [["sampler.gpus=8", "trainer.gpus=8"], ["sampler.gpus=16"]]
    crossed = combine(plans, grid_plans(["sampler.gpus=4", "sampler.tp=1,2"]))
    assert crossed[0].overrides() == ["trainer.gpus=8", "trainer.fsdp=true", "sampler.gpus=4", "sampler.tp=1"]
    assert len(crossed) == 4


def test_plan_file_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_plan_file(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("[]\n")
    with pytest.raises(UserError, match="empty"):
        load_plan_file(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampler.gpus: 8\n")
    with pytest.raises(UserError, match="list of mappings"):
        load_plan_file(bad)


def test_pareto_hand_example():
    frame = pd.DataFrame({"hours_total": [1.0, 2.0, 2.0, 3.0, 1.0, None],
                          "cost.usd_total": [10.0, 5.0, 6.0, 5.0, 10.0, 1.0]})
    # row 4 duplicates row 0 (first kept); row 2 and row 3 are dominated by row 1; row 5 is invalid
    assert pareto_mask(frame).tolist() == [True, True, False, False, False, False]
    assert pareto_front(frame).index.tolist() == [0, 1]


points = st.lists(st.tuples(st.integers(1, 20), st.integers(1, 20)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points)
def test_pareto_invariants(pts):
    frame = pd.DataFrame(pts, columns=["hours_total", "cost.usd_total"]).astype(float)
    mask = pareto_mask(frame)
    front = frame[mask]

    def dominates(a, b):
        return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])

    rows = list(frame.itertuples(index=False))
    for i, row in enumerate(rows):
        dominated = any(dominates(other, row) for other in rows)
        if mask.iloc[i]:
            assert not dominated
        else:   # off the frontier: dominated, or a duplicate of a frontier point
            assert dominated or any(tuple(f) == tuple(row) for f in front.itertuples(index=False))
    assert len(set(map(tuple, front.itertuples(index=False)))) == len(front)
