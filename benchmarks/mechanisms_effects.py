"""Direction and size of each issue-12 mechanism on one shipped scenario, mechanism on vs off.

    PYTHONPATH=$PWD python benchmarks/mechanisms_effects.py [--steps 8]

Each row: the mechanism, the scenario, the quantity, its value with the mechanism off and on,
and the ratio on/off. Efficiency terms the mechanisms add are left at their neutral defaults
(None / 0) except where a row says it shows a sensitivity at an illustrative value (no fitted
value exists yet; calibration or the public-measurement profile supplies it). Simulated step
times are the simulator's mean over the steps after its warm-up exclusion (short runs are noisy:
steady-state detection is a separate item). The weight-update rows use a sampler-bound variant
(8 rollout : 64 trainer GPUs, staleness 1) where sequences are running when weights land; there
the FCFS replicas that keep running old sequences while admitting the next batch finish the batch
the trainer needs next later than a replica that drains first, so drain wins on step time and
recompute pays its re-prefill on top.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from rlvr_sim.cost import CostModel
from rlvr_sim.cost.params import tensor_count
from rlvr_sim.cost.weight_sync import SyncLayout, legacy_shard_sync_s, weight_sync
from rlvr_sim.hardware import Efficiency
from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim import simulate
from rlvr_sim.sim.serving import serving_report

SC = Path(__file__).resolve().parents[1] / "scenarios"


@dataclass
class Row:
    mechanism: str
    scenario: str
    quantity: str
    off: float
    on: float
    note: str = ""


def _sc(name: str, *overrides: str, check_fit: bool = True):
    return load_scenario(SC / f"{name}.yaml", list(overrides), check_fit=check_fit)


def _train(sc) -> object:
    w = sc.workload
    b = w.sequences_per_step
    p = int(w.prompt_tokens.mean_value() * b)
    o = int(w.response_tokens.mean_value() * b)
    return CostModel.from_scenario(sc).train_step(b, p, o)


def _with_eff(cm: CostModel, **eff) -> CostModel:
    hw = cm.hardware
    return replace(cm, hardware=hw.model_copy(update={
        "efficiency": Efficiency(**{**hw.efficiency.model_dump(), **eff})}))


def _step_s(sc, steps: int) -> float:
    return simulate(sc, steps=steps).summary.step_time_s.mean


def rows(steps: int) -> list[Row]:
    out: list[Row] = []
    # --- training as frameworks run it ---------------------------------------------------------
    llama = "nemo-rl-llama3.1-8b-1step-offpolicy"
    for gpus in (8, 32):
        sc = _sc(llama, f"trainer.gpus={gpus}")
        cm = CostModel.from_scenario(sc)
        w = sc.workload
        b = w.sequences_per_step
        args = (b, int(w.prompt_tokens.mean_value() * b), int(w.response_tokens.mean_value() * b))
        flat = cm.train_step(*args).forward_backward_s
        curve = _with_eff(cm, train_mfu_half_tokens=4096.0).train_step(*args).forward_backward_s
        out.append(Row("MFU vs tokens/micro-batch/GPU (sensitivity: half = 4096 tokens)", llama,
                       f"forward_backward s, trainer.gpus={gpus}", flat, curve))
    sc = _sc("verl-fully-async-qwen2.5-math-7b-h20")
    pad = _sc("verl-fully-async-qwen2.5-math-7b-h20", "trainer.packing=false",
              "trainer.micro_batch_sequences=4")
    out.append(Row("sequence packing -> padding (4 seq/micro-batch)", sc.name,
                   "train step s (dp 16)", _train(sc).total_s, _train(pad).total_s,
                   f"pad x{CostModel.from_scenario(pad).trainer.balance.pad_factor:.2f}, imbalance "
                   f"x{CostModel.from_scenario(pad).trainer.balance.imbalance:.3f} vs "
                   f"x{CostModel.from_scenario(sc).trainer.balance.imbalance:.4f} packed"))
    fp8 = "verl-dapo-qwen3-8b-fp8-train"
    out.append(Row("FP8 training (linear layers at the fp8 rate)", fp8, "train step s",
                   _train(_sc(fp8, "trainer.fp8=false")).total_s, _train(_sc(fp8)).total_s))
    off = "verl-dapo-qwen2.5-32b-offload"
    no_off = _sc(off, "trainer.offload_optimizer=false", "trainer.offload_params=false",
                 check_fit=False)
    out.append(Row("param + optimizer CPU offload", off, "optimizer s per step",
                   _train(no_off).optimizer_s, _train(_sc(off)).optimizer_s))
    out.append(Row("param + optimizer CPU offload", off, "trainer GB per GPU",
                   CostModel.from_scenario(no_off).trainer_memory.total_bytes / 1e9,
                   CostModel.from_scenario(_sc(off)).trainer_memory.total_bytes / 1e9))
    no_cp = _sc(off, "trainer.cp=1", check_fit=False)
    out.append(Row("Ulysses context parallel cp=8", off, "trainer GB per GPU",
                   CostModel.from_scenario(no_cp).trainer_memory.total_bytes / 1e9,
                   CostModel.from_scenario(_sc(off)).trainer_memory.total_bytes / 1e9,
                   f"exposed all-to-all {_train(_sc(off)).exposed_comm_s:.1f} s/step"))
    moe = "nemo-rl-qwen3-30b-a3b-ep8"
    ep_on = _train(_sc(moe))
    out.append(Row("trainer expert parallel ep=8", moe, "train step s",
                   _train(_sc(moe, "trainer.ep=1")).total_s, ep_on.total_s,
                   f"EP all-to-all share {ep_on.ep_all_to_all_s / ep_on.total_s:.1%} of the step"))
    out.append(Row("FSDP hybrid shard (4 dp ranks x tp2 = 8 GPUs/group)", moe, "train step s",
                   _train(_sc(moe)).total_s, _train(_sc(moe, "trainer.fsdp_shard_size=4")).total_s))
    # --- MoE / parallelism in the sampler ------------------------------------------------------
    for name, ovr, label in ((moe, ("sampler.ep=4",), "sampler expert parallel ep=4"),):
        a = CostModel.from_scenario(_sc(name)).decode_breakdown(256, 256 * 2000, 2000)
        b = CostModel.from_scenario(_sc(name, *ovr)).decode_breakdown(256, 256 * 2000, 2000)
        out.append(Row(label, name, "decode iteration ms (256 seqs, 2k ctx)", a.total_s * 1e3,
                       b.total_s * 1e3, f"comm {a.comm_s * 1e3:.2f} -> {b.comm_s * 1e3:.2f} ms"))
    dsv3 = "nemo-rl-deepseek-v3-ep16-tp32"
    a = CostModel.from_scenario(_sc(dsv3, "hardware.gpus_per_node=32")).decode_breakdown(
        32, 32 * 1000, 1000)
    b = CostModel.from_scenario(_sc(dsv3)).decode_breakdown(32, 32 * 1000, 1000)
    out.append(Row("TP32 across 4 nodes (network) vs one 32-GPU NVLink domain", dsv3,
                   "decode iteration ms (32 seqs)", a.total_s * 1e3, b.total_s * 1e3,
                   f"all-reduce share {b.comm_s / b.total_s:.0%} over the network"))
    seq = CostModel.from_scenario(load_scenario({"model": "llama-3.1-70b", "sampler": {
        "gpus": 8, "tp": 4, "pp": 2}, "trainer": {"gpus": 8, "tp": 8}}, check_fit=False))
    ovl = replace(seq, sampler=replace(seq.sampler, pp_overlap=True))
    out.append(Row("PP decode overlapping micro-batches (llama-70b tp4 pp2)", "inline",
                   "decode iteration ms (256 seqs, 2k ctx)",
                   seq.decode_step_s(256, 256 * 2000, 2000) * 1e3,
                   ovl.decode_step_s(256, 256 * 2000, 2000) * 1e3))
    # --- asynchrony as verl / AReaL run it -----------------------------------------------------
    va = "verl-fully-async-qwen2.5-math-7b-h20"
    out.append(Row("streaming trainer (require_batches 4)", va, "step s",
                   _step_s(_sc(va, "trainer.streaming=false"), steps), _step_s(_sc(va), steps)))
    s0 = simulate(_sc(va, "orchestration.staleness_threshold=0"), steps=steps).summary
    s5 = simulate(_sc(va), steps=steps).summary
    out.append(Row("fractional staleness 0 -> 0.5", va, "step s", s0.step_time_s.mean,
                   s5.step_time_s.mean, f"mean staleness {s0.staleness.mean:.2f} -> "
                   f"{s5.staleness.mean:.2f}"))
    # at staleness 0.5 the rollouter reaches its quota and idles before each sync (no running
    # sequences when weights land: the modes tie); a variant where they are running instead:
    busy = ("sampler.gpus=8", "trainer.gpus=64", "orchestration.staleness_threshold=1")
    drain = simulate(_sc(va, *busy, "orchestration.weight_update=drain"), steps=steps).summary
    for mode in ("recompute", "keep_kv"):
        other = simulate(_sc(va, *busy, f"orchestration.weight_update={mode}"),
                         steps=steps).summary
        out.append(Row(f"weight update drain -> {mode}", va + " 8:64 eta 1", "step s",
                       drain.step_time_s.mean, other.step_time_s.mean,
                       f"recompute tokens {drain.counters['recompute_tokens']:.3g} -> "
                       f"{other.counters['recompute_tokens']:.3g}, interruptions "
                       f"{other.counters['interruptions']:.3g}"))
    # --- weight sync ---------------------------------------------------------------------------
    big = load_scenario({"model": "qwen3-235b-a22b", "hardware": {"gpu": "h200"},
                         "sampler": {"gpus": 64, "tp": 8}, "trainer": {"gpus": 64, "tp": 4,
                                                                       "ep": 8},
                         "orchestration": {"placement": "disaggregated"}}, check_fit=False)
    cm = CostModel.from_scenario(big)
    lay = cm.sync
    legacy = legacy_shard_sync_s(cm.model, cm.hardware, lay)
    out.append(Row("weight sync: full-tensor broadcast + gather + load (nccl)", "qwen3-235b 64:64 h200",
                   "sync s", legacy, cm.weight_sync_s, "off = earlier shard-only model"))
    nixl = weight_sync(cm.model, cm.hardware, replace(lay, method="nixl")).total_s
    out.append(Row("weight sync nccl -> nixl (shard RDMA reads)", "qwen3-235b 64:64 h200",
                   "sync s", cm.weight_sync_s, nixl))
    per_tensor = _with_eff(cm, sync_per_tensor_s=1e-5).weight_sync
    out.append(Row("per-tensor overhead (sensitivity: 10 us/tensor)", "qwen3-235b 64:64 h200",
                   "sync s", cm.weight_sync_s, per_tensor.total_s,
                   f"{tensor_count(cm.model):,} tensors"))
    # --- serving -------------------------------------------------------------------------------
    spec = load_scenario({"model": "llama-3.1-8b", "sampler": {"gpus": 1, "speculative": {
        "method": "eagle", "draft_tokens": 4}}, "trainer": {"gpus": 1}}, check_fit=False)
    chain = CostModel.from_scenario(spec)
    tree = CostModel.from_scenario(load_scenario({"model": "llama-3.1-8b", "sampler": {
        "gpus": 1, "speculative": {"method": "eagle", "draft_tokens": 4, "tree_width": 2}},
        "trainer": {"gpus": 1}}, check_fit=False))
    for n in (8, 256):
        a = chain.decode_step_s(n, n * 1000, 1000) / chain.tokens_per_iteration
        b = tree.decode_step_s(n, n * 1000, 1000) / tree.tokens_per_iteration
        out.append(Row("EAGLE tree width 2 vs chain (a = 0.75 default)", "llama-3.1-8b h100",
                       f"ms per token per sequence, batch {n}", a * 1e3, b * 1e3,
                       f"tokens/verify {chain.tokens_per_iteration:.2f} -> "
                       f"{tree.tokens_per_iteration:.2f}"))
    dec = _sc("decode-benchmark-llama3.1-8b-fp8-h100")
    res = simulate(dec, steps=2)
    rep = serving_report(res, CostModel.from_scenario(dec))
    out.append(Row("inference-only decode benchmark (outputs)", dec.name,
                   "MFU / HBM fraction", rep.mfu, rep.hbm_bw_fraction,
                   f"{rep.output_tokens_per_s:,.0f} output tokens/s"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    table = rows(args.steps)
    print(f"{'mechanism':58s} {'scenario':38s} {'quantity':40s} {'off':>10s} {'on':>10s} "
          f"{'on/off':>7s}  note")
    for r in table:
        ratio = r.on / r.off if r.off else float("nan")
        print(f"{r.mechanism:58s} {r.scenario:38s} {r.quantity:40s} {r.off:10.4g} {r.on:10.4g} "
              f"{ratio:7.3f}  {r.note}")


if __name__ == "__main__":
    main()
