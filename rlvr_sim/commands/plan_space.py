"""`rlvr-sim plan`'s flags as a search: the search space, its base allocation, the fixed `--set`
prefix every plan shares, and the base scenario (parsed and checked; errors name the flag)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rlvr_sim.errors import UserError
from rlvr_sim.sweep.grid import Plan, parse_grid_option
from rlvr_sim.sweep.space import Allocation, SearchSpace, default_sizes

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario


def _int_list(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError as exc:
        raise UserError(f"{flag} {text!r}: expected comma-separated integers such as 1,2,4") from exc
    if not values or min(values) < 0:
        raise UserError(f"{flag} {text!r}: expected non-negative integers such as 1,2,4")
    return values


def _options(flag: str, text: str | None, scenario_value: int) -> tuple[int, ...]:
    """Option list from a flag, else the scenario's value alone."""
    values = _int_list(flag, text) if text else (int(scenario_value),)
    if min(values) < 1:
        raise UserError(f"{flag} {text!r}: every option must be at least 1")
    return values


def _start(options: tuple[int, ...], scenario_value: int) -> int:
    """Where the search starts: the scenario's value when offered, else the smallest option."""
    return int(scenario_value) if int(scenario_value) in options else min(options)


def fixed_plan(args: argparse.Namespace) -> Plan:
    """The `--set` overrides as one plan prefix (one value per key)."""
    pairs = [parse_grid_option(item) for item in getattr(args, "set", [])]
    for key, values in pairs:
        if len(values) != 1:
            raise UserError(f"--set {key}={','.join(values)}: give one value (use `rlvr-sim sweep --grid` for several)")
    return Plan(tuple((key, values[0]) for key, values in pairs))


MAX_TOTAL_GPUS = 65_536   # the largest pool the split search is meant for (a hang beyond, not a plan)


def build_space(args: argparse.Namespace) -> tuple[SearchSpace, Allocation]:
    """The search space from the flags and the base allocation from the scenario."""
    from rlvr_sim.scenario import load_scenario

    if not Path(args.scenario).is_file():
        raise UserError(f"scenario {args.scenario!r}: no such file")
    if args.total_gpus < 1:
        raise UserError(f"--total-gpus {args.total_gpus}: give at least 1 GPU")
    if args.total_gpus > MAX_TOTAL_GPUS:
        raise UserError(f"--total-gpus {args.total_gpus:,}: more than {MAX_TOTAL_GPUS:,} GPUs ; the search "
                        "enumerates splits of the whole pool, so plan a realistic size (e.g. --total-gpus 1024)")
    fixed = fixed_plan(args)
    scenario = load_scenario(args.scenario, overrides=fixed.overrides(), check_fit=False)   # the search varies what must fit
    gpus = tuple(g.strip() for g in args.gpu.split(",") if g.strip()) if args.gpu else (scenario.hardware.gpu,)
    for gpu in gpus:   # an unknown GPU name is the user's typo, not a search result
        load_scenario(args.scenario, overrides=[*fixed.overrides(), f"hardware.gpu={gpu}"], check_fit=False)
    per_node = int(scenario.hardware.gpus_per_node)
    sizes = (_int_list("--sizes", args.sizes) if args.sizes else default_sizes(args.total_gpus, per_node))
    if max(sizes) > args.total_gpus or min(sizes) < 1:
        raise UserError(f"--sizes {args.sizes!r}: every size must be between 1 and --total-gpus {args.total_gpus}")
    mini = _int_list("--mini-batches", args.mini_batches) if args.mini_batches else (int(scenario.trainer.mini_batches),)
    knobs = tuple((key, tuple(values)) for key, values in (parse_grid_option(k) for k in getattr(args, "knob", [])))
    for key, values in knobs:      # a knob the scenario does not accept is the user's typo
        for value in values:
            load_scenario(args.scenario, overrides=[*fixed.overrides(), f"{key}={value}"], check_fit=False)
    space = SearchSpace(gpus=gpus, sizes=tuple(sorted(sizes, reverse=True)),
                        sampler_tps=_int_list("--sampler-tp", args.sampler_tp),
                        trainer_tps=_int_list("--trainer-tp", args.trainer_tp),
                        staleness=_int_list("--staleness", args.staleness), mini_batches=mini, gpus_per_node=per_node,
                        sampler_pps=_options("--sampler-pp", args.sampler_pp, scenario.sampler.pp),
                        trainer_pps=_options("--trainer-pp", args.trainer_pp, scenario.trainer.pp), knobs=knobs)
    base_tp_s = _start(space.sampler_tps, scenario.sampler.tp)
    base_tp_t = _start(space.trainer_tps, scenario.trainer.tp)
    base = Allocation(gpus[0], sizes[0], "colocated", sizes[0], base_tp_s, sizes[0], base_tp_t, 0, mini[0],
                      _start(space.sampler_pps, scenario.sampler.pp), _start(space.trainer_pps, scenario.trainer.pp),
                      tuple((key, values[0]) for key, values in knobs))
    return space, base


def base_scenario(args: argparse.Namespace) -> Scenario:
    from rlvr_sim.scenario import load_scenario

    return load_scenario(args.scenario, overrides=fixed_plan(args).overrides(), check_fit=False)
