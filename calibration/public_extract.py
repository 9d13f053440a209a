"""Rebuild the machine-extracted rows of the public-measurement tables from local source copies.

Three sources are large and regular enough to extract by program rather than by hand:
- mosaicml/llm-foundry `scripts/train/benchmarking/README.md` (MPT training throughput tables,
  BF16 only: the cost model's trainer runs at the BF16 peak);
- NVIDIA-NeMo/Megatron-Bridge `docs/performance-summary.md` and `...-archive.md` (BF16
  pre-training rows of catalog GPUs and models, every release section);
- microsoft/vidur `data/profiling/` (MIT licence, notice in calibration/public/LICENSE-vidur.txt):
  `network/*_dgx/all_reduce.csv` (all-reduce time vs size and ranks) and
  `compute/<gpu>/<model>/mlp.csv` (per-layer GEMM times vs tokens and TP).
The hand-transcribed tables (TensorRT-LLM perf overview, torchtitan) are edited directly.

Usage (each argument is a checkout or a `git worktree` of that repository):
    python -m calibration.public_extract --llm-foundry DIR --vidur DIR --megatron-bridge DIR
It replaces only the rows of the sources it extracts and keeps every other row. Selection rules
(documented in calibration/public/README.md): Vidur sizes / token counts that are powers of two,
median times; llm-foundry rows with BF16 precision.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
from pathlib import Path

from calibration.public_data import PUBLIC_DIR, TABLE_COLUMNS, read_table, write_table

LLM_FOUNDRY_README = "scripts/train/benchmarking/README.md"
# README section title -> catalog gpu
LLM_FOUNDRY_SECTIONS = {
    "H100 80GB BF16 (Large Scale, >= 128 GPUs)": "h100-sxm",
    "H100 80GB BF16": "h100-sxm",
    "A100 80GB with 1600 Gbps node-node interconnect (RoCE)": "a100-80gb",
    "A100 40GB with 1600 Gbps node-node interconnect (RoCE)": "a100-40gb",
}
MEGATRON_BRIDGE_DOCS = ("docs/performance-summary.md", "docs/performance-summary-archive.md")
MEGATRON_BRIDGE_SYSTEMS = {"DGX-H100": "h100-sxm", "DGX-B200": "b200"}
MEGATRON_BRIDGE_MODELS = {"GPT OSS 120B": "gpt-oss-120b", "Qwen3_235B_a22B": "qwen3-235b-a22b",
                          "Qwen3_30B_a3B": "qwen3-30b-a3b", "DeepSeekV3": "deepseek-v3",
                          "LLAMA3_8B": "llama-3.1-8b", "LLAMA3_70B": "llama-3.1-70b",
                          "LLAMA3.1_405B": "llama-3.1-405b"}
VIDUR_NETWORK = {"a100_dgx": "a100-80gb", "h100_dgx": "h100-sxm"}
VIDUR_COMPUTE = {"a100": "a100-80gb", "h100": "h100-sxm"}


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _git_ls(repo: Path, prefix: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD", prefix],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def llm_foundry_rows(readme: str) -> list[dict]:
    """BF16 rows of every GPU section of the llm-foundry benchmark README."""
    rows: list[dict] = []
    section, header = None, None
    for line in readme.splitlines():
        if line.startswith("## "):
            section, header = line[3:].strip(), None
            continue
        if section not in LLM_FOUNDRY_SECTIONS or not line.strip().startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= {"-", " "}:
            continue
        rec = dict(zip(header, cells))
        if rec.get("Precision") not in ("bf16", "amp_bf16"):
            continue
        rows.append({
            "source": "llm-foundry-benchmarks",
            "gpu": LLM_FOUNDRY_SECTIONS[section],
            "model": f"mpt-{rec['Model']}",
            "dtype": "bf16",
            "gpus": int(rec["# GPUs"]),
            "tp": 1, "pp": 1, "cp": 1,
            "fsdp": True,
            "micro_batch": int(rec["MicroBatchSize"]),
            "seq_len": int(rec["SeqLen (T)"]),
            "global_batch": int(rec["GlobalBatchSize"]),
            "recompute": "full" if rec["Activation Checkpointing"] == "True" else "none",
            "metric": "tokens_per_s_per_gpu",
            "value": float(rec["Throughput (T/s/GPU)"]),
            "reported_mfu": float(rec["MFU"]) / 100.0,
            "setup": (f"{section}; Composer FSDP {rec['Sharding Strategy']}, {rec['Precision']} "
                      f"{rec['MP Mode']}, grad accum {rec['GradAccum']}, "
                      f"{rec['NumParams']} params (learned pos. emb. incl.)"),
        })
    return rows


def _mb_model(name: str) -> str | None:
    for key, model in MEGATRON_BRIDGE_MODELS.items():
        if name == key or name.startswith(key + " "):
            return model
    return None


def megatron_bridge_rows(doc: str, path: str) -> list[dict]:
    """BF16 pre-training rows of catalog GPUs and models from a Megatron-Bridge performance page
    (release sections `## <release> NeMo Container`, tables per `#### Model:` or `#### System:`)."""
    rows: list[dict] = []
    release = model_head = system_head = None
    header = None
    section = ""
    for line in doc.splitlines():
        if line.startswith("## "):
            release, header = line[3:].strip(), None
            continue
        if line.startswith("### "):
            section, header = line[4:].strip(), None
            continue
        if line.startswith("#### Model:"):
            model_head, system_head, header = line.split(":", 1)[1].strip(), None, None
            continue
        if line.startswith("#### System:"):
            system_head, model_head, header = line.split(":", 1)[1].strip(), None, None
            continue
        if not line.startswith("|") or section != "Pre-Training Performance":
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= {"-", " ", ":"}:
            continue
        rec = dict(zip(header, cells))
        if rec.get("Precision") != "BF16":
            continue
        system = rec.get("System", system_head)
        model_name = rec.get("Model", model_head)
        gpu, model = MEGATRON_BRIDGE_SYSTEMS.get(system or ""), _mb_model(model_name or "")
        if gpu is None or model is None:
            continue
        fsdp = rec.get("FSDP", "0")
        rows.append({
            "source": "megatron-bridge-perf-summary", "gpu": gpu, "model": model, "dtype": "bf16",
            "gpus": int(rec["#-GPUs"]), "tp": int(rec["TP"]), "pp": int(rec["PP"]),
            "cp": int(rec["CP"]), "fsdp": fsdp not in ("0", "n/a"),
            "micro_batch": int(rec["MBS"]), "seq_len": int(rec["Sequence Length"]),
            "global_batch": int(rec["GBS"]), "recompute": "none",
            "metric": "tokens_per_s_per_gpu", "value": float(rec["Tokens / sec / GPU"]),
            "setup": (f"{path}, {release}, Pre-Training table ({model_name}, {system}): BF16, "
                      f"EP {rec.get('EP')}, VP {rec.get('VP')}, FSDP {fsdp}; Model TFLOP/s/GPU "
                      f"{rec.get('Model TFLOP / sec / GPU')}; MoE token distribution force-balanced, "
                      "dropless; activation recompute not stated (none assumed)"),
        })
    return rows


def _median_ms(rec: dict, op: str) -> float:
    return float(rec[f"time_stats.{op}.median"])


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def vidur_collective_rows(repo: Path) -> list[dict]:
    rows = []
    for system, gpu in VIDUR_NETWORK.items():
        path = f"data/profiling/network/{system}/all_reduce.csv"
        for rec in csv.DictReader(io.StringIO(_git_show(repo, path))):
            size, ranks = int(rec["size"]), int(rec["num_workers"])
            per_node = int(rec["devices_per_node"])
            if not _pow2(size):
                continue
            rows.append({
                "source": "vidur-profiling", "gpu": gpu, "system": system, "op": "all_reduce",
                "ranks": ranks, "ranks_per_node": per_node, "bytes": size,
                "metric": "seconds", "value": _median_ms(rec, "all_reduce") * 1e-3,
                "setup": f"{path} (median of the profiled runs; size in bytes of the buffer)",
            })
    return rows


GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")


def vidur_gemm_rows(repo: Path) -> list[dict]:
    """Sum of one layer's four GEMMs (QKV, output, MLP up (+gate), MLP down) per (tokens, TP)."""
    rows = []
    for sku, gpu in VIDUR_COMPUTE.items():
        for path in _git_ls(repo, f"data/profiling/compute/{sku}/"):
            if not path.endswith("/mlp.csv"):
                continue
            model = path.split(f"compute/{sku}/", 1)[1].rsplit("/mlp.csv", 1)[0]
            for rec in csv.DictReader(io.StringIO(_git_show(repo, path))):
                n, tp = int(rec["num_tokens"]), int(rec["num_tensor_parallel_workers"])
                if not _pow2(n):
                    continue
                h, e = int(rec["n_embd"]), int(rec["n_expanded_embd"])
                heads, kv = int(rec["n_head"]), int(rec["n_kv_head"])
                gated = rec["use_gated_mlp"] == "True"
                hd = h // heads
                params = (h * (heads + 2 * kv) * hd + h * h
                          + h * e * (2 if gated else 1) + e * h) / tp
                rows.append({
                    "source": "vidur-profiling", "gpu": gpu, "model": model, "tp": tp,
                    "tokens": n, "flop": 2.0 * params * n, "weight_bytes": 2.0 * params,
                    "metric": "seconds",
                    "value": sum(_median_ms(rec, g) for g in GEMMS) * 1e-3,
                    "setup": (f"{path}: fp16 GEMMs of one layer, sum of medians of {', '.join(GEMMS)};"
                              f" hidden {h}, mlp {e} ({'gated' if gated else 'plain'}), heads "
                              f"{heads}/{kv}"),
                })
    return rows


def replace_source_rows(kind: str, source: str, new: list[dict]) -> int:
    kept = [r for r in read_table(kind) if r["source"] != source]
    write_table(kind, kept + new)
    return len(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm-foundry", type=Path)
    ap.add_argument("--vidur", type=Path)
    ap.add_argument("--megatron-bridge", type=Path)
    args = ap.parse_args(argv)
    if args.llm_foundry:
        n = replace_source_rows("training", "llm-foundry-benchmarks",
                                llm_foundry_rows(_git_show(args.llm_foundry, LLM_FOUNDRY_README)))
        print(f"training: {n} llm-foundry rows")
    if args.megatron_bridge:
        new = [r for path in MEGATRON_BRIDGE_DOCS
               for r in megatron_bridge_rows(_git_show(args.megatron_bridge, path), path)]
        n = replace_source_rows("training", "megatron-bridge-perf-summary", new)
        print(f"training: {n} megatron-bridge rows")
    if args.vidur:
        n = replace_source_rows("collectives", "vidur-profiling", vidur_collective_rows(args.vidur))
        print(f"collectives: {n} vidur rows")
        n = replace_source_rows("gemm", "vidur-profiling", vidur_gemm_rows(args.vidur))
        print(f"gemm: {n} vidur rows")
    print(f"tables in {PUBLIC_DIR}; columns: {TABLE_COLUMNS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
