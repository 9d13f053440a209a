"""Serving-style outputs of a simulated run: model FLOP utilisation and achieved HBM bandwidth.

`serving_report(result, cm)` reads the trace's `generate` rows (per step and replica: sequences,
prompt and output tokens, decode iterations and busy seconds) and the cost model:
- mfu = model FLOPs (2 x active params x (prompt + output tokens) + attention over the mean
  context) / (wall seconds x sampler GPUs x peak at the weight dtype): what a decode benchmark
  reports as MFU;
- achieved bandwidth per GPU = bytes read in decode (each iteration's weights at the row's mean
  batch, plus every output token's KV context) / decode busy seconds of that replica; its
  fraction of the datasheet HBM rate says how close the run is to the memory roofline.
Estimates from aggregates (mean batch and context per row), not per-iteration sums.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlvr_sim.cost import CostModel
    from rlvr_sim.sim.run import SimResult


@dataclass(frozen=True)
class ServingReport:
    sequences: int
    output_tokens: int
    wall_s: float
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    model_flop: float
    mfu: float
    decode_bytes_per_gpu: float
    decode_busy_s_per_replica: float
    achieved_hbm_bytes_per_s: float     # per GPU, while decoding
    hbm_bw_fraction: float              # of the datasheet HBM bandwidth


def serving_report(result: "SimResult", cm: "CostModel") -> ServingReport:
    """MFU and achieved bandwidth of a finished simulation (see module docstring)."""
    from rlvr_sim.cost.params import attention_flop_per_context_token

    cfg = result.config
    gen = result.trace[result.trace.phase == "generate"]
    active = cm.params.active
    attn = attention_flop_per_context_token(cm.model)
    flop = 0.0
    decode_bytes = 0.0
    busy = 0.0
    seqs = out_total = 0
    kv_per_gpu = cm.sampler_plan.kv_bytes_per_token
    for row in gen.itertuples(index=False):
        extra = json.loads(row.extra) if row.extra else {}
        n, p, o = int(row.sequences), int(row.prompt_tokens), int(row.output_tokens)
        seqs += n
        out_total += o
        ctx = (p + o / 2) / max(n, 1)                     # mean context of a decoded token
        flop += 2.0 * active * (p + o) + attn * ctx * o
        iterations = int(extra.get("decode_iterations", 0))
        busy += float(extra.get("decode_s", 0.0))
        if iterations:
            batch = o / (iterations * cm.tokens_per_iteration)
            w = cm.decode_breakdown(max(batch, 1e-9), batch * ctx, ctx).weight_bytes
            decode_bytes += iterations * w + o * ctx * kv_per_gpu
    wall = result.steps[-1].end_s if result.steps else 0.0
    gpus = cfg.sampler_gpus
    peak = cm.hardware.peak_flop_per_s(cm.sampler.weight_dtype)
    replicas = max(cfg.replicas, 1)
    busy_per_replica = busy / replicas
    bytes_per_gpu = decode_bytes / replicas
    achieved = bytes_per_gpu / busy_per_replica if busy_per_replica > 0 else float("nan")
    return ServingReport(
        sequences=seqs, output_tokens=out_total, wall_s=wall,
        output_tokens_per_s=out_total / wall if wall > 0 else float("nan"),
        output_tokens_per_s_per_gpu=out_total / wall / gpus if wall > 0 else float("nan"),
        model_flop=flop, mfu=flop / (wall * gpus * peak) if wall > 0 else float("nan"),
        decode_bytes_per_gpu=bytes_per_gpu, decode_busy_s_per_replica=busy_per_replica,
        achieved_hbm_bytes_per_s=achieved,
        hbm_bw_fraction=achieved / cm.hardware.datasheet.hbm_bytes_per_s)
