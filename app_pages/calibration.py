"""Calibration page: a hardware profile from profiles/ and its validation report.

Profiles are the YAML files `rlvr-sim calibrate` writes (`rlvr_sim.hardware.HardwareProfile`);
validation reports are the JSON files `rlvr-sim validate --json` writes (the
`calibration.report.ValidationReport.to_dict()` object: rows of config, quantity, measured_s,
simulated_s). The page re-reads both through those classes, so MAPE and the error table are the
library's numbers. With no profile or report it says which command makes one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import charts, state, widgets

PAGE_TITLE = "Calibration"


def profile_files() -> list[Path]:
    """Hardware profile YAMLs under profiles/ (any depth)."""
    if not state.PROFILE_DIR.is_dir():
        return []
    return sorted(p for p in state.PROFILE_DIR.rglob("*.y*ml") if p.is_file())


def report_files() -> list[Path]:
    """Validation report JSONs under profiles/: JSON objects with a `rows` list."""
    if not state.PROFILE_DIR.is_dir():
        return []
    found = []
    for path in sorted(state.PROFILE_DIR.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            found.append(path)
    return found


def load_report(path: Path) -> Any:
    """A validation report JSON -> `calibration.report.ValidationReport` (its MAPE and table)."""
    report_mod = state.require("calibration.report", "Validation reports (calibration/report.py)")
    data = json.loads(path.read_text())
    rows = [report_mod.Comparison(str(r["config"]), str(r["quantity"]), float(r["measured_s"]),
                                  float(r["simulated_s"])) for r in data["rows"]
            if r.get("measured_s") is not None and r.get("simulated_s") is not None and r["measured_s"] > 0]
    return report_mod.ValidationReport(profile=str(data.get("profile", path.name)), rows=rows,
                                       configs=list(data.get("configs") or []))


def show_profile(path: Path) -> None:
    """Source line, the fitted efficiency terms next to the catalog's defaults, and the fit notes
    (`PROFILE.fit.json`, written by `rlvr-sim calibrate`) when present."""
    hardware = state.require("rlvr_sim.hardware", "Hardware profiles (rlvr_sim/hardware.py)")
    profile = hardware.HardwareProfile.load(path)
    st.markdown(f"**GPU** `{profile.gpu}` — **source** {profile.source}")
    fitted = profile.efficiency.model_dump()
    try:
        default = hardware.HardwareProfile.from_catalog(profile.gpu).efficiency.model_dump()
    except Exception:  # noqa: BLE001 - a profile of a device the catalog lacks (e.g. this CPU)
        default = {}
    table = pd.DataFrame({"profile": fitted, "catalog default": {k: default.get(k) for k in fitted}})
    st.dataframe(table.astype(object), key="calibration:efficiency")
    notes = path.with_name(path.stem + ".fit.json")
    if notes.is_file():
        with st.expander(f"Fit diagnostics ({notes.name})"):
            st.json(json.loads(notes.read_text()), expanded=1)


def show_report(path: Path) -> None:
    report = load_report(path)
    for config in report.configs:
        if isinstance(config, dict) and config.get("skipped"):
            st.caption(f"skipped {config.get('name')}: {config['skipped']}")
    if not report.rows:
        st.warning(f"{path.name} has no configuration with both a measured and a simulated time "
                   "(every run was skipped or failed).")
        return
    step = state.require("calibration.report", "Validation reports").STEP
    quantities = [step] + report.phases()
    cols = st.columns(min(len(quantities), 6))
    for col, quantity in zip(cols, quantities):
        col.metric(f"MAPE {quantity}", f"{report.mape(quantity):.1f}%")
    rows = pd.DataFrame([{"config": r.config, "quantity": r.quantity, "measured_s": r.measured_s,
                          "simulated_s": r.simulated_s, "error_pct": 100 * r.error} for r in report.rows])
    st.plotly_chart(charts.measured_vs_simulated(rows), key="calibration:scatter")
    st.subheader("Error table")
    st.dataframe(report.table(), key="calibration:table")


def render() -> None:
    st.title(PAGE_TITLE)
    profiles = profile_files()
    picked_profile = None
    if not profiles:
        st.warning(f"No calibration profile found in {state.PROFILE_DIR.name}/ — run `rlvr-sim calibrate` "
                   "to micro-benchmark this machine and write one.")
    else:
        names = [str(p.relative_to(state.PROFILE_DIR)) for p in profiles]
        picked = st.selectbox("Hardware profile", names, key="calibration:profile")
        picked_profile = profiles[names.index(picked)]
        st.subheader("Profile")
        errors = state.require("rlvr_sim.errors", "the error types")
        try:
            show_profile(profiles[names.index(picked)])
        except errors.UserError as exc:
            st.error(str(exc), icon="⚠️")
    reports = report_files()
    st.subheader("Validation")
    if not reports:
        st.warning(f"No validation report found in {state.PROFILE_DIR.name}/ — run `rlvr-sim validate --json` "
                   "to compare simulated and measured step times.")
        return
    names = [str(p.relative_to(state.PROFILE_DIR)) for p in reports]
    paired = picked_profile.with_name(picked_profile.stem + ".validation.json") if picked_profile else None
    index = reports.index(paired) if paired in reports else 0    # the selected profile's own report first
    picked = st.selectbox("Validation report", names, index=index,
                          key=f"calibration:report:{paired.name if paired else ''}")
    try:
        show_report(reports[names.index(picked)])
    except (KeyError, TypeError, ValueError) as exc:
        st.error(f"{picked} is not a validation report: {exc}", icon="⚠️")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render)
