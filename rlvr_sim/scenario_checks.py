"""The rules of `rlvr_sim.rules` applied to a whole `Scenario`.

`scenario_violations` returns every broken rule as a typed `Violation` (field, value, problem,
fix); `check_scenario` raises them together as one pydantic error of type `scenario_check` (so
`load_scenario` reports them with the schema's). Whether the scenario fits in memory is not a
rule: it is the cost model's `rlvr_sim.cost.fit.memory_fit`, which `load_scenario` calls once
these pass; `scenario_problems(sc, check_fit=True)` adds its lines for reports (`describe`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import PydanticCustomError

from rlvr_sim import rules
from rlvr_sim.rules import Violation

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario


def scenario_violations(sc: "Scenario") -> list[Violation]:
    """Every rule a scenario breaks (empty when consistent), in a fixed order: pool shapes,
    expert/FSDP sharding, mode-specific options, placement."""
    m, s, t, o = sc.model, sc.sampler, sc.trainer, sc.orchestration
    gpn = sc.hardware.gpus_per_node
    out = rules.pool_shape("sampler", s.gpus, s.tp, s.pp, m, gpn)
    out += rules.pool_shape("trainer", t.gpus, t.tp, t.pp, m, gpn, t.cp)
    out += rules.expert_parallel("sampler", s.ep, m, s.tp * s.pp, "sampler.tp x sampler.pp")
    out += rules.expert_parallel("trainer", t.ep, m, t.gpus, "trainer.gpus")
    out += rules.fsdp_shard(t.fsdp_shard_size, t.fsdp, t.gpus, t.tp, t.pp, t.cp)
    out += rules.async_only(o.staleness_threshold, o.weight_update, o.mode)
    out += rules.inference_only(o.inference_only, o.arrival_qps, o.placement, o.mode)
    out += rules.streaming_needs_async(t.streaming, o.mode)
    out += rules.ipc_needs_colocated(o.weight_sync.method, o.placement)
    out += rules.colocated_shares_gpus(o.placement, s.gpus, t.gpus)
    out += rules.colocated_is_sync(o.placement, o.mode)
    return out


def scenario_problems(sc: "Scenario", check_fit: bool = True) -> list[str]:
    """Every problem of a scenario as a message line (empty when consistent): the broken rules,
    else (with `check_fit`) the pools that do not fit in memory."""
    out = [str(v) for v in scenario_violations(sc)]
    if out or not check_fit:
        return out
    from rlvr_sim.cost.fit import memory_fit

    return memory_fit(sc).problems()


def raise_problems(problems: list[str]) -> None:
    """Raise `problems` (if any) as one pydantic `scenario_check` error (one line each)."""
    if problems:
        raise PydanticCustomError("scenario_check", "{problems}",
                                  {"problems": "\n  - ".join(problems)})


def check_scenario(sc: "Scenario") -> None:
    """Raise every broken rule of `sc` as one `scenario_check` error."""
    raise_problems([str(v) for v in scenario_violations(sc)])
