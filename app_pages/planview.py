"""Views of a `plan` search result shared by the Ask and Sweep pages: the recommendation, its
robustness band (when the planner provides one), the Pareto frontier, and a plan counter.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import charts, fmt
from rlvr_sim import api
from rlvr_sim.sweep.pareto import DOLLARS, HOURS, pareto_front, pareto_mask
from rlvr_sim.sweep.ties import Tie

STEP_TIME = "step_time_s.mean"


def counter(text: str) -> Any:
    """A status line that counts finished plans (no fake fraction)."""
    slot = st.empty()
    seen = [0]

    def tick(_: Any) -> None:
        seen[0] += 1
        slot.caption(f"{text}: {seen[0]} plans simulated so far")

    return slot, tick


def table_view(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Chosen columns with human labels and unit-formatted text."""
    shown = [c for c in columns if c in table]
    return pd.DataFrame({fmt.label(c): [fmt.value(c, v) for v in table[c]] for c in shown})


def show_plan(result: api.PlanResult, key: str) -> None:
    """A recommendation: headline, robustness band when available, reason, Pareto frontier."""
    rec = result.recommendation
    st.success(f"**{rec.label}** — {fmt.hours(rec.hours_total)}, {fmt.usd(rec.usd_total)}")
    show_robustness(result, key)
    st.write(rec.reason)
    tied = rec.ties
    if tied:
        st.caption(f"{len(tied)} plan(s) within the simulation's noise of the recommended one: the "
                   "simulation does not rank these apart")
        st.dataframe(ties_table(tied), key=f"{key}:ties", hide_index=True)
    st.caption(f"{result.evaluated} plans simulated ({result.valid} valid, {result.invalid} invalid, "
               f"{result.errors} errors), {steps_text(result)}.")
    table = result.table
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    st.plotly_chart(charts.pareto(ok, HOURS, DOLLARS, pareto_mask(ok), ok["label"]), key=f"{key}:pareto")
    front = pareto_front(table)
    st.caption(f"Pareto frontier of the {len(table)} plans the search simulated")
    st.dataframe(table_view(front, ["label", HOURS, DOLLARS, STEP_TIME, "bottleneck"]), key=f"{key}:front",
                 hide_index=True)


def ties_table(tied: list[Tie]) -> pd.DataFrame:
    """The recommendation's ties (`rlvr_sim.sweep.ties.Tie`) as a table: plan, hours, dollars and
    the settings each changes."""
    rows = pd.DataFrame({"label": [t.label for t in tied], HOURS: [t.hours_total for t in tied],
                         DOLLARS: [t.usd_total for t in tied]})
    return table_view(rows, ["label", HOURS, DOLLARS]).assign(
        **{"Changes": [", ".join(t.differs_in) for t in tied]})


@dataclass(frozen=True)
class Band:
    """p10 / p50 / p90 of one quantity over the planner's robustness scenarios."""

    name: str
    unit: str
    p10: float
    p50: float
    p90: float


def robustness_bands(rob: Any) -> list[Band]:
    """Hours and dollars bands of a robustness report: fields `hours_p10` ... `usd_p90`, or
    `hours` / `usd` objects with `p10`, `p50`, `p90` (whichever the planner's build provides);
    a quantity with a missing percentile is left out, never drawn as 0."""
    bands = []
    for name, title, unit in (("hours", "Hours", "h"), ("usd", "Dollars", "$")):
        nested = getattr(rob, name, None)
        values = [getattr(rob, f"{name}_p{q}", None) if nested is None else getattr(nested, f"p{q}", None)
                  for q in (10, 50, 90)]
        known = [float(v) for v in values if v is not None]
        if len(known) == len(values):
            bands.append(Band(title, unit, *known))
    return bands


def show_robustness(result: api.PlanResult, key: str) -> None:
    """The planner's robustness of the recommendation as bands (integration point: the planner
    issue's `Recommendation.robustness` with share_best and hours/usd p10/p50/p90)."""
    rob = result.robustness
    if rob is None:
        st.caption("Robustness of this recommendation: not available in this build.")
        return
    share = getattr(rob, "share_best", None)
    if share is not None:
        st.markdown(f"Best plan in **{fmt.pct(share)}** of the robustness scenarios.")
    regret = getattr(rob, "regret_max", None)
    if regret is not None and math.isfinite(regret) and regret > 0:
        near = " (near-equal plans: within the planner's own tolerance)" if getattr(rob, "near_equal", False) else ""
        st.markdown(f"Where another plan is best, this one is at most **{fmt.pct(regret)}** worse{near}.")
    bands = robustness_bands(rob)
    for col, band in zip(st.columns(max(len(bands), 1)), bands):
        col.plotly_chart(charts.band(band.name, band.p10, band.p50, band.p90, band.unit), key=f"{key}:band:{band.unit}")


def steps_text(result: api.PlanResult) -> str:
    """How many steps each plan was simulated: a fixed count, or until steady (with the range)."""
    if result.steps_per_plan is not None:
        return f"{result.steps_per_plan} simulated steps per plan"
    col = result.table.get("steps_simulated") if "steps_simulated" in result.table else None
    ok = [int(v) for v in col.dropna()] if col is not None else []
    span = f", {min(ok)}-{max(ok)} steps" if ok else ""
    return f"each plan simulated until its step time is steady{span}"
