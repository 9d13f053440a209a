"""Plan page: one scenario, its main knobs, the simulated KPIs, charts and downloads.

Every widget change re-runs `state.simulate` with the moved knobs as overrides; a plan seen
before is answered from the cache. A ScenarioError (invalid knob value, plan that does not fit)
appears under the knob it names, never as a traceback.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from app_pages import charts, state, widgets

PAGE_TITLE = "Plan a run"


def _metric(col: Any, label: str, value: Any, fmt: str, help_text: str | None = None) -> None:
    text = "n/a" if value is None else fmt.format(value)
    col.metric(label, text, help=help_text)


def show_kpis(summary: dict[str, Any]) -> None:
    """The headline numbers: step time, throughput, cost and the bottleneck."""
    step = summary.get("step_time_s") or {}
    cost = summary.get("cost") or {}
    row1 = st.columns(4)
    _metric(row1[0], "Step time", step.get("mean"), "{:.3g} s", f"p50 {step.get('p50')}, p95 {step.get('p95')}")
    _metric(row1[1], "Tokens/s/GPU", summary.get("tokens_per_s_per_gpu"), "{:,.0f}")
    _metric(row1[2], "$ per step", cost.get("usd_per_step"), "${:,.2f}")
    _metric(row1[3], "Bottleneck", summary.get("bottleneck"), "{}")
    row2 = st.columns(4)
    _metric(row2[0], "Hours to finish", summary.get("hours_total"), "{:,.1f} h")
    _metric(row2[1], "$ to finish", cost.get("usd_total"), "${:,.0f}")
    _metric(row2[2], "GPU-hours", cost.get("gpu_hours_total"), "{:,.0f}")
    _metric(row2[3], "GPUs", summary.get("gpus"), "{}")
    if summary.get("steps_simulated") is not None:
        st.caption(f"Simulated {summary['steps_simulated']} of {summary.get('workload_steps')} steps "
                   f"({summary.get('mode')}); hours and $ to finish extrapolate to the whole run.")


def show_charts(summary: dict[str, Any], run: state.PlanRun, gantt_steps: int) -> None:
    st.plotly_chart(charts.phase_bar(summary), key="plan:chart:phase")
    left, right = st.columns(2)
    left.plotly_chart(charts.utilisation_bar(summary), key="plan:chart:util")
    right.plotly_chart(charts.staleness_hist(summary), key="plan:chart:stale")
    st.plotly_chart(charts.gantt(run.trace, steps=gantt_steps), key="plan:chart:gantt")


def show_downloads(run: state.PlanRun, name: str) -> None:
    """Resolved scenario YAML, results JSON, trace Parquet and the Perfetto timeline."""
    items: list[tuple[str, Any, str, str]] = [
        ("Scenario YAML", run.scenario_yaml, f"{name}.resolved.yaml", "application/x-yaml"),
        ("Results JSON", state.summary_json(run.summary), f"{name}.summary.json", "application/json"),
        ("Trace Parquet", lambda: state.trace_parquet_bytes(run.trace), f"{name}.trace.parquet",
         "application/octet-stream"),
    ]
    try:
        state.require("rlvr_sim.sim.perfetto", "The Perfetto export")
        items.append(("Perfetto timeline", lambda: state.perfetto_json_bytes(run.trace),
                      f"{name}.perfetto.json", "application/json"))
    except state.MissingPiece as exc:
        st.caption(str(exc))
    widgets.download_row(items, key="plan:dl")


def render() -> None:
    started = time.perf_counter()
    st.title(PAGE_TITLE)
    errors = state.require("rlvr_sim.errors", "the error types")
    with st.sidebar:
        source = widgets.scenario_picker("plan")
    if source is None:
        return
    try:
        base = state.resolved_dict(state.load(source))
    except errors.UserError as exc:
        st.error(f"{source.label} does not load: {exc}", icon="⚠️")
        return
    with st.sidebar:
        st.subheader("Main knobs")
        edit = widgets.knob_editor(base, key=f"plan:{source.label}")
        st.subheader("Simulation")
        default_steps = state.quick_steps()
        steps = st.number_input("Steps to simulate", value=default_steps, min_value=1, step=1, key="plan:steps",
                                placeholder="all the scenario's steps",
                                help="starts at `rlvr-sim plan`'s steps per plan; hours and $ extrapolate "
                                     "to workload.steps. Blank: simulate every step of the run.")
        gantt_steps = int(st.number_input("Steps in the timeline", value=3, min_value=1, step=1, key="plan:timeline_steps"))
    st.caption(f"Scenario: **{source.label}**" + (f" with `{'`, `'.join(edit.overrides)}`" if edit.overrides else ""))
    try:
        with st.spinner("Simulating..."):
            run = state.simulate(source, tuple(edit.overrides), steps=None if steps is None else int(steps))
    except errors.UserError as exc:
        field = widgets.show_field_error(edit, str(exc))
        where = f" — see **{field}** in the sidebar" if field else ""
        st.error(f"Invalid scenario{where}: {exc}", icon="⚠️")
        return
    summary = run.summary.model_dump(mode="json")
    show_kpis(summary)
    show_charts(summary, run, gantt_steps)
    st.subheader("Downloads")
    show_downloads(run, (source.label.rsplit(".", 1)[0] or "plan"))
    st.caption(f"Page computed in {time.perf_counter() - started:.2f} s on the server "
               "(a plan simulated before is answered from the cache).")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render)
