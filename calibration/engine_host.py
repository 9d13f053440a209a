"""Host costs of the vLLM sampler outside its engine steps, fitted for `calibrate --backend vllm`.

Two terms the engine-step fit (calibration.engine_cli) cannot see, because the engine runs drive
`llm_engine.step()` themselves:

- the generate CALL (`sampler_call_fixed_s` + `sampler_call_s_per_seq` x sequences): what
  `executor.sampler_vllm.VllmSampler.generate` costs beyond the engine's own steps (request
  fan-out, behaviour log-probs, output assembly). Fitted from generate-probe records
  (calibration.engine_generate_probe: calls of several sizes, CPU clock): per call, the CPU
  seconds less the simulator's engine replay of the same requests with the profile being
  written; linear least squares (non-negative) on [1, sequences]. With one call size only the
  two parts cannot be told apart: the fixed part is then left None and the whole residual is
  per sequence (said in the diagnostics).
- the weight LOAD into the engine (`sync_per_tensor_s`, an existing weight-sync term): the
  engine's in-flight weight updates of the recorded wu-* runs (calibration.engine_update), CPU
  clock, less the modelled load_weights copy (shard / (memory bandwidth x load efficiency)),
  spread over the checkpoint's named tensors (cost.params.tensor_count). One model size: the
  per-tensor and per-byte parts cannot be told apart; per tensor is the choice because the
  copy of a 4M-parameter model is ~1 ms of the ~23 ms measured.

Neither fit reads the GRPO sessions (calibration/engine_runs/grpo-vllm/), which stay held out.
The wu-* runs are held-out ENGINE workloads, but their replay takes the measured update duration
as an input (engine_update.update_instant), so fitting the load term on them changes no
engine-validation number.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.engine_records import EngineRun
from rlvr_sim.hardware import HardwareProfile
from rlvr_sim.model_spec import ModelSpec

CALL_TERMS = ("sampler_call_fixed_s", "sampler_call_s_per_seq")
LOAD_TERMS = ("sync_per_tensor_s",)


@dataclass(frozen=True)
class ProbeCall:
    """One timed generate call of the probe: its shape, the lengths it produced, its clocks."""

    prompts: int
    k: int
    prompt_tokens: int
    lengths: tuple[int, ...]
    cpu_s: float
    wall_s: float
    cpu_share: float
    model: str

    @property
    def sequences(self) -> int:
        return self.prompts * self.k


def load_probe(path: Path) -> list[ProbeCall]:
    """The calls of one probe record (engine_generate_probe's JSON; records written before
    `--shapes` existed have one shape, in `shape`)."""
    d = json.loads(path.read_text())
    shape = d["shape"]
    return [ProbeCall(prompts=int(r.get("prompts", shape["prompts"])), k=int(r.get("k", shape["k"])),
                      prompt_tokens=int(shape["prompt_tokens"]), lengths=tuple(r["lengths"]),
                      cpu_s=float(r["cpu_s"]), wall_s=float(r["wall_s"]),
                      cpu_share=float(r["cpu_share"]), model=str(d.get("model", "tiny-4m")))
            for r in d["rows"]]


def engine_replay_s(call: ProbeCall, hw: HardwareProfile) -> float:
    """The simulator engine's generate time of the call's requests (all at t = 0) with `hw`."""
    from calibration.engine_generate_probe import replay_s
    from calibration.models import BENCH_MODELS

    return replay_s(call.prompt_tokens, list(call.lengths), call.k, BENCH_MODELS[call.model], hw)


@dataclass(frozen=True)
class CallFit:
    """The generate-call terms and how the probe's calls fit them."""

    values: dict[str, float | None]
    calls: int
    sizes: tuple[int, ...]
    left_out: int                          # calls below the CPU-share floor
    median_abs_rel_error_without: float    # |replay - cpu| / cpu, terms None
    median_abs_rel_error: float            # with the fitted terms


def fit_call_terms(calls: list[ProbeCall], hw: HardwareProfile,
                   min_cpu_share: float = 0.7) -> CallFit:
    """`sampler_call_fixed_s`, `sampler_call_s_per_seq` from the probe calls that had their core
    (CPU share >= `min_cpu_share`): CPU seconds - engine replay = fixed + per_seq x sequences
    (non-negative least squares). Raises ValueError when no call qualifies."""
    from scipy.optimize import lsq_linear

    kept = [c for c in calls if not c.cpu_share < min_cpu_share]
    if not kept:
        raise ValueError(f"no probe call had CPU share >= {min_cpu_share}")
    replay = np.array([engine_replay_s(c, hw) for c in kept])
    cpu = np.array([c.cpu_s for c in kept])
    n = np.array([c.sequences for c in kept], dtype=float)
    sizes = tuple(sorted({c.sequences for c in kept}))
    resid = cpu - replay
    fixed: float | None
    if len(sizes) >= 2:
        sol = lsq_linear(np.column_stack([np.ones_like(n), n]), resid, bounds=(0.0, np.inf))
        fixed, per_seq = float(sol.x[0]), float(sol.x[1])
    else:                      # one size: only the sum is identified; all of it per sequence
        fixed, per_seq = None, max(float(np.median(resid / n)), 0.0)
    model = replay + (fixed or 0.0) + per_seq * n
    return CallFit(values={"sampler_call_fixed_s": fixed, "sampler_call_s_per_seq": per_seq},
                   calls=len(kept), sizes=sizes, left_out=len(calls) - len(kept),
                   median_abs_rel_error_without=float(np.median(np.abs(replay - cpu) / cpu)),
                   median_abs_rel_error=float(np.median(np.abs(model - cpu) / cpu)))


@dataclass(frozen=True)
class LoadFit:
    """The per-tensor weight-load term and what it came from."""

    per_tensor_s: float
    updates: int
    median_update_s: float       # measured (clock as fitted)
    copy_s: float                # the modelled load_weights copy, kept
    tensors: int


def engine_load_copy_s(m: ModelSpec, hw: HardwareProfile, dtype: str = "fp32") -> float:
    """The cost model's load_weights copy of one replica's weights (one device, no transfer)."""
    from rlvr_sim.cost.weight_sync import SyncLayout, weight_sync

    lay = SyncLayout(placement="disaggregated", method="nccl", sampler_gpus=1, trainer_gpus=1,
                     gpus_per_node=1, dtype=dtype)
    return weight_sync(m, hw, lay).load_s


def fit_load_term(runs: list[EngineRun], hw: HardwareProfile, clock: str = "cpu") -> LoadFit:
    """`sync_per_tensor_s` = (median measured engine weight update - modelled copy) / tensors,
    over every weight update of `runs` (one model). Raises ValueError without updates or with
    runs of several models (per tensor and per byte would then need a joint fit)."""
    from rlvr_sim.cost.params import tensor_count

    ups = [(r, u) for r in runs for u in r.weight_updates]
    if not ups:
        raise ValueError("no weight updates in the runs")
    names = {r.model.get("name") for r, _ in ups}
    if len(names) != 1:
        raise ValueError(f"weight updates of several models {sorted(map(str, names))}: fit one")
    m = ModelSpec.from_hf_config_dict(ups[0][0].model)
    secs = [u.duration_cpu_s if clock == "cpu" and u.duration_cpu_s is not None else u.duration_s
            for _, u in ups]
    med = statistics.median(secs)
    copy = engine_load_copy_s(m, hw)
    tensors = tensor_count(m)
    return LoadFit(per_tensor_s=max(med - copy, 0.0) / tensors, updates=len(ups),
                   median_update_s=med, copy_s=copy, tensors=tensors)


def with_terms(hw: HardwareProfile, values: dict[str, float | None]) -> HardwareProfile:
    """`hw` with efficiency terms replaced."""
    return hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update=values)})

