"""The working scenario across pages, and the guided start (AppTest).

- Knobs and run settings moved on Plan survive a trip to Compare and Sweep and back, Compare's
  plan A is the working scenario, Compare's own plans survive a trip to Plan, "Reset to file"
  drops every edit, and every page has its own path.
- The Ask page answers a question with the `plan` search's recommendation (the same one the API
  returns for that question) and "Open this plan on Plan" makes it the working scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import fmt, state  # noqa: E402
from rlvr_sim import api  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert not at.exception
    return at


def on_plan(at: AppTest) -> AppTest:
    at.switch_page("app_pages/plan.py").run()
    at.sidebar.selectbox(key="run:file").set_value(SCENARIO.name).run()
    return at


def test_plan_edits_survive_navigation_and_reach_compare_and_sweep() -> None:
    at = on_plan(app())
    at.sidebar.number_input(key="knob:sampler.tp").set_value(2)
    at.sidebar.number_input(key="run:steps").set_value(300)
    at.sidebar.number_input(key="run:price").set_value(3.0).run()
    hours = {m.label: m.value for m in at.metric}["Hours for the run"]
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception and not at.error
    assert any("sampler.tp=2" in c.value and "workload.steps=300" in c.value for c in at.caption)   # plan A
    kpis = at.dataframe[0].value
    assert kpis.loc["Hours for the run", "Plan A"] == hours
    assert kpis.loc["$ per GPU-hour", "Plan A"] == "$3.00"
    at.text_area(key="compare:B").set_value("verifier.workers=32").run()
    at.switch_page("app_pages/sweep.py").run()
    assert any("sampler.tp=2" in c.value for c in at.caption)
    assert at.sidebar.number_input(key="run:steps").value == 300
    at.switch_page("app_pages/plan.py").run()
    assert not at.exception
    assert at.sidebar.number_input(key="knob:sampler.tp").value == 2
    assert at.sidebar.number_input(key="run:steps").value == 300
    assert at.sidebar.number_input(key="run:price").value == 3.0
    assert {m.label: m.value for m in at.metric}["Hours for the run"] == hours
    at.switch_page("app_pages/compare.py").run()
    assert at.text_area(key="compare:B").value == "verifier.workers=32"


def test_reset_to_file_drops_every_edit() -> None:
    at = on_plan(app())
    at.sidebar.number_input(key="knob:sampler.tp").set_value(2)
    at.sidebar.number_input(key="run:steps").set_value(300).run()
    at.sidebar.button(key="reset:plan").click().run()
    assert not at.exception
    assert at.sidebar.number_input(key="knob:sampler.tp").value == 1
    assert at.sidebar.number_input(key="run:steps").value == 100
    assert at.session_state["working"].describe() == []
    assert any(c.value == "Scenario: **minimal.yaml**" for c in at.caption)


def test_every_page_has_its_own_path() -> None:
    text = (ROOT / "app.py").read_text()
    assert text.count("default=True") == 1 and 'st.Page("app_pages/ask.py", title="Ask a question", default=True)' in text
    for path in ("plan", "compare", "sweep", "calibration"):
        assert f'url_path="{path}"' in text
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'toolbarMode = "minimal"' in config          # no Deploy button


QUESTION = api.Question(gpus=8, gpu="h100-sxm", model="qwen2.5-1.5b", prompts_per_step=16, samples_per_prompt=4,
                        typical_response_tokens=512, max_response_tokens=2048, steps=50, sim_steps=2)


def ask(at: AppTest, q: api.Question) -> AppTest:
    at.number_input(key="ask:gpus").set_value(q.gpus)
    at.selectbox(key="ask:gpu").set_value(q.gpu)
    at.selectbox(key="ask:model").set_value(q.model)
    at.number_input(key="ask:prompts").set_value(q.prompts_per_step)
    at.number_input(key="ask:samples").set_value(q.samples_per_prompt)
    at.number_input(key="ask:typical").set_value(q.typical_response_tokens)
    at.number_input(key="ask:max").set_value(q.max_response_tokens)
    at.number_input(key="ask:steps").set_value(q.steps)
    at.number_input(key="ask:sim_steps").set_value(q.sim_steps)
    next(b for b in at.button if b.label == "Answer").click().run()
    assert not at.exception and not at.error
    return at


def test_guided_question_answers_with_the_planners_recommendation_and_opens_it_on_plan() -> None:
    at = app()
    assert at.title[0].value == "Ask a question"                     # the first page
    defaults = (at.number_input(key="ask:prompts").value, at.number_input(key="ask:samples").value)
    assert defaults == (64, 16)                                        # the schema's Workload defaults
    ask(at, QUESTION)
    want = api.plan(api.question_plan_request(QUESTION)).recommendation
    answer = next(m.value for m in at.markdown if m.value.startswith("- Colocated or split"))
    placement = "colocated" if want.allocation.placement == "colocated" else "split"
    mode = "sync" if want.allocation.max_staleness == 0 else "async"
    assert f"**{placement}**" in answer and f"Sync or async: **{mode}**" in answer
    assert f"**{fmt.hours(want.hours_total)}** and **{fmt.usd(want.usd_total)}** for 50 steps" in answer
    assert at.success[0].value.startswith(f"**{want.label}**")
    at.button(key="ask:open").click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Plan a run"
    shown = {m.label: m.value for m in at.metric}
    assert shown["Hours for the run"] == fmt.hours(want.hours_total)
    assert shown["$ for the run"] == fmt.usd(want.usd_total)
    assert at.sidebar.number_input(key="knob:sampler.gpus").value == want.allocation.sampler_gpus
    assert at.sidebar.number_input(key="run:sim_steps").value == 2


def test_question_with_an_impossible_maximum_is_a_short_error() -> None:
    at = app()
    at.number_input(key="ask:typical").set_value(4096)
    at.number_input(key="ask:max").set_value(1024)
    next(b for b in at.button if b.label == "Answer").click().run()
    assert not at.exception
    assert "below the typical length" in at.error[0].value and "\n" not in at.error[0].value


def test_ask_defaults_come_from_the_schema() -> None:
    from rlvr_sim.scenario import Hardware, Sampler, Workload

    at = app()
    assert at.number_input(key="ask:gpus").value == Sampler().gpus
    assert at.selectbox(key="ask:gpu").value == Hardware().gpu
    assert at.number_input(key="ask:steps").value == Workload().steps
    assert at.number_input(key="ask:max").value == int(Workload().response_tokens.cap)
    assert state.model_names() == list(at.selectbox(key="ask:model").options)


def test_the_question_and_its_answer_survive_navigation() -> None:
    at = ask(app(), QUESTION)
    at.switch_page("app_pages/compare.py").run()
    at.switch_page("app_pages/ask.py").run()
    assert not at.exception
    assert at.number_input(key="ask:gpus").value == QUESTION.gpus
    assert at.selectbox(key="ask:model").value == QUESTION.model
    assert at.number_input(key="ask:max").value == QUESTION.max_response_tokens
    assert not at.info and any(m.value.startswith("- Colocated or split") for m in at.markdown)
