"""Calibration page: what a hardware profile is, a profile from profiles/ and its validation report.

Profiles are the YAML files `rlvr-sim calibrate` writes (`rlvr_sim.hardware.HardwareProfile`);
validation reports are the JSON files `rlvr-sim validate --json` writes (rows of config,
quantity, measured_s, simulated_s). The page re-reads both through those classes, so MAPE and
the error table are the library's numbers; it labels every efficiency term with the schema's
`Field(description=...)` and every validation config with its description. With no profile or
report it says which command makes one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import charts, fmt, state, widgets
from calibration.report import STEP, Comparison, ValidationReport
from rlvr_sim import api
from rlvr_sim.errors import UserError
from rlvr_sim.hardware import Efficiency, HardwareProfile

PAGE_TITLE = "Calibration"
INTRO = """
**What a profile is.** The simulator times every phase with a cost model: datasheet peaks (FLOP/s,
memory and link bandwidth) x **efficiency terms** — the fraction of peak a real stack achieves
(e.g. `decode_bw_eff`: share of memory bandwidth reached while decoding; `train_mfu`: share of peak
FLOP/s while training) plus fixed overheads (seconds per call, per layer, per switch).
A **hardware profile** is one set of those numbers with its source:

- **datasheet** — the catalog's peaks and generic default efficiencies (no measurement);
- **public measurement** — efficiencies from published component benchmarks (kernels, collectives);
- **calibrated** — efficiencies fitted by `rlvr-sim calibrate` to micro-benchmarks on one machine.

**Does it affect plans?** Yes, for the GPU it describes: choose it under *Hardware profile* in the
sidebar of Plan, Compare or Sweep (or `profile:` in a scenario) and every simulated time, hence
hours and $, uses it. A profile of another device (such as this machine's CPU) is not offered for a
GPU plan.

**MAPE** (mean absolute percentage error) is how far the simulated times are from times measured by
running the real GRPO loop on held-out configurations: mean over configurations of
|simulated - measured| / measured. 10% means a simulated step is typically within 10% of the real one.
"""


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


def load_report(path: Path) -> ValidationReport:
    """A validation report JSON -> `calibration.report.ValidationReport` (its MAPE and table)."""
    data = json.loads(path.read_text())
    rows = [Comparison(str(r["config"]), str(r["quantity"]), float(r["measured_s"]), float(r["simulated_s"]))
            for r in data["rows"]
            if r.get("measured_s") is not None and r.get("simulated_s") is not None and r["measured_s"] > 0]
    return ValidationReport(profile=str(data.get("profile", path.name)), rows=rows,
                            configs=list(data.get("configs") or []))


def config_names(report: ValidationReport) -> dict[str, str]:
    """Config id -> human name (its description, as the validation grid wrote it)."""
    return {str(c.get("name")): str(c.get("description") or c.get("name")) for c in report.configs
            if isinstance(c, dict) and c.get("name")}


def efficiency_table(profile: HardwareProfile) -> pd.DataFrame:
    """Each efficiency term: meaning (schema description), this profile's value, the catalog default."""
    fitted = profile.efficiency.model_dump()
    try:
        default = HardwareProfile.from_catalog(profile.gpu).efficiency.model_dump()
    except UserError:   # a profile of a device the catalog lacks
        default = {}
    fields = Efficiency.model_fields
    return pd.DataFrame({
        "meaning": [fields[k].description or k.replace("_", " ") for k in fitted],
        "this profile": [_eff(k, v) for k, v in fitted.items()],
        "catalog default": [_eff(k, default.get(k)) for k in fitted],
    }, index=list(fitted))


def _eff(name: str, value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, float) and (name.endswith("_eff") or name.endswith("_mfu") or name == "decode_overlap"):
        return fmt.pct(value)
    if isinstance(value, float) and name.endswith("_s"):
        return fmt.duration(value)
    if isinstance(value, float) and name.endswith("_s_per_param"):
        return f"{fmt.duration(value)} per parameter"
    return fmt.value(name, value)


def profile_label(path: Path) -> str:
    """`kind: relative/path.yaml` (kind from `api.profile_kind`), or `unreadable: ...`."""
    rel = path.relative_to(state.PROFILE_DIR)
    try:
        profile = HardwareProfile.load(path)
    except UserError:
        return f"unreadable: {rel}"
    return f"{widgets.PROFILE_KINDS[api.profile_kind(path, profile)]}: {rel}"


def show_profile(path: Path) -> None:
    profile = HardwareProfile.load(path)
    kind = widgets.PROFILE_KINDS[api.profile_kind(path, profile)]
    st.markdown(f"**Device** `{profile.gpu}` — **kind** {kind} — **source** {profile.source}")
    st.dataframe(efficiency_table(profile), key="calibration:efficiency")
    notes = path.with_name(path.stem + ".fit.json")
    if notes.is_file():
        with st.expander(f"Fit diagnostics ({notes.name})"):
            st.json(json.loads(notes.read_text()), expanded=1)


def show_report(path: Path) -> None:
    report = load_report(path)
    names = config_names(report)
    for config in report.configs:
        if isinstance(config, dict) and config.get("skipped"):
            st.caption(f"skipped {names.get(str(config.get('name')), config.get('name'))}: {config['skipped']}")
    if not report.rows:
        st.warning(f"{path.name} has no configuration with both a measured and a simulated time "
                   "(every run was skipped or failed).")
        return
    quantities = [STEP] + report.phases()
    cols = st.columns(min(len(quantities), 6))
    for col, quantity in zip(cols, quantities):
        title = "step time" if quantity == STEP else fmt.PHASE_LABELS.get(quantity, quantity)
        col.metric(f"MAPE {title}", f"{report.mape(quantity):.1f}%")
    rows = pd.DataFrame([{"config": names.get(r.config, r.config), "quantity": r.quantity,
                          "measured_s": r.measured_s, "simulated_s": r.simulated_s} for r in report.rows])
    st.plotly_chart(charts.measured_vs_simulated(rows), key="calibration:scatter")
    st.subheader("Error table")
    wide = report.table()
    wide.index = [f"{names.get(c, c)} ({c})" for c in wide.index]
    text = pd.DataFrame({_column(c): [fmt.MISSING if pd.isna(v) else f"{v:+.1f}%" if c.endswith("error_pct")
                                      else fmt.duration(v) for v in wide[c]] for c in wide.columns}, index=wide.index)
    st.dataframe(text, key="calibration:table")


def _column(name: str) -> str:
    quantity, _, value = name.partition(".")
    title = "step time" if quantity == STEP else quantity.replace("_", " ")
    return f"{title}: " + {"error_pct": "error", "measured_s": "measured", "simulated_s": "simulated"}.get(value, value)


def render() -> None:
    st.title(PAGE_TITLE)
    st.markdown(INTRO)
    files = profile_files()
    picked_path = None
    if not files:
        st.warning(f"No hardware profile found in {state.PROFILE_DIR.name}/ — run `rlvr-sim calibrate` "
                   "to micro-benchmark this machine and write one.")
    else:
        labels = [profile_label(p) for p in files]
        picked = st.selectbox("Hardware profile", labels, key="calibration:profile")
        picked_path = files[labels.index(picked)]
        st.subheader("Profile")
        try:
            show_profile(picked_path)
        except UserError as exc:
            widgets.error_box(str(exc))
    reports = report_files()
    st.subheader("Validation")
    if not reports:
        st.warning(f"No validation report found in {state.PROFILE_DIR.name}/ — run `rlvr-sim validate --json` "
                   "to compare simulated and measured step times.")
        return
    names = [str(p.relative_to(state.PROFILE_DIR)) for p in reports]
    paired = picked_path.with_name(picked_path.stem + ".validation.json") if picked_path else None
    index = reports.index(paired) if paired in reports else 0    # the selected profile's own report first
    picked = st.selectbox("Validation report", names, index=index,
                          key=f"calibration:report:{paired.name if paired else ''}")
    try:
        show_report(reports[names.index(picked)])
    except (KeyError, TypeError, ValueError) as exc:
        widgets.error_box(f"{picked} is not a validation report: {exc}")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render, "calibration")
