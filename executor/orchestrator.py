"""Dispatch of a run (`run_scenario`: the one place that picks the entry point of `rlvr-sim
execute`), and disaggregated/async GRPO: a sampler process and the trainer connected by a
bounded queue.

Entry points: executor.backend=trl -> `executor.trl_backend.run_trl`; otherwise
`run_orchestrated`, which runs colocated sync hf runs on the core loop (`executor.loop.run_grpo`,
the only one that resumes) and the rest as below.

Modes (from the scenario's `orchestration` section):
- colocated sync (hf backend): delegated to the core loop (`executor.loop.run_grpo`); with the
  vllm backend the engine always runs in the sampler process (so colocated sync runs as
  disaggregated sync on the same machine: the sampler waits for each step's weights);
- disaggregated sync: the async machinery with max_staleness 0 (the sampler waits for the
  weights of step i-1 before generating batch i);
- async(max_staleness = eta): the sampler runs ahead; every sample carries the policy version
  that generated it and its staleness (trainer version at training - that version) is recorded
  per sample in the `generate` trace rows. `stale_policy` says how the bound is kept:
  "block" (the sampler does not generate a batch that would be too old: admission control,
  waits counted) or "drop" (the trainer discards batches older than the bound, counted).
The trainer only waits when the next batch is not there yet (a trainer `idle` row); it sends
weights after every step without waiting for the sampler to load them. Off-policy correction:
the clipped importance ratio uses the behaviour policy's log-probs (the sampler's) as the old
log-probs, so stale samples are re-weighted by pi_theta / pi_behaviour.
"""

from __future__ import annotations

import json
import math
import tempfile

from executor.channels import (Counts, Orchestration, behaviour_logps, make_plan, next_message,
                               orchestration_of, send_weights, start_sampler, stop_sampler, train_on,
                               wait_ready)
from executor.config import RunConfig
from executor.loop import run_grpo
from executor.orchestrator_trainer import run_trainer_side
from executor.results import ExecuteResult
from executor.run import write_result
from executor.trl_backend import run_trl
from rlvr_sim import rules
from rlvr_sim.errors import UserError
from rlvr_sim.scenario import Scenario

# the channel names, re-exported for callers of their older home
__all__ = ["Counts", "Orchestration", "behaviour_logps", "make_plan", "next_message",
           "orchestration_of", "run_orchestrated", "run_scenario", "send_weights", "start_sampler",
           "stop_sampler", "train_on", "wait_ready"]


def _per_s(count: float, wall_s: float) -> float:
    """count / wall_s; NaN when no time was measured (not a count over 1e-9 s)."""
    return count / wall_s if wall_s > 0 else math.nan


def run_scenario(scenario: Scenario, steps: int | None = None, out_dir: str | None = None,
                 trace_path: str | None = None, progress: bool = True,
                 resume: bool = False) -> ExecuteResult:
    """Run a scenario on the entry point its backend and orchestration select (TRL backend, or
    `run_orchestrated`); returns the run summary."""
    spec = scenario.executor
    if spec is not None and spec.backend == "trl":
        return run_trl(scenario, steps, out_dir, trace_path, progress, resume)
    return run_orchestrated(scenario, steps, out_dir, trace_path, progress, resume)


def run_orchestrated(scenario: Scenario, steps: int | None = None, out_dir: str | None = None,
                     trace_path: str | None = None, progress: bool = True, resume: bool = False,
                     stale_policy: str | None = None) -> ExecuteResult:
    """Run a scenario in its orchestration mode; returns the run summary. Colocated sync runs of
    the hf backend go to the core loop (which alone resumes: `resume` elsewhere is a UserError).

    stale_policy: None uses the scenario's executor.stale_policy ('block' by default)."""
    cfg = RunConfig.from_scenario(scenario, steps, out_dir, trace_path)
    o = cfg.scenario.orchestration
    if rules.core_loop_runs(o.placement, o.mode, cfg.spec.backend):
        return run_grpo(cfg, resume=resume, progress=progress)
    if resume:
        raise UserError("--resume is only supported for colocated sync runs of the hf backend")
    orch = orchestration_of(cfg, stale_policy)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rlvr-sampler-") as workdir:
        result, counts = run_trainer_side(cfg, orch, workdir, progress)
    extra = {"orchestration": orch.label, "stale_policy": orch.stale_policy,
             "max_staleness": orch.max_staleness, "admission_waits": counts.admission_waits,
             "admission_wait_s": counts.admission_wait_s, "dropped_batches": counts.dropped_batches,
             "dropped_samples": counts.dropped_samples, "wall_s": counts.wall_s,
             "steps_per_s": _per_s(result.steps, counts.wall_s),
             "trained_output_tokens_per_s": _per_s(counts.output_tokens, counts.wall_s),
             "staleness_hist": {str(k): v for k, v in sorted(counts.staleness_hist.items())}}
    (cfg.out_dir / "orchestration.json").write_text(json.dumps(extra, indent=2))
    return write_result(cfg, result, extra=extra)
