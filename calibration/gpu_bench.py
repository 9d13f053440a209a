"""Budgeted micro-benchmarks of a real model shape (GPU lease; the same code runs on CPU).

Most informative first, each point with warm-up, device-synchronised timing (CUDA events on
GPU) and the median of repeats on random (non-zero) data:
1. peak probes: bf16 GEMM n^3 FLOP/s and device copy bandwidth (not fitted: a ceiling check);
2. decode iterations of the decode model over batch x context on an HF `StaticCache` filled with
   random K/V (attention reads the whole cache, so KV tokens = batch x context), CUDA-graph
   captured AND eager: graph time gives decode_bw_eff / kv_bw_eff / decode_mfu, eager minus
   graph is the per-layer launch overhead (a graph that fails to capture leaves eager rows);
3. prefill of the decode model vs tokens (`logits_to_keep=1`, as serving engines do);
4. weight sync: the decode model's weights packed into buckets of 3 sizes and unpacked into a
   receiver buffer (a colocated, IPC-like copy): a per-bucket latency and a copy rate;
5. training of the train model (fp32 master weights, bf16 autocast on GPU): forward+backward vs
   tokens per micro-batch, the fused AdamW step, and the no-grad log-prob forward.

This module plans the points (`GpuPlan`), estimates what each costs and orders them
(`build_points`); the timed measurements themselves are `calibration.gpu_measure`.
Rows carry `calibration.harness.BenchKey` features, so `calibration.predict.predict_s` maps each
onto the simulator's own cost functions; `calibration.gpu_fit` fits them.

Limits: HF eager/static-cache decode, not vLLM's paged kernels (the graph rows are the closest
stand-in); one sequence length per training point; no multi-GPU terms (link, collectives).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from calibration.budget import Point
from calibration.gpu_measure import (BuiltModel, GpuRow, Trainer, bench_copy, bench_decode,
                                     bench_gemm, bench_prefill, bench_sync, bench_train,
                                     build_model, free_cuda, resolve_model_config)
from rlvr_sim.cost.params import kv_bytes_per_token, param_counts
from rlvr_sim.model_spec import ModelSpec

# re-exported: the measurements themselves live in calibration.gpu_measure
__all__ = ["CPU_PLAN", "CUDA_PLAN", "DECODE_PRIORITY", "BuiltModel", "GpuPlan", "GpuRow", "Session",
           "bench_decode", "build_estimate_s", "build_model", "build_points", "estimate_decode_s"]


@dataclass(frozen=True)
class GpuPlan:
    """The grid of one budgeted calibration (CUDA_PLAN on a GPU, CPU_PLAN for the CPU check)."""

    decode_model: str
    train_model: str
    dtype: str                                  # weights/activations of decode, prefill, sync
    decode_batches: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    prefill_shapes: tuple[tuple[int, int], ...]  # (sequences, tokens per sequence)
    train_tokens: tuple[int, ...]               # tokens per micro-batch
    train_seq_len: int
    sync_bucket_bytes: tuple[int, ...]
    gemm_n: int
    copy_bytes: int
    repeats: int
    kv_cap_bytes: float                         # skip decode points whose cache exceeds this
    flop_per_s_guess: float                     # conservative rates for the cost estimates
    bytes_per_s_guess: float
    launch_s_guess: float                       # per eager kernel launch (estimates only)
    decode_model_2: str = ""                    # a second decode shape: with one model the
    decode_points_2: tuple[tuple[int, int], ...] = ()  # weight read and fixed cost are confounded
    train_model_2: str = ""                     # a second, wider training model (run last):
    train_tokens_2: tuple[int, ...] = ()        # separates MFU(t) from a fixed pass overhead
    extra_decode_points: tuple[tuple[int, int], ...] = ()  # last: denser decode grid of the
                                                # decode model (rebuilt) when budget is left


CUDA_PLAN = GpuPlan(
    decode_model="qwen2.5-7b", train_model="qwen2.5-1.5b", dtype="bf16",
    decode_batches=(1, 8, 32, 128, 256), decode_contexts=(512, 2048, 8192),
    prefill_shapes=((1, 512), (1, 2048), (1, 8192), (1, 16384), (8, 1024), (4, 4096), (32, 256)),
    train_tokens=(1024, 2048, 4096, 8192, 16384, 32768), train_seq_len=2048,
    sync_bucket_bytes=(1 << 30, 128 << 20, 16 << 20), gemm_n=8192, copy_bytes=4 << 30,
    repeats=7, kv_cap_bytes=64e9, flop_per_s_guess=2.5e14, bytes_per_s_guess=1.5e12,
    launch_s_guess=3e-5, decode_model_2="qwen2.5-1.5b",
    decode_points_2=((1, 2048), (32, 2048), (256, 512), (8, 8192), (128, 2048)),
    train_model_2="qwen3-4b", train_tokens_2=(1024, 2048, 4096),
    extra_decode_points=((16, 1024), (64, 4096), (192, 1024), (4, 4096), (64, 1024),
                         (16, 4096), (192, 2048), (2, 1024)))

CPU_PLAN = GpuPlan(
    decode_model="tiny-qwen2-4m", train_model="tiny-qwen2-4m", dtype="fp32",
    decode_batches=(1, 4, 16), decode_contexts=(64, 256),
    prefill_shapes=((1, 32), (1, 128), (4, 64)),
    train_tokens=(64, 256), train_seq_len=64,
    sync_bucket_bytes=(4 << 20, 1 << 20, 256 << 10), gemm_n=256, copy_bytes=16 << 20,
    repeats=3, kv_cap_bytes=2e9, flop_per_s_guess=5e9, bytes_per_s_guess=2e9,
    launch_s_guess=2e-5, extra_decode_points=((8, 128),))

# the 8 decode points measured first (corners and middle), then the rest in grid order
DECODE_PRIORITY = ((1, 2048), (256, 2048), (32, 8192), (128, 512), (8, 512), (1, 8192),
                   (128, 8192), (32, 2048))



# --------------------------------------------------------------------------------------------
# the plan: points in priority order with cost estimates

@dataclass
class Session:
    """Mutable state the points share (built models, the trainer)."""

    device: str
    plan: GpuPlan
    decode: BuiltModel | None = None
    decode2: BuiltModel | None = None
    graph_failed: str = ""          # first CUDA-graph capture error: later points run eager only
    train: Trainer | None = None
    notes: dict = field(default_factory=dict)


def _decode(s: Session, bm: BuiltModel | None, batch: int, context: int,
            deadline: float) -> list[GpuRow]:
    """A decode point; after one failed CUDA-graph capture the rest run eager only."""
    if bm is None:
        raise RuntimeError("decode model not built")
    graph = s.device.startswith("cuda") and not s.graph_failed
    rows = bench_decode(bm, batch, context, s.plan.dtype, s.device, s.plan.repeats, deadline,
                        try_graph=graph)
    for r in rows:
        if r.note.startswith("graph capture failed") and not s.graph_failed:
            s.graph_failed = r.note
            s.notes["graph_capture_error"] = r.note
    return rows


def _built(bm: BuiltModel | None) -> BuiltModel:
    if bm is None:
        raise RuntimeError("decode model not built")
    return bm


def _decode_point(s: Session, batch: int, context: int,
                  second: bool = False) -> Callable[[float], list[GpuRow]]:
    """A decode point's run: reads the session's model when it runs (a build point sets it)."""
    def run(deadline: float) -> list[GpuRow]:
        return _decode(s, s.decode2 if second else s.decode, batch, context, deadline)
    return run


def _prefill_point(s: Session, sequences: int, tokens_each: int) -> Callable[[float], list[GpuRow]]:
    def run(deadline: float) -> list[GpuRow]:
        return bench_prefill(_built(s.decode), sequences, tokens_each, s.plan.dtype, s.device,
                             s.plan.repeats, deadline)
    return run


def _sync_point(s: Session, bucket_bytes: int) -> Callable[[float], list[GpuRow]]:
    def run(deadline: float) -> list[GpuRow]:
        return bench_sync(_built(s.decode), bucket_bytes, s.device, s.plan.repeats, deadline)
    return run


def _spec(source: str) -> ModelSpec:
    name, cfg, _ = resolve_model_config(source)
    return ModelSpec.from_hf_config_dict(cfg, name=name)


def estimate_decode_s(m: ModelSpec, plan: GpuPlan, batch: int, context: int, graph: bool) -> float:
    """Conservative seconds of one decode point: warm-ups + capture + repeats x inner calls."""
    b = 2.0 if plan.dtype in ("bf16", "fp16") else 4.0
    counts = param_counts(m)
    it = (counts.total * b + batch * context * kv_bytes_per_token(m, plan.dtype)) \
        / plan.bytes_per_s_guess + 2.0 * counts.active * batch / plan.flop_per_s_guess
    eager = it + 12 * m.num_hidden_layers * plan.launch_s_guess
    calls = (2 + plan.repeats * 3) * eager + (5 + 3 + plan.repeats * 10) * it * graph
    setup = batch * context * kv_bytes_per_token(m, plan.dtype) / plan.bytes_per_s_guess
    return calls + setup + 0.5


def _estimate_train_s(m: ModelSpec, plan: GpuPlan, tokens: int) -> float:
    counts = param_counts(m)
    fwd = 2.0 * counts.active * tokens / plan.flop_per_s_guess
    opt = 16.0 * 3 * counts.total / plan.bytes_per_s_guess
    return (plan.repeats + 1) * (3 * fwd + fwd + opt) + 1.0


def build_estimate_s(spec: ModelSpec, plan: GpuPlan, bytes_per_param: float, passes: int = 3) -> float:
    """Planned seconds to build a model: a fixed start, `passes` passes over its weights at the
    plan's conservative copy rate, and random initialisation at ~2e9 parameters/s."""
    params = param_counts(spec).total
    return 10.0 + passes * params * bytes_per_param / plan.bytes_per_s_guess + params / 2e9


def build_points(s: Session, clock: Callable[[], float] = time.monotonic) -> list[Point]:
    """Every point of the plan in priority order (nothing runs here)."""
    plan, dev = s.plan, s.device
    dm = _spec(plan.decode_model)
    cuda = dev.startswith("cuda")
    pts: list[Point] = []
    bytes_per_param = 2.0 if plan.dtype != "fp32" else 4.0
    wbytes = param_counts(dm).total * bytes_per_param
    pts.append(Point("peak_gemm", "probe", 3.0,
                     lambda dl: bench_gemm(plan.gemm_n, plan.dtype, dev, plan.repeats, dl)))
    pts.append(Point("peak_copy", "probe", 3.0,
                     lambda dl: bench_copy(plan.copy_bytes, dev, plan.repeats, dl)))

    def build_decode(dl):
        t0 = time.monotonic()
        s.decode = build_model(plan.decode_model, dev, plan.dtype)
        s.notes["decode_model_build_s"] = time.monotonic() - t0
        return []
    pts.append(Point(f"build {plan.decode_model}", "build",
                     build_estimate_s(dm, plan, bytes_per_param),
                     build_decode, provides="decode"))
    kvb = kv_bytes_per_token(dm, plan.dtype)
    grid = [(b, c) for b in plan.decode_batches for c in plan.decode_contexts
            if b * c * kvb <= plan.kv_cap_bytes]
    ordered = [p for p in DECODE_PRIORITY if p in grid] + \
        [p for p in grid if p not in DECODE_PRIORITY]
    for b, c in ordered:
        pts.append(Point(f"decode b={b} ctx={c}", "decode",
                         estimate_decode_s(dm, plan, b, c, cuda), _decode_point(s, b, c),
                         requires="decode"))
    if plan.decode_model_2 and plan.decode_points_2:
        dm2 = _spec(plan.decode_model_2)

        def build_decode2(dl):
            s.decode2 = build_model(plan.decode_model_2, dev, plan.dtype)
            return []
        pts.append(Point(f"build {plan.decode_model_2}", "build",
                         build_estimate_s(dm2, plan, bytes_per_param),
                         build_decode2, provides="decode2"))
        for b, c in plan.decode_points_2:
            pts.append(Point(f"decode2 b={b} ctx={c}", "decode",
                             estimate_decode_s(dm2, plan, b, c, cuda),
                             _decode_point(s, b, c, second=True), requires="decode2"))
    for seqs, each in plan.prefill_shapes:
        est = (plan.repeats + 1) * (2.0 * param_counts(dm).active * seqs * each
                                    / plan.flop_per_s_guess + wbytes / plan.bytes_per_s_guess) + 0.3
        pts.append(Point(f"prefill {seqs}x{each}", "prefill", est,
                         _prefill_point(s, seqs, each), requires="decode"))
    for bb in plan.sync_bucket_bytes:
        est = (plan.repeats + 1) * (4 * wbytes / plan.bytes_per_s_guess
                                    + wbytes / bb * 20 * plan.launch_s_guess) + 0.5 \
            + 2 * 400 * plan.launch_s_guess * (plan.repeats + 1)
        pts.append(Point(f"weight_sync bucket={bb >> 10}KiB", "sync", est,
                         _sync_point(s, bb), requires="decode"))

    for tag, source, tokens in (("train", plan.train_model, plan.train_tokens),
                                ("train2", plan.train_model_2, plan.train_tokens_2)):
        if not source or not tokens:
            continue
        tm = _spec(source)

        def build_train(dl, source=source, tag=tag):
            s.decode = s.decode2 = None
            s.train = None
            free_cuda()
            t0 = time.monotonic()
            bm = build_model(source, dev, "fp32")
            s.train = Trainer(bm, dev)
            s.notes[f"{tag}_model_build_s"] = time.monotonic() - t0
            return []
        pts.append(Point(f"build {source} + AdamW", "build",
                         build_estimate_s(tm, plan, 4.0, passes=4),
                         build_train, provides=tag))
        for t in tokens:
            def run_train(dl, t=t):
                try:
                    return bench_train(s.train, t, plan.train_seq_len, dev, plan.repeats, dl)
                finally:
                    if s.train is not None:
                        s.train.opt.zero_grad(set_to_none=False)
                    if cuda:
                        free_cuda()
            pts.append(Point(f"{tag} {source} {t} tokens", "train",
                             _estimate_train_s(tm, plan, t), run_train, requires=tag))
    if plan.extra_decode_points:
        def rebuild_decode(dl):
            s.train = None
            s.decode = s.decode2 = None
            free_cuda()
            s.decode = build_model(plan.decode_model, dev, plan.dtype)
            return []
        pts.append(Point(f"rebuild {plan.decode_model}", "build",
                         build_estimate_s(dm, plan, bytes_per_param),
                         rebuild_decode, provides="decode_extra"))
        for b, c in plan.extra_decode_points:
            if b * c * kvb > plan.kv_cap_bytes:
                continue
            pts.append(Point(f"decode+ b={b} ctx={c}", "decode",
                             estimate_decode_s(dm, plan, b, c, cuda), _decode_point(s, b, c),
                             requires="decode_extra"))
    return pts
