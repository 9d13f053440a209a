"""Plan page: the working scenario, its main knobs, the simulated KPIs, charts and downloads.

Every widget change re-runs `state.simulate` (the typed `rlvr_sim.api.simulate`) with the moved
knobs as overrides; a plan seen before is answered from the cache. The knobs and run settings
live in the session's working scenario, so they survive a change of page. An invalid knob value
shows its error under that knob, as one short line with the details folded.
"""

from __future__ import annotations

import time

import streamlit as st

from app_pages import charts, fmt, session, state, widgets
from rlvr_sim import api
from rlvr_sim.errors import UserError
from rlvr_sim.sim.metrics import Summary

PAGE_TITLE = "Plan a run"


def run_basis(summary: Summary, result: api.SimulateResult) -> str:
    """What the hours and $ are based on: steps simulated, warm-up, run length, price, profile."""
    steady = summary.steps_simulated - summary.warmup_steps
    warm = f" after {summary.warmup_steps} warm-up step(s), which are excluded" if summary.warmup_steps else ""
    if result.extrapolated:
        how = (f"the mean of {steady} steady-state step(s){warm} (of {summary.steps_simulated} simulated) "
               f"x {summary.workload_steps:,} steps")
    else:
        how = f"all {summary.workload_steps:,} steps simulated"
    return (f"Hours and $ are for a run of **{summary.workload_steps:,} steps**: {how}; at "
            f"**{fmt.usd(summary.cost.usd_per_gpu_hour)} per GPU-hour** x {summary.gpus} GPUs; profile: "
            f"{state.relative(result.profile_source)}.")


POOL_PHASE = {"sampler": "generate", "verifier": "verify", "trainer": "train"}


def bottleneck_text(summary: Summary) -> str:
    """The critical-path bottleneck and every pool's busy %, said together so they never seem to
    disagree: a pool can be the busiest while the step waits on another phase (its work overlaps
    the critical path, as in async or split plans)."""
    path = summary.phase_time_s
    total = sum(path.values()) or 1.0
    parts = []
    if path:
        top = max(path, key=lambda phase: path[phase])
        parts.append(f"The step waits longest on **{fmt.PHASE_LABELS.get(top, top)}** "
                     f"({path[top] / total:.0%} of the critical path).")
    util = summary.utilization
    if util:
        busy = ", ".join(f"{fmt.POOL_LABELS.get(p, p)} {fmt.pct(util[p])}" for p in charts.POOL_ORDER if p in util)
        parts.append(f"Busy: {busy}.")
        busiest = max(util, key=lambda pool: util[pool])
        share = path.get(POOL_PHASE.get(busiest, ""), 0.0) / total
        if util[busiest] >= 0.5 and share < 0.1:
            parts.append(f"The busiest pool ({fmt.POOL_LABELS.get(busiest, busiest)}) is only {share:.0%} of the "
                         "critical path: its work overlaps the phases the step waits on.")
    if summary.mode.startswith("colocated"):
        parts.append("Colocated: samplers and trainer are the same GPUs, so their busy shares add up.")
    return " ".join(parts)


def show_kpis(summary: Summary, result: api.SimulateResult) -> None:
    step = summary.step_time_s
    row1 = st.columns(4)
    row1[0].metric("Step time", fmt.seconds(step.mean),
                   help=f"steady-state mean; median {fmt.seconds(step.p50)}, p95 {fmt.seconds(step.p95)}")
    row1[1].metric("Tokens/s per GPU", fmt.number(summary.tokens_per_s_per_gpu),
                   help="prompt + generated tokens of every sample per second per GPU")
    row1[2].metric("$ per step", fmt.usd(summary.cost.usd_per_step))
    row1[3].metric("Critical-path bottleneck", summary.bottleneck)
    row2 = st.columns(4)
    row2[0].metric("Hours for the run", fmt.hours(summary.hours_total))
    row2[1].metric("$ for the run", fmt.usd(summary.cost.usd_total))
    row2[2].metric("GPU-hours", fmt.number(summary.cost.gpu_hours_total))
    row2[3].metric("GPUs", f"{summary.gpus}", help=f"{summary.mode}; sampler {summary.sampler_gpus}, "
                                                   f"trainer {summary.trainer_gpus}")
    st.markdown(run_basis(summary, result))
    st.markdown(bottleneck_text(summary))


def show_charts(summary: Summary, result: api.SimulateResult, gantt_steps: int) -> None:
    st.plotly_chart(charts.phase_bars(summary), key="plan:chart:phase")
    left, right = st.columns(2)
    left.plotly_chart(charts.utilisation_bar(summary), key="plan:chart:util")
    right.plotly_chart(charts.staleness_hist(summary), key="plan:chart:stale")
    st.plotly_chart(charts.gantt(result.trace, steps=gantt_steps), key="plan:chart:gantt")
    st.plotly_chart(charts.trend(result.trend, summary.warmup_steps), key="plan:chart:trend")
    est = result.run_estimate
    if est is not None:   # the workload changes over the run: step time integrated over its schedule
        st.plotly_chart(charts.trend(est.trend(), 0, "Step time over the whole run (representative steps of "
                                     "the workload schedule; colour: what the step waited on longest)"),
                        key="plan:chart:run_trend")
        st.caption(f"Integrated over the schedule: {fmt.hours(est.hours_total)}, {fmt.usd(est.usd_total)} for "
                   f"{est.steps:,} steps.")
    elif result.extrapolated:
        st.caption(f"Steps {summary.steps_simulated}-{summary.workload_steps - 1} are not simulated: the workload "
                   "has no schedule, so they take the steady-state step time.")


def show_downloads(result: api.SimulateResult, name: str) -> None:
    """Resolved scenario YAML, results JSON, trace Parquet and the Perfetto timeline."""
    widgets.download_row([
        ("Scenario YAML", result.scenario_yaml, f"{name}.resolved.yaml", "application/x-yaml"),
        ("Results JSON", state.summary_json(result.summary), f"{name}.summary.json", "application/json"),
        ("Trace Parquet", lambda: state.trace_parquet_bytes(result.trace), f"{name}.trace.parquet",
         "application/octet-stream"),
        ("Perfetto timeline", lambda: state.perfetto_json_bytes(result.trace), f"{name}.perfetto.json",
         "application/json"),
    ], key="plan:dl")
    st.caption(f"Files are named `{name}.*`.")


def extra_lines(work: session.Working) -> None:
    """Any other field as `dotted.key=value` lines (new schema fields included)."""
    session.seed("extra:lines", "\n".join(work.extra))
    text = st.text_area("More fields (one `dotted.key=value` per line)", key="extra:lines", height=90,
                        placeholder="trainer.mini_batches=8")
    work.extra = tuple(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def render() -> None:
    started = time.perf_counter()
    st.title(PAGE_TITLE)
    ctx = widgets.working_panel("plan")
    if ctx is None:
        return
    with st.sidebar:
        st.subheader("Main knobs")
        edit = widgets.knob_editor(ctx.base)
        extra_lines(ctx.work)
        session.seed("extra:timeline_steps", 3)
        gantt_steps = int(st.number_input("Steps in the timeline", min_value=1, step=1, key="extra:timeline_steps"))
    changes = ctx.work.describe()
    st.caption(f"Scenario: **{ctx.source.label}**" + (f" with `{'`, `'.join(changes)}`" if changes else ""))
    try:
        with st.spinner("Simulating..."):
            result = state.simulate(ctx.work.request())
    except UserError as exc:
        field = widgets.show_field_error(edit, str(exc))
        where = f" — see **{fmt.label(field)}** in the sidebar" if field else ""
        widgets.error_box(str(exc), prefix=f"Invalid scenario{where}: ")
        return
    show_kpis(result.summary, result)
    show_charts(result.summary, result, gantt_steps)
    st.subheader("Downloads")
    show_downloads(result, widgets.download_name(ctx.source.label, changes))
    st.caption(f"Page computed in {time.perf_counter() - started:.2f} s on the server "
               "(a plan simulated before is answered from the cache).")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render, "plan")
