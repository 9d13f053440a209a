"""Compare page (AppTest): the working scenario (plan A) against variants, human labels and
units, differences highlighted, a bad plan's error shown under its own override box."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import compare, fmt, state  # noqa: E402  (compare.py renders only under Streamlit)
from rlvr_sim import api  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


def compare_app(count: int = 2) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.selectbox(key="run:file").set_value(SCENARIO.name).run()
    return at.number_input(key="compare:count").set_value(count).run()


def step_time(*overrides: str) -> float:
    request = api.SimulateRequest(state.source_from_file(SCENARIO), overrides, sim_steps=state.quick_steps())
    return api.simulate(request).summary.step_time_s.mean


def test_two_plans_side_by_side_with_human_labels_and_differences_highlighted() -> None:
    at = compare_app()
    at.text_area(key="compare:B").set_value("sampler.tp=2\n# a comment line is ignored").run()
    assert not at.exception and not at.error
    kpis, diff = at.dataframe[0].value, at.dataframe[1].value
    assert list(kpis.columns) == ["Plan A", "Plan B"]
    assert kpis.loc["Step time, mean (s)", "Plan A"] == fmt.value("step_time_s.mean", step_time())
    assert kpis.loc["Step time, mean (s)", "Plan B"] == fmt.value("step_time_s.mean", step_time("sampler.tp=2"))
    assert kpis.loc["Sampler busy", "Plan A"].endswith("%")          # fractions as %
    assert list(diff.index) == ["Sampler TP"] and list(diff.loc["Sampler TP"]) == ["1", "2"]
    assert len(at.get("plotly_chart")) == 1


def test_four_plans_and_identical_plans_have_no_scenario_differences() -> None:
    at = compare_app(count=4)
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value.columns) == ["Plan A", "Plan B", "Plan C", "Plan D"]
    assert len(at.dataframe) == 1 and any("identical" in c.value for c in at.caption)


def test_invalid_plan_shows_its_error_and_no_comparison() -> None:
    at = compare_app()
    at.text_area(key="compare:B").set_value("sampler.tp=3").run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("Plan B is invalid") and "sampler.tp=3" in at.error[0].value
    assert not at.dataframe
    at.text_area(key="compare:B").set_value("not an override").run()
    assert not at.exception and "dotted.key=value" in at.error[0].value


def test_highlight_mask_marks_cells_that_differ_from_the_first_plan() -> None:
    import pandas as pd

    table = pd.DataFrame({"A": [1.0, "x", None], "B": [1.0, "y", None], "C": [2.0, "x", 0]}, index=["a", "b", "c"])
    mask = compare.differs_from_first(table)
    assert mask.values.tolist() == [[False, False, True], [False, True, False], [False, False, True]]


def test_only_differences_the_reader_can_see_are_highlighted() -> None:
    import pandas as pd

    table = pd.DataFrame({"Plan A": [248.1, 0.1234, 9.0], "Plan B": [248.2, 0.1239, 10.0]},
                         index=["tokens_per_s_per_gpu", "utilization.sampler", "hours_total"])
    styled = compare.highlight_differences(table)
    text = styled.data
    assert list(text["Plan B"]) == ["248", "12%", "10 h"] and list(text.index) == ["Tokens/s per GPU", "Sampler busy",
                                                                                  "Hours for the run"]
    html = styled.to_html()
    assert html.count(compare.HIGHLIGHT.split(";")[0]) == 1          # only "10 h" differs as shown
