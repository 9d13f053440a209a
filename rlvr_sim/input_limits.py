"""Numeric ranges a scenario may hold so that the cost model and the simulator can represent it.

Field validators check signs and types; this module checks magnitudes after them and before the
cross-field rules (which compute memory plans and would overflow or allocate first). A value past
its range is almost always a typo (`2**64` prompts, `1e308` tokens, seed `-1`); the message names
the dotted field, the value and the largest (or smallest) accepted value.

Ranges (`limit_problems` applies them in this order; the first that matches a field decides):
- `EXACT`: named fields (batch shape, seed, pool sizes) with the reason for each bound;
- token distributions (`workload.prompt_tokens.*`, `workload.response_tokens.*`): at most
  `MAX_TOKENS` per sequence;
- verifier seconds (`verifier.latency_s.*`, `verifier.timeout_s`, `verifier.rpc_latency_s`):
  at most `MAX_SECONDS`;
- integer model shapes (`model.*`): at most `MAX_MODEL_DIM`;
- every other number: magnitude at most `MAX_MAGNITUDE` (prices, bandwidths, executor settings).
Plus one product: prompts_per_step x samples_per_prompt <= `MAX_SEQUENCES_PER_STEP`, since the
simulator draws arrays of that length each step.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from rlvr_sim.safe_read import echo

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario

MAX_TOKENS = 2**24                 # 16.7M tokens in one prompt or response
MAX_SECONDS = 1e7                  # ~116 days for one verification
MAX_MODEL_DIM = 2**24              # hidden size, layers, vocab, experts, context ...
MAX_MAGNITUDE = 1e15               # anything else: beyond this products overflow or lose meaning
MAX_SEQUENCES_PER_STEP = 2**20


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    why: str


EXACT: dict[str, Range] = {
    "workload.seed": Range(0, 2**32 - 1, "numpy and torch seeds are unsigned 32-bit"),
    "executor.seed": Range(0, 2**32 - 1, "numpy and torch seeds are unsigned 32-bit"),
    "workload.prompts_per_step": Range(1, MAX_SEQUENCES_PER_STEP, "one array entry per prompt"),
    "workload.samples_per_prompt": Range(1, 2**16, "GRPO groups are a few to a few hundred"),
    "workload.steps": Range(1, 10**9, "run length"),
    "sampler.gpus": Range(1, 2**20, "GPUs in one pool"),
    "trainer.gpus": Range(1, 2**20, "GPUs in one pool"),
    "sampler.tp": Range(1, 2**20, "GPUs in one pool"),
    "sampler.pp": Range(1, 2**20, "GPUs in one pool"),
    "trainer.tp": Range(1, 2**20, "GPUs in one pool"),
    "trainer.pp": Range(1, 2**20, "GPUs in one pool"),
    "trainer.mini_batches": Range(1, MAX_SEQUENCES_PER_STEP, "at most one per sequence"),
    "sampler.max_concurrent_sequences": Range(1, MAX_SEQUENCES_PER_STEP, "sequences per replica"),
    "verifier.workers": Range(1, 2**20, "one simulated process each"),
    "orchestration.max_staleness": Range(0, 10**6, "steps of lag"),
}
_TOKEN_PREFIXES = ("workload.prompt_tokens.", "workload.response_tokens.")
_SECOND_FIELDS = ("verifier.latency_s.", "verifier.timeout_s", "verifier.rpc_latency_s")


def _range_for(path: str, value: float) -> Range:
    if path in EXACT:
        return EXACT[path]
    if path.startswith(_TOKEN_PREFIXES):
        return Range(-MAX_TOKENS, MAX_TOKENS, "tokens in one sequence")
    if path.startswith(_SECOND_FIELDS):
        return Range(-MAX_SECONDS, MAX_SECONDS, "seconds for one verification")
    if path.startswith("model.") and isinstance(value, int):
        return Range(-MAX_MODEL_DIM, MAX_MODEL_DIM, "a model dimension")
    return Range(-MAX_MAGNITUDE, MAX_MAGNITUDE, "larger values overflow the cost model")


def _numbers(value: Any, path: str) -> Iterator[tuple[str, float]]:
    """(dotted path, number) for every number in a dumped scenario; list items share the path."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item, path)


def limit_problems(sc: "Scenario") -> list[str]:
    """Every out-of-range number of a field-validated scenario, one message per field."""
    data = sc.model_dump(exclude={"model"})
    data["model"] = sc.model.model_dump()
    out, flagged = [], set()
    for path, value in _numbers(data, ""):
        if path in flagged:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"{path}={value} is not a finite number ; give a finite value")
            flagged.add(path)
            continue
        rng = _range_for(path, value)
        if value > rng.high:
            out.append(f"{path}={echo(value, 40)} is above {_num(rng.high)}, the largest value "
                       f"accepted ({rng.why}) ; use a value up to {_num(rng.high)}")
            flagged.add(path)
        elif value < rng.low:
            out.append(f"{path}={echo(value, 40)} is below {_num(rng.low)}, the smallest value "
                       f"accepted ({rng.why}) ; use a value from {_num(rng.low)}")
            flagged.add(path)
    w = sc.workload
    if not out and w.prompts_per_step * w.samples_per_prompt > MAX_SEQUENCES_PER_STEP:
        out.append(f"workload.prompts_per_step x workload.samples_per_prompt = "
                   f"{w.prompts_per_step * w.samples_per_prompt:,} sequences per step is above "
                   f"{MAX_SEQUENCES_PER_STEP:,} ; lower one of them")
    return out


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def seed_arg(text: str) -> int:
    """argparse `type=` for a `--seed` flag: an integer in the seed range of `workload.seed`."""
    rng = EXACT["workload.seed"]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer ; e.g. --seed 0") from None
    if not rng.low <= value <= rng.high:
        raise argparse.ArgumentTypeError(f"{value} is outside {_num(rng.low)}..{_num(rng.high)} "
                                         f"({rng.why}) ; e.g. --seed 0")
    return value
