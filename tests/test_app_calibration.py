"""Calibration page (AppTest): a profile from profiles/ and its validation report, MAPE and the
error table computed by calibration.report, and plain notices when either file is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # app_pages/ lives at the repo root

from app_pages import state  # noqa: E402
from calibration.report import Comparison, ValidationReport  # noqa: E402
from rlvr_sim.hardware import HardwareProfile  # noqa: E402


@pytest.fixture()
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty profiles/ folder the page reads instead of the repository's."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    monkeypatch.setattr(state, "PROFILE_DIR", folder)
    return folder


def write_profile(folder: Path, name: str = "test-device", gpu: str = "h100-sxm") -> HardwareProfile:
    profile = HardwareProfile.from_catalog(gpu)
    profile = profile.model_copy(update={
        "source": "calibrated 2026-11-22 test-device",
        "efficiency": profile.efficiency.model_copy(update={"decode_bw_eff": 0.5, "train_mfu": 0.25})})
    profile.save(folder / f"{name}.yaml")
    return profile


def write_report(folder: Path, name: str = "test-device") -> Path:
    # step_time errors +10% and -10% -> MAPE 10.0 %; train errors -10% and +30% -> MAPE 20.0 %
    rows = [Comparison("cfg-a", "step_time", 2.0, 2.2), Comparison("cfg-b", "step_time", 4.0, 3.6),
            Comparison("cfg-a", "train", 1.0, 0.9), Comparison("cfg-b", "train", 1.0, 1.3)]
    path = folder / f"{name}.validation.json"
    configs = [{"name": "cfg-a", "description": "human name of a"}]
    path.write_text(json.dumps(ValidationReport("profiles/test-device.yaml", rows, configs).to_dict()))
    return path


def calibration_app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/calibration.py").run()
    assert not at.exception
    return at


def test_without_profile_or_report_the_page_says_which_command_to_run(profiles: Path) -> None:
    at = calibration_app()
    warnings = [w.value for w in at.warning]
    assert "No hardware profile found in profiles/ — run `rlvr-sim calibrate`" in warnings[0]
    assert "run `rlvr-sim validate --json`" in warnings[1]
    assert not at.get("plotly_chart")


def test_profile_and_report_show_mape_scatter_and_error_table(profiles: Path) -> None:
    write_profile(profiles)
    write_report(profiles)
    at = calibration_app()
    assert not at.error and not at.warning
    assert any("calibrated 2026-11-22 test-device" in m.value for m in at.markdown)
    efficiency = at.dataframe[0].value
    assert efficiency.loc["decode_bw_eff", "this profile"] == "50%" and efficiency.loc["train_mfu", "this profile"] == "25%"
    assert efficiency.loc["decode_bw_eff", "catalog default"] != "50%"
    assert efficiency.loc["decode_bw_eff", "meaning"] == "achieved HBM fraction in decode"   # the schema's description
    assert {m.label: m.value for m in at.metric} == {"MAPE step time": "10.0%", "MAPE train": "20.0%"}
    table = at.dataframe[1].value
    assert table.loc["human name of a (cfg-a)", "train: error"] == "-10.0%"
    assert table.loc["cfg-b (cfg-b)", "train: error"] == "+30.0%"
    assert any("**MAPE** (mean absolute percentage error)" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 1


def test_broken_files_show_an_error_not_a_traceback(profiles: Path) -> None:
    (profiles / "broken.yaml").write_text("gpu: h100-sxm\nsource: x\n")            # no datasheet
    (profiles / "broken.validation.json").write_text(json.dumps({"rows": [{"measured_s": 1.0, "simulated_s": 2.0}]}))
    at = calibration_app()
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert at.selectbox(key="calibration:profile").value == "unreadable: broken.yaml"
    assert "broken.yaml" in errors[0] and "invalid" in errors[0] and str(ROOT) not in errors[0]
    assert "is not a validation report" in errors[1]


def test_each_profile_opens_its_own_report_and_unusable_rows_are_explained(profiles: Path) -> None:
    write_profile(profiles, "a-device")
    write_profile(profiles, "b-device", gpu="h200")
    write_report(profiles, "a-device")
    (profiles / "b-device.validation.json").write_text(json.dumps(
        {"profile": "b-device.yaml", "rows": [{"config": "c", "quantity": "step_time", "measured_s": None,
                                               "simulated_s": 1.0}],
         "configs": [{"name": "c", "skipped": "out of memory"}]}))
    at = calibration_app()
    assert at.selectbox(key="calibration:profile").value == "calibrated: a-device.yaml"
    assert at.selectbox(key="calibration:report:a-device.validation.json").value == "a-device.validation.json"
    assert {m.label for m in at.metric} == {"MAPE step time", "MAPE train"}
    at.selectbox(key="calibration:profile").set_value("calibrated: b-device.yaml").run()
    assert at.selectbox(key="calibration:report:b-device.validation.json").value == "b-device.validation.json"
    assert not at.metric
    assert any("no configuration with both a measured and a simulated time" in w.value for w in at.warning)
    assert [c.value for c in at.caption] == ["skipped c: out of memory"]
    assert not at.exception and not at.error


def write_engine_report(folder: Path) -> Path:
    """A two-run engine validation report (the shape `rlvr-sim validate --backend vllm` writes)."""
    def row(run: str, held_in: bool, measured: float, simulated: float) -> dict:
        q = {"generate_s": 1.0, "tokens_per_s": 1.0, "finish_p50_s": 1.0, "finish_p90_s": 1.0,
             "finish_max_s": 1.0, "preemptions": 0.0, "peak_running": 1.0}
        return {"source": "t1", "run": run, "held_in": held_in,
                "measured": {k: v * measured for k, v in q.items()},
                "simulated": {k: v * simulated for k, v in q.items()},
                "error_pct": {k: 100 * (simulated - measured) / measured for k in q}}
    rows = [row("tiny-4m/fit.r0", True, 2.0, 2.0), row("tiny-4m/kv.r0", False, 2.0, 2.5)]
    by = {"tiny-4m/kv": {"generate_s": 25.0, "tokens_per_s": -20.0, "finish_p50_s": 25.0,
                         "finish_p90_s": 25.0, "finish_max_s": 25.0, "preemptions": None,
                         "peak_running": 0.0}}
    data = {"profile": "profiles/test.yaml", "clock": "cpu", "held_out_runs": 1,
            "held_out_workloads": 1,
            "mape_pct": {"generate_s": 25.0, "finish_p90_s": 25.0},
            "mape_pct_step_clock": {"generate_s": 0.0, "finish_p90_s": 0.0},
            "mape_pct_without_speculative": {"generate_s": 25.0},
            "by_workload_pct": by, "by_workload_pct_step_clock": by,
            "worst": {"workload": "tiny-4m/kv", "generate_error_pct": 25.0},
            "worst_step_clock": {"workload": "tiny-4m/kv", "generate_error_pct": 0.0},
            "rows": rows, "step_clock_rows": rows,
            "grpo": {"note": "test", "rows": [{"config": "sync", "quantity": "step_time",
                                              "measured_s": 1.0, "simulated_s": 1.1,
                                              "error_pct": 10.0}]}}
    path = folder / "test.engine-validation.json"
    path.write_text(json.dumps(data))
    return path


def test_engine_validation_section_shows_mape_quantiles_and_grpo(profiles: Path) -> None:
    write_profile(profiles)
    write_report(profiles)
    write_engine_report(profiles)
    at = calibration_app()
    assert not at.error and not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["MAPE generate (cpu clock)"] == "25.0%"
    assert metrics["MAPE generate (step clock)"] == "0.0%"
    assert metrics["MAPE step time"] == "10.0%"          # the executor report is still its own
    assert any("**Misses most:** `tiny-4m/kv`" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 2               # finish quantiles + executor scatter
    frames = [d.value for d in at.dataframe]     # efficiency, engine table, GRPO, executor table
    table = next(f for f in frames if "finish p90" in f.columns)
    assert table.loc["tiny-4m/kv", "generate"] == "+25.0%"
    assert table.loc["tiny-4m/kv", "preemptions"] == "n/a"        # not measurable: shown as missing
    grpo = next(f for f in frames if "quantity" in f.columns and "config" in f.columns)
    assert list(grpo["error"]) == ["+10.0%"]
    # the engine report is not offered as an executor validation report
    assert at.selectbox(key="calibration:report:test-device.validation.json").options == \
        ["test-device.validation.json"]


def test_finish_quantiles_are_the_held_out_rows() -> None:
    from app_pages.calibration import finish_quantiles

    data = json.loads((ROOT / "profiles" / "vllm-cpu.engine-validation.json").read_text())
    frame = finish_quantiles(data)
    held_out = [r for r in data["rows"] if not r["held_in"]]
    assert len(frame) == 3 * len(held_out)
    first = held_out[0]
    row = frame[(frame["run"] == f"{first['run']} ({first['source']})") & (frame["quantile"] == "p90")]
    assert float(row["vllm"].iloc[0]) == first["measured"]["finish_p90_s"]
