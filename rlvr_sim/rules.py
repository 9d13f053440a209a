"""The configuration rules of an RLVR run, in one place (issue 17).

Each rule is a pure function over plain typed values (degrees, GPU counts, placement and mode
strings, a `ModelSpec`) and returns the `Violation`s it finds: the dotted field, its value, what
is wrong and the fix. The same functions decide for every client:

- scenario loading (`rlvr_sim.scenario_checks` applies them to a `Scenario`);
- `rlvr_sim.sim.config.SimConfig` (placement/mode rules on the numbers it is built from);
- the planner's space (`rlvr_sim.sweep.space.SearchSpace.allows`);
- the executor (`core_loop_runs`: which runs the colocated-sync GRPO loop executes).

Not here: numeric ranges (`rlvr_sim.input_limits`), single-field bounds (pydantic `Field`s), and
whether a configuration fits in memory, which is a cost-model result
(`rlvr_sim.cost.fit.memory_fit`). Rules only look at shapes and modes; they never compute costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlvr_sim.model_spec import ModelSpec

COLOCATED = "colocated"
DISAGGREGATED = "disaggregated"
SYNC = "sync"
ASYNC = "async"


@dataclass(frozen=True)
class Violation:
    """One broken rule: `field` (dotted) holds `value`; `problem` says why; `fix` what to do.

    `shown` is the value as the message prints it (YAML spelling: `true`, `0.5`); `str()` is the
    user-facing line `field=shown problem; fix`."""

    field: str
    value: object
    problem: str
    fix: str
    shown: str | None = None

    def __str__(self) -> str:
        shown = self.shown if self.shown is not None else str(self.value)
        return f"{self.field}={shown} {self.problem}; {self.fix}"


def _yaml(v: bool) -> str:
    return "true" if v else "false"


def divisors(n: int) -> list[int]:
    """The positive divisors of `n`, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def words(options: list[int]) -> str:
    """`1, 2 or 4`: a list of options as the fix text spells it."""
    s = [str(o) for o in options]
    return s[0] if len(s) == 1 else ", ".join(s[:-1]) + " or " + s[-1]


# --- parallel shapes ------------------------------------------------------------------------------
def tp_degrees(model: "ModelSpec") -> list[int]:
    """TP degrees the attention heads allow: divisors of the query heads that divide the KV heads
    or are a multiple of them (KV heads are replicated, not split, past their count)."""
    heads, kvh = model.num_attention_heads, model.kv_heads
    return [d for d in divisors(heads) if (kvh % d == 0 or d % kvh == 0)]


def tensor_parallel(section: str, tp: int, model: "ModelSpec", gpus_per_node: int) -> list[Violation]:
    """TP splits the heads evenly, and a TP group wider than a node spans whole nodes."""
    ok = tp_degrees(model)
    within = [d for d in ok if d <= gpus_per_node] or ok
    if tp in ok:
        if tp > gpus_per_node and tp % gpus_per_node:
            return [Violation(f"{section}.tp", tp,
                              "spans nodes but is not a multiple of hardware.gpus_per_node="
                              f"{gpus_per_node}",
                              f"use {words(within)} or a multiple of {gpus_per_node} (TP across "
                              "nodes runs its all-reduces over the network)")]
        return []
    heads, kvh = model.num_attention_heads, model.kv_heads
    what = (f"does not divide num_attention_heads={heads}" if heads % tp else
            f"and num_key_value_heads={kvh} do not divide one another")
    return [Violation(f"{section}.tp", tp, f"{what} of {model.name}", f"use {words(within)}")]


def pipeline_parallel(section: str, pp: int, model: "ModelSpec") -> list[Violation]:
    """PP gives each stage at least one layer."""
    layers = model.num_hidden_layers
    if pp <= layers:
        return []
    return [Violation(f"{section}.pp", pp, f"exceeds num_hidden_layers={layers} of {model.name}",
                      f"use at most {layers}")]


def pool_divides(section: str, gpus: int, tp: int, pp: int, cp: int = 1) -> list[Violation]:
    """A pool holds whole model-parallel groups: gpus is a multiple of tp x pp (x cp)."""
    group = tp * pp * cp
    if gpus % group == 0:
        return []
    good = [group * i for i in range(1, 5)]
    what = f"{section}.tp x {section}.pp" + (f" x {section}.cp" if cp > 1 else "")
    return [Violation(f"{section}.gpus", gpus, f"is not a multiple of {what} = {group}",
                      f"use {words(good)}")]


def pool_shape(section: str, gpus: int, tp: int, pp: int, model: "ModelSpec", gpus_per_node: int,
               cp: int = 1) -> list[Violation]:
    """TP, PP and the pool's size together (`tensor_parallel`, `pipeline_parallel`,
    `pool_divides`)."""
    return (tensor_parallel(section, tp, model, gpus_per_node)
            + pipeline_parallel(section, pp, model) + pool_divides(section, gpus, tp, pp, cp))


def expert_parallel(section: str, ep: int, model: "ModelSpec", group: int,
                    group_name: str) -> list[Violation]:
    """EP needs a MoE model, splits its experts evenly and divides its group (`group_name`)."""
    if ep == 1:
        return []
    if not model.is_moe:
        return [Violation(f"{section}.ep", ep, "needs a mixture-of-experts model",
                          f"{model.name} is dense: set {section}.ep: 1")]
    out = []
    if model.num_experts % ep:
        fit = [d for d in divisors(model.num_experts) if d <= group][-3:]
        out.append(Violation(f"{section}.ep", ep,
                             f"does not divide num_experts={model.num_experts} of {model.name}",
                             f"use {words(fit)}"))
    if group % ep:
        out.append(Violation(f"{section}.ep", ep, f"does not divide {group_name}={group}",
                             f"use a divisor of {group}"))
    return out


def fsdp_shard(shard_size: int | None, fsdp: bool, gpus: int, tp: int, pp: int,
               cp: int) -> list[Violation]:
    """An FSDP hybrid shard divides the data-parallel degree gpus / (tp x pp x cp)."""
    if shard_size is None or not fsdp:
        return []
    dp = max(gpus // (tp * pp * cp), 1)
    if dp % shard_size == 0:
        return []
    return [Violation("trainer.fsdp_shard_size", shard_size,
                      f"does not divide the data-parallel degree {dp} (trainer.gpus / "
                      "(tp x pp x cp))", f"use a divisor of {dp}")]


# --- placement and mode ---------------------------------------------------------------------------
def colocated_is_sync(placement: str, mode: str) -> list[Violation]:
    """Colocated pools take turns on the same GPUs, so a colocated run is synchronous."""
    if placement == COLOCATED and mode == ASYNC:
        return [Violation("orchestration.mode", mode, "needs separate pools",
                          "set orchestration.placement: disaggregated or mode: sync")]
    return []


def colocated_shares_gpus(placement: str, sampler_gpus: int, trainer_gpus: int) -> list[Violation]:
    """Colocated pools are the same GPUs: trainer.gpus == sampler.gpus."""
    if placement == COLOCATED and trainer_gpus != sampler_gpus:
        return [Violation("trainer.gpus", trainer_gpus,
                          f"differs from sampler.gpus={sampler_gpus}, but colocated placement "
                          "shares the GPUs",
                          f"set trainer.gpus: {sampler_gpus} or orchestration.placement: "
                          "disaggregated")]
    return []


def ipc_needs_colocated(method: str, placement: str) -> list[Violation]:
    """CUDA IPC weight sync shares GPU memory, which only colocated pools have."""
    if method == "ipc" and placement != COLOCATED:
        return [Violation("orchestration.weight_sync.method", method,
                          "shares GPU memory, so it needs orchestration.placement: colocated",
                          "use nccl or nixl for separate pools")]
    return []


def streaming_needs_async(streaming: bool, mode: str) -> list[Violation]:
    """A streaming trainer trains mini-batches of an async run as they are verified."""
    if streaming and mode != ASYNC:
        return [Violation("trainer.streaming", streaming, "streams mini-batches of an async run",
                          "set orchestration.mode: async or trainer.streaming: false",
                          shown=_yaml(streaming))]
    return []


def async_only(staleness_threshold: float | None, weight_update: str | None,
               mode: str) -> list[Violation]:
    """Fractional staleness and a non-drain weight update mean something only in async runs."""
    if mode == ASYNC:
        return []
    out = []
    if staleness_threshold is not None:
        out.append(Violation("orchestration.staleness_threshold", staleness_threshold,
                             "applies to async runs",
                             "set orchestration.mode: async or remove it"))
    if weight_update not in (None, "drain"):
        out.append(Violation("orchestration.weight_update", weight_update,
                             "applies to async runs",
                             "set orchestration.mode: async or remove it"))
    return out


def inference_only(inference_only: bool, arrival_qps: float | None, placement: str,
                   mode: str) -> list[Violation]:
    """Arrival rates belong to inference runs; an inference run is the sampler pool alone
    (disaggregated, sync)."""
    out = []
    if arrival_qps is not None and not inference_only:
        out.append(Violation("orchestration.arrival_qps", arrival_qps, "applies to inference runs",
                             "set orchestration.inference_only: true or remove it",
                             shown=f"{arrival_qps:g}"))
    if inference_only and (placement != DISAGGREGATED or mode != SYNC):
        out.append(Violation("orchestration.inference_only", inference_only,
                             "runs the sampler pool alone",
                             "set orchestration.placement: disaggregated and mode: sync",
                             shown=_yaml(inference_only)))
    return out


# --- derived by the rules -------------------------------------------------------------------------
def run_gpus(placement: str, inference_only: bool, sampler_gpus: int, trainer_gpus: int) -> int:
    """GPUs a run occupies: colocated pools share theirs, an inference-only run has no trainer."""
    if placement == COLOCATED or inference_only:
        return sampler_gpus
    return sampler_gpus + trainer_gpus


def staleness_steps(mode: str, max_staleness: int) -> int:
    """Steps a sampler may run ahead of the trainer: max_staleness in async runs, 0 in sync."""
    return max_staleness if mode == ASYNC else 0


# --- the executor ---------------------------------------------------------------------------------
def core_loop_runs(placement: str, mode: str, backend: str) -> bool:
    """True when `executor.loop.run_grpo` (one process, hf backend, colocated sync) executes the
    run; every other combination goes to `executor.orchestrator.run_orchestrated`."""
    return placement == COLOCATED and mode == SYNC and backend == "hf"
