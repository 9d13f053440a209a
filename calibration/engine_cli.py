"""`rlvr-sim calibrate --backend vllm` and `rlvr-sim validate --backend vllm`.

calibrate: runs the held-in engine workloads (calibration.engine_workloads.HELD_IN) through a
real vLLM engine for each `--model` size (calibration.vllm_engine, in the vLLM venv as a
subprocess, with a progress line per workload), or reads recorded runs (`--runs DIR`), and fits
the vLLM-cpu profile's decode terms to their pure-decode engine steps on the engine's CPU clock
(`VLLM_TERMS`: decode_bw_eff, decode_mfu, kv_bw_eff, decode_overhead_s and, with >= 2 model
depths, layer_overhead_s), from the runs that had their core (CPU share >= `--min-cpu-share`:
below ~0.7 even the 1-thread CPU clock of the same workload stretches by ~30 %). Every other term (prefill, trainer, sync) is kept from `--base-profile` (the
HF-backend calibration of the same machine); the fit report says which. Writes PROFILE.yaml
(with its provenance block) and PROFILE.fit.json (per-run conditions, fit diagnostics, the base
profile's verifier latencies, which the GRPO validation reads).

validate: replays every held-out engine run (recorded under calibration/engine_runs/, or run now
with `--run-engine`) through the simulator's own engine with the profile and prints, per run,
generate time, tokens/s, finish-time p50/p90/max, preemptions and peak batch, measured vs
simulated, on the step clock (scheduling dynamics alone) and on a seconds clock (`--clock`,
default cpu), the held-out MAPEs, the workload that misses most; and the full GRPO step with the
vLLM backend (calibration.engine_grpo: a recorded report re-simulated with the profile, or run
now with `--run-grpo`). Writes PROFILE.engine-validation.json (`--json` prints it).

Limits: the vLLM venv (`make venv-vllm`) is needed only to run engines; recorded runs replay
in the main venv. On a shared machine only the CPU clock at threads=1 is a usable timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.engine_grpo import GrpoRow
from calibration.engine_records import EngineRun
from calibration.engine_validate import (COLUMNS, EngineComparison, decode_samples,
                                         fit_decode_terms, mape)
from calibration.engine_workloads import ALL, HELD_IN, HELD_OUT
from rlvr_sim.errors import UserError
from rlvr_sim.hardware import CalibrationInfo, HardwareProfile
from rlvr_sim.model_spec import ModelSpec

ROOT = Path(__file__).resolve().parent.parent
RUNS_ROOT = ROOT / "calibration" / "engine_runs"
# the recorded runs at threads=1 (CPU clock usable): tiny-4m, tiny-13m, tiny-0.5m (held-in and
# held-out), the weight-update runs, the short-context and prefill-only runs; -b: a second
# held-in session
DEFAULT_RUN_DIRS = ("cpu-2core-t1", "cpu-2core-t1-4m-b", "cpu-2core-t1-13m", "cpu-2core-t1-13m-b",
                    "cpu-2core-t1-05m", "cpu-2core-t1-wu", "cpu-2core-t1-short-05m",
                    "cpu-2core-t1-short-4m", "cpu-2core-t1-short-13m", "cpu-2core-t1-prefill-05m",
                    "cpu-2core-t1-prefill-4m", "cpu-2core-t1-prefill-13m")
GRPO_DIR = RUNS_ROOT / "grpo-vllm"      # recorded GRPO reports, one per session (*.json)
DEFAULT_BASE = ROOT / "profiles" / "cpu-2core.yaml"
VLLM_TERMS = ("decode_bw_eff", "decode_mfu", "kv_bw_eff", "decode_overhead_s", "layer_overhead_s")
MIN_CPU_SHARE = 0.7       # below it even the 1-thread CPU clock stretches (~30 %, measured)
QUANTILES = ("finish_p50_s", "finish_p90_s", "finish_max_s")
HELD_IN_NAMES = frozenset(w.name for w in HELD_IN)
_RUN_LINE = re.compile(r"^\S+ r\d+: wall ")


# ------------------------------------------------------------------ the vLLM venv and its runs
def vllm_python(venv: str | None) -> Path:
    """The vLLM venv's interpreter: `--vllm-venv`, else $RLVR_VLLM_VENV, else .venv-vllm at the
    repository root (where `make venv-vllm` puts it)."""
    where = venv or os.environ.get("RLVR_VLLM_VENV") or str(ROOT / ".venv-vllm")
    py = Path(where) / "bin" / "python"
    if not py.exists():
        raise UserError(f"--vllm-venv: {where} has no bin/python (the vLLM venv is missing) ; "
                        "run `make venv-vllm`, or pass --vllm-venv PATH, or use recorded runs "
                        "(--runs DIR)")
    return py


def run_engine(python: Path, workloads: list[str], model: str, threads: int, repeats: int,
               out_dir: Path, progress: bool = True) -> list[Path]:
    """Run `workloads` through vLLM (calibration.vllm_engine in the vLLM venv) into `out_dir`;
    one progress line per engine start and per finished run, vLLM's own log to
    out_dir/engine.log. Returns the run files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(python), "-m", "calibration.vllm_engine", *workloads, "--model", model,
           "--threads", str(threads), "--repeats", str(repeats), "--out", str(out_dir)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    total, done = len(workloads) * repeats, 0
    t0 = time.perf_counter()
    with open(out_dir / "engine.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            finished = _RUN_LINE.match(line) is not None     # "NAME rN: wall ..." (vllm_engine)
            if finished or line.startswith("engine ("):
                done += finished
                if progress:
                    print(f"  [{model} {done}/{total}, {time.perf_counter() - t0:5.0f} s] "
                          f"{line.rstrip()}", file=sys.stderr, flush=True)
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"vLLM engine runs failed (exit {rc}); see {out_dir / 'engine.log'}")
    return sorted(out_dir.glob("*.run.json"))


RECORDED = "recorded"     # `--runs recorded`: every directory of DEFAULT_RUN_DIRS


def run_files(paths: list[str | Path]) -> list[Path]:
    """Run files named directly or found in directories (NAME.rN.run.json[.gz]); the word
    `recorded` stands for the committed threads=1 sets (DEFAULT_RUN_DIRS)."""
    out: list[Path] = []
    expanded: list[str | Path] = []
    for p in paths:
        expanded += [RUNS_ROOT / d for d in DEFAULT_RUN_DIRS] if str(p) == RECORDED else [p]
    for p in map(Path, expanded):
        if p.is_dir():
            found = sorted(p.glob("*.run.json")) + sorted(p.glob("*.run.json.gz"))
            if not found:
                raise UserError(f"--runs {p}: no NAME.rN.run.json(.gz) files there ; pass a "
                                "directory written by calibration.vllm_engine")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"--runs {p}: no such file or directory ; pass run files or a "
                            f"directory of them, e.g. {RUNS_ROOT / DEFAULT_RUN_DIRS[0]}")
    return out


def load_run(path: Path) -> EngineRun:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return EngineRun.from_json(text)


@dataclass(frozen=True)
class SourcedRun:
    """A recorded run and where it came from (directory name), for labels and provenance."""

    source: str
    run: EngineRun

    @property
    def label(self) -> str:
        size = self.run.model.get("name", "?")
        return f"{size}/{self.run.workload.name}.r{self.run.repeat}"


def load_sourced(paths: list[Path]) -> list[SourcedRun]:
    runs = [SourcedRun(p.parent.name, load_run(p)) for p in paths]
    return sorted(runs, key=lambda s: (s.run.model.get("num_hidden_layers", 0),
                                       s.run.workload.name, s.source, s.run.repeat))


# ------------------------------------------------------------------ fit (calibrate)
PREFILL_TERMS = ("prefill_mfu", "prefill_overhead_s")


@dataclass(frozen=True)
class PrefillSample:
    """One engine step of a prefill-only workload: `tokens` prompt tokens of `sequences`
    requests computed from scratch (no prefix caching), each request ending at its first token."""

    model: ModelSpec
    tokens: int
    sequences: int
    duration_s: float


def prefill_only(run: EngineRun) -> bool:
    """A workload whose requests end at their first token, computed without prefix caching."""
    w = run.workload
    return w.cap_tokens == 1 and not w.prefix_caching and w.speculative == "none"


def prefill_samples(runs: list[EngineRun], clock: str = "cpu") -> list[PrefillSample]:
    """The steps of prefill-only runs that completed whole prompts (chunked slices of a prompt
    finished in a later step are not counted: `StepRecord.prefill_tokens` credits the step that
    emits the first token), on the wall or CPU clock."""
    out = []
    for r in runs:
        if not prefill_only(r):
            continue
        m = ModelSpec.from_hf_config_dict(r.model)
        for st in r.steps:
            secs = st.duration_s if clock == "wall" else st.cpu_s
            if st.prefill_tokens > 0 and secs and secs > 0 and st.running > 0 \
                    and st.prefill_tokens == st.running * r.workload.prompt_tokens:
                out.append(PrefillSample(m, st.prefill_tokens, st.running, float(secs)))
    return out


def prefill_model_s(s: PrefillSample, hw: HardwareProfile) -> float:
    """The cost model's prefill seconds of one sample (rlvr_sim.cost.sampler.prefill)."""
    from rlvr_sim.cost.sampler import SamplerShape, prefill

    shape = SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1)
    return prefill(s.model, hw, shape, s.tokens, s.sequences).total_s


def fit_prefill_terms(samples: list[PrefillSample], base: HardwareProfile
                      ) -> tuple[HardwareProfile, dict[str, float], float]:
    """`base` with prefill_mfu and prefill_overhead_s fitted to `samples` (robust least squares
    on log seconds, layer_overhead_s and the bandwidth terms as `base` has them); returns the
    profile, the fitted values and R^2 of log seconds."""
    from scipy.optimize import least_squares

    eff0 = base.efficiency
    y = np.log([s.duration_s for s in samples])

    def profile(x: np.ndarray) -> HardwareProfile:
        vals = {t: float(math.exp(v)) for t, v in zip(PREFILL_TERMS, x)}
        return base.model_copy(update={"efficiency": eff0.model_copy(update=vals)})

    def resid(x: np.ndarray) -> np.ndarray:
        hw = profile(x)
        return np.log([prefill_model_s(s, hw) for s in samples]) - y

    x0 = np.array([math.log(getattr(eff0, t)) for t in PREFILL_TERMS])
    sol = least_squares(resid, x0, loss="soft_l1", f_scale=0.1,
                        bounds=(np.full(2, math.log(1e-6)), np.zeros(2)))
    r = resid(sol.x)
    r2 = 1.0 - float(np.sum(r ** 2) / np.sum((y - y.mean()) ** 2))
    return profile(sol.x), {t: float(math.exp(v)) for t, v in zip(PREFILL_TERMS, sol.x)}, r2


@dataclass(frozen=True)
class EngineFit:
    """The decode terms fitted to the held-in engine steps, and how well they fit."""

    profile: HardwareProfile
    terms: tuple[str, ...]
    values: dict[str, float]
    before: dict[str, float]
    at_bound: tuple[str, ...]
    steps: int
    r2_log: float
    median_abs_log_error: float
    runs: tuple[str, ...]
    prefill_steps: int = 0           # prefill-only engine steps behind PREFILL_TERMS (0: kept)
    prefill_r2_log: float = math.nan


def fit_engine_profile(held_in: list[SourcedRun], base: HardwareProfile,
                       clock: str = "cpu") -> EngineFit:
    """`base` with the vLLM decode terms refitted on the pure-decode steps of `held_in` (robust
    least squares on log step time, engine_validate.fit_decode_terms). layer_overhead_s is only
    fitted when the runs cover >= 2 model depths (else it cannot be told from
    decode_overhead_s)."""
    depths = {s.run.model.get("num_hidden_layers") for s in held_in}
    terms = VLLM_TERMS if len(depths) >= 2 else tuple(t for t in VLLM_TERMS
                                                       if t != "layer_overhead_s")
    runs = [s.run for s in held_in]
    try:
        hw, diag = fit_decode_terms(runs, base, terms=terms, clock=clock)
    except ValueError as exc:
        raise UserError(f"--runs: {exc} ; record the held-in workloads "
                        f"({', '.join(sorted(HELD_IN_NAMES))}) first") from exc
    meas, pred = decode_fit_points(runs, hw, clock)
    y, yhat = np.log(meas), np.log(pred)
    r2 = 1.0 - float(np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2))
    values = dict(diag["values"])
    before = dict(diag["before"])
    pre = prefill_samples(runs, clock)
    pre_r2 = math.nan
    if len(pre) >= 4:                    # prefill terms on top of the decode fit
        hw, pre_values, pre_r2 = fit_prefill_terms(pre, hw)
        values.update(pre_values)
        before.update({t: getattr(base.efficiency, t) for t in PREFILL_TERMS})
        terms = terms + PREFILL_TERMS
    at_bound = tuple(t for t in terms if values[t] >= 0.999999 or values[t] <= 1.0000001e-6)
    first = held_in[0].run
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    note = (f"calibrated {today} {base.gpu} {first.engine} threads={first.threads}: "
            f"{', '.join(terms)} on {diag['steps']} pure-decode"
            + (f" and {len(pre)} prefill-only" if len(pre) >= 4 else "")
            + f" engine steps of {len(held_in)} held-in runs ({clock} clock); other terms: "
            f"{base.source}")
    hw = hw.model_copy(update={"source": note})
    return EngineFit(profile=hw, terms=terms, values=values, before=before,
                     at_bound=at_bound, steps=int(diag["steps"]), r2_log=r2,
                     median_abs_log_error=float(diag["median_abs_log_error"]),
                     runs=tuple(f"{s.source}/{s.label}" for s in held_in),
                     prefill_steps=len(pre), prefill_r2_log=pre_r2)


def decode_fit_points(runs: list[EngineRun], hw: HardwareProfile,
                      clock: str) -> tuple[np.ndarray, np.ndarray]:
    """Measured and modelled seconds of every pure-decode step of `runs`."""
    from rlvr_sim.cost.sampler import DecodeCoeffs, SamplerShape, iteration_s
    from rlvr_sim.model_spec import ModelSpec

    shape = SamplerShape(tp=1, pp=1, weight_dtype="fp32", kv_dtype="fp32", gpus_per_node=1)
    meas, pred = [], []
    for r in runs:
        coeffs = DecodeCoeffs.build(ModelSpec.from_hf_config_dict(r.model), hw, shape)
        for d in decode_samples(r, clock):
            if d.duration_s and d.duration_s > 0:
                meas.append(d.duration_s)
                pred.append(iteration_s(coeffs, d.running, d.context_sum, d.context_max))
    return np.asarray(meas), np.asarray(pred)


def write_engine_profile(fit: EngineFit, out: Path, base_path: Path, runs: list[SourcedRun],
                         clock: str, left_out: list[str] | None = None) -> tuple[Path, Path]:
    """PROFILE.yaml (HardwareProfile with a calibration block) and PROFILE.fit.json."""
    from calibration.fit import finite, load_fit_notes

    first = runs[0].run
    engine = first.engine
    vllm_version = engine.split()[-1] if engine.startswith("vllm") else None
    info = CalibrationInfo(
        device=f"cpu ({engine})", date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        torch_version=(fit.profile.calibration.torch_version if fit.profile.calibration else ""),
        vllm_version=vllm_version, threads=first.threads, rows=fit.steps,
        r2={"decode_engine_log": fit.r2_log,
            **({"prefill_engine_log": fit.prefill_r2_log} if fit.prefill_steps else {})},
        verifier_latency_s=(fit.profile.calibration.verifier_latency_s
                            if fit.profile.calibration else {}),
        notes=f"decode terms {', '.join(fit.terms)} fitted on {fit.steps} pure-decode vLLM "
              f"engine steps ({clock} clock, threads={first.threads}); other terms from "
              f"{base_path.name}; details in {out.stem}.fit.json")
    prof = fit.profile.model_copy(update={"calibration": info})
    out.parent.mkdir(parents=True, exist_ok=True)
    prof.save(out)
    out.write_text(f"# Hardware profile written by `rlvr-sim calibrate --backend vllm`.\n"
                   f"# Fit diagnostics and provenance: {out.stem}.fit.json\n" + out.read_text())
    base_notes = load_fit_notes(base_path)
    side = out.with_name(out.stem + ".fit.json")
    payload = {
        "source": prof.source, "backend": "vllm", "engine": engine, "clock": clock,
        "base_profile": base_path.name,
        "fit": {"terms": list(fit.terms), "values": fit.values, "before": fit.before,
                "at_bound": list(fit.at_bound), "steps": fit.steps, "r2_log": fit.r2_log,
                "median_abs_log_error": fit.median_abs_log_error,
                "prefill_steps": fit.prefill_steps, "prefill_r2_log": fit.prefill_r2_log},
        "kept_from_base": sorted(set(type(prof.efficiency).model_fields) - set(fit.terms)),
        "runs": [{"run": f"{s.source}/{s.label}", "model": s.run.model.get("name"),
                  "threads": s.run.threads, "load_avg": s.run.load_avg_before,
                  "cpu_share": s.run.cpu_share, "wall_s": s.run.wall_s,
                  "steps": len(s.run.steps)} for s in runs],
        "runs_left_out": left_out or [],
        # the GRPO validation's simulated verifier reads these (calibration.validate)
        "verifier": base_notes.get("verifier", {}),
        "provenance": {**base_notes.get("provenance", {}), "vllm_version": vllm_version,
                       "threads": first.threads},
    }
    side.write_text(json.dumps(finite(payload), indent=1) + "\n")
    return out, side


def calibrate(args: argparse.Namespace) -> int:
    """`rlvr-sim calibrate --backend vllm`."""
    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        raise UserError(f"--out {args.out!r} must end in .yaml (the profile file) ; e.g. "
                        "profiles/vllm-cpu.yaml")
    base_path = Path(args.base_profile) if args.base_profile else DEFAULT_BASE
    base = HardwareProfile.load(base_path)
    if args.threads < 1:
        raise UserError(f"--threads={args.threads}: give at least 1")
    if args.runs:
        paths = run_files(args.runs)
    else:
        python = vllm_python(args.vllm_venv)
        models = [m.strip() for m in (args.model or "tiny-0.5m,tiny-4m,tiny-13m").split(",") if m.strip()]
        from calibration.models import BENCH_MODELS, VALIDATION_ONLY

        bad = [m for m in models if m not in {**BENCH_MODELS, **VALIDATION_ONLY}]
        if bad:
            raise UserError(f"--model {bad[0]!r} is not a tiny model ; use a comma-separated list "
                            f"of {', '.join(BENCH_MODELS)}")
        paths = []
        runs_dir = out.with_name(out.stem + ".engine_runs")
        for m in models:
            paths += run_engine(python, sorted(HELD_IN_NAMES), m, args.threads,
                                args.repeats or 2, runs_dir / m, progress=not args.no_progress)
    runs = load_sourced(paths)
    candidates = [s for s in runs if s.run.workload.name in HELD_IN_NAMES]
    if not candidates:
        raise UserError(f"--runs: none of the runs is a held-in workload "
                        f"({', '.join(sorted(HELD_IN_NAMES))}) ; the fit uses only those")
    held_in = [s for s in candidates if not s.run.cpu_share < args.min_cpu_share]
    if not held_in:
        raise UserError(f"--min-cpu-share {args.min_cpu_share}: every held-in run had less "
                        f"(best {max(s.run.cpu_share for s in candidates):.2f}) ; rerun the "
                        "engine on a quieter machine or lower --min-cpu-share")
    left_out = [f"{s.source}/{s.label} (cpu share {s.run.cpu_share:.2f})" for s in candidates
                if s not in held_in]
    fit = fit_engine_profile(held_in, base, clock=args.clock if args.clock != "step" else "cpu")
    path, side = write_engine_profile(fit, out, base_path, held_in, args.clock, left_out)
    if args.json:
        print(side.read_text())
        return 0
    models = sorted({s.run.model.get("name", "?") for s in held_in})
    print(f"profile {path} (vLLM engine fit on {fit.steps} pure-decode steps of {len(held_in)} "
          f"held-in runs, models {', '.join(models)}, {args.clock} clock)")
    for t in fit.terms:
        print(f"  {t:<20}{fit.values[t]:11.4g}   (base {fit.before[t]:.4g})"
              + ("  (at bound: not identified by these runs)" if t in fit.at_bound else ""))
    print(f"  R^2 (log step time) {fit.r2_log:.3f}; median |log error| "
          f"{fit.median_abs_log_error:.3f}"
          + (f"; prefill: {fit.prefill_steps} steps, R^2 (log) {fit.prefill_r2_log:.3f}"
             if fit.prefill_steps else "; prefill terms kept (no prefill-only runs)"))
    if left_out:
        print(f"  left out (CPU share < {args.min_cpu_share}): {', '.join(left_out)}")
    print(f"  fit report: {side}")
    return 0


# ------------------------------------------------------------------ validate
@dataclass(frozen=True)
class EngineRow:
    """One recorded run compared on one clock."""

    source: str
    label: str
    held_in: bool
    comparison: EngineComparison
    speculative: bool = False
    cpu_share: float = math.nan       # the vLLM run's CPU share (EngineRun.cpu_share)


@dataclass
class EngineValidation:
    """The engine validation on one seconds clock and on the step clock."""

    profile: str
    clock: str
    rows: list[EngineRow]
    step_rows: list[EngineRow]
    grpo: list[GrpoRow] = field(default_factory=list)
    grpo_note: str = ""

    def held_out(self, step: bool = False, speculative: bool = True,
                 min_cpu_share: float = 0.0) -> list[EngineComparison]:
        """Held-out comparisons (`speculative` False: without the spec-decode workloads;
        `min_cpu_share`: only runs that had at least that share of their core)."""
        return [r.comparison for r in (self.step_rows if step else self.rows)
                if not r.held_in and (speculative or not r.speculative)
                and not r.cpu_share < min_cpu_share]

    def mapes(self, step: bool = False, speculative: bool = True,
              min_cpu_share: float = 0.0) -> dict[str, float]:
        rows = self.held_out(step, speculative, min_cpu_share)
        return {c: mape(rows, c) for c in COLUMNS[:5]}

    def by_workload(self, step: bool = False) -> dict[str, dict[str, float]]:
        """Per held-out workload, the median signed error (%) of each quantity over its runs."""
        groups: dict[str, list[EngineComparison]] = {}
        for r in (self.step_rows if step else self.rows):
            if not r.held_in:
                key = f"{r.label.split('/')[0]}/{r.comparison.workload}"
                groups.setdefault(key, []).append(r.comparison)
        out: dict[str, dict[str, float]] = {}
        for key, rows in groups.items():
            out[key] = {}
            for c in COLUMNS:
                errs = [e for e in (x.error(c) for x in rows) if not math.isnan(e)]
                out[key][c] = 100.0 * statistics.median(errs) if errs else math.nan
        return out

    def worst(self, step: bool = False) -> tuple[str, float]:
        """The held-out workload whose generate time misses most (median |error| %)."""
        bw = self.by_workload(step)
        name = max(bw, key=lambda k: abs(bw[k]["generate_s"]) if not math.isnan(
            bw[k]["generate_s"]) else -1.0)
        return name, bw[name]["generate_s"]

    def grpo_mape(self, quantity: str) -> float:
        rows = [r for r in self.grpo if r.quantity == quantity]
        return statistics.fmean(abs(r.error_pct) for r in rows) if rows else math.nan

    def to_dict(self) -> dict:
        def rows(rs: list[EngineRow]) -> list[dict]:
            return [{"source": r.source, "run": r.label, "held_in": r.held_in,
                     "speculative": r.speculative, "cpu_share": r.cpu_share,
                     "load_avg": r.comparison.load_avg,
                     "measured": asdict(r.comparison.measured),
                     "simulated": asdict(r.comparison.simulated),
                     "error_pct": {c: 100.0 * r.comparison.error(c) for c in COLUMNS}}
                    for r in rs]
        worst = self.worst() if self.rows else ("", math.nan)
        worst_step = self.worst(step=True) if self.step_rows else ("", math.nan)
        return {
            "profile": self.profile, "clock": self.clock,
            "held_out_runs": len(self.held_out()),
            "held_out_workloads": len(self.by_workload()),
            "held_out_runs_without_speculative": len(self.held_out(speculative=False)),
            "mape_pct": self.mapes(), "mape_pct_step_clock": self.mapes(step=True),
            "mape_pct_without_speculative": self.mapes(speculative=False),
            "held_out_runs_without_speculative_cpu_share_0.7": len(
                self.held_out(speculative=False, min_cpu_share=MIN_CPU_SHARE)),
            "mape_pct_without_speculative_cpu_share_0.7": self.mapes(
                speculative=False, min_cpu_share=MIN_CPU_SHARE),
            "mape_pct_step_clock_without_speculative": self.mapes(step=True, speculative=False),
            "by_workload_pct": self.by_workload(),
            "by_workload_pct_step_clock": self.by_workload(step=True),
            "worst": {"workload": worst[0], "generate_error_pct": worst[1]},
            "worst_step_clock": {"workload": worst_step[0], "generate_error_pct": worst_step[1]},
            "rows": rows(self.rows), "step_clock_rows": rows(self.step_rows),
            "grpo": {"note": self.grpo_note,
                     "rows": [dict(asdict(r), error_pct=r.error_pct) for r in self.grpo],
                     "mape_step_time_pct": self.grpo_mape("step_time")},
        }


def engine_validation(runs: list[SourcedRun], profile_path: Path, clock: str = "cpu",
                      grpo_reports: dict[str, dict] | None = None) -> EngineValidation:
    """Every run compared on `clock` and on the step clock; held-in runs are flagged (their
    steps fitted the profile's decode terms), the rest are held out."""
    from calibration.engine_update import compare_any

    hw = HardwareProfile.load(profile_path)

    def rows_on(c: str) -> list[EngineRow]:
        return [EngineRow(s.source, s.label, s.run.workload.name in HELD_IN_NAMES,
                          compare_any(s.run, hw, s.run.workload.name in HELD_IN_NAMES, c),
                          s.run.workload.speculative != "none", s.run.cpu_share)
                for s in runs]

    val = EngineValidation(profile=str(profile_path), clock=clock, rows=rows_on(clock),
                           step_rows=rows_on("step"))
    if grpo_reports:
        from calibration.engine_grpo import resimulate

        # wall clock only: the runs' CPU share (CPU s / (processes x busy wall s)) counts a
        # sampler waiting for weights and a trainer waiting for a batch as lost to contention,
        # so the CPU-equivalent view (measured x share) would shrink real waits
        notes = []
        for session, report in grpo_reports.items():
            val.grpo += resimulate(report, profile_path, session)
            loads = ", ".join(f"{c['name']} load {c['measured'].get('loadavg_1m', float('nan')):.1f}"
                              for c in report.get("configs", []) if "measured" in c)
            notes.append(f"{session}: {report.get('engine', 'vllm')}, threads "
                         f"{report.get('threads')}, {loads}")
        val.grpo_note = "wall clock; " + "; ".join(notes)
    return val


def short_source(source: str) -> str:
    """A run directory's short name for tables (cpu-2core-t1-wu -> t1-wu)."""
    return source.removeprefix("cpu-2core-")


def text_report(val: EngineValidation) -> str:
    """The tables `validate --backend vllm` prints."""
    out = []
    for step in (True, False):
        rows = val.step_rows if step else val.rows
        name = "step clock (engine steps; scheduling dynamics alone)" if step else \
            f"{val.clock} clock (seconds)"
        out.append(f"== {name}")
        head = (f"{'run':<26}{'set':<16}{'split':<9}"
                + "".join(f"{c.replace('_s', ''):>26}" for c in COLUMNS))
        out.append(head)
        out.append(f"{'':<51}" + "".join(f"{'vLLM / sim / err%':>26}" for _ in COLUMNS))
        for r in rows:
            cells = []
            for c in COLUMNS:
                m, s, e = (getattr(r.comparison.measured, c), getattr(r.comparison.simulated, c),
                           r.comparison.error(c))
                err = "  n/a" if math.isnan(e) else f"{100 * e:+5.0f}"
                cells.append(f"{m:>8.3g} /{s:>8.3g} /{err:>5}")
            out.append(f"{r.label:<26}{short_source(r.source):<16}"
                       f"{'held-in' if r.held_in else 'held-out':<9}"
                       + "".join(f"{x:>26}" for x in cells))
        views = [(True, 0.0, ""), (False, 0.0, " without speculative decoding")]
        if not step:
            views.append((False, MIN_CPU_SHARE, f" without speculative decoding, CPU share >= "
                                                f"{MIN_CPU_SHARE}"))
        for spec, share, what in views:
            m = val.mapes(step, speculative=spec, min_cpu_share=share)
            n = len(val.held_out(step, speculative=spec, min_cpu_share=share))
            out.append(f"held-out MAPE % over {n} runs{what}: "
                       + ", ".join(f"{k.replace('_s', '')} {v:.1f}" for k, v in m.items()))
        w, e = val.worst(step)
        out.append(f"misses most (generate, median over repeats): {w} {e:+.1f} %\n")
    if val.grpo:
        out.append("== full GRPO step, vLLM sampler backend (s per step: measured / sim / err%)")
        for g in val.grpo:
            out.append(f"{g.session:<10}{g.config:<28}{g.quantity:<12}{g.measured_s:>8.3f} /"
                       f"{g.simulated_s:>8.3f} / {g.error_pct:+6.1f}")
        out.append(f"step-time MAPE % {val.grpo_mape('step_time'):.1f}; {val.grpo_note}")
    return "\n".join(out)


def validate(args: argparse.Namespace) -> int:
    """`rlvr-sim validate --backend vllm`."""
    from calibration.fit import finite

    profile = Path(args.profile)
    HardwareProfile.load(profile)              # clean error for a missing / invalid profile
    clock = args.clock
    stem = Path(args.report) if args.report else profile.with_suffix("")
    work = Path(args.work_dir) if args.work_dir else Path(f"{stem}.engine_runs")
    if args.run_engine:
        python = vllm_python(args.vllm_venv)
        names = args.only or [w.name for w in HELD_OUT]
        bad = [n for n in names if n not in ALL]
        if bad:
            raise UserError(f"--only {bad[0]!r} is not an engine workload ; use one of "
                            f"{', '.join(ALL)}")
        models = [m.strip() for m in (args.model or "tiny-4m").split(",") if m.strip()]
        paths = []
        for m in models:
            paths += run_engine(python, names, m, args.threads or 1, args.repeats,
                                work / m, progress=not args.no_progress and not args.json)
    else:
        paths = run_files(args.runs or [RUNS_ROOT / d for d in DEFAULT_RUN_DIRS])
    runs = load_sourced(paths)
    if args.only and not args.run_engine:
        runs = [s for s in runs if s.run.workload.name in args.only]
        if not runs:
            raise UserError(f"--only {args.only[0]!r}: no such run among the recorded ones ; use "
                            f"one of {', '.join(ALL)}")
    grpo: dict[str, dict] = {}
    if args.run_grpo:
        python = vllm_python(args.vllm_venv)
        grpo_path = Path(f"{stem}.grpo-vllm.json")
        cmd = [str(python), "-m", "calibration.engine_grpo", "--profile", str(profile),
               "--out", str(grpo_path), "--threads", str(args.threads or 1)]
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if not args.json and not args.no_progress:
            print("running the vLLM-backend GRPO configs (minutes)...", file=sys.stderr)
        rc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if rc.returncode != 0:
            raise RuntimeError(f"vLLM GRPO runs failed: {rc.stderr[-2000:]}")
        grpo = {"now": json.loads(grpo_path.read_text())}
    elif not args.no_grpo:
        grpo = {p.stem: json.loads(p.read_text()) for p in sorted(GRPO_DIR.glob("*.json"))}
    val = engine_validation(runs, profile, clock, grpo)
    data = finite(val.to_dict())
    path = Path(f"{stem}.engine-validation.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(f"profile {profile}: {HardwareProfile.load(profile).source}")
        print(text_report(val))
        print(f"report: {path}")
    return 0
