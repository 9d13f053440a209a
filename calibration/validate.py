"""Held-out validation: run the executor for real, simulate the same run with a profile, compare.

For each `ValidationConfig` (none of them is a micro-benchmark point; `tiny-7m` is a model size
never benchmarked) this module
1. writes an executor scenario and runs `rlvr-sim execute` in a fresh process (threads pinned);
2. reads the measured per-step phase times (metrics.jsonl) and what the run actually did
   (decode iterations per step from the trace, prompt widths from the task's problem stream);
3. writes the simulator scenario of the same run (`profile:` = the profile under test, the
   verifier latency of the task from the profile's calibration notes) and calls `simulate`;
4. compares step time and the generate / verify / train / weight_sync phases.

Workload mapping (documented limit, not a fit): the HF backend batches statically -- every row
decodes until the longest sample stops and the trainer pads to the longest sequence -- while the
simulator models a continuous-batching engine. The simulated run therefore gets the executed
shape: every sample has the step's padded prompt width and its number of decode iterations.
The first `WARMUP_STEPS` steps of each run are warm-up (allocator growth, lazy kernels, the
verifier workers' first tasks) and are excluded; step and phase times are medians over the
steady steps (the machine's speed drifts by +-10% within minutes, so runs are long enough for
the median to average over it).

Two more parts of the mapping: the HF backend keeps the sampler's and the trainer's model copies
resident, so the simulated colocated switch does not offload (`offload_on_switch: false`); and
its verify phase only waits for the samples whose reward was not back when generation ended
(most that stopped early were scored meanwhile), while in the executed shape every sample ends
on the last iteration, so the simulated per-sample service time is scaled by the ratio of
verifier waves ceil(burst / workers) / ceil(samples / workers), burst = the measured number of
samples per step still unverified at the end of generation (from the trace's per-sample times).

On a shared machine a run whose CPU share over its steady steps (CPU seconds / busy wall
seconds, `calibration.runwatch`) falls below `min_cpu_share` is repeated (up to `attempts`
runs) and the least disturbed run is kept; every config records its share and the load
average, and the report adds a CPU-equivalent view (measured x share).
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from calibration.fit import load_fit_notes
from calibration.report import STEP, Comparison, ValidationReport
from calibration.runwatch import watch_run
from calibration.validation_runs import (ALL_MODELS, HELD_OUT, PHASES, QUICK_HELD_OUT, WARMUP_STEPS,
                                         MeasuredRun, ValidationConfig, combine, executor_scenario)
from executor.tracing import StepMetrics, read_metrics
from rlvr_sim.errors import UserError
from rlvr_sim.trace import GenerateExtra, VerifyExtra, read_trace

# the run definitions, re-exported: callers and tests read them from here
__all__ = ["ALL_MODELS", "HELD_OUT", "PHASES", "QUICK_HELD_OUT", "WARMUP_STEPS", "MeasuredRun",
           "ValidationConfig", "combine", "compare", "cpu_equivalent", "executor_scenario",
           "measure", "run_executor", "sim_scenario", "simulate_run", "validate", "verifier_model"]

def _prompt_widths(cfg: ValidationConfig, spec: dict, steps: int) -> list[int]:
    """Padded prompt width of each step (the task's problem stream is a pure function)."""
    from executor.tasks import make_task, problems
    from rlvr_sim.executor_spec import ExecutorSpec

    task = make_task(ExecutorSpec(**{k: v for k, v in spec.items() if k in ("task",)}))
    n = cfg.prompts_per_step
    return [max(len(p.prompt) for p in problems(task, spec["seed"], s * n, n)) for s in range(steps)]


def run_executor(cfg: ValidationConfig, work_dir: Path, threads: int,
                 timeout_s: float = 900) -> MeasuredRun:
    """Run `rlvr-sim execute` for `cfg` in a fresh process and read back its timings."""
    out = work_dir / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    scen = executor_scenario(cfg, threads, out)
    path = out / "execute.yaml"
    path.write_text(yaml.safe_dump(scen, sort_keys=False))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false")
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "rlvr_sim.cli", "execute", str(path), "--no-progress",
           "--out", str(out)]            # it runs every orchestration (executor.orchestrator)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    watch = watch_run(cmd, env, out / "metrics.jsonl", out / "run.log", timeout_s)
    if watch.returncode != 0:
        raise RuntimeError(f"executor run {cfg.name} failed ({watch.returncode}): "
                           f"{watch.stderr_tail.strip()}")
    if not (out / "metrics.jsonl").exists():
        raise RuntimeError(f"executor run {cfg.name} wrote no {out / 'metrics.jsonl'} (another "
                           "validation using the same --work-dir?); rerun it")
    metrics = read_metrics(out / "metrics.jsonl")
    steady = [m for m in metrics if m.step >= WARMUP_STEPS] or metrics
    trace = read_trace(out / "trace.parquet")
    gen = trace[(trace["phase"] == "generate") & (trace["step"] >= min(m.step for m in steady))]
    iters = [float(x.decode_iterations) for x in map(GenerateExtra.parse, gen["extra"])
             if x.decode_iterations is not None]
    widths = _prompt_widths(cfg, scen["executor"], len(metrics))[-len(steady):]
    if cfg.colocated_sync:   # the main process waits while the pool verifies: not its share
        share = watch.share(1, waiting_s=sum(m.verify_s for m in steady))
    else:
        share = watch.share(cfg.processes, tree=True)
    return MeasuredRun(
        steps=len(steady), step_s=statistics.median(m.step_s for m in steady),
        phase_s=_phase_medians(steady),
        decode_iterations=statistics.fmean(iters) if iters else None,
        prompt_width=statistics.fmean(widths), wall_s=watch.wall_s, loadavg_1m=load,
        cpu_share=share, step_times_s=[m.step_s for m in steady],
        verify_burst=_verify_burst(trace, [m.step for m in steady]) if cfg.colocated_sync else None)


def _phase_medians(steps: list[StepMetrics]) -> dict[str, float]:
    """Median seconds of each of PHASES over the steps."""
    return {p: statistics.median(getattr(m, f"{p}_s") for m in steps) for p in PHASES}


def _verify_burst(trace, steps: list[int]) -> float | None:
    """Mean number of samples per step whose reward arrived after generation ended: what the
    loop's verify phase waits for (None when the trace has no per-sample verify times)."""
    counts = []
    for step in steps:
        gen = trace[(trace["phase"] == "generate") & (trace["step"] == step)]
        ver = trace[(trace["phase"] == "verify") & (trace["step"] == step)]
        ends = [e for x in map(VerifyExtra.parse, ver["extra"]) for e in x.ends_s]
        if gen.empty or not ends:
            return None
        counts.append(sum(e > float(gen["end_s"].iloc[0]) for e in ends))
    return statistics.fmean(counts) if counts else None


def verifier_model(profile_path: Path, task: str, workers: int) -> dict:
    """The task's fitted verifier (scenario `verifier:` fields `latency_s`, `rpc_latency_s`)
    from the profile's notes, at the same pool size when it was measured (else the largest)."""
    notes = load_fit_notes(profile_path)
    lat = notes.get("verifier", {}).get(task)
    if not lat:
        raise UserError(f"profile {profile_path} has no verifier latency for task {task!r}; "
                        "recalibrate with that task in the grid (`rlvr-sim calibrate`)")
    fit = lat.get("scenario_by_workers", {}).get(str(workers), lat["scenario"])
    if "latency_s" not in fit:          # profiles from before the burst fit: service time only
        return {"latency_s": fit, "rpc_latency_s": 0.0}
    return {"latency_s": fit["latency_s"], "rpc_latency_s": fit["rpc_latency_s"]}


def sim_scenario(cfg: ValidationConfig, measured: MeasuredRun, profile_path: Path) -> dict:
    """The simulator's scenario of the executed run (see the module docstring's mapping).

    The HF sampler's prefill forward already emits the first token, the simulator's does not:
    that token moves from the response to the prompt, so decode forwards (iterations - 1),
    KV lengths and trained tokens all match what ran. `block_tokens: 1` makes prefix sharing
    exact, as the sampler's repeated prompt cache is.
    """
    from rlvr_sim.hardware import HardwareProfile

    scen = executor_scenario(cfg, 1, Path("unused"), gpu=HardwareProfile.load(profile_path).gpu)
    scen.pop("executor")
    scen["name"] = f"simulate-{cfg.name}"
    scen["workload"]["prompt_tokens"] = {"dist": "fixed", "value": round(measured.prompt_width + 1, 3)}
    iterations = (measured.decode_iterations if measured.decode_iterations is not None
                  else float(cfg.max_new_tokens))        # listed in MeasuredRun.assumed
    scen["workload"]["response_tokens"] = {
        "dist": "fixed", "value": round(max(iterations - 1, 1), 3)}
    scen["sampler"]["block_tokens"] = 1
    scen["verifier"].update(verifier_model(profile_path, cfg.task, cfg.verifier_workers))
    scen["orchestration"]["offload_on_switch"] = False
    n, w = cfg.prompts_per_step * cfg.samples_per_prompt, cfg.verifier_workers
    if cfg.colocated_sync and measured.verify_burst is not None and 0 < measured.verify_burst < n:
        lat = dict(scen["verifier"]["latency_s"])
        waves = math.ceil(max(measured.verify_burst, 1.0) / w) / math.ceil(n / w)
        lat["mean"], lat["cap"] = lat["mean"] * waves, lat["cap"] * waves
        scen["verifier"]["latency_s"] = lat
    scen["profile"] = str(Path(profile_path).resolve())
    return scen


def simulate_run(cfg: ValidationConfig, measured: MeasuredRun, profile_path: Path,
                 steps: int = 6) -> tuple[float, dict[str, float]]:
    """Simulated mean step time and critical-path phase times of the executed run."""
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim.run import simulate

    scenario = load_scenario(sim_scenario(cfg, measured, profile_path))
    s = simulate(scenario, steps=steps, seed=0).summary
    return s.step_time_s.mean, dict(s.phase_time_s)


def compare(cfg: ValidationConfig, measured: MeasuredRun, sim_step_s: float,
            sim_phase_s: dict[str, float], scale: float = 1.0) -> list[Comparison]:
    """Step and phase comparisons. `scale` multiplies the measured CPU-bound phases (the run's
    CPU share gives the CPU-equivalent view: what the run would have taken with its core);
    verify is waiting on the pool's processes and is never scaled."""
    phase = {p: measured.phase_s[p] * (1.0 if p == "verify" else scale) for p in PHASES}
    if scale == 1.0:
        step = measured.step_s
    elif cfg.colocated_sync:   # the phases tile the step
        step = measured.step_s - sum(measured.phase_s.values()) + sum(phase.values())
    else:                      # overlapping processes: scale the whole step
        step = measured.step_s * scale
    rows = [Comparison(cfg.name, STEP, step, sim_step_s)]
    for p in cfg.quantities():
        rows.append(Comparison(cfg.name, p, phase[p], sim_phase_s.get(p, 0.0)))
    return rows


def cpu_equivalent(cfg: ValidationConfig, measured: MeasuredRun, sim_step_s: float,
                   sim_phase_s: dict[str, float]) -> list[Comparison]:
    """The CPU-equivalent comparison: `cpu_share` is already per process (CPU seconds over
    processes x busy seconds), so it scales the measured times as it is. No rows when the
    share was not measured."""
    if measured.cpu_share is None:
        return []
    return compare(cfg, measured, sim_step_s, sim_phase_s, scale=min(measured.cpu_share, 1.0))


def measure(cfg: ValidationConfig, work_dir: Path, threads: int, attempts: int,
            min_cpu_share: float) -> tuple[MeasuredRun, list[float]]:
    """Run `cfg` until one run had at least `min_cpu_share` of a core (at most `attempts` runs);
    returns the least disturbed run and the shares of all attempts."""
    best: MeasuredRun | None = None
    shares: list[float] = []
    for _ in range(max(attempts, 1)):
        run = run_executor(cfg, work_dir, threads)
        if run.cpu_share is None:    # unmeasured: nothing to compare or to wait for
            return run, shares
        shares.append(run.cpu_share)
        if best is None or run.cpu_share > (best.cpu_share or 0.0):
            best = run
        if run.cpu_share >= min_cpu_share:
            break
    assert best is not None
    return best, shares


def validate(profile_path: str | Path, configs: tuple[ValidationConfig, ...], work_dir: Path,
             threads: int = 1, progress: bool = True, attempts: int = 2,
             min_cpu_share: float = 0.75, passes: int = 2) -> ValidationReport:
    """Run, simulate and compare every config; a config the executor cannot run is recorded
    with its reason instead of failing the whole report.

    The machine's speed drifts by +-10-15% over minutes (measured: the same run 0.67-0.95 s/step
    within half an hour on an idle machine), so every config is run in each of `passes` passes
    over all configs, spreading its runs over the whole validation, and the runs are combined."""
    from tqdm import tqdm

    if passes < 1:
        raise UserError(f"passes={passes}: run every configuration at least once (use >= 1)")
    profile_path = Path(profile_path)
    report = ValidationReport(profile=str(profile_path), rows=[])
    report.cpu_equivalent = ValidationReport(profile=str(profile_path), rows=[])
    runs: dict[str, list[MeasuredRun]] = {c.name: [] for c in configs}
    shares: dict[str, list[float]] = {c.name: [] for c in configs}
    failed: dict[str, str] = {}
    bar = tqdm(total=passes * len(configs), desc="validate", disable=not progress)
    for _ in range(passes):
        for cfg in configs:
            if cfg.name not in failed:
                try:
                    run, sh = measure(cfg, work_dir, threads, attempts, min_cpu_share)
                    runs[cfg.name].append(run)
                    shares[cfg.name].extend(sh)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failed[cfg.name] = str(exc)[-500:]
            bar.update(1)
    bar.close()
    for cfg in configs:
        entry: dict[str, Any] = {"name": cfg.name, "description": cfg.description,
                                 "settings": asdict(cfg)}
        if cfg.name in failed:
            entry["skipped"] = failed[cfg.name]
            report.configs.append(entry)
            continue
        measured = combine(runs[cfg.name])
        sim_step, sim_phase = simulate_run(cfg, measured, profile_path)
        entry.update(measured=asdict(measured), assumed=measured.assumed(cfg),
                     attempt_cpu_shares=shares[cfg.name],
                     runs=[r.step_s for r in runs[cfg.name]],
                     simulated={"step_time_s": sim_step, "phase_time_s": sim_phase})
        report.configs.append(entry)
        report.rows.extend(compare(cfg, measured, sim_step, sim_phase))
        report.cpu_equivalent.rows.extend(cpu_equivalent(cfg, measured, sim_step, sim_phase))
    return report
