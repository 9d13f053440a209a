"""`simulate()`: the one entry point sweeps, plans, the app and validation call (docs/contracts.md).

`simulate(scenario)` resolves the cost model and runs `simulate_config`, which any caller with
its own cost model (tests: the hand-computable fake) can use directly.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Protocol

import pandas as pd
import simpy

from rlvr_sim.sim import orchestrator, rounds
from rlvr_sim.sim.config import SimConfig
from rlvr_sim.sim.metrics import Summary, max_warmup, summarize
from rlvr_sim.sim.protocols import CostModelLike, PlannedCostModelLike
from rlvr_sim.sim.recorder import LogEntry, Recorder
from rlvr_sim.sim.sampler import ReplicaEngine
from rlvr_sim.sim.source import PromptSource
from rlvr_sim.sim.steady import Rule, certainly_above, detect
from rlvr_sim.sim.steps import StepLog, StepRecord
from rlvr_sim.sim.verifier import VerifierPool
from rlvr_sim.trace import write_trace

if TYPE_CHECKING:
    from rlvr_sim.hardware import HardwareProfile
    from rlvr_sim.scenario import Scenario


@dataclass
class SimResult:
    summary: Summary
    trace: pd.DataFrame
    steps: list[StepRecord]             # records of the first finished steps (up to StepLog.keep)
    config: SimConfig
    scenario: "Scenario | None" = None
    log: list[LogEntry] | None = None   # with event_log=True: what happened, in order


# Defaults of `simulate()`: coalesce finishes within 1/8 of the running batch and cost spans
# with a 3-point Simpson rule; benchmarks/bench_simulator.py measures their effect against exact.
FAST_COALESCE_FRACTION = 1 / 8
FAST_SPAN_RULE: Literal["simpson3"] = "simpson3"
# While a simulation runs, the cyclic garbage collector's young generation is collected every
# GC_YOUNG_THRESHOLD allocations instead of Python's 700: the simulator allocates short-lived
# tuples per sample and holds a step's records until it closes, so at 700 the collector
# re-scans them many times (~20 % of CPU on bench plan64). Cycles (SimPy events) are still freed.
GC_YOUNG_THRESHOLD = 50_000
# step records kept whole (the warm-up window steady-state detection reads; SimResult.steps)
STEP_RECORDS_KEPT = 256


def config_from_scenario(sc: "Scenario", cm: PlannedCostModelLike, steps: int | None = None,
                         seed: int | None = None, exact: bool = False) -> SimConfig:
    """The simulator's view of a validated scenario (`exact`: no speed approximations).

    Lengths are `workload.response_tokens` (a `response_schedule` is integrated over the run by
    rlvr_sim.schedule.whole_run, which calls this on the workload frozen at each step)."""
    w, s, v, o = sc.workload, sc.sampler, sc.verifier, sc.orchestration
    return SimConfig(
        prompts_per_step=w.prompts_per_step, samples_per_prompt=w.samples_per_prompt,
        steps=steps or w.steps, prompt_tokens=w.prompt_tokens, response_tokens=w.response_tokens,
        sampler_gpus=s.gpus, trainer_gpus=0 if o.inference_only else sc.trainer.gpus, gpus_per_replica=s.tp * s.pp,
        max_concurrent_sequences=s.max_concurrent_sequences, kv_blocks=cm.sampler_plan.kv_blocks,
        block_tokens=s.block_tokens, prefix_caching=s.prefix_caching,
        verifier_workers=v.workers, verifier_latency_s=v.latency_s, verifier_timeout_s=v.timeout_s,
        verifier_rpc_s=v.rpc_latency_s,
        verifier_failure_rate=v.failure_rate, placement=o.placement, mode=o.mode,
        max_staleness=o.max_staleness, partial_rollout=o.partial_rollout,
        staleness_fraction=o.staleness_threshold, weight_update=o.weight_update,
        streaming=sc.trainer.streaming, mini_batches=sc.trainer.mini_batches,
        stream_batches=sc.trainer.stream_batches,
        inference_only=o.inference_only, arrival_qps=o.arrival_qps,
        seed=w.seed if seed is None else seed, workload_steps=w.steps,
        usd_per_gpu_hour=float(sc.hardware_profile.datasheet.usd_per_gpu_hour),
        run_id=sc.name or "sim",
        coalesce_fraction=0.0 if exact else FAST_COALESCE_FRACTION,
        span_rule="cost_model" if exact else FAST_SPAN_RULE,
        rewards=w.reward_spec(0))       # pass rate of step 0; schedules: rlvr_sim.schedule


def simulate(scenario: "Scenario", steps: int | None = None, seed: int | None = None,
             trace_path: str | Path | None = None, progress: bool = False,
             exact: bool = False, *, trace: bool = True, until_steady: Rule | None = None,
             profile: "HardwareProfile | None" = None, stop_above_hours: float | None = None,
             stop_at: float | None = None) -> SimResult:
    """Simulate `steps` RL steps (default: the scenario's) of a validated scenario.

    `exact=True` turns off the speed approximations (a span per finish, spans costed by
    cm.decode_span_s); the default coalesces close finishes (see rlvr_sim.sim.sampler).
    `trace=False` keeps no trace rows (memory flat in steps; `SimResult.trace` is empty).
    `until_steady`: stop as soon as the step time is steady by that rule (rlvr_sim.sim.steady),
    after at most `steps` (default: `until_steady.max_steps`, at most the scenario's) steps.
    `profile` replaces the scenario's hardware profile (the planner's robustness draws).
    `stop_above_hours` (with `until_steady`): also stop as soon as the run certainly takes longer
    than that in all (rlvr_sim.sim.steady.certainly_above; the planner's race against the plan a
    candidate is compared with); the summary then says so (`Summary.stopped_above_hours`: the
    hours it certainly takes longer than, at least `stop_above_hours`).
    `stop_at` (a `time.time()` instant; the planner's hard `--time-limit`): stop at the first step
    end past it; the summary says so (`Summary.stopped_by_clock`) with `stopped_above_hours` the
    level the run is certainly slower than so far (0 when not known yet)."""
    from rlvr_sim.cost import CostModel

    if profile is not None:
        scenario = scenario.model_copy()
        scenario.__dict__["hardware_profile"] = profile      # the cached_property's slot
    cm = CostModel.from_scenario(scenario)
    if until_steady is not None and steps is None:
        steps = min(until_steady.max_steps, scenario.workload.steps)
    cfg = config_from_scenario(scenario, cm, steps, seed, exact=exact)
    result = simulate_config(cfg, cm, trace_path=trace_path, progress=progress,
                             scenario_name=scenario.name or "scenario",
                             trace=trace or trace_path is not None, until_steady=until_steady,
                             stop_above_hours=stop_above_hours, stop_at=stop_at)
    result.scenario = scenario
    return result


class _Steady(Exception):
    """Raised from the orchestrator's step hook to end a run that has reached steady state."""


class ProgressBar(Protocol):
    """What the step hook needs of a progress bar (tqdm's)."""

    def update(self, n: float = 1) -> object: ...
    def close(self) -> object: ...


class _StepWatch:
    """The orchestrators' per-step hook (`progress.update(1)` after a step's end is recorded):
    folds the finished step into the step log, moves the progress bar, and with a rule ends the
    run once the step times are steady, or (with `stop_above_hours`) once the run certainly takes
    longer than that (`stopped_above` set; `_Steady` unwinds the SimPy process), or (with
    `stop_at`) at the first step end once `clock()` is past it (`by_clock` set as well)."""

    def __init__(self, steps: StepLog, bar: ProgressBar | None, rule: Rule | None, min_warmup: int,
                 max_warmup: int | None, total_steps: int = 0, stop_above_hours: float | None = None,
                 stop_at: float | None = None, clock: Callable[[], float] | None = None):
        self.steps, self.bar, self.rule, self.min_warmup = steps, bar, rule, min_warmup
        self.max_warmup = max_warmup
        self.total_steps, self.stop_above_hours = total_steps, stop_above_hours
        self.stop_at, self.clock = stop_at, clock or time.time
        # stopped early: the hours the run certainly takes longer than (None: not stopped)
        self.stopped_above: float | None = None
        self.by_clock = False

    def update(self, n: int = 1) -> None:
        log = self.steps
        for _ in range(n):
            log.finish(log.finished)
        if self.bar is not None:
            self.bar.update(n)
        rule = self.rule
        if rule is not None and log.finished >= self.min_warmup + rule.steady_needed(self.max_warmup):
            if detect(log.times_s, self.min_warmup, rule, self.max_warmup, log.ready_s).reached:
                raise _Steady()
            if self.stop_above_hours is not None and math.isfinite(self.stop_above_hours):
                level = certainly_above(log.times_s, self.total_steps, self.min_warmup, rule,
                                        self.max_warmup, ready_s=log.ready_s)
                if level > self.stop_above_hours:
                    self.stopped_above = level
                    raise _Steady()
        if self.stop_at is not None and log.finished < self.total_steps and self.clock() >= self.stop_at:
            level = -math.inf if rule is None else certainly_above(
                log.times_s, self.total_steps, self.min_warmup, rule, self.max_warmup, ready_s=log.ready_s)
            self.stopped_above, self.by_clock = max(level, 0.0), True
            raise _Steady()


def simulate_config(cfg: SimConfig, cm: CostModelLike, *, trace_path: str | Path | None = None,
                    progress: bool = False, scenario_name: str = "config",
                    event_log: bool = False, trace: bool = True,
                    until_steady: Rule | None = None, stop_above_hours: float | None = None,
                    stop_at: float | None = None) -> SimResult:
    """Run the simulation of `cfg` with cost model `cm` (`event_log`: keep every event, for
    exact-log tests; memory grows with samples). See `simulate` for `trace` and `until_steady`."""
    env = simpy.Environment()
    eta = cfg.staleness_bound
    engines = [ReplicaEngine(r, cm, max_concurrent=cfg.max_concurrent_sequences,
                             kv_blocks=cfg.kv_blocks, block_tokens=cfg.block_tokens,
                             prefix_caching=cfg.prefix_caching, max_staleness=eta,
                             coalesce_fraction=cfg.coalesce_fraction, span_rule=cfg.span_rule,
                             interpolate_finishes=cfg.mode == "sync" and not cfg.inference_only)
               for r in range(cfg.replicas)]
    verifier = VerifierPool(cfg.verifier_workers, cfg.verifier_rpc_s)
    rec = Recorder(cfg.run_id, log=event_log, trace=trace or trace_path is not None)
    steps = StepLog(STEP_RECORDS_KEPT)
    source = PromptSource(cfg)
    bar = _progress_bar(cfg) if progress else None
    watch = _StepWatch(steps, bar, until_steady, cfg.staleness_bound, max_warmup(cfg),
                       cfg.workload_steps or cfg.steps, stop_above_hours, stop_at)
    gc_thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc_thresholds[1:])
    try:
        if cfg.inference_only:
            done = orchestrator.InferenceRun(env, cfg, cm, source, engines, verifier, rec, steps,
                                             watch).start()
        elif cfg.mode == "sync":
            done = env.process(orchestrator.run_sync(env, cfg, cm, source, engines, verifier, rec,
                                                     steps, watch))
        else:
            done = orchestrator.AsyncRun(env, cfg, cm, source, engines, verifier, rec, steps,
                                         watch).start()
        env.run(until=done)
    except _Steady:
        pass
    finally:
        gc.set_threshold(*gc_thresholds)
        if bar is not None:
            bar.close()
    finished = steps.finished
    busy = {"sampler": sum(e.busy_s for e in engines), "verifier": verifier.busy_s}
    # a run stopped once steady (async) has booked work of steps after the last finished one:
    # its pools' busy time is then spread over the span it covers, not the finished steps only
    booked_until = {"sampler": max((e.clock for e in engines), default=0.0),
                    "verifier": max((t for t, _ in getattr(verifier, "_free", [])), default=0.0)}
    counters = {
        "sampler_segments_per_step": sum(e.segments for e in engines) / finished,
        "preemptions": rec.counter_totals.preemptions,
        "interruptions": rec.counter_totals.interruptions,
        "recompute_tokens": rec.counter_totals.recompute_tokens,
        "prefill_s_per_replica_step": sum(e.prefill_s for e in engines) / cfg.replicas / finished,
        "verifier_timeouts": verifier.timeouts, "verifier_failures": verifier.failures,
        **rounds.counters(source.history),          # dynamic sampling (empty without rewards)
    }
    summary = summarize(cfg, steps, scenario=scenario_name, staleness=rec.staleness,
                        busy_s=busy, counters=counters, rule=until_steady or Rule(),
                        booked_until_s=booked_until,
                        stopped_above_hours=watch.stopped_above, stopped_by_clock=watch.by_clock)
    trace_frame = rec.frame()
    if trace_path is not None:
        write_trace(trace_frame, trace_path)
    return SimResult(summary, trace_frame, steps.kept, cfg, log=rec.log)


def _progress_bar(cfg: SimConfig) -> ProgressBar:
    from tqdm import tqdm

    bar: ProgressBar = tqdm(total=cfg.steps, desc="simulate", unit="step", leave=False,
                            disable=None)
    return bar


__all__ = ["SimResult", "simulate", "simulate_config", "config_from_scenario"]
