"""Kernel-level decode micro-benchmarks: what a serving engine's kernels achieve on this GPU.

The budgeted model calibration (`calibration.gpu_bench`) times HF transformers' decode, whose
StaticCache attention repeats the KV heads for GQA and so reads the cache many times over: its
fitted `kv_bw_eff` describes HF, not vLLM/SGLang's paged flash kernels. This module times the two
kernels a decode iteration is made of, without any engine around them:

1. decode attention: `scaled_dot_product_attention` of one query token per sequence against a
   (batch x context) KV cache with grouped-query heads (`enable_gqa=True`, no repeated KV), on
   each SDPA backend that accepts the shape; achieved KV bytes/s = K+V bytes / time;
2. decode GEMMs: (batch x d_in) @ (d_in x d_out) bf16 for a model's projection shapes; achieved
   weight bytes/s = weight bytes / time (the weight read dominates at small batch).

Rows are plain dataclasses written as CSV with the exact shape and backend; `summarize` reports
the achieved fraction of the datasheet HBM bandwidth per (kernel, backend) as medians over the
large shapes. Limits: dense bf16 only, one GPU, contiguous (not paged) KV: a paged kernel's
block-table indirection costs a few percent more; no CUDA graphs (each kernel is timed with
events around 20 back-to-back launches, so launch gaps are amortised).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class KernelRow:
    kernel: str           # "attention" | "gemm"
    backend: str          # SDPA backend or "cublas"
    batch: int
    context: int          # attention: KV tokens per sequence; gemm: 0
    d_in: int
    d_out: int
    heads: int
    kv_heads: int
    head_dim: int
    bytes_moved: float    # KV bytes (attention) or weight bytes (gemm) per call
    seconds: float        # median per call
    achieved_bytes_per_s: float


def _time_s(fn, device: str, reps: int = 20, repeats: int = 5) -> float:
    import torch

    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / reps)
        else:
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)


def attention_rows(device: str, batches, contexts, heads: int, kv_heads: int, head_dim: int,
                   max_kv_bytes: float, deadline: float) -> list[KernelRow]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    rows = []
    for b in batches:
        for ctx in contexts:
            kv_bytes = 2.0 * b * ctx * kv_heads * head_dim * (2 if dtype == torch.bfloat16 else 4)
            if kv_bytes > max_kv_bytes or time.monotonic() > deadline:
                continue
            q = torch.randn(b, heads, 1, head_dim, device=device, dtype=dtype)
            k = torch.randn(b, kv_heads, ctx, head_dim, device=device, dtype=dtype)
            v = torch.randn(b, kv_heads, ctx, head_dim, device=device, dtype=dtype)
            for name, be in backends.items():
                if name == "math" and kv_bytes > 2e9:
                    continue
                try:
                    with sdpa_kernel([be]):
                        s = _time_s(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                                    device)
                except Exception as exc:  # backend refuses this shape/dtype: record nothing
                    print(f"  attention {name} b={b} ctx={ctx}: {type(exc).__name__}", file=sys.stderr)
                    continue
                rows.append(KernelRow("attention", name, b, ctx, 0, 0, heads, kv_heads, head_dim,
                                      kv_bytes, s, kv_bytes / s))
            del q, k, v  # free before the next shape
    return rows


def gemm_rows(device: str, batches, shapes, deadline: float) -> list[KernelRow]:
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rows = []
    for d_in, d_out in shapes:
        w = torch.randn(d_in, d_out, device=device, dtype=dtype)
        for b in batches:
            if time.monotonic() > deadline:
                break
            x = torch.randn(b, d_in, device=device, dtype=dtype)
            s = _time_s(lambda x=x, w=w: x @ w, device)
            wb = float(d_in * d_out * w.element_size())
            rows.append(KernelRow("gemm", "cublas" if device == "cuda" else "cpu", b, 0, d_in,
                                  d_out, 0, 0, 0, wb, s, wb / s))
        del w  # free before the next shape
    return rows


def summarize(rows: list[KernelRow], hbm_bytes_per_s: float) -> dict[str, float]:
    """Median achieved fraction of the HBM datasheet per (kernel, backend), over the shapes that
    move at least 256 MiB per call (small calls measure launch latency, not bandwidth)."""
    out: dict[str, float] = {}
    keys = sorted({(r.kernel, r.backend) for r in rows})
    for kernel, backend in keys:
        big = [r.achieved_bytes_per_s / hbm_bytes_per_s for r in rows
               if r.kernel == kernel and r.backend == backend and r.bytes_moved >= 256 * 2**20]
        if big:
            out[f"{kernel}/{backend}"] = statistics.median(big)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=120)
    ap.add_argument("--out", type=Path, default=Path("gpu_kernels.csv"))
    ap.add_argument("--hbm-bytes-per-s", type=float, default=4.8e12, help="datasheet HBM rate")
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.budget_s
    if args.device == "cuda":
        # qwen2.5-7b: 28 query heads, 4 KV heads, head_dim 128; projections of d_model 3584
        att = attention_rows("cuda", (1, 8, 32, 128, 256), (512, 2048, 8192, 32768), 28, 4, 128,
                             40e9, deadline)
        gem = gemm_rows("cuda", (1, 8, 32, 128, 256, 512),
                        ((3584, 4608), (3584, 3584), (3584, 37888), (18944, 3584)), deadline)
    else:
        att = attention_rows("cpu", (1, 4), (64, 256), 4, 2, 16, 1e8, deadline)
        gem = gemm_rows("cpu", (1, 4), ((64, 128),), deadline)
    rows = att + gem
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[f.name for f in fields(KernelRow)])
        w.writeheader()
        for r in rows:
            w.writerow(asdict(r))
    for key, frac in summarize(rows, args.hbm_bytes_per_s).items():
        print(f"  {key:22s} {frac:6.3f} of datasheet HBM (median over calls >= 256 MiB)")
    print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
