"""Calibration page: what a hardware profile is, a profile from profiles/ and its validation report.

Profiles are the YAML files `rlvr-sim calibrate` writes (`rlvr_sim.hardware.HardwareProfile`);
validation reports are the JSON files `rlvr-sim validate --json` writes (rows of config,
quantity, measured_s, simulated_s). Engine validation reports (`PROFILE.engine-validation.json`,
written by `rlvr-sim validate --backend vllm`: recorded vLLM engine runs replayed by the
simulator's engine) get their own section: held-out MAPEs, the workload that misses most, the
per-workload errors, finish-time quantiles simulated vs vLLM, and the vLLM-backend GRPO step. The page re-reads both through those classes, so MAPE and
the error table are the library's numbers; it labels every efficiency term with the schema's
`Field(description=...)` and every validation config with its description. With no profile or
report it says which command makes one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
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
        if isinstance(data, dict) and isinstance(data.get("rows"), list) and \
                not path.name.endswith(ENGINE_SUFFIX):
            found.append(path)
    return found


ENGINE_SUFFIX = ".engine-validation.json"
QUANTILES = {"finish_p50_s": "p50", "finish_p90_s": "p90", "finish_max_s": "max"}
QUANTILE_COLORS = {"p50": "#1f77b4", "p90": "#ff7f0e", "max": "#d62728"}


def engine_report_files() -> list[Path]:
    """Engine validation reports under profiles/ (`rlvr-sim validate --backend vllm`)."""
    if not state.PROFILE_DIR.is_dir():
        return []
    return sorted(p for p in state.PROFILE_DIR.rglob(f"*{ENGINE_SUFFIX}") if p.is_file())


def finish_quantiles(data: dict, step_clock: bool = False) -> pd.DataFrame:
    """Held-out runs' finish-time quantiles, one row per (run, quantile): vLLM vs simulated."""
    rows = data["step_clock_rows" if step_clock else "rows"]
    return pd.DataFrame([{"run": f"{r['run']} ({r['source']})", "quantile": q,
                          "vllm": float(r["measured"][k]), "simulated": float(r["simulated"][k])}
                         for r in rows if not r["held_in"] for k, q in QUANTILES.items()],
                        columns=["run", "quantile", "vllm", "simulated"])


def quantile_figure(frame: pd.DataFrame, unit: str) -> go.Figure:
    """Log-log scatter of simulated vs vLLM finish-time quantiles with the y = x line."""
    fig = go.Figure()
    if frame.empty:
        return fig
    lo = float(min(frame["vllm"].min(), frame["simulated"].min())) / 1.3
    hi = float(max(frame["vllm"].max(), frame["simulated"].max())) * 1.3
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                             line=dict(dash="dash", color="gray")))
    for q, part in frame.groupby("quantile", sort=False):
        fig.add_trace(go.Scatter(x=part["vllm"], y=part["simulated"], mode="markers", name=str(q),
                                 text=part["run"], marker=dict(size=9, color=QUANTILE_COLORS[str(q)]),
                                 hovertemplate=f"%{{text}}<br>vLLM %{{x:.3g}} {unit}<br>"
                                               f"simulated %{{y:.3g}} {unit}<extra></extra>"))
    fig.update_xaxes(title=f"vLLM finish time ({unit})", type="log")
    fig.update_yaxes(title=f"simulated finish time ({unit})", type="log")
    fig.update_layout(title="Finish-time quantiles per held-out run: simulated vs vLLM",
                      height=440, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def workload_table(data: dict, step_clock: bool = False) -> pd.DataFrame:
    """Per held-out workload, the median signed error of each quantity over its runs."""
    by = data["by_workload_pct_step_clock" if step_clock else "by_workload_pct"]
    cols = {"generate_s": "generate", "tokens_per_s": "tokens/s", "finish_p50_s": "finish p50",
            "finish_p90_s": "finish p90", "finish_max_s": "finish max",
            "preemptions": "preemptions", "peak_running": "peak batch"}
    return pd.DataFrame({label: [fmt.MISSING if v.get(k) is None else f"{v[k]:+.1f}%"
                                 for v in by.values()] for k, label in cols.items()},
                        index=list(by))


def show_engine_report(path: Path) -> None:
    data = json.loads(path.read_text())
    clock = str(data.get("clock", "cpu"))
    st.markdown(
        f"Recorded vLLM engine runs (`calibration/engine_runs/`) replayed through the simulator's "
        f"own continuous-batching engine with `{Path(str(data.get('profile', ''))).name}`: "
        f"{data['held_out_runs']} held-out runs of {data['held_out_workloads']} workloads. The "
        "**step clock** counts engine steps (scheduling dynamics alone: admission, KV pool, "
        f"preemption, prefix sharing, speculation); the **{clock} clock** adds the cost model.")
    m, ms = data["mape_pct"], data["mape_pct_step_clock"]
    nospec = data.get("mape_pct_without_speculative", {})
    cols = st.columns(4)
    cols[0].metric("MAPE generate (step clock)", f"{ms['generate_s']:.1f}%")
    cols[1].metric(f"MAPE generate ({clock} clock)", f"{m['generate_s']:.1f}%")
    if nospec.get("generate_s") is not None:
        cols[2].metric("same, without spec. decoding", f"{nospec['generate_s']:.1f}%")
    cols[3].metric(f"MAPE finish p90 ({clock} clock)", f"{m['finish_p90_s']:.1f}%")
    worst = data.get("worst", {})
    if worst.get("workload"):
        st.markdown(f"**Misses most:** `{worst['workload']}` (generate "
                    f"{worst['generate_error_pct']:+.1f}% on the {clock} clock; step clock: "
                    f"`{data['worst_step_clock']['workload']}` "
                    f"{data['worst_step_clock']['generate_error_pct']:+.1f}%).")
    step = st.radio("Clock", [f"{clock} clock (seconds)", "step clock (engine steps)"],
                    horizontal=True, key="calibration:engine:clock") != f"{clock} clock (seconds)"
    unit = "engine steps" if step else "s"
    st.plotly_chart(quantile_figure(finish_quantiles(data, step), unit),
                    key="calibration:engine:quantiles")
    st.markdown("Median signed error per held-out workload ((simulated - vLLM) / vLLM):")
    st.dataframe(workload_table(data, step), key="calibration:engine:table")
    grpo = data.get("grpo", {})
    if grpo.get("rows"):
        st.markdown("**Full GRPO step with the vLLM sampler backend** (tiny-4m; measured vs "
                    f"simulated seconds per step; {grpo.get('note', '')}):")
        frame = pd.DataFrame([{"session": r.get("session", ""), "config": r["config"],
                               "quantity": r["quantity"],
                               "measured": fmt.duration(r["measured_s"]),
                               "simulated": fmt.duration(r["simulated_s"]),
                               "error": f"{r['error_pct']:+.1f}%"} for r in grpo["rows"]])
        st.dataframe(frame, key="calibration:engine:grpo", hide_index=True)


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
        label = st.selectbox("Hardware profile", labels, key="calibration:profile") or labels[0]
        picked_path = files[labels.index(label)]
        st.subheader("Profile")
        try:
            show_profile(picked_path)
        except UserError as exc:
            widgets.error_box(str(exc))
    engine = engine_report_files()
    if engine:
        st.subheader("Engine validation (vLLM)")
        engine_names = [str(p.relative_to(state.PROFILE_DIR)) for p in engine]
        pick = st.selectbox("Engine validation report", engine_names,
                            key="calibration:engine:report") if len(engine) > 1 else None
        path = engine[engine_names.index(pick)] if pick is not None else engine[0]
        try:
            show_engine_report(path)
        except (KeyError, TypeError, ValueError) as exc:
            widgets.error_box(f"{path.name} is not an engine validation report: {exc}")
    reports = report_files()
    st.subheader("Validation")
    if not reports:
        st.warning(f"No validation report found in {state.PROFILE_DIR.name}/ — run `rlvr-sim validate --json` "
                   "to compare simulated and measured step times.")
        return
    names = [str(p.relative_to(state.PROFILE_DIR)) for p in reports]
    paired = picked_path.with_name(picked_path.stem + ".validation.json") if picked_path else None
    index = reports.index(paired) if paired in reports else 0    # the selected profile's own report first
    name = st.selectbox("Validation report", names, index=index,
                        key=f"calibration:report:{paired.name if paired else ''}") or names[index]
    try:
        show_report(reports[names.index(name)])
    except (KeyError, TypeError, ValueError) as exc:
        widgets.error_box(f"{name} is not a validation report: {exc}")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render, "calibration")
