"""The app's Plotly figures draw exactly the numbers they are given (hand-made inputs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("plotly")
pytest.importorskip("streamlit")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # app_pages/ lives at the repo root

from app_pages import charts  # noqa: E402
from rlvr_sim.sim.metrics import Staleness, Summary  # noqa: E402
from rlvr_sim.trace import TraceEvent, to_frame  # noqa: E402


def summary(**fields) -> Summary:
    """A hand-made Summary holding only the fields a chart reads."""
    base = dict(phase_time_s={}, phase_span_s={}, utilization={},
                staleness=Staleness(mean=0.0, max=0, hist={}))
    return Summary.model_construct(**{**base, **fields})


def test_phase_bars_critical_path_and_busy_time_in_stack_order_with_one_colour_per_phase() -> None:
    fig = charts.phase_bars(summary(phase_time_s={"train": 4.0, "generate": 12.5, "verify": 0.0, "weight_sync": 0.5},
                                    phase_span_s={"generate": 30.0, "train": 4.0, "weight_sync": 0.5}))
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["generate", "train", "weight sync"]        # legend = stack order
    assert {t.name: list(t.x) for t in fig.data} == {"generate": [12.5, 30.0], "train": [4.0, 4.0],
                                                     "weight sync": [0.5, 0.5]}
    assert list(fig.data[0].y) == ["critical path", "busy time"]
    assert [t.marker.color for t in fig.data] == [charts.PHASE_COLORS[p] for p in ("generate", "train", "weight_sync")]
    assert "Critical path" in fig.layout.title.text and "busy time" in fig.layout.title.text


def test_phase_compare_one_bar_per_plan_zero_for_a_missing_phase() -> None:
    fig = charts.phase_compare({"Plan A": summary(phase_time_s={"generate": 10.0, "train": 4.0}),
                                "Plan B": summary(phase_time_s={"generate": 6.0, "switch": 1.0})})
    assert {t.name: list(t.x) for t in fig.data} == {"generate": [10.0, 6.0], "switch (colocated)": [0.0, 1.0],
                                                     "train": [4.0, 0.0]}
    assert [t.name for t in fig.data] == ["generate", "switch (colocated)", "train"]
    assert list(fig.data[0].y) == ["Plan A", "Plan B"] and fig.layout.barmode == "stack"


def test_utilisation_in_percent_in_pool_order_with_the_phase_colours() -> None:
    fig = charts.utilisation_bar(summary(utilization={"trainer": 0.25, "sampler": 0.9, "verifier": 0.1}))
    assert list(fig.data[0].x) == ["samplers", "verifier workers", "trainer"]
    assert list(fig.data[0].y) == pytest.approx([90.0, 10.0, 25.0])
    assert list(fig.data[0].marker.color) == [charts.PHASE_COLORS[p] for p in ("generate", "verify", "train")]


def test_staleness_hist_from_the_summary_mapping() -> None:
    fig = charts.staleness_hist(summary(staleness=Staleness(mean=1.4, max=2, hist={"0": 3, "2": 7})))
    assert list(fig.data[0].x) == [0, 2] and list(fig.data[0].y) == [3, 7]


def test_missing_summary_fields_draw_a_note_not_an_error() -> None:
    for fig in (charts.phase_bars(summary()), charts.utilisation_bar(summary()), charts.staleness_hist(summary())):
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


def test_gantt_caps_workers_per_pool_and_says_so() -> None:
    events = [TraceEvent("r", 0, 0, "verifier", i, "verify", 0.0, 1.0) for i in range(10)]
    fig = charts.gantt(to_frame(events), steps=1, max_workers_per_pool=4)
    assert sorted(fig.data[0].y) == [f"verifier {i}" for i in range(4)]
    assert "showing 4 of 10 verifier workers" in fig.layout.title.text
    assert fig.data[0].marker.color == charts.PHASE_COLORS["verify"]
    assert "showing" not in charts.gantt(to_frame(events), steps=1, max_workers_per_pool=16).layout.title.text


def test_heatmap_grid_invalid_cells_grey_with_the_reason_and_no_exponents() -> None:
    table = pd.DataFrame({"sampler.tp": [1, 1, 2, 2], "verifier.workers": [32, 64, 32, 64],
                          "status": ["ok", "ok", "ok", "invalid"],
                          "error": [None, None, None, "sampler.tp=2 does not fit"],
                          "step_time_s.mean": [1640.0, 8.0, 6.0, float("nan")]})
    fig = charts.heatmap(table, "sampler.tp", "verifier.workers", "step_time_s.mean", "t")
    heat, invalid = fig.data
    assert list(heat.x) == ["1", "2"] and list(heat.y) == ["32", "64"]
    assert heat.z[0][0] == 1640.0 and heat.z[0][1] == 6.0 and heat.z[1][0] == 8.0 and heat.z[1][1] is None
    assert heat.texttemplate == "%{z:,.3~r}"          # 1,640 not 1.64e+3
    assert invalid.z[1][1] == 0.0 and invalid.z[0][0] is None and invalid.texttemplate == "invalid"
    assert invalid.text[1][1] == "sampler.tp=2 does not fit"


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


def test_robustness_bands_read_either_field_layout_and_skip_missing_percentiles() -> None:
    from dataclasses import dataclass

    from app_pages.planview import Band, robustness_bands

    @dataclass
    class Flat:
        share_best: float = 0.8
        hours_p10: float = 9.0
        hours_p50: float = 10.0
        hours_p90: float = 12.5
        usd_p10: float | None = None
        usd_p50: float | None = 800.0
        usd_p90: float | None = 900.0

    @dataclass
    class Pct:
        p10: float
        p50: float
        p90: float

    @dataclass
    class Nested:
        hours: Pct
        usd: Pct

    assert robustness_bands(Flat()) == [Band("Hours", "h", 9.0, 10.0, 12.5)]        # usd p10 missing: no band
    assert robustness_bands(Nested(Pct(1, 2, 3), Pct(10, 20, 30))) == [Band("Hours", "h", 1, 2, 3),
                                                                        Band("Dollars", "$", 10, 20, 30)]
    fig = charts.band("Hours", 9.0, 10.0, 12.5, "h")
    assert list(fig.data[0].x) == [9.0, 12.5] and list(fig.data[1].x) == [10.0]


def test_trend_points_are_the_simulated_steps_with_their_critical_path_bottleneck() -> None:
    from rlvr_sim.api import step_trend
    from rlvr_sim.sim.recorder import StepRecord

    # step 0: 10 s generate, then 4 s train -> sampler; step 1: 2 s generate, 6 s train, 1 s weight sync -> trainer
    steps = [StepRecord(0, start_s=0.0, gen_start_s=0.0, gen_end_s=10.0, verify_end_s=10.0, train_start_s=10.0,
                        train_end_s=14.0, end_s=14.0),
             StepRecord(1, start_s=14.0, gen_start_s=14.0, gen_end_s=16.0, verify_end_s=16.0, train_start_s=16.0,
                        train_end_s=22.0, end_s=23.0, weight_sync_s=1.0)]
    points = step_trend(steps)
    assert [(p.step, p.step_time_s, p.bottleneck) for p in points] == [(0, 14.0, "sampler"), (1, 9.0, "trainer")]
    assert points[0].phase_share["generate"] == pytest.approx(10 / 14)
    assert points[1].phase_share["weight_sync"] == pytest.approx(1 / 9)
    fig = charts.trend(points, warmup_steps=1)
    assert [t.name for t in fig.data[:2]] == ["bottleneck: samplers", "bottleneck: trainer"]
    assert fig.data[0].marker.color == charts.POOL_COLORS["sampler"]
    assert fig.layout.shapes[0].x0 == -0.5 and fig.layout.shapes[0].x1 == 0.5      # step 0 shaded as warm-up
