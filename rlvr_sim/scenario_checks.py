"""Cross-field rules of a scenario: parallel shapes, placement, and whether the model fits.

`check_scenario` collects every problem as `dotted.field=value ...; fix` and raises them together
as one pydantic error of type `scenario_check` (so `load_scenario` reports them with the others).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _words(options: list[int]) -> str:
    s = [str(o) for o in options]
    return s[0] if len(s) == 1 else ", ".join(s[:-1]) + " or " + s[-1]


def _tp_problems(sc: "Scenario", section: str, tp: int) -> list[str]:
    m = sc.model
    heads, kvh = m.num_attention_heads, m.kv_heads
    ok = [d for d in _divisors(heads) if (kvh % d == 0 or d % kvh == 0)]
    within = [d for d in ok if d <= sc.hardware.gpus_per_node] or ok
    if tp in ok:
        gpn = sc.hardware.gpus_per_node
        if tp > gpn and tp % gpn:
            return [f"{section}.tp={tp} spans nodes but is not a multiple of "
                    f"hardware.gpus_per_node={gpn}; use {_words(within)} or a multiple of {gpn} "
                    "(TP across nodes runs its all-reduces over the network)"]
        return []
    what = (f"does not divide num_attention_heads={heads}" if heads % tp else
            f"and num_key_value_heads={kvh} do not divide one another")
    return [f"{section}.tp={tp} {what} of {m.name}; use {_words(within)}"]


def _shape_problems(sc: "Scenario", section: str, gpus: int, tp: int, pp: int,
                    cp: int = 1) -> list[str]:
    out = _tp_problems(sc, section, tp)
    layers = sc.model.num_hidden_layers
    if pp > layers:
        out.append(f"{section}.pp={pp} exceeds num_hidden_layers={layers} of {sc.model.name}; "
                   f"use at most {layers}")
    group = tp * pp * cp
    if gpus % group:
        good = [g for g in (group * i for i in range(1, 5))]
        what = f"{section}.tp x {section}.pp" + (f" x {section}.cp" if cp > 1 else "")
        out.append(f"{section}.gpus={gpus} is not a multiple of {what} = {group}; "
                   f"use {_words(good)}")
    return out


def _mechanism_problems(sc: "Scenario") -> list[str]:
    """Expert/context parallelism, staleness and inference-mode rules."""
    m, s, t, o = sc.model, sc.sampler, sc.trainer, sc.orchestration
    out: list[str] = []
    for section, ep, group, what in (("sampler", s.ep, s.tp * s.pp, "sampler.tp x sampler.pp"),
                                     ("trainer", t.ep, t.gpus, "trainer.gpus")):
        if ep == 1:
            continue
        if not m.is_moe:
            out.append(f"{section}.ep={ep} needs a mixture-of-experts model; {m.name} is dense: "
                       f"set {section}.ep: 1")
            continue
        if m.num_experts % ep:
            out.append(f"{section}.ep={ep} does not divide num_experts={m.num_experts} of "
                       f"{m.name}; use {_words([d for d in _divisors(m.num_experts) if d <= group][-3:])}")
        if group % ep:
            out.append(f"{section}.ep={ep} does not divide {what}={group}; use a divisor of {group}")
    if t.fsdp_shard_size is not None and t.fsdp:
        dp = max(t.gpus // (t.tp * t.pp * t.cp), 1)
        if dp % t.fsdp_shard_size:
            out.append(f"trainer.fsdp_shard_size={t.fsdp_shard_size} does not divide the "
                       f"data-parallel degree {dp} (trainer.gpus / (tp x pp x cp)); use a divisor "
                       f"of {dp}")
    if o.staleness_threshold is not None and o.mode != "async":
        out.append(f"orchestration.staleness_threshold={o.staleness_threshold} applies to async "
                   "runs; set orchestration.mode: async or remove it")
    if o.weight_update not in (None, "drain") and o.mode != "async":
        out.append(f"orchestration.weight_update={o.weight_update} applies to async runs; set "
                   "orchestration.mode: async or remove it")
    if o.arrival_qps is not None and not o.inference_only:
        out.append(f"orchestration.arrival_qps={o.arrival_qps:g} applies to inference runs; set "
                   "orchestration.inference_only: true or remove it")
    if o.inference_only and (o.placement != "disaggregated" or o.mode != "sync"):
        out.append("orchestration.inference_only=true runs the sampler pool alone; set "
                   "orchestration.placement: disaggregated and mode: sync")
    if t.streaming and o.mode != "async":
        out.append("trainer.streaming=true streams mini-batches of an async run; set "
                   "orchestration.mode: async or trainer.streaming: false")
    if o.weight_sync.method == "ipc" and o.placement != "colocated":
        out.append("orchestration.weight_sync.method=ipc shares GPU memory, so it needs "
                   "orchestration.placement: colocated; use nccl or nixl for separate pools")
    return out


def _fit_problems(sc: "Scenario") -> list[str]:
    from rlvr_sim.cost.memory import sampler_memory_plan, trainer_memory

    hw = sc.hardware_profile
    s, t = sc.sampler, sc.trainer
    ctx = sc.max_context_tokens
    plan = sampler_memory_plan(
        sc.model, hw.datasheet.hbm_bytes, tp=s.tp, pp=s.pp,
        gpu_memory_utilization=s.gpu_memory_utilization, weight_dtype=s.weight_dtype,
        kv_dtype=s.kv_dtype, block_tokens=s.block_tokens, max_num_seqs=s.max_concurrent_sequences,
        prefix_caching=s.prefix_caching, min_context_tokens=ctx)
    out = [] if plan.fits else [f"sampler: {plan.reason}"]
    mem = trainer_memory(sc.model, hw.datasheet.hbm_bytes, gpus=t.gpus, tp=t.tp, pp=t.pp,
                         fsdp=t.fsdp, seq_tokens=ctx, reference_model=t.reference_model,
                         recompute_activations=t.recompute_activations, cp=t.cp, ep=t.ep,
                         fsdp_shard_size=t.fsdp_shard_size, offload_optimizer=t.offload_optimizer,
                         offload_params=t.offload_params)
    if sc.orchestration.inference_only:
        return out
    if not mem.fits:
        out.append(f"trainer: {mem.reason}")
    return out


def scenario_problems(sc: "Scenario", check_fit: bool = True) -> list[str]:
    """Every cross-field problem of a scenario (empty when consistent)."""
    s, t, o = sc.sampler, sc.trainer, sc.orchestration
    out = _shape_problems(sc, "sampler", s.gpus, s.tp, s.pp)
    out += _shape_problems(sc, "trainer", t.gpus, t.tp, t.pp, t.cp)
    out += _mechanism_problems(sc)
    if o.placement == "colocated" and t.gpus != s.gpus:
        out.append(f"trainer.gpus={t.gpus} differs from sampler.gpus={s.gpus}, but colocated "
                   f"placement shares the GPUs; set trainer.gpus: {s.gpus} or "
                   "orchestration.placement: disaggregated")
    if o.placement == "colocated" and o.mode == "async":
        out.append("orchestration.mode=async needs separate pools; set "
                   "orchestration.placement: disaggregated or mode: sync")
    if out or not check_fit:
        return out
    return _fit_problems(sc)


def check_scenario(sc: "Scenario", check_fit: bool = True) -> None:
    problems = scenario_problems(sc, check_fit)
    if problems:
        raise PydanticCustomError("scenario_check", "{problems}",
                                  {"problems": "\n  - ".join(problems)})
