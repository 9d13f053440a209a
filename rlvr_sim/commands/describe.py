"""`rlvr-sim describe SCENARIO [--json] [--set k=v ...]`: memory plan and per-token costs.

Prints the model's size, the sampler replica's memory plan (max concurrent sequences), decode
tokens/s at a few batch sizes and context lengths, prefill and train tokens/s, weight-sync and
switch seconds, and whether the scenario fits (with the reason). `--json` dumps the same report.
"""

from __future__ import annotations

import argparse

from pydantic import BaseModel

from rlvr_sim.cli_output import strict_json
from rlvr_sim.cost import CostModel
from rlvr_sim.cost.params import kv_bytes_per_token, weight_bytes
from rlvr_sim.scenario import Scenario, load_scenario
from rlvr_sim.scenario_checks import scenario_problems

DECODE_BATCHES = (1, 16, 64, 256)


class DecodePoint(BaseModel):
    batch: int
    context_tokens: int
    step_s: float
    tokens_per_s: float          # one replica
    bound: str


class Report(BaseModel):
    scenario: str | None
    model: str
    params_total: int
    params_active: int
    weight_bytes: float          # sampler weight dtype, whole model
    kv_bytes_per_token: float    # sampler kv dtype, whole model (tp = 1)
    gpu: str
    profile_source: str
    efficiency_origin: str = ""   # datasheet guesses / public-measurement fit / calibrated
    total_gpus: int
    sampler_replicas: int
    sampler_weight_bytes_per_gpu: float
    sampler_activation_reserve_bytes: float
    sampler_kv_pool_bytes_per_gpu: float
    sampler_kv_tokens_per_replica: int
    max_concurrent_sequences: dict[str, int]  # context tokens -> sequences per replica
    decode: list[DecodePoint]
    tokens_per_iteration: float
    prefill_tokens_per_s: float
    train_tokens_per_s: float
    train_step_s: float
    trainer_bytes_per_gpu: float
    weight_sync_s: float
    switch_s: float
    fits: bool
    problems: list[str]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set sampler.tp=2 (repeatable)")


def build_report(sc: Scenario, label: str | None = None) -> Report:
    """Everything `describe` shows, from a validated scenario (fit problems reported, not raised)."""
    cm = CostModel.from_scenario(sc)
    plan = cm.sampler_plan
    w = sc.workload
    prompt_mean = int(round(w.prompt_tokens.mean_value()))
    resp_mean = int(round(w.response_tokens.mean_value()))
    contexts = sorted({c for c in (1024, 4096) if c < sc.max_context_tokens}
                      | {prompt_mean + resp_mean, sc.max_context_tokens})
    max_seqs = {str(c): plan.max_concurrent_sequences(c) for c in contexts}
    decode = []
    for ctx in (prompt_mean + resp_mean, sc.max_context_tokens):
        fit = plan.max_concurrent_sequences(ctx)
        for b in sorted({*DECODE_BATCHES, fit} - {0}):
            if b > fit and b != 1:
                continue
            bd = cm.decode_breakdown(b, b * ctx, ctx)
            step = cm.decode_step_s(b, b * ctx, ctx)
            decode.append(DecodePoint(batch=b, context_tokens=ctx, step_s=step,
                                      tokens_per_s=b * cm.tokens_per_iteration / step, bound=bd.bound))
    chunk = 8192
    sequences = w.sequences_per_step
    train = cm.train_step(sequences, sequences * prompt_mean, sequences * resp_mean)
    problems = scenario_problems(sc, check_fit=True)
    counts = cm.params
    return Report(
        scenario=label, model=sc.model.name, params_total=counts.total, params_active=counts.active,
        weight_bytes=weight_bytes(sc.model, sc.sampler.weight_dtype),
        kv_bytes_per_token=kv_bytes_per_token(sc.model, sc.sampler.kv_dtype),
        gpu=sc.hardware.gpu, profile_source=cm.hardware.source,
        efficiency_origin=cm.hardware.efficiency_origin, total_gpus=sc.total_gpus,
        sampler_replicas=sc.sampler.replicas,
        sampler_weight_bytes_per_gpu=plan.weight_bytes_per_gpu,
        sampler_activation_reserve_bytes=plan.activation_reserve_bytes,
        sampler_kv_pool_bytes_per_gpu=plan.kv_pool_bytes,
        sampler_kv_tokens_per_replica=plan.kv_tokens,
        max_concurrent_sequences=max_seqs, decode=decode,
        tokens_per_iteration=cm.tokens_per_iteration,
        prefill_tokens_per_s=chunk / cm.prefill_s(chunk, max(chunk // max(prompt_mean, 1), 1)),
        train_tokens_per_s=train.tokens_per_s, train_step_s=train.total_s,
        trainer_bytes_per_gpu=cm.trainer_memory.total_bytes,
        weight_sync_s=cm.weight_sync_s, switch_s=cm.switch_s if sc.orchestration.placement ==
        "colocated" else 0.0, fits=not problems, problems=problems)


def _count(n: float) -> str:
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _gb(x: float) -> str:
    return f"{x / 1e9:,.2f} GB"


def format_report(r: Report) -> str:
    rows = [
        ("model", f"{r.model}: {_count(r.params_total)} params ({_count(r.params_active)} "
                  f"active), weights {_gb(r.weight_bytes)}, KV {r.kv_bytes_per_token:,.0f} B/token"),
        ("hardware", f"{r.gpu} x {r.total_gpus} ({r.profile_source})"),
        ("efficiencies", r.efficiency_origin),
        ("sampler", f"{r.sampler_replicas} replica(s); per GPU: weights "
                    f"{_gb(r.sampler_weight_bytes_per_gpu)}, reserve "
                    f"{_gb(r.sampler_activation_reserve_bytes)}, KV pool "
                    f"{_gb(r.sampler_kv_pool_bytes_per_gpu)} "
                    f"({r.sampler_kv_tokens_per_replica:,} tokens)"),
        ("max sequences", ", ".join(f"{n} at {c} tokens" for c, n in
                                    r.max_concurrent_sequences.items()) + " (per replica)"),
        ("prefill", f"{r.prefill_tokens_per_s:,.0f} tokens/s per replica"),
        ("train", f"{r.train_tokens_per_s:,.0f} tokens/s on the trainer pool, "
                  f"{r.train_step_s:.1f} s per step, {_gb(r.trainer_bytes_per_gpu)} per GPU"),
        ("weight sync", f"{r.weight_sync_s:.3f} s; colocated switch {r.switch_s:.2f} s"),
        ("fits", "yes" if r.fits else "NO: " + "; ".join(r.problems)),
    ]
    width = max(len(k) for k, _ in rows)
    out = [f"{k:<{width}}  {v}" for k, v in rows]
    out.append("")
    out.append(f"decode (one replica, {r.tokens_per_iteration:.2f} tokens/iteration)")
    out.append(f"  {'batch':>6} {'context':>8} {'step ms':>9} {'tokens/s':>10}  bound")
    for d in r.decode:
        out.append(f"  {d.batch:>6} {d.context_tokens:>8} {d.step_s * 1e3:>9.2f} "
                   f"{d.tokens_per_s:>10,.0f}  {d.bound}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    sc = load_scenario(args.scenario, args.overrides, check_fit=False)
    report = build_report(sc, label=str(args.scenario))
    if args.json:
        print(strict_json(report.model_dump(mode="json")))
    else:
        print(format_report(report))
    return 0 if report.fits else 1
