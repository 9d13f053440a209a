"""Cost model vs TensorRT-LLM's published Llama-3.1-8B FP8 throughput on one H100 (max load).

    .venv/bin/python benchmarks/anchor_trtllm.py [--json] [--published PATH]

The published points (../shared/reference/published.yaml, `trtllm-llama3.1-8b-fp8-h100`) are
validation targets only: nothing here feeds them back into the model, and the cost model runs with
its datasheet defaults (rlvr_sim/hardware.py). Steady state at maximum load, analytically:

- concurrency N = sequences whose whole KV (input + output tokens, fp8) fits the pool of one H100
  at gpu_memory_utilization 0.9 with 32-token blocks, capped at TRT-LLM's default
  max_batch_size 2048;
- every slot decodes O tokens in O iterations; the batch's mean KV length is I + O/2 and the
  longest is I + O (uniform ages), so the skew term applies;
- each completed request also costs its prefill (compute + all-reduce, no per-call overhead: with
  in-flight batching prefill chunks ride along decode iterations);
- output tokens/s = N x O / (O x decode_step(N) + N x prefill(I)).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from rlvr_sim.cost import CostModel
from rlvr_sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO.parent / "shared" / "reference" / "published.yaml"
ANCHOR_ID = "trtllm-llama3.1-8b-fp8-h100"
MAX_BATCH = 2048  # TensorRT-LLM's default max_batch_size

SCENARIO = {
    "name": "trtllm-anchor",
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm"},
    "sampler": {"gpus": 1, "tp": 1, "weight_dtype": "fp8", "kv_dtype": "fp8", "block_tokens": 32,
                "gpu_memory_utilization": 0.9, "max_concurrent_sequences": MAX_BATCH,
                "prefix_caching": False},
    "trainer": {"gpus": 1},  # unused here; trainer fit is not checked
}


@dataclass
class AnchorRow:
    input_tokens: int
    output_tokens: int
    concurrency: int
    decode_step_s: float
    decode_bound: str
    prefill_s_per_request: float
    prefill_share: float
    predicted_tokens_per_s: float
    published_tokens_per_s: float
    error: float  # predicted / published - 1


def predict(cm: CostModel, input_tokens: int, output_tokens: int) -> AnchorRow:
    """Max-load output tokens/s for one input/output shape (see the module docstring)."""
    n = cm.sampler_plan.max_concurrent_sequences(input_tokens + output_tokens)
    mean_ctx = input_tokens + output_tokens / 2
    step = cm.decode_step_s(n, n * mean_ctx, input_tokens + output_tokens)
    bound = cm.decode_breakdown(n, n * mean_ctx, input_tokens + output_tokens).bound
    pf = cm.prefill_breakdown(input_tokens, 1)
    prefill_s = max(pf.compute_s, 0.0) + pf.comm_s
    decode_total = output_tokens * step
    prefill_total = n * prefill_s
    rate = n * output_tokens / (decode_total + prefill_total)
    return AnchorRow(input_tokens, output_tokens, n, step, bound, prefill_s,
                     prefill_total / (decode_total + prefill_total), rate, 0.0, 0.0)


SENSITIVITY = {  # one efficiency term moved at a time, to explain misses (not a fit)
    "decode_mfu 0.5 -> 0.4": {"decode_mfu": 0.4},
    "prefill_mfu 0.6 -> 0.45": {"prefill_mfu": 0.45},
    "skew_coef 0.3 -> 0": {"skew_coef": 0.0},
    "decode_overhead_s 3 ms -> 1 ms": {"decode_overhead_s": 0.001},
}


def sensitivity(cm: CostModel, shapes: list[tuple[int, int]]) -> dict[str, list[float]]:
    """Predicted tokens/s per shape with one efficiency term changed at a time."""
    out = {}
    for label, change in SENSITIVITY.items():
        eff = cm.hardware.efficiency.model_copy(update=change)
        moved = replace(cm, hardware=cm.hardware.model_copy(update={"efficiency": eff}))
        out[label] = [predict(moved, i, o).predicted_tokens_per_s for i, o in shapes]
    return out


def load_points(path: Path) -> dict[str, float]:
    data = yaml.safe_load(path.read_text())
    for entry in data["decoding"]:
        if entry["id"] == ANCHOR_ID:
            return {k: float(v) for k, v in entry["points"].items()}
    raise SystemExit(f"{path}: no decoding entry {ANCHOR_ID!r}")


def run(published: Path) -> list[AnchorRow]:
    cm = CostModel.from_scenario(load_scenario(SCENARIO, check_fit=False))
    rows = []
    for shape, tokens_per_s in load_points(published).items():
        i, o = (int(x) for x in shape.split("/"))
        row = predict(cm, i, o)
        row.published_tokens_per_s = tokens_per_s
        row.error = row.predicted_tokens_per_s / tokens_per_s - 1
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--published", type=Path, default=PUBLISHED)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sensitivity", action="store_true",
                    help="also print predictions with one efficiency term moved at a time")
    args = ap.parse_args()
    if not args.published.is_file():
        raise SystemExit(f"{args.published} not found; pass --published PATH to published.yaml")
    rows = run(args.published)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"{'in/out':>11} {'conc':>5} {'step ms':>8} {'bound':>8} {'prefill':>8} "
          f"{'predicted':>10} {'published':>10} {'error':>7}")
    for r in rows:
        print(f"{r.input_tokens:>5}/{r.output_tokens:<5} {r.concurrency:>5} "
              f"{r.decode_step_s * 1e3:>8.2f} {r.decode_bound:>8} {r.prefill_share:>7.0%} "
              f"{r.predicted_tokens_per_s:>10,.0f} {r.published_tokens_per_s:>10,.0f} "
              f"{r.error:>+7.1%}")
    errs = [abs(r.error) for r in rows]
    worst = max(rows, key=lambda r: abs(r.error))
    print(f"mean |error| {sum(errs) / len(errs):.1%}; largest miss "
          f"{worst.input_tokens}/{worst.output_tokens} ({worst.error:+.1%})")
    if args.sensitivity:
        shapes = [(r.input_tokens, r.output_tokens) for r in rows]
        cm = CostModel.from_scenario(load_scenario(SCENARIO, check_fit=False))
        print("\nsensitivity (predicted tokens/s; error vs published)")
        for label, rates in sensitivity(cm, shapes).items():
            cells = " ".join(f"{x:>7,.0f} ({x / r.published_tokens_per_s - 1:+.0%})"
                             for x, r in zip(rates, rows))
            print(f"  {label:<30} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
