"""The allocation space `rlvr-sim plan` searches, its exhaustive enumeration and its neighbourhoods.

An `Allocation` fixes what a capacity planner chooses for a given workload: GPU type, how many
GPUs in all, colocated or disaggregated, sampler vs trainer GPUs, TP degree of each pool, sync or
async with a staleness bound, optimizer mini-batches per RL step, and any other scenario field
listed as a knob (an override path and its values, e.g. `orchestration.partial_rollout`; new
mechanisms such as a streaming trainer or fractional staleness are searched this way as soon as
the scenario accepts them). Everything else comes from the base scenario. Structural rules checked here (cheaply, before any simulation): TP divides its
pool's GPUs and fits in a node, colocated pools share all GPUs, and colocated runs are sync.
Whether a plan fits in memory is the cost model's call, made per plan during the search.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from rlvr_sim import rules
from rlvr_sim.sweep.grid import Plan

COLOCATED = "colocated"
DISAGGREGATED = "disaggregated"


@dataclass(frozen=True, order=True)
class Allocation:
    """One plan of the search. `max_staleness == 0` means synchronous."""

    gpu: str
    total_gpus: int
    placement: str
    sampler_gpus: int
    sampler_tp: int
    trainer_gpus: int
    trainer_tp: int
    max_staleness: int
    mini_batches: int
    sampler_pp: int = 1
    trainer_pp: int = 1
    knobs: tuple[tuple[str, str], ...] = ()    # extra override paths and their values (--knob)

    @property
    def sampler_unit(self) -> int:
        """GPUs of one sampler replica (tp x pp)."""
        return self.sampler_tp * self.sampler_pp

    @property
    def trainer_unit(self) -> int:
        """GPUs of one trainer model-parallel group (tp x pp); FSDP spans the groups."""
        return self.trainer_tp * self.trainer_pp

    def plan(self) -> Plan:
        """The overrides that turn the base scenario into this allocation."""
        return Plan((
            ("hardware.gpu", self.gpu),
            ("orchestration.placement", self.placement),
            ("sampler.gpus", str(self.sampler_gpus)),
            ("sampler.tp", str(self.sampler_tp)),
            ("sampler.pp", str(self.sampler_pp)),
            ("trainer.gpus", str(self.trainer_gpus)),
            ("trainer.tp", str(self.trainer_tp)),
            ("trainer.pp", str(self.trainer_pp)),
            ("orchestration.mode", "async" if self.max_staleness > 0 else "sync"),
            ("orchestration.max_staleness", str(self.max_staleness)),
            ("trainer.mini_batches", str(self.mini_batches)),
        ) + self.knobs)

    def label(self) -> str:
        """Short human description, e.g. `64x h100-sxm disagg S40(tp2) T24(tp1) async1 mb4`."""
        mode = f"async{self.max_staleness}" if self.max_staleness else "sync"
        s_par = f"tp{self.sampler_tp}" + (f"pp{self.sampler_pp}" if self.sampler_pp > 1 else "")
        t_par = f"tp{self.trainer_tp}" + (f"pp{self.trainer_pp}" if self.trainer_pp > 1 else "")
        if self.placement == COLOCATED:
            pools = f"coloc S{self.sampler_gpus}({s_par}) T({t_par})"
        else:
            pools = f"disagg S{self.sampler_gpus}({s_par}) T{self.trainer_gpus}({t_par})"
        knobs = "".join(f" {key.rsplit('.', 1)[-1]}={value}" for key, value in self.knobs)
        return f"{self.total_gpus}x {self.gpu} {pools} {mode} mb{self.mini_batches}{knobs}"


@dataclass(frozen=True)
class SearchSpace:
    """The choices open to the planner. `sizes` are the GPU totals considered (at most the budget)."""

    gpus: tuple[str, ...]
    sizes: tuple[int, ...]
    sampler_tps: tuple[int, ...]
    trainer_tps: tuple[int, ...]
    staleness: tuple[int, ...]
    mini_batches: tuple[int, ...]
    gpus_per_node: int
    sampler_pps: tuple[int, ...] = (1,)
    trainer_pps: tuple[int, ...] = (1,)
    # other scenario fields to search, as override paths and their values, e.g.
    # (("orchestration.partial_rollout", ("false", "true")),): any knob a scenario accepts
    knobs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def knob_choices(self) -> list[tuple[tuple[str, str], ...]]:
        """Every combination of the extra knobs' values (one empty combination without knobs)."""
        return [tuple(zip((k for k, _ in self.knobs), combo))
                for combo in itertools.product(*(values for _, values in self.knobs))]

    def allows(self, a: Allocation) -> bool:
        """Structural validity (see module docstring) and membership of every choice."""
        if a.gpu not in self.gpus or a.total_gpus not in self.sizes:
            return False
        if a.sampler_tp not in self.sampler_tps or a.trainer_tp not in self.trainer_tps:
            return False
        if a.sampler_pp not in self.sampler_pps or a.trainer_pp not in self.trainer_pps:
            return False
        if a.max_staleness not in self.staleness or a.mini_batches not in self.mini_batches:
            return False
        if a.sampler_gpus < 1 or a.trainer_gpus < 1:
            return False
        if tuple(k for k, _ in a.knobs) != tuple(k for k, _ in self.knobs) or any(
                v not in values for (_, v), (_, values) in zip(a.knobs, self.knobs)):
            return False
        if a.sampler_gpus % a.sampler_unit or a.trainer_gpus % a.trainer_unit:
            return False
        if max(a.sampler_tp, a.trainer_tp) > self.gpus_per_node:
            return False
        if rules.colocated_is_sync(a.placement, "async" if a.max_staleness > 0 else "sync"):
            return False
        if a.placement == COLOCATED:
            return a.sampler_gpus == a.trainer_gpus == a.total_gpus
        return a.placement == DISAGGREGATED and a.sampler_gpus + a.trainer_gpus == a.total_gpus


def default_sizes(total_gpus: int, gpus_per_node: int, count: int = 4) -> tuple[int, ...]:
    """GPU totals to consider: the budget, then halvings (whole nodes while above one node)."""
    sizes = [total_gpus]
    while len(sizes) < count and sizes[-1] > 1:
        half = sizes[-1] // 2
        if half >= gpus_per_node and half % gpus_per_node:
            half -= half % gpus_per_node
        sizes.append(half)
    return tuple(sorted(set(s for s in sizes if s >= 1), reverse=True))


def enumerate_space(space: SearchSpace) -> list[Allocation]:
    """Every structurally valid allocation (the exhaustive baseline the search is tested against)."""
    found: list[Allocation] = []
    for gpu, total, tp_s, pp_s, tp_t, pp_t, stale, mb, knobs in itertools.product(
            space.gpus, space.sizes, space.sampler_tps, space.sampler_pps, space.trainer_tps, space.trainer_pps,
            space.staleness, space.mini_batches, space.knob_choices()):
        candidates = [Allocation(gpu, total, COLOCATED, total, tp_s, total, tp_t, stale, mb, pp_s, pp_t, knobs)]
        candidates += [Allocation(gpu, total, DISAGGREGATED, s, tp_s, total - s, tp_t, stale, mb, pp_s, pp_t, knobs)
                       for s in range(tp_s * pp_s, total, tp_s * pp_s)]
        found.extend(a for a in candidates if space.allows(a))
    return sorted(set(found))


def _step_to(values: tuple[int, ...], current: int) -> list[int]:
    """The option values just below and just above `current` in a sorted option list."""
    ordered = sorted(values)
    lower = [v for v in ordered if v < current]
    upper = [v for v in ordered if v > current]
    return ([lower[-1]] if lower else []) + ([upper[0]] if upper else [])


def neighbours(a: Allocation, space: SearchSpace) -> list[Allocation]:
    """Allocations one move away, with the same GPU type and total.

    Moves: shift the sampler/trainer split by one or two sampler replicas (or trainer groups),
    or by one or two whole nodes, either way; next TP or PP option of either pool (keeping the split, or re-rounding it to whole
    replicas/groups); next staleness option; next mini-batch option; switch placement
    (colocated <-> disaggregated at an even split).
    """
    moves: list[Allocation] = []
    if a.placement == DISAGGREGATED:
        for unit in {a.sampler_unit, a.trainer_unit, space.gpus_per_node}:
            for k in (-2, -1, 1, 2):
                s = a.sampler_gpus + k * unit
                moves.append(replace(a, sampler_gpus=s, trainer_gpus=a.total_gpus - s))
        moves.append(replace(a, placement=COLOCATED, sampler_gpus=a.total_gpus, trainer_gpus=a.total_gpus,
                             max_staleness=0))
    else:
        for stale in [v for v in space.staleness if v > 0][:1] + [0]:
            half = (a.total_gpus // 2) - (a.total_gpus // 2) % a.sampler_unit
            moves.append(replace(a, placement=DISAGGREGATED, sampler_gpus=half,
                                 trainer_gpus=a.total_gpus - half, max_staleness=stale))
    shapes = [replace(a, sampler_tp=v) for v in _step_to(space.sampler_tps, a.sampler_tp)]
    shapes += [replace(a, sampler_pp=v) for v in _step_to(space.sampler_pps, a.sampler_pp)]
    shapes += [replace(a, trainer_tp=v) for v in _step_to(space.trainer_tps, a.trainer_tp)]
    shapes += [replace(a, trainer_pp=v) for v in _step_to(space.trainer_pps, a.trainer_pp)]
    for shape in shapes:
        moves.append(shape)
        if a.placement == DISAGGREGATED:   # re-round the split to whole replicas / groups
            s = max(shape.sampler_unit, shape.sampler_gpus - shape.sampler_gpus % shape.sampler_unit)
            moves.append(replace(shape, sampler_gpus=s, trainer_gpus=a.total_gpus - s))
            t = max(shape.trainer_unit, shape.trainer_gpus - shape.trainer_gpus % shape.trainer_unit)
            moves.append(replace(shape, sampler_gpus=a.total_gpus - t, trainer_gpus=t))
    if a.placement == DISAGGREGATED:
        moves.extend(replace(a, max_staleness=v) for v in _step_to(space.staleness, a.max_staleness))
    moves.extend(replace(a, mini_batches=v) for v in _step_to(space.mini_batches, a.mini_batches))
    for i, ((key, value), (_, values)) in enumerate(zip(a.knobs, space.knobs)):
        for other in values:       # knobs are categorical: every other value is one move away
            if other != value:
                moves.append(replace(a, knobs=a.knobs[:i] + ((key, other),) + a.knobs[i + 1:]))
    unique = []
    for move in moves:
        if move != a and space.allows(move) and move not in unique:
            unique.append(move)
    return unique


def round_split(sampler_share: float, total: int, sampler_unit: int, trainer_unit: int) -> int | None:
    """Sampler GPUs nearest to `sampler_share * total` with whole replicas / model-parallel groups
    on both sides (`*_unit`: GPUs of one replica or group, tp x pp)."""
    options = [s for s in range(sampler_unit, total, sampler_unit) if (total - s) % trainer_unit == 0]
    if not options:
        return None
    return min(options, key=lambda s: (abs(s - sampler_share * total), s))
