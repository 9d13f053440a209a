"""Sweep page: a grid over two knobs (heatmaps, Pareto frontier) and the `rlvr-sim plan` recommendation.

The grid is `rlvr_sim.sweep` itself: `grid_plans` builds the plans, `make_jobs` + a pool from
`open_pool` simulate them (the page only watches the outcomes arrive to move its progress bar),
`outcomes_frame` makes the table and `pareto_mask` marks the frontier. The recommendation is the
`plan` command's own search (`build_space`, `search`, `recommend`), with the command's defaults
read from its argument parser. Results are kept in the session until the inputs change.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import streamlit as st

from app_pages import charts, state, widgets

PAGE_TITLE = "Sweep and plan"
STEP_TIME = "step_time_s.mean"
COST = "cost.usd_total"
# Knobs offered as sweep axes (any other dotted field can be typed in).
AXIS_CHOICES = tuple(k.field for k in widgets.KNOBS if k.kind in ("int", "float", "choice") and k.field != "model")
DEFAULT_AXES = ("sampler.tp", "verifier.workers")


def default_values(base: dict[str, Any], key: str) -> str:
    """Starting axis values: the scenario's value, half and double it (ints), else the value alone."""
    value = widgets.get_path(base, key)
    if isinstance(value, bool) or not isinstance(value, int):
        return "" if value is None else widgets.value_text(value)
    return ",".join(str(v) for v in sorted({v for v in (value // 2, value, value * 2) if v >= 1}))


class ProgressPool:
    """A sweep pool that reports each finished plan to a callback (the page's progress bar)."""

    def __init__(self, inner: Any, on_outcome: Any):
        self.inner, self.on_outcome, self.workers = inner, on_outcome, inner.workers

    def run(self, jobs: list[Any]) -> Iterator[Any]:
        for outcome in self.inner.run(jobs):
            self.on_outcome(outcome)
            yield outcome

    def close(self) -> None:
        self.inner.close()


def run_grid(source: state.ScenarioSource, axes: list[str], steps: int | None, workers: int) -> pd.DataFrame:
    """Simulate the cross product of `axes` (`key=v1,v2` strings) with a progress bar."""
    grid = state.require("rlvr_sim.sweep.grid", "Sweeps (rlvr_sim/sweep/)")
    jobs_mod = state.require("rlvr_sim.sweep.jobs", "Sweeps (rlvr_sim/sweep/)")
    pools = state.require("rlvr_sim.sweep.pools", "Sweeps (rlvr_sim/sweep/)")
    store = state.require("rlvr_sim.sweep.store", "Sweeps (rlvr_sim/sweep/)")
    plans = grid.grid_plans(axes)
    jobs = jobs_mod.make_jobs(source.base(), plans, steps, None)
    bar = st.progress(0.0, text=f"0 / {len(jobs)} plans")
    rows: list[dict[str, Any]] = []

    def tick(outcome: Any) -> None:
        rows.append(outcome.row())
        bar.progress(len(rows) / len(jobs), text=f"{len(rows)} / {len(jobs)} plans")

    pool = ProgressPool(pools.open_pool(workers), tick)
    try:
        for _ in pool.run(jobs):
            pass
    finally:
        pool.close()
    bar.empty()
    return store.outcomes_frame(rows)


def show_grid(table: pd.DataFrame, x: str, y: str) -> None:
    pareto = state.require("rlvr_sim.sweep.pareto", "Sweeps (rlvr_sim/sweep/)")
    ok = table[table["status"] == "ok"] if "status" in table else table
    st.caption(f"{len(table)} plans: {len(ok)} valid, {len(table) - len(ok)} invalid or failed.")
    left, right = st.columns(2)
    left.plotly_chart(charts.heatmap(ok, x, y, STEP_TIME, "Step time (s)"), key="sweep:heat:step")
    right.plotly_chart(charts.heatmap(ok, x, y, COST, "Cost to finish ($)"), key="sweep:heat:cost")
    mask = pareto.pareto_mask(ok)
    labels = ok[x].astype(str).radd(f"{x}=") + ", " + ok[y].astype(str).radd(f"{y}=")
    st.plotly_chart(charts.pareto(ok, pareto.HOURS, pareto.DOLLARS, mask, labels), key="sweep:pareto")
    shown = [c for c in ("plan_index", x, y, "status", STEP_TIME, pareto.HOURS, pareto.DOLLARS, "bottleneck", "error")
             if c in table]
    st.dataframe(table[shown], key="sweep:table")


def grid_section(source: state.ScenarioSource, base: dict[str, Any]) -> None:
    errors = state.require("rlvr_sim.errors", "the error types")
    st.subheader("Grid over two knobs")
    axes = []
    for name, default, col in zip(("X", "Y"), DEFAULT_AXES, st.columns(2)):
        with col:
            knob = st.selectbox(f"{name} knob", AXIS_CHOICES, index=AXIS_CHOICES.index(default),
                                key=f"sweep:{source.label}:{name}:knob")
            values = st.text_input(f"{name} values (comma-separated)", value=default_values(base, knob),
                                   key=f"sweep:{source.label}:{name}:{knob}:values")
        axes.append((knob, values))
    c1, c2 = st.columns(2)
    steps = c1.number_input("Steps per plan", value=state.quick_steps(), min_value=1, step=1, key="sweep:steps",
                            placeholder="all the scenario's steps")
    workers = int(c2.number_input("Workers (processes)", value=1, min_value=1, step=1, key="sweep:workers"))
    spec = (source.label, source.text, tuple(axes), steps)
    if st.button("Run sweep", type="primary", key="sweep:run"):
        try:
            if axes[0][0] == axes[1][0]:
                raise errors.UserError(f"X and Y are both {axes[0][0]}; pick two different knobs")
            table = run_grid(source, [f"{k}={v}" for k, v in axes], None if steps is None else int(steps), workers)
            st.session_state["sweep:result"] = (spec, table)
        except errors.UserError as exc:
            st.error(str(exc), icon="⚠️")
            return
    saved = st.session_state.get("sweep:result")
    if saved and saved[0] == spec:
        show_grid(saved[1], axes[0][0], axes[1][0])


def plan_args(path: str, total_gpus: int, steps: int | None, workers: int) -> argparse.Namespace:
    """The `rlvr-sim plan` arguments, defaults taken from the command's own parser."""
    command = state.require("rlvr_sim.commands.plan", "The planner (rlvr_sim/commands/plan.py)")
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    argv = [path, "--total-gpus", str(total_gpus), "--workers", str(workers)]
    return parser.parse_args(argv + (["--steps", str(steps)] if steps else []))


def run_plan(source: state.ScenarioSource, total_gpus: int, steps: int | None, workers: int) -> tuple[Any, pd.DataFrame]:
    """`rlvr-sim plan` search + recommendation; returns (Recommendation, every simulated plan)."""
    command = state.require("rlvr_sim.commands.plan", "The planner (rlvr_sim/commands/plan.py)")
    planner = state.require("rlvr_sim.sweep.planner", "The planner (rlvr_sim/sweep/planner.py)")
    recommend = state.require("rlvr_sim.sweep.recommend", "The planner (rlvr_sim/sweep/recommend.py)")
    pools = state.require("rlvr_sim.sweep.pools", "Sweeps (rlvr_sim/sweep/)")
    with tempfile.TemporaryDirectory() as tmp:
        path = source.path or str(Path(tmp) / source.label)
        if source.path is None:
            Path(path).write_text(source.text)
        args = plan_args(path, total_gpus, steps, workers)
        space, base = command.build_space(args)
        bar = st.progress(0.0, text="0 plans simulated")
        seen = [0]

        def tick(_: Any) -> None:
            seen[0] += 1
            bar.progress(min(seen[0] / (seen[0] + 8), 0.99), text=f"{seen[0]} plans simulated")

        pool = ProgressPool(pools.open_pool(args.workers), tick)
        try:
            ev = planner.Evaluator(path, pool, args.steps, args.seed)
            result = planner.search(space, base, ev)
            rec = recommend.recommend(result, ev, recommend.Constraints(args.budget_usd, args.deadline_hours))
        finally:
            pool.close()
        bar.empty()
    return rec, result.table


def plan_section(source: state.ScenarioSource, total_default: int) -> None:
    errors = state.require("rlvr_sim.errors", "the error types")
    st.subheader("Recommended plan (`rlvr-sim plan`)")
    c1, c2 = st.columns(2)
    total = int(c1.number_input("GPUs available", value=total_default, min_value=1, step=1, key="sweep:plan:total"))
    steps = c2.number_input("Steps per plan (search)", value=None, min_value=1, step=1, key="sweep:plan:steps",
                            placeholder="the plan command's default")
    spec = (source.label, source.text, total, steps)
    if st.button("Recommend a plan", key="sweep:plan:run"):
        try:
            st.session_state["sweep:plan"] = (spec, *run_plan(source, total, None if steps is None else int(steps), 1))
        except errors.UserError as exc:
            st.error(str(exc), icon="⚠️")
            return
    saved = st.session_state.get("sweep:plan")
    if saved and saved[0] == spec:
        rec, table = saved[1], saved[2]
        st.success(f"**{rec.label}** — {rec.hours_total:.2f} h, ${rec.usd_total:,.0f}")
        st.write(rec.reason)
        pareto = state.require("rlvr_sim.sweep.pareto", "Sweeps (rlvr_sim/sweep/)")
        ok = table[table["status"] == "ok"].reset_index(drop=True)
        st.plotly_chart(charts.pareto(ok, pareto.HOURS, pareto.DOLLARS, pareto.pareto_mask(ok), ok["label"]),
                        key="sweep:plan:pareto")
        front = pareto.pareto_front(table)
        st.caption(f"Pareto frontier of the {len(table)} plans the search simulated")
        st.dataframe(front[[c for c in ("label", pareto.HOURS, pareto.DOLLARS, STEP_TIME, "bottleneck")
                            if c in front]], key="sweep:plan:front")


def render() -> None:
    st.title(PAGE_TITLE)
    errors = state.require("rlvr_sim.errors", "the error types")
    source = widgets.scenario_picker("sweep")
    if source is None:
        return
    try:
        scenario = state.load(source)
    except errors.UserError as exc:
        st.error(f"{source.label} does not load: {exc}", icon="⚠️")
        return
    grid_section(source, state.resolved_dict(scenario))
    st.divider()
    plan_section(source, int(scenario.total_gpus))


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render)
