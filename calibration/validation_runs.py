"""The held-out validation runs (`ValidationConfig`, `HELD_OUT`), the executor scenario of one,
and what a run measured (`MeasuredRun`, `combine`); `calibration.validate` runs, simulates and
compares them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from calibration.models import BENCH_MODELS, VALIDATION_ONLY
from rlvr_sim.errors import UserError

PHASES = ("generate", "verify", "train", "weight_sync")
WARMUP_STEPS = 2
ALL_MODELS = {**BENCH_MODELS, **VALIDATION_ONLY}


@dataclass(frozen=True)
class ValidationConfig:
    """One held-out executor run."""

    name: str
    description: str
    model: str
    prompts_per_step: int
    samples_per_prompt: int
    max_new_tokens: int
    mini_batches: int = 1
    task: str = "math"
    verifier_workers: int = 2
    beta: float = 0.0
    steps: int = 10
    backend: str = "hf"
    placement: str = "colocated"
    mode: str = "sync"
    max_staleness: int = 0

    @property
    def colocated_sync(self) -> bool:
        return self.placement == "colocated" and self.mode == "sync"

    @property
    def processes(self) -> int:
        """Busy processes of the run: colocated sync 1; disaggregated/async 2 (sampler, trainer)."""
        return 1 if self.colocated_sync else 2

    def quantities(self) -> tuple[str, ...]:
        """Comparable phases: async/disaggregated phases overlap, only the trainer's own span
        (train) and the step time mean the same thing in the executor and the simulator."""
        return PHASES if self.colocated_sync else ("train",)


HELD_OUT: tuple[ValidationConfig, ...] = (
    ValidationConfig("4m-p8k4-r32", "baseline: tiny-4m, 8 prompts x 4, 32 tokens", "tiny-4m", 8, 4, 32),
    ValidationConfig("4m-p4k8-r48-mb2", "more samples per prompt, longer, 2 mini-batches "
                     "(old log-prob forward)", "tiny-4m", 4, 8, 48, mini_batches=2),
    ValidationConfig("7m-p8k4-r24", "held-out model size (never benchmarked)", "tiny-7m", 8, 4, 24),
    ValidationConfig("0.5m-p16k8-r32-mb4", "small model, big batch, 4 mini-batches", "tiny-0.5m",
                     16, 8, 32, mini_batches=4),
    ValidationConfig("4m-p8k4-r16-beta", "KL to a reference model (ref log-prob forward)",
                     "tiny-4m", 8, 4, 16, beta=0.04),
    ValidationConfig("4m-code-p4k4-r32", "verifier load: sandboxed unit tests (code task)",
                     "tiny-4m", 4, 4, 32, task="code"),
    ValidationConfig("4m-countdown-w1-p8k8-r16", "one verifier worker, countdown validator",
                     "tiny-4m", 8, 8, 16, task="countdown", verifier_workers=1),
    ValidationConfig("13m-p4k4-r32", "larger model", "tiny-13m", 4, 4, 32),
    ValidationConfig("4m-async1-p8k4-r32", "disaggregated async, max_staleness 1 (sampler and "
                     "trainer processes)", "tiny-4m", 8, 4, 32, mini_batches=2,
                     placement="disaggregated", mode="async", max_staleness=1),
)
QUICK_HELD_OUT = tuple(c for c in HELD_OUT if c.name in ("4m-p8k4-r16-beta", "0.5m-p16k8-r32-mb4"))


def executor_scenario(cfg: ValidationConfig, threads: int, out_dir: Path, seed: int = 0,
                      gpu: str = "cpu-2core") -> dict:
    """The scenario `rlvr-sim execute` runs (model random-init from the inline config); `gpu`
    is the catalog device the run stands for (the profile's)."""
    if cfg.model not in ALL_MODELS:
        raise UserError(f"validation config {cfg.name}: unknown model {cfg.model!r}; "
                        f"use one of {sorted(ALL_MODELS)}")
    return {
        "name": f"validate-{cfg.name}",
        "model": dict(ALL_MODELS[cfg.model]),
        "hardware": {"gpu": gpu, "gpus_per_node": cfg.processes},
        "workload": {"prompts_per_step": cfg.prompts_per_step,
                     "samples_per_prompt": cfg.samples_per_prompt, "steps": cfg.steps, "seed": seed,
                     "prompt_tokens": {"dist": "fixed", "value": 8},
                     "response_tokens": {"dist": "fixed", "value": cfg.max_new_tokens}},
        "sampler": {"gpus": 1, "max_concurrent_sequences": 4096, "weight_dtype": "fp32",
                    "kv_dtype": "fp32"},
        "verifier": {"workers": cfg.verifier_workers},
        "trainer": {"gpus": 1, "fsdp": False, "mini_batches": cfg.mini_batches,
                    "reference_model": cfg.beta > 0,
                    # async: the behaviour log-probs stand in for the old-policy forward
                    "old_logprob": cfg.mini_batches > 1 and cfg.colocated_sync,
                    "recompute_activations": False, "dtype": "fp32"},
        "orchestration": {"placement": cfg.placement, "mode": cfg.mode,
                          "max_staleness": cfg.max_staleness},
        "executor": {"task": cfg.task, "backend": cfg.backend, "device": "auto", "dtype": "fp32",
                     "threads": threads, "beta": cfg.beta, "eval_problems": 0, "sft_steps": 0,
                     "verifier_workers": cfg.verifier_workers, "max_new_tokens": cfg.max_new_tokens,
                     "out_dir": str(out_dir), "seed": seed},
    }


@dataclass
class MeasuredRun:
    """What one executor run did and how long it took (steady steps only). None: not measured
    (the trace or the process watch had no such record); what the comparison assumed instead
    is listed in `assumed` and in the report."""

    steps: int
    step_s: float
    phase_s: dict[str, float]
    decode_iterations: float | None  # mean per steady step (None: the trace has no count)
    prompt_width: float              # mean padded prompt width per steady step
    wall_s: float
    loadavg_1m: float
    cpu_share: float | None = None   # CPU share over the steady steps (calibration.runwatch)
    step_times_s: list[float] = field(default_factory=list)
    verify_burst: float | None = None  # mean samples per steady step not verified when generation
                                       # ended (None: no per-sample verify times in the trace)

    def assumed(self, cfg: ValidationConfig) -> list[str]:
        """What the simulated run assumes for the quantities this run did not measure."""
        out = []
        if self.decode_iterations is None:
            out.append(f"decode_iterations: not in the trace; simulated as max_new_tokens "
                       f"({cfg.max_new_tokens})")
        if self.cpu_share is None:
            out.append("cpu_share: not measured; no CPU-equivalent comparison")
        if self.verify_burst is None and cfg.colocated_sync:
            out.append("verify_burst: no per-sample verify times; every sample counted as waited on")
        return out


def combine(runs: list[MeasuredRun]) -> MeasuredRun:
    """One measurement from runs of the same config made at different times: medians over all
    their steady steps (per-step phase times are not kept, so phases are the median of the runs'
    medians), means of the workload shape, the lowest CPU share."""
    if len(runs) == 1:
        return runs[0]
    med = statistics.median

    def mean_known(values: list[float | None]) -> float | None:     # None only if none known
        known = [v for v in values if v is not None]
        return statistics.fmean(known) if known else None

    shares = [r.cpu_share for r in runs if r.cpu_share is not None]
    return MeasuredRun(
        steps=sum(r.steps for r in runs), step_s=med([t for r in runs for t in r.step_times_s]),
        phase_s={p: med([r.phase_s[p] for r in runs]) for p in PHASES},
        decode_iterations=mean_known([r.decode_iterations for r in runs]),
        prompt_width=statistics.fmean(r.prompt_width for r in runs),
        wall_s=sum(r.wall_s for r in runs), loadavg_1m=max(r.loadavg_1m for r in runs),
        cpu_share=min(shares) if shares else None,
        step_times_s=[t for r in runs for t in r.step_times_s],
        verify_burst=mean_known([r.verify_burst for r in runs]))
