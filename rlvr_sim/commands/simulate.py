"""`rlvr-sim simulate SCENARIO [--steps N] [--seed S] [--set k=v ...] [--json] [--trace PATH]
[--perfetto PATH]`: simulate a scenario's RL steps and say where the time goes.

Human output is a table (step time, critical path per phase, throughput, utilisation, staleness,
cost, sampler MFU and achieved HBM bandwidth); `--json` prints `Summary.model_dump()` plus
`sampler_efficiency` (rlvr_sim.sim.serving.ServingReport) as one JSON object. `--trace` writes the event
trace (.parquet or .csv) and the resolved scenario next to it (`<trace>.scenario.yaml`);
`--perfetto` writes a Chrome/Perfetto timeline (open it at https://ui.perfetto.dev).
The steps simulated use `workload.response_tokens` (and the pass rate of step 0); when the
scenario has a schedule (or with `--whole-run`), the run is also integrated over it
(rlvr_sim.schedule: hours, dollars, step-time trend, where the bottleneck moves; JSON key
`whole_run`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from rlvr_sim.cli_output import check_output_path, strict_json
from rlvr_sim.errors import UserError
from rlvr_sim.input_limits import seed_arg
from rlvr_sim.scenario import Scenario, load_scenario
from rlvr_sim.schedule import RunEstimate
from rlvr_sim.sim.metrics import Summary
from rlvr_sim.sim.run import SimResult, simulate
from rlvr_sim.sim.serving import ServingReport


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--steps", type=int, default=None,
                   help="steps to simulate (default: workload.steps); totals extrapolate to workload.steps")
    p.add_argument("--seed", type=seed_arg, default=None, help="override workload.seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set sampler.tp=2 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--trace", type=Path, default=None, metavar="PATH",
                   help="write the trace (.parquet or .csv) and the resolved scenario next to it")
    p.add_argument("--perfetto", type=Path, default=None, metavar="PATH",
                   help="write a Chrome/Perfetto trace JSON of the timeline")
    # whole-run integration over a workload schedule (rlvr_sim.schedule)
    p.add_argument("--whole-run", action=argparse.BooleanOptionalAction, default=None,
                   help="integrate step time over workload.response_schedule / pass_rate "
                        "(default: on when the scenario has a schedule)")
    p.add_argument("--points", type=int, default=8, help="--whole-run: segments of the run")


MAX_SIMULATED_STEPS = 100_000
TRACE_KEPT_UP_TO_STEPS = 500   # the sampler-efficiency report reads the trace; longer runs keep
                               # none unless asked (--trace), so memory stays flat in steps


def run(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps {args.steps} is invalid: simulate at least 1 step")
    if args.trace is not None:
        check_output_path(args.trace, "--trace")
        if args.trace.suffix not in (".parquet", ".csv"):
            raise UserError(f"--trace {args.trace}: use a .parquet or .csv file name")
    if args.perfetto is not None:
        check_output_path(args.perfetto, "--perfetto", ".json")
    sc = load_scenario(args.scenario, args.overrides)
    steps = args.steps if args.steps is not None else sc.workload.steps
    if steps > MAX_SIMULATED_STEPS:
        where = "--steps" if args.steps is not None else "workload.steps (the default --steps)"
        raise UserError(f"{where} {steps:,}: more than {MAX_SIMULATED_STEPS:,} simulated steps ; "
                        "totals extrapolate to workload.steps, so simulate a few hundred "
                        "(e.g. --steps 500)")
    result = simulate(sc, steps=args.steps, seed=args.seed, trace_path=args.trace,
                      progress=not args.json or sys.stderr.isatty(),
                      trace=args.trace is not None or args.perfetto is not None
                      or sc.orchestration.inference_only or steps <= TRACE_KEPT_UP_TO_STEPS)
    if args.trace is not None:
        args.trace.with_name(args.trace.name + ".scenario.yaml").write_text(sc.resolved_yaml())
    if args.perfetto is not None:
        from rlvr_sim.sim.perfetto import write_perfetto

        write_perfetto(result.trace, args.perfetto)
    estimate = _whole_run(sc, args)
    sampler = _sampler_efficiency(result, sc)
    if args.json and not result.summary.steady_state:
        print(f"warning: not at steady state: {result.summary.steady_note}", file=sys.stderr)
    if args.json:
        out = result.summary.model_dump()
        out["sampler_efficiency"] = asdict(sampler)
        if estimate is not None:
            out["whole_run"] = estimate.model_dump()
        print(strict_json(out, indent=1))
    else:
        print(format_summary(result.summary))
        print(f"efficiencies: {sc.hardware_profile.efficiency_origin} "
              f"[{sc.hardware_profile.gpu}: {sc.hardware_profile.source}]")
        if sampler.sequences:
            print(f"sampler efficiency MFU {sampler.mfu:.1%}, HBM {sampler.hbm_bw_fraction:.0%} "
                  f"of datasheet while decoding ({sampler.achieved_hbm_bytes_per_s / 1e9:,.0f} "
                  f"GB/s per GPU), {sampler.output_tokens_per_s:,.0f} output tokens/s")
        else:
            print(f"sampler efficiency n/a: no trace kept for {steps:,} steps (add --trace FILE)")
        if estimate is not None:
            from rlvr_sim.schedule import format_estimate

            print("\n" + format_estimate(estimate))
        for path in (args.trace, args.perfetto):
            if path is not None:
                print(f"wrote {path}")
    return 0


def _whole_run(sc: Scenario, args: argparse.Namespace) -> RunEstimate | None:
    """RunEstimate over the schedule when asked (or the scenario has one), else None."""
    on = args.whole_run if args.whole_run is not None else sc.workload.has_schedule
    if not on:
        return None
    if args.points < 1:
        raise UserError(f"--points {args.points} is invalid: use >= 1 segments")
    from rlvr_sim.schedule import whole_run

    return whole_run(sc, points=args.points)


def _sampler_efficiency(result: SimResult, sc: Scenario) -> ServingReport:
    """MFU and achieved HBM bandwidth of the sampler pool (rlvr_sim.sim.serving)."""
    from rlvr_sim.cost import CostModel
    from rlvr_sim.sim.serving import serving_report

    return (serving_report(result, CostModel.from_scenario(sc)))


def steady_line(s: Summary) -> str:
    """Steady-state verdict: the warm-up steps cut (pipeline fill), or a warning naming why not."""
    warm = ", ".join(f"{t:.1f}" for t in s.warmup_step_time_s)
    cut = f"warm-up/pipeline-fill steps excluded: {s.warmup_steps}" + (f" ({warm} s)" if warm else "")
    if s.steady_state:
        se = f", mean known to +-{s.steady_rel_stderr:.1%}" if s.steady_rel_stderr is not None else ""
        return f"steady state reached after {s.warmup_steps} step(s); {cut}{se}"
    return (f"WARNING: not at steady state: {s.steady_note}; the step time below may be off "
            f"(simulate more steps with --steps); {cut}")


def format_summary(s: Summary) -> str:
    """A readable table of one simulated run."""
    mean = s.step_time_s.mean
    lines = [
        f"scenario {s.scenario}: {s.mode}, {s.gpus} GPUs (sampler {s.sampler_gpus} in "
        f"{s.sampler_replicas} replicas, trainer {s.trainer_gpus}), {s.verifier_workers} verifier workers",
        f"simulated {s.steps_simulated} steps ({s.warmup_steps} warm-up excluded); "
        f"run of {s.workload_steps} steps",
        steady_line(s),
        "",
        f"step time          mean {mean:9.2f} s   p50 {s.step_time_s.p50:9.2f} s   p95 {s.step_time_s.p95:9.2f} s"
        + (" (steady state)" if s.steady_state else " (NOT steady: see warning above)"),
        "critical path per step (sums to the mean):",
    ]
    for phase, secs in s.phase_time_s.items():
        share = secs / mean if mean else 0.0
        lines.append(f"  {phase:<16} {secs:9.2f} s  {share:6.1%}  {'#' * round(share * 40)}")
    lines += [
        "train breakdown:   " + ", ".join(f"{k} {v:.2f} s" for k, v in s.train_breakdown_s.items() if v),
        f"tokens/step        {s.tokens_per_step:,.0f} ({s.output_tokens_per_step:,.0f} generated)",
        f"throughput         {s.tokens_per_s:,.0f} tokens/s, {s.tokens_per_s_per_gpu:,.0f} tokens/s/GPU "
        f"({s.output_tokens_per_s_per_gpu:,.0f} generated)",
        "utilisation        " + ", ".join(f"{k} {v:.0%}" for k, v in s.utilization.items()),
        "idle per step      " + ", ".join(f"{k} {v:.1f} s" for k, v in s.idle_s.items()),
        f"bottleneck         {s.bottleneck}",
        f"staleness          mean {s.staleness.mean:.2f}, max {s.staleness.max}, "
        f"histogram {s.staleness.hist}",
        f"cost               ${s.cost.usd_per_step:,.2f}/step at ${s.cost.usd_per_gpu_hour:.2f}/GPU-h; "
        f"{s.hours_total:,.1f} h, {s.cost.gpu_hours_total:,.0f} GPU-h, ${s.cost.usd_total:,.0f} "
        f"for {s.workload_steps} steps",
        "counters           " + ", ".join(f"{k} {v:,.4g}" for k, v in s.counters.items()),
    ]
    return "\n".join(lines)
