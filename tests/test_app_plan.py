"""Plan page (streamlit.testing AppTest): KPIs are the library's numbers, widgets re-simulate,
invalid input shows the schema's error next to the field and never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import state  # noqa: E402
from rlvr_sim.scenario import load_scenario  # noqa: E402
from rlvr_sim.sim.run import simulate  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
KEY = f"plan:{SCENARIO.name}"
KPI_LABELS = ["Step time", "Tokens/s/GPU", "$ per step", "Bottleneck", "Hours to finish", "$ to finish",
              "GPU-hours", "GPUs"]
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


def plan_app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.sidebar.selectbox(key="plan:file").set_value(SCENARIO.name).run()
    assert not at.exception
    return at


def expected(*overrides: str) -> dict:
    scenario = load_scenario(SCENARIO, overrides=list(overrides))
    return simulate(scenario, steps=state.quick_steps()).summary.model_dump(mode="json")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_plan_shows_the_simulators_kpis_charts_and_downloads() -> None:
    at = plan_app()
    shown = metrics(at)
    assert list(shown) == KPI_LABELS
    want = expected()
    assert shown["Step time"] == f"{want['step_time_s']['mean']:.3g} s"
    assert shown["Bottleneck"] == want["bottleneck"]
    assert shown["$ to finish"] == f"${want['cost']['usd_total']:,.0f}"
    assert len(at.get("plotly_chart")) == 4          # phase bar, utilisation, staleness, Gantt
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:3] == ["Scenario YAML", "Results JSON", "Trace Parquet"]
    assert not at.error


def test_changing_a_knob_resimulates_with_that_override() -> None:
    at = plan_app()
    before = metrics(at)["Step time"]
    at.sidebar.number_input(key=f"{KEY}:sampler.tp").set_value(2).run()
    assert not at.exception and not at.error
    assert any("sampler.tp=2" in c.value for c in at.caption)
    want = expected("sampler.tp=2")
    assert metrics(at)["Step time"] == f"{want['step_time_s']['mean']:.3g} s" != before


def test_distribution_kind_change_becomes_one_mapping_override() -> None:
    at = plan_app()
    at.sidebar.selectbox(key=f"{KEY}:workload.response_tokens:dist").set_value("fixed").run()
    at.sidebar.number_input(key=f"{KEY}:workload.response_tokens:fixed:value").set_value(500.0).run()
    assert not at.exception and not at.error
    override = "workload.response_tokens={dist: fixed, value: 500.0}"
    assert any(override in c.value for c in at.caption)
    want = expected(override)
    assert metrics(at)["Step time"] == f"{want['step_time_s']['mean']:.3g} s"


def test_invalid_knob_shows_the_schema_error_under_that_field() -> None:
    at = plan_app()
    at.sidebar.number_input(key=f"{KEY}:sampler.tp").set_value(3).run()
    assert not at.exception                       # no traceback
    assert not at.metric                          # no stale results
    sidebar_errors = [e.value for e in at.sidebar.error]
    assert len(sidebar_errors) == 1 and "sampler.tp=3" in sidebar_errors[0]
    # the error sits right after the Sampler TP widget in the sidebar
    children = list(at.sidebar)
    tp_index = next(i for i, c in enumerate(children) if getattr(c, "key", None) == f"{KEY}:sampler.tp")
    after = children[tp_index + 1]
    assert after.type == "error" and "sampler.tp=3" in after.value
    assert "see **sampler.tp**" in at.main.error[0].value


def test_uploaded_yaml_with_unknown_key_names_the_field_and_the_fix() -> None:
    at = plan_app()
    bad = b"model: llama-3.1-8b\nsampler: {gpus: 8, tp: 1, bogus: 1}\ntrainer: {gpus: 8}\n"
    at.sidebar.get("file_uploader")[0].set_value(("bad.yaml", bad, "application/x-yaml")).run()
    assert not at.exception and not at.metric
    message = at.main.error[0].value
    assert "sampler.bogus" in message and "unknown key" in message


def test_uploaded_text_that_is_not_a_mapping_is_an_error_not_a_traceback() -> None:
    at = plan_app()
    at.sidebar.get("file_uploader")[0].set_value(("list.yaml", b"- 1\n- 2\n", "application/x-yaml")).run()
    assert not at.exception and not at.metric
    assert "mapping" in at.main.error[0].value


def test_model_and_gpu_choices_come_from_the_catalog_and_resimulate() -> None:
    from rlvr_sim.hardware import gpu_names
    from rlvr_sim.model_spec import catalog_names

    base = load_scenario(SCENARIO)
    at = plan_app()
    model = at.sidebar.selectbox(key=f"{KEY}:model")
    gpu = at.sidebar.selectbox(key=f"{KEY}:hardware.gpu")
    assert model.value == base.model.name and list(model.options) == catalog_names()
    assert gpu.value == base.hardware.gpu and list(gpu.options) == gpu_names()
    other_gpu = "h200" if base.hardware.gpu != "h200" else "h100-sxm"
    other_model = "qwen2.5-7b" if base.model.name != "qwen2.5-7b" else "llama-3.1-8b"
    gpu.set_value(other_gpu).run()
    assert not at.exception and not at.error
    want = expected(f"hardware.gpu={other_gpu}")
    assert metrics(at)["$ per step"] == f"${want['cost']['usd_per_step']:,.2f}"
    at.sidebar.selectbox(key=f"{KEY}:model").set_value(other_model).run()
    assert not at.exception and not at.error
    want = expected(f"hardware.gpu={other_gpu}", f"model={other_model}")
    assert metrics(at)["Step time"] == f"{want['step_time_s']['mean']:.3g} s"


def test_a_library_failure_is_a_plain_error_with_folded_details(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlvr_sim.sim.run as run_mod

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(run_mod, "simulate", broken)
    state._simulate.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        assert not at.exception and not at.metric
        assert at.error[0].value.startswith("rlvr-sim failed: RuntimeError: boom.")
        assert at.expander[0].label == "details" and "RuntimeError: boom" in at.expander[0].code[0].value
    finally:
        state._simulate.clear()
