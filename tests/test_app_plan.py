"""Plan page (streamlit.testing AppTest): KPIs are the library's numbers, knobs re-simulate, the
run-length / price / profile / steps knobs change what results say they use, distribution
fields show exact values, and invalid input shows a short error next to the field."""

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
from rlvr_sim.distributions import LogNormal  # noqa: E402
from rlvr_sim.hardware import HardwareProfile  # noqa: E402

SCENARIO = ROOT / "scenarios" / "minimal.yaml"
KPI_LABELS = ["Step time", "Tokens/s per GPU", "$ per step", "Critical-path bottleneck", "Hours for the run",
              "$ for the run", "GPU-hours", "GPUs"]
pytestmark = pytest.mark.skipif(not SCENARIO.exists(), reason="scenarios/minimal.yaml is missing")


def plan_app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/plan.py").run()
    at.sidebar.selectbox(key="run:file").set_value(SCENARIO.name).run()
    assert not at.exception
    return at


def expected(*overrides: str, settings: api.RunSettings = api.RunSettings(),
             steps: int | None | str = "default") -> api.SimulateResult:
    source = state.source_from_file(SCENARIO)
    return api.simulate(api.SimulateRequest(source, overrides, settings,
                                            state.quick_steps() if steps == "default" else steps))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_plan_shows_the_simulators_kpis_charts_and_downloads() -> None:
    at = plan_app()
    shown = metrics(at)
    assert list(shown) == KPI_LABELS
    want = expected().summary
    assert shown["Step time"] == fmt.seconds(want.step_time_s.mean)
    assert shown["Critical-path bottleneck"] == want.bottleneck
    assert shown["$ for the run"] == fmt.usd(want.cost.usd_total)
    assert len(at.get("plotly_chart")) == 5          # phase bars, busy %, staleness, timeline, step trend
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Scenario YAML", "Results JSON", "Trace Parquet", "Perfetto timeline"]
    basis = next(m.value for m in at.markdown if m.value.startswith("Hours and $ are for a run of"))
    assert f"**{want.workload_steps} steps**" in basis and "**$2.50 per GPU-hour**" in basis
    assert f"of {want.steps_simulated} simulated" in basis
    statement = next(m.value for m in at.markdown if m.value.startswith("The step waits longest on"))
    top = max(want.phase_time_s, key=want.phase_time_s.get)
    assert f"**{fmt.PHASE_LABELS[top]}**" in statement and f"samplers {fmt.pct(want.utilization['sampler'])}" in statement
    assert not at.error


def test_changing_a_knob_resimulates_with_that_override() -> None:
    at = plan_app()
    before = metrics(at)["Step time"]
    at.sidebar.number_input(key="knob:sampler.tp").set_value(2).run()
    assert not at.exception and not at.error
    assert any("sampler.tp=2" in c.value for c in at.caption)
    want = expected("sampler.tp=2").summary
    assert metrics(at)["Step time"] == fmt.seconds(want.step_time_s.mean) != before
    assert any("minimal+sampler.tp=2-" in c.value for c in at.caption)        # downloads named after the change


def test_run_length_and_price_knobs_set_hours_and_dollars_and_say_so() -> None:
    at = plan_app()
    at.sidebar.number_input(key="run:steps").set_value(300)
    at.sidebar.number_input(key="run:price").set_value(3.0).run()
    assert not at.exception and not at.error
    want = expected(settings=api.RunSettings(run_steps=300, usd_per_gpu_hour=3.0)).summary
    assert want.workload_steps == 300 and want.cost.usd_per_gpu_hour == 3.0
    assert metrics(at)["Hours for the run"] == fmt.hours(want.hours_total)
    assert metrics(at)["$ for the run"] == fmt.usd(want.cost.usd_total)
    basis = next(m.value for m in at.markdown if m.value.startswith("Hours and $"))
    assert "**300 steps**" in basis and "**$3.00 per GPU-hour**" in basis


def test_blank_steps_to_simulate_simulates_every_step_of_the_run() -> None:
    at = plan_app()
    at.sidebar.number_input(key="run:steps").set_value(4)
    at.sidebar.number_input(key="run:sim_steps").set_value(None).run()
    assert not at.exception and not at.error
    want = expected(settings=api.RunSettings(run_steps=4), steps=None).summary
    assert want.steps_simulated == 4
    assert metrics(at)["Hours for the run"] == fmt.hours(want.hours_total)
    assert any("all 4 steps simulated" in m.value for m in at.markdown)


def test_distribution_fields_show_exact_values_and_the_capped_mean() -> None:
    at = plan_app()
    at.sidebar.text_input(key="knob:workload.response_tokens:lognormal:cap").set_value("16384").run()
    assert not at.exception and not at.error
    cap = at.sidebar.text_input(key="knob:workload.response_tokens:lognormal:cap")
    assert cap.value == "16384"
    mean = at.sidebar.number_input(key="knob:workload.response_tokens:lognormal:mean")
    assert mean.value == 1000 and mean.proto.format == "%d"
    capped = LogNormal(mean=1000, sigma=1.0, cap=16384).mean_value()
    assert any(f"`mean` is the mean before the cap; with cap 16384 the mean drawn is {fmt.number(capped)} tokens"
               in c.value for c in at.sidebar.caption)
    assert any("cap: 16384" in c.value for c in at.caption)


def test_invalid_knob_shows_a_short_error_under_that_field_with_details_folded() -> None:
    at = plan_app()
    at.sidebar.number_input(key="knob:sampler.tp").set_value(3).run()
    assert not at.exception                       # no traceback
    assert not at.metric                          # no stale results
    sidebar_errors = [e.value for e in at.sidebar.error]
    assert len(sidebar_errors) == 1 and "sampler.tp=3" in sidebar_errors[0] and "\n" not in sidebar_errors[0]
    children = list(at.sidebar)
    tp_index = next(i for i, c in enumerate(children) if getattr(c, "key", None) == "knob:sampler.tp")
    slot = children[tp_index + 1]          # the slot right after the Sampler TP widget holds the error
    assert "sampler.tp=3" in slot.error[0].value
    assert "see **Sampler TP**" in at.main.error[0].value
    assert str(ROOT) not in at.main.error[0].value


def test_uploaded_yaml_with_unknown_key_names_the_field_and_the_fix() -> None:
    at = plan_app()
    bad = b"model: llama-3.1-8b\nsampler: {gpus: 8, tp: 1, bogus: 1}\ntrainer: {gpus: 8}\n"
    at.sidebar.get("file_uploader")[0].set_value(("bad.yaml", bad, "application/x-yaml")).run()
    assert not at.exception and not at.metric
    message = at.error[0].value
    assert "sampler.bogus" in message and "unknown key" in message


def test_yaml_syntax_error_is_short_and_keeps_its_caret_in_the_details() -> None:
    at = plan_app()
    at.sidebar.get("file_uploader")[0].set_value(("broken.yaml", b"model: x\nsampler: {gpus: 8\n",
                                                  "application/x-yaml")).run()
    assert not at.exception and not at.metric
    assert "broken.yaml is not valid YAML" in at.error[0].value
    assert "^" in at.expander[0].code[0].value


def test_profile_selector_offers_the_gpus_profiles_and_a_profile_changes_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "profiles"
    profile = HardwareProfile.from_catalog("h100-sxm")
    profile = profile.model_copy(update={"source": "calibrated 2026-11-30 test-h100",
                                         "efficiency": profile.efficiency.model_copy(update={"decode_bw_eff": 0.4})})
    profile.save(folder / "test-h100.yaml")
    HardwareProfile.from_catalog("h200").save(folder / "other-gpu.yaml")
    monkeypatch.setattr(state, "PROFILE_DIR", folder)
    at = plan_app()
    box = at.sidebar.selectbox(key="run:profile")
    assert list(box.options) == ["datasheet (catalog efficiencies)", "calibrated: test-h100.yaml"]
    assert any("not offered for h100-sxm" in c.value for c in at.sidebar.caption)
    box.set_value("test-h100.yaml").run()
    assert not at.exception and not at.error
    want = expected(settings=api.RunSettings(profile=str((folder / "test-h100.yaml").resolve()))).summary
    assert metrics(at)["Step time"] == fmt.seconds(want.step_time_s.mean) != fmt.seconds(expected().summary.step_time_s.mean)
    assert any("profile: calibrated 2026-11-30 test-h100" in m.value for m in at.markdown)


def test_a_library_failure_is_a_plain_error_with_folded_details(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "run_simulation", broken)
    state._simulate.clear()
    try:
        at = plan_app()
        assert not at.exception and not at.metric
        assert at.error[0].value.startswith("rlvr-sim failed: RuntimeError: boom.")
        assert at.expander[-1].label == "details" and "RuntimeError: boom" in at.expander[-1].code[0].value
    finally:
        state._simulate.clear()
