"""Compare page: the working scenario (plan A) against up to three variants, differences highlighted.

Plan A is the working scenario exactly as Plan shows it; plans B-D are plan A plus their own
`dotted.key=value` lines (kept in the session, so they survive a change of page). Two tables:
the KPIs of every plan with human labels and units, and the resolved-scenario fields that
differ; cells that differ from plan A are highlighted. A plan that does not validate shows
its error under its own box.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
import yaml

from app_pages import charts, fmt, session, state, widgets
from rlvr_sim import api
from rlvr_sim.errors import UserError

PAGE_TITLE = "Compare plans"
LETTERS = "ABCD"
HIGHLIGHT = "background-color: #fff3b0; font-weight: 600"
# Summary fields shown, in `Summary.flat()` names (metric names only; values come from the simulator).
KPI_FIELDS = (
    "step_time_s.mean", "step_time_s.p95", "tokens_per_s_per_gpu", "cost.usd_per_step",
    "hours_total", "cost.usd_total", "cost.gpu_hours_total", "cost.usd_per_gpu_hour", "gpus", "bottleneck",
    "utilization.sampler", "utilization.verifier", "utilization.trainer", "staleness.mean",
    "steps_simulated", "workload_steps",
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


def kpi_table(runs: dict[str, api.SimulateResult]) -> pd.DataFrame:
    """One row per KPI (raw values), one column per plan; the index holds the field names."""
    flats = {name: run.summary.flat() for name, run in runs.items()}
    fields = [f for f in KPI_FIELDS if any(f in flat for flat in flats.values())]
    return pd.DataFrame({name: [flat.get(f) for f in fields] for name, flat in flats.items()}, index=fields)


def scenario_diff(runs: dict[str, api.SimulateResult]) -> pd.DataFrame:
    """Resolved-scenario fields whose values are not the same in every plan."""
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
    """Styler over the formatted text of `table` (fmt.value per field, rows labelled by
    fmt.label): cells whose shown text differs from the first column's are highlighted (a
    difference below the shown digits is not one the reader can see, so it is not marked)."""
    text = pd.DataFrame({col: [fmt.value(str(f), v) for f, v in zip(table.index, table[col])] for col in table},
                        index=[fmt.label(str(f)) for f in table.index])
    mask = differs_from_first(text)
    return text.style.apply(lambda _: mask.map(lambda d: HIGHLIGHT if d else ""), axis=None)


def plan_inputs(work: session.Working, count: int) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Plan A (the working scenario) and one override box per further plan."""
    plans: dict[str, tuple[tuple[str, ...], Any]] = {}
    cols = st.columns(count)
    with cols[0]:
        st.markdown("**Plan A** — the working scenario")
        changes = work.describe()
        st.caption("`" + "`, `".join(changes) + "`" if changes else "as in the file")
        plans["Plan A"] = ((), st.empty())
    for letter, col in zip(LETTERS[1:count], cols[1:]):
        with col:
            st.markdown(f"**Plan {letter}** — plan A plus")
            key = f"compare:{letter}"
            session.seed(key, work.compare.get(letter, ""))
            text = st.text_area("Overrides (one `dotted.key=value` per line)", key=key, height=120,
                                placeholder="sampler.tp=2")
            work.compare[letter] = text
            plans[f"Plan {letter}"] = (parse_overrides(text), st.empty())
    return plans


def render() -> None:
    st.title(PAGE_TITLE)
    ctx = widgets.working_panel("compare")
    if ctx is None:
        return
    work = ctx.work
    session.seed("compare:count", work.compare_count)
    count = int(st.number_input("Plans", min_value=2, max_value=len(LETTERS), step=1, key="compare:count"))
    work.compare_count = count
    plans = plan_inputs(work, count)
    runs: dict[str, api.SimulateResult] = {}
    with st.spinner("Simulating..."):
        for name, (overrides, slot) in plans.items():
            try:
                runs[name] = state.simulate(work.request(overrides))
            except UserError as exc:
                with slot.container():
                    widgets.error_box(str(exc), prefix=f"{name} is invalid: ")
    if len(runs) < 2:
        st.info("Two valid plans are needed for a comparison; fix the plan marked above.")
        return
    st.subheader("Results")
    first = next(iter(runs.values())).summary
    st.caption(f"Highlighted: differs from the first valid plan. Hours and $ are for runs of "
               f"{first.workload_steps:,} steps, extrapolated from {first.steps_simulated} simulated steps "
               "(steady state, warm-up excluded).")
    st.dataframe(highlight_differences(kpi_table(runs)), height="content", key="compare:kpis")
    st.plotly_chart(charts.phase_compare({n: r.summary for n, r in runs.items()}), key="compare:phases")
    st.subheader("Scenario differences")
    diff = scenario_diff(runs)
    if diff.empty:
        st.caption("The resolved scenarios are identical.")
    else:
        st.dataframe(highlight_differences(diff), key="compare:diff")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render, "compare")
