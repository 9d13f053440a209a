"""The app's Plotly figures draw exactly the numbers they are given (hand-made inputs)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("plotly")
pytest.importorskip("streamlit")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # app_pages/ lives at the repo root

from app_pages import charts  # noqa: E402
from rlvr_sim.trace import TraceEvent, to_frame  # noqa: E402


def test_phase_bar_stacks_each_positive_phase() -> None:
    fig = charts.phase_bar({"phase_time_s": {"generate": 12.5, "verify": 0.0, "train": 4.0, "weight_sync": 0.5}})
    assert fig.layout.barmode == "stack"
    assert {t.name: t.x[0] for t in fig.data} == {"generate": 12.5, "train": 4.0, "weight_sync": 0.5}


def test_phase_compare_one_bar_per_plan_zero_for_a_missing_phase() -> None:
    fig = charts.phase_compare({"Plan A": {"phase_time_s": {"generate": 10.0, "train": 4.0}},
                                "Plan B": {"phase_time_s": {"generate": 6.0, "switch": 1.0}}})
    assert {t.name: list(t.x) for t in fig.data} == {"generate": [10.0, 6.0], "train": [4.0, 0.0],
                                                     "switch": [0.0, 1.0]}
    assert list(fig.data[0].y) == ["Plan A", "Plan B"] and fig.layout.barmode == "stack"


def test_utilisation_in_percent_in_pool_order() -> None:
    fig = charts.utilisation_bar({"utilization": {"trainer": 0.25, "sampler": 0.9, "verifier": 0.1}})
    assert list(fig.data[0].x) == ["sampler", "verifier", "trainer"]
    assert list(fig.data[0].y) == pytest.approx([90.0, 10.0, 25.0])


@pytest.mark.parametrize("hist, lags, counts", [
    ([10, 5, 1], [0, 1, 2], [10, 5, 1]),
    ({"0": 3, "2": 7}, [0, 2], [3, 7]),
])
def test_staleness_hist_accepts_list_or_mapping(hist, lags, counts) -> None:
    fig = charts.staleness_hist({"staleness": {"mean": 0.5, "max": 2, "hist": hist}})
    assert list(fig.data[0].x) == lags and list(fig.data[0].y) == counts


def test_missing_summary_fields_draw_a_note_not_an_error() -> None:
    for fig in (charts.phase_bar({}), charts.utilisation_bar({}), charts.staleness_hist({})):
        assert not fig.data and fig.layout.annotations


def _trace() -> pd.DataFrame:
    events = [
        TraceEvent("r", 0, 0, "sampler", 0, "generate", 0.0, 10.0),
        TraceEvent("r", 0, 0, "verifier", 3, "verify", 2.0, 2.5),
        TraceEvent("r", 0, 0, "trainer", 0, "train", 10.0, 14.0),
        TraceEvent("r", 1, 1, "sampler", 0, "generate", 14.0, 23.0),
        TraceEvent("r", 2, 2, "sampler", 0, "generate", 30.0, 31.0),
        TraceEvent("r", 0, 0, "sampler", 1, "idle", 5.0, 5.0),   # zero length: not drawn
    ]
    return to_frame(events)


def test_gantt_bars_start_and_last_as_the_trace_says() -> None:
    fig = charts.gantt(_trace(), steps=2)
    assert sorted(t.name for t in fig.data) == ["generate", "train", "verify"]     # idle has zero length
    verify = next(t for t in fig.data if t.name == "verify")
    assert list(zip(verify.y, verify.base, verify.x)) == [("verifier 3", 2.0, 0.5)]
    generate = next(t for t in fig.data if t.name == "generate")
    assert sorted(zip(generate.base, generate.x)) == [(0.0, 10.0), (14.0, 9.0)]   # step 2 cut off
    assert list(fig.layout.yaxis.categoryarray) == ["trainer 0", "verifier 3", "sampler 0"]


def test_gantt_caps_workers_per_pool() -> None:
    events = [TraceEvent("r", 0, 0, "verifier", i, "verify", 0.0, 1.0) for i in range(10)]
    fig = charts.gantt(to_frame(events), steps=1, max_workers_per_pool=4)
    assert sorted(fig.data[0].y) == [f"verifier {i}" for i in range(4)]


def test_heatmap_grid_and_blank_for_missing_plan() -> None:
    table = pd.DataFrame({"sampler.tp": [1, 1, 2], "verifier.workers": [32, 64, 32],
                          "step_time_s.mean": [10.0, 8.0, 6.0]})
    fig = charts.heatmap(table, "sampler.tp", "verifier.workers", "step_time_s.mean", "t")
    heat = fig.data[0]
    assert list(heat.x) == ["1", "2"] and list(heat.y) == ["32", "64"]
    assert heat.z[0][0] == 10.0 and heat.z[0][1] == 6.0 and heat.z[1][0] == 8.0 and math.isnan(heat.z[1][1])


def test_pareto_line_holds_only_frontier_points() -> None:
    table = pd.DataFrame({"hours_total": [1.0, 2.0, 3.0], "cost.usd_total": [30.0, 10.0, 20.0]})
    front = pd.Series([True, True, False])
    fig = charts.pareto(table, "hours_total", "cost.usd_total", front, pd.Series(["a", "b", "c"]))
    assert list(fig.data[1].x) == [1.0, 2.0] and list(fig.data[1].y) == [30.0, 10.0]
    assert list(fig.data[1].text) == ["a", "b"]


def test_measured_vs_simulated_one_series_per_quantity_and_identity_line() -> None:
    rows = pd.DataFrame({"config": ["a", "a", "b"], "quantity": ["step_time", "train", "step_time"],
                         "measured_s": [2.0, 1.0, 4.0], "simulated_s": [2.2, 0.9, 3.6]})
    fig = charts.measured_vs_simulated(rows)
    assert fig.data[0].name == "y = x" and list(fig.data[0].x) == list(fig.data[0].y)
    series = {t.name: list(zip(t.x, t.y)) for t in fig.data[1:]}
    assert series == {"step_time": [(2.0, 2.2), (4.0, 3.6)], "train": [(1.0, 0.9)]}


def test_measured_vs_simulated_counts_near_zero_times_instead_of_drawing_them() -> None:
    rows = pd.DataFrame({"config": ["a", "a"], "quantity": ["verify", "train"],
                         "measured_s": [0.01, 1.0], "simulated_s": [1e-17, 0.9]})
    fig = charts.measured_vs_simulated(rows)
    assert [t.name for t in fig.data] == ["y = x", "train"]
    assert "1 rows under 1 µs not drawn" in fig.layout.title.text
