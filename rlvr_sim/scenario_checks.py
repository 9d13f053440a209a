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
        if tp > sc.hardware.gpus_per_node:
            return [f"{section}.tp={tp} exceeds hardware.gpus_per_node={sc.hardware.gpus_per_node}"
                    f": tensor parallelism stays inside a node; use {_words(within)} and raise "
                    f"{section}.pp instead"]
        return []
    what = (f"does not divide num_attention_heads={heads}" if heads % tp else
            f"and num_key_value_heads={kvh} do not divide one another")
    return [f"{section}.tp={tp} {what} of {m.name}; use {_words(within)}"]


def _shape_problems(sc: "Scenario", section: str, gpus: int, tp: int, pp: int) -> list[str]:
    out = _tp_problems(sc, section, tp)
    layers = sc.model.num_hidden_layers
    if pp > layers:
        out.append(f"{section}.pp={pp} exceeds num_hidden_layers={layers} of {sc.model.name}; "
                   f"use at most {layers}")
    if gpus % (tp * pp):
        good = [g for g in (tp * pp * i for i in range(1, 5))]
        out.append(f"{section}.gpus={gpus} is not a multiple of {section}.tp x {section}.pp = "
                   f"{tp * pp}; use {_words(good)}")
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
                         recompute_activations=t.recompute_activations)
    if not mem.fits:
        out.append(f"trainer: {mem.reason}")
    return out


def scenario_problems(sc: "Scenario", check_fit: bool = True) -> list[str]:
    """Every cross-field problem of a scenario (empty when consistent)."""
    s, t, o = sc.sampler, sc.trainer, sc.orchestration
    out = _shape_problems(sc, "sampler", s.gpus, s.tp, s.pp)
    out += _shape_problems(sc, "trainer", t.gpus, t.tp, t.pp)
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
