"""Plotly figures of the app; each takes library outputs and draws them, computing nothing new.

One colour per phase and per pool (`PHASE_COLORS`, `POOL_COLORS`: a pool has its phase's
colour) in every chart of every page; stacked bars list their legend in stack order. Numbers
in tooltips and cells use `fmt.D3` (3 significant digits, never an exponent). Inputs are the
simulator's typed `Summary`, a trace DataFrame in `rlvr_sim.trace` columns, or sweep /
validation tables. Limits: the timeline draws a few steps and at most `max_workers_per_pool`
workers of a pool, and says in its title what it leaves out.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd
import plotly.graph_objects as go

from app_pages import fmt
from rlvr_sim.sim.metrics import Summary

HEIGHT = 320
# Stack order of a step (what happens first is drawn first, leftmost) and the one colour map.
PHASE_ORDER = ("generate", "verify", "verify_after_generate", "switch", "train", "weight_sync")
PHASE_COLORS = {
    "generate": "#1f77b4", "prefill": "#6baed6", "decode": "#1f77b4",
    "verify": "#2ca02c", "verify_after_generate": "#2ca02c",
    "switch": "#7f7f7f", "idle": "#d9d9d9",
    "train": "#ff7f0e", "ref_logprob": "#fdae6b", "old_logprob": "#fd8d3c", "forward_backward": "#ff7f0e",
    "optimizer": "#e6550d", "sft": "#ff7f0e",
    "weight_sync": "#9467bd",
}
POOL_ORDER = ("sampler", "verifier", "trainer")
POOL_COLORS = {"sampler": PHASE_COLORS["generate"], "verifier": PHASE_COLORS["verify"],
               "trainer": PHASE_COLORS["train"], "weight_sync": PHASE_COLORS["weight_sync"],
               "switch": PHASE_COLORS["switch"]}
TRACE_PHASE_ORDER = ("generate", "prefill", "decode", "verify", "switch", "ref_logprob", "old_logprob",
                     "forward_backward", "optimizer", "train", "sft", "weight_sync", "idle")


def phase_color(phase: str) -> str:
    return PHASE_COLORS.get(phase, "#bcbd22")


def _layout(fig: go.Figure, title: str, height: int = HEIGHT, **kw) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(traceorder="normal"), **kw)
    return fig


def _empty(title: str, note: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


def _ordered(names, order) -> list[str]:
    names = list(names)
    return [n for n in order if n in names] + [n for n in names if n not in order]


def phase_bars(summary: Summary) -> go.Figure:
    """Two stacked bars of a mean step: the critical path (what the step waited on; sums to the
    step time) and each phase's busy time (phases overlap, so these need not sum to the step)."""
    path = {k: float(v) for k, v in summary.phase_time_s.items() if v > 0}
    # the busy time of verification that is not hidden under generation is the verify row
    span = {("verify" if k == "verify_after_generate" else k): float(v) for k, v in summary.phase_span_s.items()
            if v > 0}
    if not path and not span:
        return _empty("Where a step's time goes", "no phase times in the summary")
    rows = ["critical path", "busy time"]
    fig = go.Figure()
    for phase in _ordered(set(path) | set(span), PHASE_ORDER):
        x = [path.get(phase, 0.0), span.get(phase, 0.0)]
        fig.add_trace(go.Bar(name=fmt.PHASE_LABELS.get(phase, phase), y=rows, x=x, orientation="h",
                             marker_color=phase_color(phase), legendgroup=phase,
                             hovertemplate=f"{fmt.PHASE_LABELS.get(phase, phase)}: %{{x:{fmt.D3}}} s"
                                           "<extra>%{y}</extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=rows[::-1])
    fig.update_xaxes(title="seconds per step", tickformat=fmt.D3)
    return _layout(fig, "Critical path of a mean step (sums to the step time) vs busy time per phase (overlaps)",
                   height=250, barmode="stack")


def phase_compare(summaries: Mapping[str, Summary]) -> go.Figure:
    """One stacked bar per plan: the critical path of a mean step, by phase."""
    phases = _ordered({k for s in summaries.values() for k, v in s.phase_time_s.items() if v > 0}, PHASE_ORDER)
    if not phases:
        return _empty("Critical path of a mean step", "no phase times in the summaries")
    names = list(summaries)
    fig = go.Figure([go.Bar(name=fmt.PHASE_LABELS.get(p, p), y=names, orientation="h", marker_color=phase_color(p),
                            x=[float(summaries[n].phase_time_s.get(p, 0.0)) for n in names],
                            hovertemplate=f"{fmt.PHASE_LABELS.get(p, p)}: %{{x:{fmt.D3}}} s<extra>%{{y}}</extra>")
                     for p in phases])
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    fig.update_xaxes(title="seconds per step", tickformat=fmt.D3)
    return _layout(fig, "Critical path of a mean step (sums to the step time)", height=140 + 40 * len(names),
                   barmode="stack")


def utilisation_bar(summary: Summary) -> go.Figure:
    """Busy % of each worker pool over the simulated wall time (summary.utilization)."""
    util = summary.utilization
    pools = _ordered(util, POOL_ORDER)
    if not pools:
        return _empty("Busy % per pool", "no utilisation in the summary")
    values = [float(util[p]) * 100 for p in pools]
    fig = go.Figure(go.Bar(x=[fmt.POOL_LABELS.get(p, p) for p in pools], y=values, text=[f"{v:.0f}%" for v in values],
                           textposition="auto", marker_color=[POOL_COLORS.get(p, "#bcbd22") for p in pools],
                           hovertemplate="%{x}: %{y:.0f}% busy<extra></extra>"))
    fig.update_yaxes(range=[0, 100], title="busy %")
    return _layout(fig, "Busy % per pool")


def staleness_hist(summary: Summary) -> go.Figure:
    """Samples per policy-version lag (summary.staleness.hist: lag -> count)."""
    hist = summary.staleness.hist
    if not hist or set(hist) == {"0"}:
        return _empty("Staleness", "every sample was generated by the current policy (lag 0)")
    lags = [int(k) for k in hist]
    counts = [float(v) for v in hist.values()]
    fig = go.Figure(go.Bar(x=lags, y=counts, marker_color=PHASE_COLORS["generate"],
                           hovertemplate="%{y:,} samples %{x} versions behind<extra></extra>"))
    fig.update_xaxes(title="policy versions behind", dtick=1)
    fig.update_yaxes(title="samples", tickformat=fmt.D3)
    return _layout(fig, "Staleness histogram")


def gantt(trace: pd.DataFrame, steps: int = 3, max_workers_per_pool: int = 16) -> go.Figure:
    """Timeline of each worker over the first `steps` steps: one bar per trace row, coloured by
    phase. A pool of more than `max_workers_per_pool` workers is drawn by its first ids, and the
    title says how many of how many workers are shown."""
    if trace is None or trace.empty:
        return _empty("Worker timeline", "the trace is empty")
    first = sorted(trace["step"].unique())[:steps]
    rows = trace[trace["step"].isin(first) & (trace["end_s"] > trace["start_s"])]
    if rows.empty:
        return _empty("Worker timeline", "no events in the first steps")
    sizes = rows.groupby("worker_pool")["worker_id"].nunique().to_dict()
    rows = rows[rows.groupby("worker_pool")["worker_id"].rank(method="dense") <= max_workers_per_pool]
    hidden = [f"{max_workers_per_pool} of {n} {fmt.POOL_LABELS.get(p, p)}" for p, n in sizes.items()
              if n > max_workers_per_pool]
    pool_rank = {p: i for i, p in enumerate(POOL_ORDER)}
    labels = rows.assign(label=rows["worker_pool"] + " " + rows["worker_id"].astype(str),
                         rank=rows["worker_pool"].map(lambda p: pool_rank.get(p, len(POOL_ORDER))))
    order = labels.sort_values(["rank", "worker_id"])["label"].drop_duplicates().tolist()
    # plain arrays: Plotly converts pandas objects slowly (this chart is redrawn on every rerun)
    phase_col = labels["phase"].astype(str).to_numpy()
    label_col = labels["label"].astype(str).to_numpy()
    start, end, step = (labels[c].to_numpy() for c in ("start_s", "end_s", "step"))
    fig = go.Figure()
    for phase in _ordered(pd.unique(phase_col), TRACE_PHASE_ORDER):
        mask = phase_col == phase
        fig.add_trace(go.Bar(name=fmt.PHASE_LABELS.get(str(phase), str(phase).replace("_", " ")),
                             y=label_col[mask].tolist(), x=(end[mask] - start[mask]).tolist(),
                             base=start[mask].tolist(), orientation="h", customdata=step[mask].tolist(),
                             marker_color=phase_color(str(phase)),
                             hovertemplate=f"{phase}, step %{{customdata}}: from %{{base:{fmt.D3}}} s "
                                           f"for %{{x:{fmt.D3}}} s<extra>%{{y}}</extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1], title=None)
    fig.update_xaxes(title="seconds from start", tickformat=fmt.D3)
    height = max(HEIGHT, 18 * len(order) + 140)
    title = f"Worker timeline, steps {first[0]}-{first[-1]}"
    if hidden:
        title += f" (showing {'; '.join(hidden)}: the first ids)"
    return _layout(fig, title, height=height, barmode="overlay")


def trend(points, warmup_steps: int,
          title: str = "Step time of each simulated step (colour: what the step waited on longest)") -> go.Figure:
    """Time of each simulated step, each point coloured by that step's bottleneck (critical-path
    pool); the warm-up steps the summary excludes are shaded. `points`: `api.TrendPoint`s."""
    if not points:
        return _empty("Step time of each simulated step", "no steps")
    fig = go.Figure()
    for pool in _ordered({p.bottleneck for p in points}, (*POOL_ORDER, "weight_sync", "switch")):
        part = [p for p in points if p.bottleneck == pool]
        fig.add_trace(go.Scatter(x=[p.step for p in part], y=[p.step_time_s for p in part], mode="markers",
                                 name=f"bottleneck: {fmt.POOL_LABELS.get(pool, pool)}",
                                 marker=dict(size=9, color=POOL_COLORS.get(pool, "#bcbd22")),
                                 hovertemplate=f"step %{{x}}: %{{y:{fmt.D3}}} s<extra>%{{fullData.name}}</extra>"))
    fig.add_trace(go.Scatter(x=[p.step for p in points], y=[p.step_time_s for p in points], mode="lines",
                             line=dict(color="#bbbbbb", width=1), showlegend=False, hoverinfo="skip"))
    if warmup_steps:
        fig.add_vrect(x0=points[0].step - 0.5, x1=points[0].step + warmup_steps - 0.5, fillcolor="#eeeeee",
                      line_width=0, layer="below", annotation_text="warm-up (excluded)",
                      annotation_position="top left")
    fig.update_xaxes(title="step", dtick=max(1, len(points) // 10))
    fig.update_yaxes(title="seconds", tickformat=fmt.D3, rangemode="tozero")
    return _layout(fig, title, height=260)


def heatmap(table: pd.DataFrame, x: str, y: str, z: str, title: str) -> go.Figure:
    """Grid of `z` over the sweep knobs `x` and `y`; invalid plans are grey cells marked
    "invalid" whose tooltip gives the reason."""
    if table.empty or x not in table or y not in table:
        return _empty(title, f"no {fmt.label(z)} values")
    keyed = table.assign(_x=table[x].astype(str), _y=table[y].astype(str))
    xs = list(dict.fromkeys(keyed.sort_values(x, kind="stable")["_x"]))
    ys = list(dict.fromkeys(keyed.sort_values(y, kind="stable")["_y"]))
    ok = keyed[keyed["status"] == "ok"] if "status" in keyed else keyed
    bad = keyed[keyed["status"] != "ok"] if "status" in keyed else keyed.iloc[0:0]
    values: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for _, row in ok.iterrows():
        if z in row and pd.notna(row[z]):
            values[ys.index(row["_y"])][xs.index(row["_x"])] = float(row[z])
    fig = go.Figure(go.Heatmap(z=values, x=xs, y=ys, colorscale="Viridis", texttemplate=f"%{{z:{fmt.D3}}}",
                               hovertemplate=f"{fmt.label(x)} %{{x}}, {fmt.label(y)} %{{y}}: "
                                             f"%{{z:{fmt.D3}}}<extra></extra>",
                               colorbar=dict(title=fmt.label(z), tickformat=fmt.D3), hoverongaps=False))
    if not bad.empty:
        grey: list[list[float | None]] = [[None] * len(xs) for _ in ys]
        why = [[""] * len(xs) for _ in ys]
        for _, row in bad.iterrows():
            i, j = ys.index(row["_y"]), xs.index(row["_x"])
            grey[i][j] = 0.0
            why[i][j] = " ".join(str(row.get("error") or row["status"]).split())[:160]
        fig.add_trace(go.Heatmap(z=grey, x=xs, y=ys, colorscale=[[0, "#d9d9d9"], [1, "#d9d9d9"]], showscale=False,
                                 text=why, texttemplate="invalid", hoverongaps=False,
                                 hovertemplate="invalid: %{text}<extra></extra>"))
    fig.update_xaxes(title=fmt.label(x), type="category")
    fig.update_yaxes(title=fmt.label(y), type="category")
    return _layout(fig, title)


def pareto(table: pd.DataFrame, x: str, y: str, on_front: pd.Series, label: pd.Series) -> go.Figure:
    """Every plan as a point (x: hours, y: dollars), the frontier drawn as a line."""
    if table.empty or x not in table or y not in table:
        return _empty("Pareto frontier", "no valid plans")
    hover = f"%{{text}}<br>%{{x:{fmt.D3}}} h, $%{{y:,.0f}}<extra></extra>"
    fig = go.Figure(go.Scatter(x=table[x].tolist(), y=table[y].tolist(), mode="markers", name="plans",
                               text=list(label), marker=dict(color="lightgray", size=9), hovertemplate=hover))
    front = table[on_front].sort_values(x)
    fig.add_trace(go.Scatter(x=front[x].tolist(), y=front[y].tolist(), mode="lines+markers", name="Pareto frontier",
                             text=list(label[on_front].reindex(front.index)), marker=dict(size=11, color="#1f77b4"),
                             hovertemplate=hover))
    fig.update_xaxes(title="hours for the run", tickformat=fmt.D3)
    fig.update_yaxes(title="$ for the run", tickformat=",.0f")
    return _layout(fig, "Pareto frontier: hours vs dollars")


def band(name: str, p10: float, p50: float, p90: float, unit: str) -> go.Figure:
    """A p10-p90 band with the median marked (the planner's robustness of a recommendation)."""
    fig = go.Figure(go.Scatter(x=[p10, p90], y=[name, name], mode="lines", line=dict(width=14, color="#c6dbef"),
                               name="p10-p90", hovertemplate=f"%{{x:{fmt.D3}}} {unit}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[p50], y=[name], mode="markers", marker=dict(size=14, color="#1f77b4"),
                             name="median", hovertemplate=f"median %{{x:{fmt.D3}}} {unit}<extra></extra>"))
    fig.update_xaxes(title=unit, tickformat=fmt.D3)
    return _layout(fig, f"{name}: p10-p90 over the robustness scenarios", height=170, showlegend=False)


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
                                 text=part[label] if label in part else None,
                                 marker=dict(size=10, color=PHASE_COLORS.get(str(name), "#000000")),
                                 hovertemplate=f"%{{text}}<br>measured %{{x:{fmt.D3}}} s<br>"
                                               f"simulated %{{y:{fmt.D3}}} s<extra></extra>"))
    fig.update_xaxes(title="measured seconds (executor)", type="log")
    fig.update_yaxes(title="simulated seconds (rlvr-sim + profile)", type="log")
    note = f" ({dropped} rows under 1 µs not drawn)" if dropped else ""
    return _layout(fig, f"Measured vs simulated{note}", height=460)
