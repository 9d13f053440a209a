"""What an executor run reports, as typed values: the run summary (`ExecuteResult`, printed by
`rlvr-sim execute --json` and written to result.json), its parts, the held-out evaluations
(evals.json) and the expert-iteration result.

No torch here: `rlvr-sim` imports `executor.cli` (and so this module) to build its parser for
every command. The JSON shape is `dataclasses.asdict` of these classes; it is flattened only
where a table is written. A value a run did not measure is None (not known) or NaN (no step
timed it), never 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class PolicyInfo:
    """What a run reports about its policy (`ExecuteResult.policy`)."""

    device: str           # "cpu", "cuda:0", ...
    dtype: str            # fp32 | bf16 | fp16
    threads: int          # torch intra-op threads
    source: str           # "random-init:<name>" or the checkpoint path
    params: int
    vocab_size: int
    torch: str            # torch version


@dataclass(frozen=True)
class StepTimeStats:
    """Wall seconds per RL step over a run's steps (NaN when no step ran)."""

    mean: float
    p50: float


@dataclass(frozen=True)
class PhaseTimes:
    """Summed wall seconds of each phase over a run's steps."""

    generate: float
    verify: float
    train: float
    weight_sync: float


PHASES = tuple(f.name for f in fields(PhaseTimes))     # generate, verify, train, weight_sync


@dataclass(frozen=True)
class ExecuteResult:
    """The run summary: what `rlvr-sim execute --json` prints and result.json holds (`policy`,
    `step_time_s` and `phase_time_s` are nested JSON objects)."""

    run_id: str
    steps: int
    resumed_from_step: int | None
    policy: PolicyInfo
    accuracy_initial: float | None       # held-out greedy accuracy before SFT, and after it
    accuracy_after_sft: float | None     # (= before GRPO); None: not known (evals.json lost)
    accuracy_after_grpo: float
    mean_reward_first: float             # mean reward of the first / last quarter of steps
    mean_reward_last: float              # (NaN when no step ran)
    step_time_s: StepTimeStats
    phase_time_s: PhaseTimes
    output_tokens_per_s: float           # generated tokens per generate second (NaN: none timed)
    trace_path: str
    metrics_path: str


@dataclass(frozen=True)
class Evals:
    """Held-out greedy accuracy before and after the SFT warm-start (evals.json), and the
    warm-start's final loss (None when no SFT step ran)."""

    accuracy_initial: float
    accuracy_after_sft: float
    sft_final_loss: float | None = None

    def to_json(self) -> str:
        """evals.json text (no sft_final_loss key without SFT)."""
        record: dict[str, float] = {"accuracy_initial": self.accuracy_initial}
        if self.sft_final_loss is not None:
            record["sft_final_loss"] = self.sft_final_loss
        record["accuracy_after_sft"] = self.accuracy_after_sft
        return json.dumps(record)

    @classmethod
    def from_json(cls, text: str) -> Evals:
        """Parse evals.json; KeyError/TypeError/ValueError when it is not one."""
        data = json.loads(text)
        loss = data.get("sft_final_loss")
        return cls(float(data["accuracy_initial"]), float(data["accuracy_after_sft"]),
                   None if loss is None else float(loss))


@dataclass
class RoundStats:
    """One expert-iteration round."""

    round: int
    attempted: int                    # samples drawn
    accepted: int                     # samples the verifier accepted
    kept: int                         # distinct accepted (problem, completion) pairs trained on
    pass_rate: float                  # accepted / attempted (NaN when nothing was drawn)
    sft_steps: int
    sft_final_loss: float
    accuracy_after: float             # held-out greedy accuracy after this round's SFT
    generate_s: float
    verify_s: float
    sft_s: float


@dataclass
class SelfImproveResult:
    """What `rlvr-sim execute --self-improve` prints and self_improve.json holds."""

    run_id: str
    accuracy_initial: float
    accuracy_after_warmstart: float
    rounds: list[RoundStats] = field(default_factory=list)
    trace_path: str = ""


def execute_lines(result: ExecuteResult) -> list[str]:
    """Human summary of a GRPO run."""
    lines = [f"{result.run_id}: {result.steps} steps on {result.policy.device} "
             f"({result.policy.params:,} params, {result.policy.threads} threads)"]
    for label, value in (("accuracy initial", result.accuracy_initial),
                         ("accuracy after SFT", result.accuracy_after_sft),
                         ("accuracy after GRPO", result.accuracy_after_grpo)):
        if value is not None:
            lines.append(f"  {label:<22}{value:6.1%}")
    lines.append(f"  mean reward first/last quarter: {result.mean_reward_first:.3f} -> "
                 f"{result.mean_reward_last:.3f}")
    phases = result.phase_time_s
    lines.append(f"  step time mean {result.step_time_s.mean:.3f} s; phases (s): "
                 + ", ".join(f"{p} {getattr(phases, p):.2f}" for p in PHASES))
    lines.append(f"  trace: {result.trace_path}  metrics: {result.metrics_path}")
    return lines


def self_improve_lines(result: SelfImproveResult) -> list[str]:
    """Human summary of an expert-iteration run: accuracy before/after the warm-start and per round."""
    lines = [f"accuracy initial {result.accuracy_initial:.1%}, after warm-start "
             f"{result.accuracy_after_warmstart:.1%}"]
    for r in result.rounds:
        lines.append(f"round {r.round}: pass rate {r.pass_rate:.1%}, kept {r.kept}/{r.attempted}, "
                     f"{r.sft_steps} SFT steps -> accuracy {r.accuracy_after:.1%}")
    lines.append(f"trace: {result.trace_path}")
    return lines
