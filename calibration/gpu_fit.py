"""Fit a GPU profile from budgeted benchmark rows, in stages, with a held-out check.

Stages (each a robust least squares of `calibration.lsq.fit_positive` over the simulator's own
cost functions, `calibration.predict.predict_s`; later stages hold earlier terms fixed):
1. decode: decode_bw_eff, kv_bw_eff, decode_mfu, decode_overhead_s on CUDA-graph rows (no
   per-layer launch cost: `layer_overhead_s` = 0 for them) and layer_overhead_s from eager rows
   of the same shapes (eager minus graph is launch overhead); decode_overlap when >= 8 rows;
2. prefill: prefill_mfu, prefill_overhead_s (eager, pays layer_overhead_s);
3. training: train_mfu, train_pass_overhead_s from forward+backward and log-prob rows; the
   optimizer step: optimizer_s_per_param (train_overhead_s = 0: a bare fused AdamW step has no
   other fixed work; a framework's per-step extras are not measured here);
4. weight sync: T(buckets) = bytes / rate + buckets x bucket_latency_s, linear in the bucket
   count over 3 bucket sizes (the rate is reported, the cost model's colocated sync reads the
   decode bandwidth).
The MFU-vs-tokens curve MFU(t) = train_mfu x t / (t + half) is fitted as an alternative to the
fixed pass overhead and reported with both errors; for one model the two are nearly the same
function of t (a fixed time per pass = half x FLOPs per token / (peak x MFU)), so the profile keeps
the pass overhead and the sidecar says which fits better.

Held-out check: leave-one-row-out per stage (each row is one shape: refit without it, predict
it); MAPE per phase. Terms no row informs keep the datasheet defaults.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.fit import TERM_BOUNDS, derived_rates
from calibration.harness import BenchKey
from calibration.lsq import ParamSpec, fit_positive
from calibration.predict import predict_s, with_efficiency
from rlvr_sim.hardware import HardwareProfile


@dataclass(frozen=True)
class Measured:
    """One fit row: features, engine (graph rows pay no per-layer launch), seconds."""

    key: BenchKey
    engine: str
    seconds: float
    dtype: str


@dataclass
class StageFit:
    name: str
    terms: list[str]
    values: dict[str, float]
    rel_stderr: dict[str, float]
    rows: int
    mape_in_sample_pct: float
    mape_held_out_pct: float | None
    held_out_rows: int
    at_bound: list[str] = field(default_factory=list)
    residuals: list[dict] = field(default_factory=list)


@dataclass
class GpuFit:
    profile: HardwareProfile
    stages: list[StageFit]
    extras: dict

    def fitted_terms(self) -> list[str]:
        return [t for s in self.stages for t in s.terms]


def _predict(m: Measured, hw: HardwareProfile) -> float:
    if m.engine == "graph" and hw.efficiency.layer_overhead_s:
        hw = with_efficiency(hw, {"layer_overhead_s": 0.0})
    dtype = "fp32" if m.dtype.startswith("fp32") else "bf16"
    return predict_s(m.key, hw, dtype)


def _fit_stage(rows: list[Measured], base: HardwareProfile, terms: list[str],
               fixed: dict[str, float] | None = None):
    fixed = dict(fixed or {})
    specs = [ParamSpec.inside(t, getattr(base.efficiency, t, None) or TERM_BOUNDS[t][0], *TERM_BOUNDS[t][1:])
             for t in terms]
    meas = np.array([r.seconds for r in rows])

    def predict_all(values):
        hw = with_efficiency(base, {**fixed, **values})
        return np.array([_predict(r, hw) for r in rows])

    return fit_positive(specs, predict_all, meas, loss="soft_l1", f_scale=0.1)


def _stage(name: str, rows: list[Measured], base: HardwareProfile, terms: list[str],
           fixed: dict[str, float] | None = None, held_out: bool = True,
           deadline: float = math.inf) -> StageFit | None:
    """Fit one stage; the leave-one-out refits stop at `deadline` (time.monotonic), reporting
    the held-out error over the rows done (`held_out_rows`)."""
    terms = [t for t in terms if len(rows) > len(terms)] if rows else []
    if not rows or not terms:
        return None
    res = _fit_stage(rows, base, terms, fixed)
    hw = with_efficiency(base, {**(fixed or {}), **res.values})
    ape_in = [abs(p / r.seconds - 1) for p, r in zip(res.predicted, rows)]
    ape_out: list[float] = []
    if held_out and len(rows) > len(terms) + 1:
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)    # a cut-short pass still samples every kind of shape
        for i in order:
            if time.monotonic() > deadline:
                break
            rest = rows[:i] + rows[i + 1:]
            r_i = _fit_stage(rest, base, terms, fixed)
            hw_i = with_efficiency(base, {**(fixed or {}), **r_i.values})
            ape_out.append(abs(_predict(rows[i], hw_i) / rows[i].seconds - 1))
    return StageFit(
        name=name, terms=terms, values=res.values, rel_stderr=res.rel_stderr, rows=len(rows),
        mape_in_sample_pct=100 * float(np.mean(ape_in)),
        mape_held_out_pct=100 * float(np.mean(ape_out)) if ape_out else None,
        held_out_rows=len(ape_out), at_bound=res.at_bound,
        residuals=[{"kind": r.key.kind, "engine": r.engine, "sequences": r.key.sequences,
                    "context": r.key.context_tokens_max,
                    "tokens": r.key.prompt_tokens + r.key.output_tokens,
                    "payload_bytes": r.key.payload_bytes,
                    "measured_s": r.seconds, "predicted_s": _predict(r, hw)} for r in rows])


def fit_sync(rows: list["SyncRow"]) -> dict:
    """Weight sync T = transfer_s + buckets x bucket_latency_s, least squares over rows of
    different bucket counts; {} when fewer than 2 bucket counts were measured."""
    pts = [(r.bucket_count, r.seconds) for r in rows if r.bucket_count]
    if len({b for b, _ in pts}) < 2:
        return {}
    n = np.array([b for b, _ in pts], float)
    t = np.array([s for _, s in pts], float)
    (fixed, lat), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(n), n]), t, rcond=None)
    return {"bucket_latency_s": float(lat), "transfer_s": float(fixed)}


@dataclass(frozen=True)
class SyncRow(Measured):
    bucket_count: int = 0
    payload_total_bytes: float = 0.0


def _curve_fit(rows: list[Measured], hw: HardwareProfile) -> dict:
    """Alternative training model: MFU(t) = mfu x t/(t+half), no pass overhead; in-sample and
    leave-one-out MAPE next to the pass-overhead model's."""
    fb = [r for r in rows if r.key.kind in ("train_fb", "logprob")]
    if len(fb) < 4:
        return {}
    flat = with_efficiency(hw, {"train_pass_overhead_s": 0.0, "layer_overhead_s": 0.0,
                                "train_mfu": 1.0})
    base_s = np.array([_predict(r, flat) for r in fb])   # seconds at MFU 1
    tok = np.array([float(r.key.prompt_tokens + r.key.output_tokens) for r in fb])
    meas = np.array([r.seconds for r in fb])

    def fit(idx):
        specs = [ParamSpec("train_mfu", 0.3, 1e-4, 1.0), ParamSpec("half", 1000.0, 1.0, 1e7)]
        return fit_positive(specs, lambda v: base_s[idx] / v["train_mfu"] * (tok[idx] + v["half"])
                            / tok[idx], meas[idx], loss="soft_l1", f_scale=0.1)

    allidx = np.arange(len(fb))
    res = fit(allidx)
    ape_out = []
    for i in range(len(fb)):
        r = fit(np.delete(allidx, i))
        v = r.values
        ape_out.append(abs(base_s[i] / v["train_mfu"] * (tok[i] + v["half"]) / tok[i] / meas[i] - 1))
    return {"train_mfu": res.values["train_mfu"], "train_mfu_half_tokens": res.values["half"],
            "rel_stderr": res.rel_stderr,
            "mape_in_sample_pct": 100 * float(np.mean(np.abs(res.predicted / meas - 1))),
            "mape_held_out_pct": 100 * float(np.mean(ape_out)),
            "note": "alternative to train_pass_overhead_s (not written into the profile)"}


def fit_gpu_profile(rows: list[Measured], base: HardwareProfile, held_out: bool = True,
                    deadline: float = math.inf) -> GpuFit:
    """Staged fit of `base`'s efficiency terms; see the module docstring. Held-out refits of
    each stage get an equal share of the time left before `deadline` (time.monotonic)."""
    n_stages = 4

    def share(i: int) -> float:
        left = deadline - time.monotonic()
        return time.monotonic() + left / max(n_stages - i, 1) if math.isfinite(left) else math.inf
    from rlvr_sim.hardware import Efficiency

    has = Efficiency.model_fields
    values: dict[str, float] = {"decode_overlap": 1.0, "switch_fixed_s": 0.0}
    stages: list[StageFit] = []
    extras: dict = {}
    hw = with_efficiency(base, values)

    dec = [r for r in rows if r.key.kind == "decode"]
    graph = [r for r in dec if r.engine == "graph"]
    eager = [r for r in dec if r.engine == "eager"]
    terms = ["decode_bw_eff", "kv_bw_eff", "decode_mfu", "decode_overhead_s"]
    if len(dec) >= 8:
        terms.append("decode_overlap")
    if graph and eager:
        terms.append("layer_overhead_s")
    terms = [t for t in terms if t in has]
    st = _stage("decode", dec, hw, terms, held_out=held_out, deadline=share(0))
    if st:
        stages.append(st)
        values.update(st.values)
        if not graph:
            extras["decode_note"] = ("no CUDA-graph rows: layer_overhead_s is not separated from "
                                     "decode_overhead_s (both in decode_overhead_s)")
    hw = with_efficiency(base, values)

    pre = [r for r in rows if r.key.kind == "prefill"]
    st = _stage("prefill", pre, hw, [t for t in ("prefill_mfu", "prefill_overhead_s") if t in has],
                held_out=held_out, deadline=share(1))
    if st:
        stages.append(st)
        values.update(st.values)
    hw = with_efficiency(base, values)

    tr = [r for r in rows if r.key.kind in ("train_fb", "logprob")]
    st = _stage("train", tr, hw, ["train_mfu", "train_pass_overhead_s"], held_out=held_out,
                deadline=share(2))
    if st:
        stages.append(st)
        values.update(st.values)
        extras["train_mfu_curve"] = _curve_fit(tr, with_efficiency(base, values))
    hw = with_efficiency(base, values)

    opt = [r for r in rows if r.key.kind == "optimizer"]
    if opt:
        values["train_overhead_s"] = 0.0
        st = _stage("optimizer", opt, with_efficiency(base, values), ["optimizer_s_per_param"],
                    held_out=held_out, deadline=share(3))
        if st:
            stages.append(st)
            values.update(st.values)

    sync = [r for r in rows if isinstance(r, SyncRow)]
    s = fit_sync(sync)
    if s:
        lat = max(s["bucket_latency_s"], 0.0)
        values["bucket_latency_s"] = lat
        total = max(r.payload_total_bytes for r in sync)
        extras["weight_sync"] = {**s, "copy_bytes_per_s": total / s["transfer_s"]
                                 if s["transfer_s"] > 0 else None,
                                 "rows": len(sync), "payload_bytes": total}
    profile = HardwareProfile.model_validate(
        with_efficiency(base, values).model_dump(mode="json"))
    extras["derived"] = derived_rates(profile)
    return GpuFit(profile=profile, stages=stages, extras=extras)


def measured_from_frame(df) -> list[Measured]:
    """Benchmark table (gpu_bench rows) -> fit rows; probes and failed rows are dropped."""
    names = list(BenchKey.__dataclass_fields__)
    out: list[Measured] = []
    for rec in df.to_dict("records"):
        sec = float(rec.get("seconds", math.nan))
        if not (sec > 0) or rec["kind"] in ("peak_gemm", "peak_copy"):
            continue
        fields: dict[str, Any] = {n: (int(rec[n]) if isinstance(
            BenchKey.__dataclass_fields__[n].default, int) else rec[n]) for n in names}
        key = BenchKey(**fields)
        engine, dtype = str(rec.get("engine", "eager")), str(rec.get("dtype", "fp32"))
        if key.kind == "weight_sync":
            bpp = 2.0 if "16" in dtype else 4.0
            out.append(SyncRow(key=key, engine=engine, seconds=sec, dtype=dtype,
                               bucket_count=int(rec.get("value") or 0),
                               payload_total_bytes=key.params * bpp))
        else:
            out.append(Measured(key=key, engine=engine, seconds=sec, dtype=dtype))
    return out
