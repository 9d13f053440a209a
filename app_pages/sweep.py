"""Sweep page: a grid over two knobs of the working scenario (heatmaps, Pareto frontier) and the
`plan` search's recommendation for it.

Both start from the working scenario (the Plan page's knobs and the shared run settings) and
go through the typed API: `api.grid` (the sweep grid; invalid plans stay rows with their reason
and grey "invalid" cells) and `api.plan` (the plan command's search and recommendation). While
they run the page counts the simulated plans; it shows no progress fraction (the search does
not know its size in advance). Results stay in the session until their inputs change.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app_pages import charts, fmt, planview, session, state, widgets
from rlvr_sim import api
from rlvr_sim.errors import UserError
from rlvr_sim.sweep.pareto import DOLLARS, HOURS, pareto_mask

PAGE_TITLE = "Sweep and plan"
STEP_TIME = "step_time_s.mean"
COST = DOLLARS
# Knobs offered as sweep axes (any other dotted field can be typed in).
AXIS_CHOICES = tuple(k.field for k in widgets.KNOBS if k.kind in ("number", "choice") and k.field != "model")
DEFAULT_AXES = ("sampler.tp", "verifier.workers")


def default_values(base: dict[str, Any], key: str) -> str:
    """Starting axis values: the scenario's value, half and double it (ints), else the value alone."""
    value = widgets.get_path(base, key)
    if isinstance(value, bool) or not isinstance(value, int):
        return "" if value is None else session.value_text(value)
    return ",".join(str(v) for v in sorted({v for v in (value // 2, value, value * 2) if v >= 1}))


def show_grid(table: pd.DataFrame, x: str, y: str) -> None:
    ok = table[table["status"] == "ok"] if "status" in table else table
    st.caption(f"{len(table)} plans: {len(ok)} valid, {len(table) - len(ok)} invalid or failed (grey cells; "
               "hover for the reason).")
    left, right = st.columns(2)
    left.plotly_chart(charts.heatmap(table, x, y, STEP_TIME, "Step time (s)"), key="sweep:heat:step")
    right.plotly_chart(charts.heatmap(table, x, y, COST, "$ for the run"), key="sweep:heat:cost")
    mask = pareto_mask(ok)
    labels = ok[x].astype(str).radd(f"{fmt.label(x)} ") + ", " + ok[y].astype(str).radd(f"{fmt.label(y)} ")
    st.plotly_chart(charts.pareto(ok, HOURS, DOLLARS, mask, labels), key="sweep:pareto")
    st.dataframe(planview.table_view(table, [x, y, "status", STEP_TIME, HOURS, DOLLARS, "bottleneck", "error"]),
                 key="sweep:table", hide_index=True)


def grid_section(ctx: widgets.Context) -> None:
    st.subheader("Grid over two knobs")
    axes = []
    for name, default, col in zip(("X", "Y"), DEFAULT_AXES, st.columns(2)):
        with col:
            session.seed(f"extra:sweep:{name}:knob", default)
            knob = st.selectbox(f"{name} knob", AXIS_CHOICES, key=f"extra:sweep:{name}:knob",
                                format_func=fmt.label) or default     # None only with no options
            vkey = f"extra:sweep:{name}:{knob}:values"
            session.seed(vkey, default_values(ctx.base, knob))
            values = st.text_input(f"{name} values (comma-separated)", key=vkey)
        axes.append((knob, values))
    session.seed("extra:sweep:workers", 1)
    workers = int(st.number_input("Worker processes", min_value=1, step=1, key="extra:sweep:workers"))
    request = api.GridRequest(ctx.source, tuple(f"{k}={v}" for k, v in axes), ctx.work.knob_overrides(),
                              ctx.work.settings(), ctx.work.steps(), workers)
    spec = (request.source, request.axes, request.overrides, request.settings, request.sim_steps)
    if st.button("Run sweep", type="primary", key="sweep:run"):
        try:
            if axes[0][0] == axes[1][0]:
                raise UserError(f"X and Y are both {axes[0][0]}; pick two different knobs")
            slot, tick = planview.counter("sweep")
            table = api.grid(request, on_outcome=tick)
            slot.empty()
            st.session_state["sweep:result"] = (spec, table)
        except UserError as exc:
            widgets.error_box(str(exc))
            return
    saved = st.session_state.get("sweep:result")
    if saved and saved[0] == spec:
        show_grid(saved[1], axes[0][0], axes[1][0])


def plan_section(ctx: widgets.Context, total_default: int) -> None:
    st.subheader("Recommended plan (`rlvr-sim plan`)")
    c1, c2, c3, c4 = st.columns(4)
    session.seed("extra:plan:total", total_default)
    auto = st.session_state.get("_total_auto")    # the total last filled in for the user
    if st.session_state["extra:plan:total"] == auto != total_default:
        st.session_state["extra:plan:total"] = total_default   # the working scenario changed: follow it
    st.session_state["_total_auto"] = total_default
    total = int(c1.number_input("GPUs available", min_value=1, step=1, key="extra:plan:total",
                                help="starts at the working scenario's GPUs (follows it until you change it)"))
    deadline = c2.number_input("Deadline (hours)", value=None, min_value=0.0, key="extra:plan:deadline",
                               placeholder="none")
    budget = c3.number_input("Budget ($)", value=None, min_value=0.0, key="extra:plan:budget", placeholder="none")
    limit = c4.number_input("Time limit (s)", value=None, min_value=1.0, key="extra:plan:time_limit",
                            placeholder="none: exact",
                            help="stop the search after this long (plans running then stop at their next "
                                 "simulated step; the asked total always finishes one plan); the answer then "
                                 "says how far its best can be from the optimum (`plan --time-limit`)")
    request = api.PlanRequest(ctx.source, total, ctx.work.knob_overrides(), ctx.work.settings(), ctx.work.steps(),
                              budget_usd=budget, deadline_hours=deadline, time_limit_s=limit)
    if st.button("Recommend a plan", key="sweep:plan:run"):
        try:
            slot, tick = planview.counter("plan search")
            st.session_state["sweep:plan"] = (request, api.plan(request, on_outcome=tick))
            slot.empty()
        except UserError as exc:
            widgets.error_box(str(exc))
            return
    saved = st.session_state.get("sweep:plan")
    if saved and saved[0] == request:
        planview.show_plan(saved[1], "sweep:plan")


def render() -> None:
    st.title(PAGE_TITLE)
    ctx = widgets.working_panel("sweep")
    if ctx is None:
        return
    changes = ctx.work.describe()
    st.caption(f"Base: the working scenario **{ctx.source.label}**"
               + (f" with `{'`, `'.join(changes)}`" if changes else "") + " (change it on Plan).")
    try:
        scenario = state.load(ctx.source, ctx.work.knob_overrides() + ctx.work.settings().overrides(),
                              check_fit=False)
    except UserError as exc:
        widgets.error_box(str(exc), prefix="The working scenario does not load: ")
        return
    grid_section(ctx)
    st.divider()
    plan_section(ctx, int(scenario.total_gpus))


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render, "sweep")
