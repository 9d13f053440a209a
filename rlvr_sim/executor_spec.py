"""The scenario's `executor:` section: how `rlvr-sim execute` really runs the GRPO loop.

Pure pydantic (no torch): the scenario loader validates it without the executor extra installed.
Fields shared with the simulator (prompts per step, samples per prompt, steps, response-token cap,
mini-batches, verifier workers, orchestration) live in the scenario's other sections; this
section only holds what a real run needs on top (model source, task, backend, optimiser, ...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Operator = Literal["+", "-", "*"]


def _default_operators() -> list[Operator]:
    return ["+", "-"]


class ExecutorSpec(BaseModel):
    """Settings of the real executor. Every field has a CPU-friendly default."""

    model_config = ConfigDict(extra="forbid")

    # --- model source -------------------------------------------------------------------------
    model_path: str | None = Field(
        None, description="local Hugging Face checkpoint dir (config + weights + tokenizer); "
        "None builds a random-init model from the scenario's `model` spec with a character tokenizer")
    # --- task (the checker is the reward) -----------------------------------------------------
    task: Literal["math", "countdown", "code"] = "math"
    operand_max: int = Field(9, ge=1, description="math: largest operand")
    operators: list[Operator] = Field(default_factory=_default_operators)
    countdown_rules: Literal["rational", "classic"] = Field(
        "rational", description="countdown: 'rational' (exact fractions allowed mid-way) or "
        "'classic' (every intermediate a positive integer, as in the TV game)")
    eval_problems: int = Field(200, ge=0, description="held-out problems scored greedily before/after")
    # --- backend and device -------------------------------------------------------------------
    backend: Literal["hf", "vllm", "trl"] = "hf"
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    threads: int = Field(2, ge=1, description="torch intra-op threads (recorded in the trace)")
    # --- GRPO ---------------------------------------------------------------------------------
    lr: float = Field(5e-4, gt=0)
    warmup_steps: int = Field(0, ge=0, description="RL steps of linear lr warm-up (Adam's first "
                              "updates are sign-like and can wreck a warmed-up policy)")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient to the reference model (0: no ref forward)")
    epsilon_low: float = Field(0.2, gt=0)
    epsilon_high: float = Field(0.28, gt=0)
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: int = Field(1, ge=1, description="passes over each RL batch (PPO epochs)")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int | None = Field(
        None, ge=1, description="None: the scenario's workload.response_tokens cap (or value)")
    # --- SFT warm-start -----------------------------------------------------------------------
    sft_steps: int = Field(0, ge=0)
    sft_lr: float = Field(1e-3, gt=0)
    sft_batch_size: int = Field(64, ge=1)
    # --- verifier -----------------------------------------------------------------------------
    verifier_workers: int | None = Field(
        None, ge=1, description="None: the scenario's verifier.workers, capped at the CPU count")
    code_timeout_s: float = Field(2.0, gt=0, description="code task: wall limit per test run")
    code_memory_bytes: int = Field(512 * 2**20, gt=0, description="code task: address-space limit")
    code_output_bytes: int = Field(64 * 2**10, gt=0, description="code task: stdout+stderr cap "
                                   "and cap of the results the sandbox returns")
    allow_weak_sandbox: bool = Field(
        False, description="code task: where OS isolation (namespaces, needs root) is "
        "unavailable, run code under an in-process audit hook instead of refusing "
        "(`--allow-weak-sandbox`); the trace records which isolation each check had")
    # --- orchestration (async runs) --------------------------------------------------------
    stale_policy: Literal["block", "drop"] = Field(
        "block", description="how async runs keep orchestration.max_staleness: 'block' (the "
        "sampler does not start a batch that would be older than the bound when trained on; waits "
        "counted) or 'drop' (it generates freely; the trainer discards too-old batches, counted)")
    # --- run management -----------------------------------------------------------------------
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints (0: only at the end)")
    out_dir: str = "runs/execute"
    seed: int | None = Field(None, description="None: the scenario's workload.seed")

    @model_validator(mode="after")
    def _check(self) -> "ExecutorSpec":
        if self.task == "math" and not self.operators:
            raise ValueError("executor.operators is empty: list at least one of '+', '-', '*'")
        return self
