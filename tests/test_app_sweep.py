"""Sweep page (AppTest): a two-knob grid of the working scenario through rlvr_sim.api (the sweep
grid), its heatmaps and Pareto frontier, invalid grid points kept as rows and grey cells with
their reason, and the `rlvr-sim plan` recommendation for the working scenario."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
import plotly.io  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.sim.run import simulate  # noqa: E402
from rlvr_sim.sweep.pareto import pareto_front, pareto_mask  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
PREFIX = "extra:sweep"
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


def array(value) -> np.ndarray:
    """A Plotly JSON array: a plain list or the typed-array form {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


def sweep_app(x_values: str, y_values: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/sweep.py").run()
    at.sidebar.selectbox(key="run:file").set_value(SCENARIO.name).run()
    at.sidebar.number_input(key="run:sim_steps").set_value(2).run()
    at.text_input(key=f"{PREFIX}:X:sampler.tp:values").set_value(x_values)
    at.text_input(key=f"{PREFIX}:Y:verifier.workers:values").set_value(y_values).run()
    assert not at.exception
    return at


def test_grid_results_heatmaps_and_pareto_frontier() -> None:
    at = sweep_app("1,2", "32,64")
    assert not at.dataframe                     # nothing until the sweep is run
    at.button(key="sweep:run").click().run()
    assert not at.exception and not at.error
    table = raw_table(at)
    assert list(zip(table["sampler.tp"], table["verifier.workers"])) == [(1, 32), (1, 64), (2, 32), (2, 64)]
    assert (table["status"] == "ok").all()
    scenario = load_scenario(SCENARIO, overrides=["verifier.workers=64", "sampler.tp=2"])
    want = simulate(scenario, steps=2).summary.step_time_s.mean
    assert table["step_time_s.mean"].iloc[3] == pytest.approx(want)
    charts = at.get("plotly_chart")
    assert len(charts) == 3                     # step-time heatmap, cost heatmap, Pareto
    heat = plotly.io.from_json(charts[0].proto.spec).data[0]
    assert list(heat.x) == ["1", "2"] and list(heat.y) == ["32", "64"]
    assert array(heat.z)[1][1] == pytest.approx(want)       # row verifier.workers=64, column sampler.tp=2
    line = plotly.io.from_json(charts[2].proto.spec).data[1]
    front = table[pareto_mask(table)].sort_values("hours_total")
    assert line.name == "Pareto frontier" and list(array(line.x)) == pytest.approx(list(front["hours_total"]))
    assert any("4 plans: 4 valid" in c.value for c in at.caption)


def raw_table(at: AppTest):
    return at.session_state["sweep:result"][1]


def test_invalid_grid_points_stay_rows_and_grey_cells_with_the_reason() -> None:
    at = sweep_app("1,3", "64")
    at.button(key="sweep:run").click().run()
    assert not at.exception and not at.error
    table = raw_table(at)
    assert list(table["status"]) == ["ok", "invalid"]
    assert "sampler.tp=3" in table["error"].iloc[1]
    shown = at.dataframe[0].value
    assert list(shown["Status"]) == ["ok", "invalid"] and "sampler.tp=3" in shown["Why invalid"].iloc[1]
    invalid = plotly.io.from_json(at.get("plotly_chart")[0].proto.spec).data[1]
    assert invalid.texttemplate == "invalid" and "sampler.tp=3" in invalid.text[0][1]


def test_grid_on_two_worker_processes_gives_the_same_rows() -> None:
    inline = sweep_app("1,2", "64")
    inline.button(key="sweep:run").click().run()
    pooled = sweep_app("1,2", "64")
    pooled.number_input(key="extra:sweep:workers").set_value(2).run()
    pooled.button(key="sweep:run").click().run()
    assert not pooled.exception and not pooled.error
    a, b = raw_table(inline), raw_table(pooled)
    assert list(a["step_time_s.mean"]) == list(b["step_time_s.mean"])


def test_same_knob_on_both_axes_is_an_error() -> None:
    at = sweep_app("1,2", "64")
    at.selectbox(key=f"{PREFIX}:Y:knob").set_value("sampler.tp").run()
    at.button(key="sweep:run").click().run()
    assert not at.exception and "pick two different knobs" in at.error[0].value


def test_bad_axis_values_show_the_sweep_error() -> None:
    at = sweep_app("1,,2", "64")
    at.button(key="sweep:run").click().run()
    assert not at.exception and "empty value" in at.error[0].value


def plan_search(total_gpus: int, time_limit_s: float | None = None) -> AppTest:
    at = sweep_app("1", "64")
    at.sidebar.number_input(key="run:sim_steps").set_value(1).run()
    at.number_input(key="extra:plan:total").set_value(total_gpus).run()
    if time_limit_s is not None:
        at.number_input(key="extra:plan:time_limit").set_value(time_limit_s).run()
    at.button(key="sweep:plan:run").click().run()
    assert not at.exception
    return at


def test_plan_search_without_a_valid_plan_says_why() -> None:
    at = plan_search(2)              # an 8B model's trainer does not fit on 1-2 GPUs
    assert not at.success
    assert "no valid plan in the search space" in at.error[0].value and "does not fit" in at.error[0].value


def test_recommended_plan_comes_from_the_plan_search() -> None:
    at = plan_search(4)
    assert not at.error
    headline = at.success[0].value
    assert headline.startswith("**4x h100-sxm") or headline.startswith("**2x h100-sxm")
    reason = next(m.value for m in at.markdown if "valid simulated plans" in m.value)
    assert "Bottleneck" in reason
    front = at.dataframe[-1].value
    assert {"Plan", "Hours for the run", "$ for the run"} <= set(front.columns) and len(front) >= 1
    result = at.session_state["sweep:plan"][1]
    assert result.steps_per_plan == 1 and any("1 simulated steps per plan" in c.value for c in at.caption)
    raw = pareto_front(result.table)
    line = plotly.io.from_json(at.get("plotly_chart")[-1].proto.spec).data[1]
    assert line.name == "Pareto frontier" and list(array(line.x)) == pytest.approx(list(raw["hours_total"]))
    assert any("Robustness of this recommendation: not available in this build" in c.value for c in at.caption) \
        or result.robustness is not None


def test_plan_search_with_a_time_limit_states_its_gap() -> None:
    """The time limit reaches the search; when it stopped a GPU total early, the reason says
    how far that total's best can be from its optimum (the sentence of `plan --time-limit`)."""
    at = plan_search(4, time_limit_s=1.0)
    assert not at.error
    result = at.session_state["sweep:plan"][1]
    assert at.session_state["sweep:plan"][0].time_limit_s == 1.0
    assert result.gaps and all(g.best_hours >= g.floor_hours for g in result.gaps)
    reason = next(m.value for m in at.markdown if "valid simulated plans" in m.value)
    early = [g for g in result.gaps if g.stopped != "exact"]
    assert ("Search stopped early" in reason) == bool(early)


def test_gpus_available_follows_the_working_scenario() -> None:
    at = sweep_app("1", "64")
    assert at.number_input(key="extra:plan:total").value == 8
    at.switch_page("app_pages/plan.py").run()
    at.sidebar.number_input(key="knob:sampler.gpus").set_value(16)
    at.sidebar.number_input(key="knob:trainer.gpus").set_value(16).run()
    at.switch_page("app_pages/sweep.py").run()
    assert at.number_input(key="extra:plan:total").value == 16


def test_the_recommendations_ties_table_names_each_plan_its_numbers_and_what_it_changes() -> None:
    from app_pages.planview import ties_table
    from rlvr_sim.sweep.ties import Tie

    tied = [Tie("8x h100-sxm disagg S4(tp1) T4(tp2) async1 mb4", 101.25, 3240.0, 0.01, True, ("trainer.tp",)),
            Tie("8x h100-sxm disagg S4(tp2) T4(tp1) async2 mb4", 102.5, 3280.0, None, False,
                ("sampler.tp", "orchestration.max_staleness"))]
    table = ties_table(tied)
    assert list(table.columns) == ["Plan", "Hours for the run", "$ for the run", "Changes"]
    assert list(table["Plan"]) == [t.label for t in tied]
    assert list(table["Changes"]) == ["trainer.tp", "sampler.tp, orchestration.max_staleness"]
    assert "101" in table["Hours for the run"][0] and "3,240" in table["$ for the run"][0]
