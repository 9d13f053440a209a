"""One resolved run configuration: the scenario's shared fields + its `executor:` section.

Fields the simulator also reads come from the scenario, so `simulate` and `execute` describe
the same run: workload.prompts_per_step, samples_per_prompt, steps, seed, the response-token
cap (max new tokens), trainer.mini_batches, verifier.workers, orchestration. Everything else
comes from `executor:` (defaults when the section is absent).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from rlvr_sim.errors import UserError
from rlvr_sim.executor_spec import ExecutorSpec
from rlvr_sim.scenario import Scenario


@dataclass(frozen=True)
class RunConfig:
    scenario: Scenario
    spec: ExecutorSpec
    run_id: str
    steps: int
    prompts_per_step: int
    samples_per_prompt: int
    max_new_tokens: int
    mini_batches: int
    verifier_workers: int
    seed: int
    out_dir: Path
    trace_path: Path

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    @classmethod
    def from_scenario(cls, scenario: Scenario, steps: int | None = None, out_dir: str | None = None,
                      trace_path: str | None = None) -> "RunConfig":
        """Resolve and check the fields every backend/orchestration uses; UserError names the
        field and the fix. Backend and orchestration support is checked by whoever runs the
        config (`run_grpo`: hf colocated sync; the orchestrator; the TRL backend)."""
        spec = scenario.executor or ExecutorSpec()
        max_new = spec.max_new_tokens
        if max_new is None:
            cap = scenario.workload.response_tokens.max_value()
            if not math.isfinite(cap):
                raise UserError("workload.response_tokens has no cap; set its `cap` or "
                                "executor.max_new_tokens")
            max_new = int(cap)
        workers = spec.verifier_workers or min(scenario.verifier.workers, os.cpu_count() or 1)
        out = Path(out_dir or spec.out_dir)
        name = scenario.name or "execute"
        return cls(
            scenario=scenario, spec=spec, run_id=f"execute-{name}",
            steps=steps if steps is not None else scenario.workload.steps,
            prompts_per_step=scenario.workload.prompts_per_step,
            samples_per_prompt=scenario.workload.samples_per_prompt, max_new_tokens=max_new,
            mini_batches=scenario.trainer.mini_batches, verifier_workers=workers,
            seed=spec.seed if spec.seed is not None else scenario.workload.seed, out_dir=out,
            trace_path=Path(trace_path) if trace_path else out / "trace.parquet")
