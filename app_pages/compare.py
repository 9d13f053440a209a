"""Compare page: two to four plans side by side, their differences highlighted.

A plan is a base scenario plus `dotted.key=value` override lines (the same strings
`rlvr-sim sweep` and `load_scenario` take). Two tables: the KPIs of every plan, and the
resolved-scenario fields that differ between the plans; cells that differ from plan A are
highlighted. A plan that does not validate shows its error under its own override box.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app_pages import charts, state, widgets

PAGE_TITLE = "Compare plans"
LETTERS = "ABCD"
HIGHLIGHT = "background-color: #fff3b0; font-weight: 600"
# Summary fields shown, in `Summary.flat()` names (metric names only; values come from the simulator).
KPI_FIELDS = (
    "step_time_s.mean", "step_time_s.p95", "tokens_per_s_per_gpu", "cost.usd_per_step",
    "hours_total", "cost.usd_total", "cost.gpu_hours_total", "gpus", "bottleneck",
    "utilization.sampler", "utilization.verifier", "utilization.trainer", "staleness.mean",
)


def parse_overrides(text: str) -> tuple[str, ...]:
    """Non-empty, non-comment lines of an override box."""
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {dotted.key: leaf}; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def kpi_table(runs: dict[str, state.PlanRun]) -> pd.DataFrame:
    """One row per KPI present in any plan's summary, one column per plan."""
    flats = {name: state.flat_summary(run.summary) for name, run in runs.items()}
    fields = [f for f in KPI_FIELDS if any(f in flat for flat in flats.values())]
    return pd.DataFrame({name: [flat.get(f) for f in fields] for name, flat in flats.items()}, index=fields)


def scenario_diff(runs: dict[str, state.PlanRun]) -> pd.DataFrame:
    """Resolved-scenario fields whose values are not the same in every plan."""
    import yaml

    flats = {name: flatten(yaml.safe_load(run.scenario_yaml) or {}) for name, run in runs.items()}
    keys = sorted(set().union(*flats.values()))
    rows = {k: [flats[n].get(k) for n in flats] for k in keys}
    differing = {k: v for k, v in rows.items() if len({repr(x) for x in v}) > 1}
    return pd.DataFrame.from_dict(differing, orient="index", columns=list(flats))


def differs_from_first(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame: True where a cell's value is not the first column's value in that row."""
    first = table.columns[0]
    return pd.DataFrame({col: [repr(a) != repr(b) for a, b in zip(table[col], table[first])]
                         for col in table.columns}, index=table.index)


def highlight_differences(table: pd.DataFrame) -> Any:
    """Styler over the formatted text of `table`: cells that differ from the first column highlighted."""
    mask = differs_from_first(table)
    text = table.astype(object).map(_cell)
    return text.style.apply(lambda _: mask.map(lambda d: HIGHLIGHT if d else ""), axis=None)


def _cell(value: Any) -> str:
    """Table text: floats with 4 significant digits, thousands separated (no exponent below 1e15)."""
    if isinstance(value, float):
        return f"{value:,.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:,.4g}"
    return "" if value is None else str(value)


def plan_inputs(count: int) -> dict[str, tuple[state.ScenarioSource, tuple[str, ...], Any]]:
    """One column per plan: scenario file and override lines; returns name -> (source, overrides, error slot)."""
    files = state.scenario_files()
    names = [p.name for p in files]
    plans = {}
    for i, (letter, col) in enumerate(zip(LETTERS[:count], st.columns(count))):
        with col:
            st.markdown(f"**Plan {letter}**")
            picked = st.selectbox("Scenario", names, index=i % len(names), key=f"compare:{letter}:file")
            text = st.text_area("Overrides (one `dotted.key=value` per line)", key=f"compare:{letter}:overrides",
                                height=120, placeholder="sampler.tp=2")
            slot = st.empty()
        plans[f"Plan {letter}"] = (state.source_from_file(files[names.index(picked)]), parse_overrides(text), slot)
    return plans


def render() -> None:
    st.title(PAGE_TITLE)
    errors = state.require("rlvr_sim.errors", "the error types")
    if not state.scenario_files():
        st.warning(f"No scenario files in {state.SCENARIO_DIR.name}/ — add one to compare plans.")
        return
    left, right = st.columns(2)
    count = int(left.number_input("Plans", min_value=2, max_value=len(LETTERS), value=2, step=1, key="compare:count"))
    steps = right.number_input("Steps to simulate", value=state.quick_steps(), min_value=1, step=1,
                               key="compare:steps", placeholder="all the scenario's steps",
                               help="starts at `rlvr-sim plan`'s steps per plan; hours and $ extrapolate")
    plans = plan_inputs(count)
    runs: dict[str, state.PlanRun] = {}
    with st.spinner("Simulating..."):
        for name, (source, overrides, slot) in plans.items():
            try:
                runs[name] = state.simulate(source, overrides, steps=None if steps is None else int(steps))
            except errors.UserError as exc:
                slot.error(f"{name} is invalid: {exc}", icon="⚠️")
    if len(runs) < 2:
        st.info("Two valid plans are needed for a comparison; fix the plan marked above.")
        return
    st.subheader("Results")
    st.caption("Highlighted: differs from the first valid plan.")
    st.dataframe(highlight_differences(kpi_table(runs)), height="content", key="compare:kpis")
    summaries = {name: run.summary.model_dump(mode="json") for name, run in runs.items()}
    st.plotly_chart(charts.phase_compare(summaries), key="compare:phases")
    st.subheader("Scenario differences")
    diff = scenario_diff(runs)
    if diff.empty:
        st.caption("The resolved scenarios are identical.")
    else:
        st.dataframe(highlight_differences(diff), key="compare:diff")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render)
