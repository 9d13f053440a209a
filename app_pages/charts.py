"""Plotly figures of the app; each takes library outputs and draws them, computing nothing new.

Inputs are the simulator's summary as its JSON mapping (`Summary.model_dump(mode="json")`, the
`simulate --json` object), a trace DataFrame in `rlvr_sim.trace` columns, or sweep / validation
tables. Limits: the Gantt chart draws the first few steps only (a long trace has too many bars
for a browser), and a summary field that is absent is drawn as an empty figure with a note.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go

HEIGHT = 320
POOL_ORDER = ("sampler", "verifier", "trainer")


def _layout(fig: go.Figure, title: str, height: int = HEIGHT, **kw: Any) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.2), **kw)
    return fig


def _empty(title: str, note: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


def phase_bar(summary: Mapping[str, Any]) -> go.Figure:
    """Stacked bar: mean seconds per step spent in each phase (summary.phase_time_s)."""
    phases = {k: float(v) for k, v in (summary.get("phase_time_s") or {}).items()
              if isinstance(v, (int, float)) and v > 0}
    if not phases:
        return _empty("Phase time per step", "no phase times in the summary")
    fig = go.Figure([go.Bar(name=name, x=[seconds], y=["step"], orientation="h",
                            hovertemplate=f"{name}: %{{x:.3g}} s<extra></extra>")
                     for name, seconds in phases.items()])
    return _layout(fig, "Phase time per step (s)", height=220, barmode="stack", xaxis_title="seconds")


def phase_compare(summaries: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """One stacked bar per plan: mean seconds per step in each phase (summary.phase_time_s)."""
    phases = list(dict.fromkeys(k for s in summaries.values() for k in (s.get("phase_time_s") or {})))
    if not phases:
        return _empty("Phase time per step", "no phase times in the summaries")
    names = list(summaries)
    fig = go.Figure([go.Bar(name=phase, y=names, orientation="h",
                            x=[float((summaries[n].get("phase_time_s") or {}).get(phase, 0.0)) for n in names],
                            hovertemplate=f"{phase}: %{{x:.3g}} s<extra></extra>") for phase in phases])
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    return _layout(fig, "Phase time per step (s)", height=120 + 40 * len(names), barmode="stack",
                   xaxis_title="seconds")


def utilisation_bar(summary: Mapping[str, Any]) -> go.Figure:
    """Busy fraction of each worker pool (summary.utilization)."""
    util = summary.get("utilization") or {}
    pools = [p for p in POOL_ORDER if p in util] + [p for p in util if p not in POOL_ORDER]
    if not pools:
        return _empty("Utilisation per pool", "no utilisation in the summary")
    values = [float(util[p]) * 100 for p in pools]
    fig = go.Figure(go.Bar(x=pools, y=values, text=[f"{v:.0f}%" for v in values], textposition="auto"))
    fig.update_yaxes(range=[0, 100], title="busy %")
    return _layout(fig, "Utilisation per pool")


def staleness_hist(summary: Mapping[str, Any]) -> go.Figure:
    """Samples per policy-version lag (summary.staleness.hist: list indexed by lag, or lag -> count)."""
    hist = (summary.get("staleness") or {}).get("hist")
    if not hist:
        return _empty("Staleness", "no staleness histogram (synchronous runs have lag 0)")
    if isinstance(hist, Mapping):
        lags = [int(k) for k in hist]
        counts = [float(v) for v in hist.values()]
    else:
        lags, counts = list(range(len(hist))), [float(v) for v in hist]
    fig = go.Figure(go.Bar(x=lags, y=counts))
    fig.update_xaxes(title="policy versions behind", dtick=1)
    fig.update_yaxes(title="samples")
    return _layout(fig, "Staleness histogram")


def gantt(trace: pd.DataFrame, steps: int = 3, max_workers_per_pool: int = 16) -> go.Figure:
    """Timeline of each worker over the first `steps` steps: one bar per trace row, coloured by phase.

    Draws at most `max_workers_per_pool` workers of each pool (the first ids) to stay readable.
    """
    if trace is None or trace.empty:
        return _empty("Worker timeline", "the trace is empty")
    first = sorted(trace["step"].unique())[:steps]
    rows = trace[trace["step"].isin(first) & (trace["end_s"] > trace["start_s"])]
    rows = rows[rows.groupby("worker_pool")["worker_id"].rank(method="dense") <= max_workers_per_pool]
    if rows.empty:
        return _empty("Worker timeline", "no events in the first steps")
    pool_rank = {p: i for i, p in enumerate(POOL_ORDER)}
    labels = rows.assign(label=rows["worker_pool"] + " " + rows["worker_id"].astype(str),
                         rank=rows["worker_pool"].map(lambda p: pool_rank.get(p, len(POOL_ORDER))))
    order = labels.sort_values(["rank", "worker_id"])["label"].drop_duplicates().tolist()
    fig = go.Figure()
    for phase, part in labels.groupby("phase", sort=False):
        fig.add_trace(go.Bar(name=str(phase), y=part["label"], x=part["end_s"] - part["start_s"],
                             base=part["start_s"], orientation="h", customdata=part["step"],
                             hovertemplate=f"{phase} step %{{customdata}}: %{{base:.3g}}s + %{{x:.3g}}s<extra></extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], title=None)
    fig.update_xaxes(title="seconds from start")
    height = max(HEIGHT, 18 * len(order) + 120)
    return _layout(fig, f"Worker timeline (steps {first[0]}-{first[-1]})", height=height, barmode="overlay")


def heatmap(table: pd.DataFrame, x: str, y: str, z: str, title: str) -> go.Figure:
    """Grid of `z` over the two sweep knobs `x` and `y` (blank where a plan is invalid)."""
    if table.empty or z not in table:
        return _empty(title, f"no {z} values")
    grid = table.pivot_table(index=y, columns=x, values=z, aggfunc="first", dropna=False)
    fig = go.Figure(go.Heatmap(z=grid.values, x=[str(c) for c in grid.columns], y=[str(i) for i in grid.index],
                               colorscale="Viridis", texttemplate="%{z:.3g}", colorbar=dict(title=z)))
    fig.update_xaxes(title=x, type="category")
    fig.update_yaxes(title=y, type="category")
    return _layout(fig, title)


def pareto(table: pd.DataFrame, x: str, y: str, on_front: pd.Series, label: pd.Series) -> go.Figure:
    """Every plan as a point (x: hours, y: dollars), the frontier drawn as a line."""
    if table.empty or x not in table or y not in table:
        return _empty("Pareto frontier", "no valid plans")
    fig = go.Figure(go.Scatter(x=table[x], y=table[y], mode="markers", name="plans", text=label,
                               marker=dict(color="lightgray", size=9),
                               hovertemplate="%{text}<br>%{x:.3g} h, $%{y:,.0f}<extra></extra>"))
    front = table[on_front].sort_values(x)
    fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines+markers", name="Pareto frontier",
                             text=label[on_front].reindex(front.index), marker=dict(size=11),
                             hovertemplate="%{text}<br>%{x:.3g} h, $%{y:,.0f}<extra></extra>"))
    fig.update_xaxes(title="hours to finish")
    fig.update_yaxes(title="dollars to finish")
    return _layout(fig, "Pareto frontier: hours vs dollars")


SCATTER_MIN_S = 1e-6   # log axes: times below a microsecond are drawn as "~0 s" in a note, not as points


def measured_vs_simulated(table: pd.DataFrame, group: str = "quantity", label: str = "config") -> go.Figure:
    """Log-log scatter of simulated vs measured seconds (`measured_s`, `simulated_s` columns), one
    colour per `group` value, with the y = x line (perfect prediction). Rows with a time below
    SCATTER_MIN_S (zero on a log axis) are counted in the title instead of squashing the axes."""
    keep = (table["measured_s"] >= SCATTER_MIN_S) & (table["simulated_s"] >= SCATTER_MIN_S) if not table.empty else []
    rows = table[keep] if not table.empty else table
    dropped = len(table) - len(rows)
    if rows.empty:
        return _empty("Measured vs simulated", "no rows with positive times in the validation report")
    lo = float(min(rows["measured_s"].min(), rows["simulated_s"].min())) / 1.5
    hi = float(max(rows["measured_s"].max(), rows["simulated_s"].max())) * 1.5
    fig = go.Figure(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                               line=dict(dash="dash", color="gray")))
    for name, part in rows.groupby(group, sort=False):
        fig.add_trace(go.Scatter(x=part["measured_s"], y=part["simulated_s"], mode="markers", name=str(name),
                                 text=part[label] if label in part else None, marker=dict(size=10),
                                 hovertemplate="%{text}<br>measured %{x:.3g} s<br>simulated %{y:.3g} s<extra></extra>"))
    fig.update_xaxes(title="measured seconds (executor)", type="log")
    fig.update_yaxes(title="simulated seconds (rlvr-sim + profile)", type="log")
    note = f" ({dropped} rows under 1 µs not drawn)" if dropped else ""
    return _layout(fig, f"Measured vs simulated{note}", height=460)
