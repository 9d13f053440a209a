"""Tasks: a deterministic problem generator plus a checker. The checker IS the reward.

Problems are a pure function of (seed, index), so the data cursor (the next index) is all a
checkpoint needs to resume the data stream. Checkers never raise: every failure is a `Verdict`
with reward 0 and a reason.
"""

from __future__ import annotations

from executor import sandbox
from executor.sandbox import SandboxLimits
from executor.tasks.base import Problem, Task, Verdict, problem_rng, problems
from executor.tasks.code import CodeTask
from executor.tasks.countdown import CountdownTask
from executor.tasks.math import MathTask
from rlvr_sim.errors import UserError
from rlvr_sim.executor_spec import ExecutorSpec

__all__ = ["CodeTask", "CountdownTask", "MathTask", "Problem", "Task", "Verdict", "make_task",
           "problem_rng", "problems", "require_isolation"]


def make_task(spec: ExecutorSpec) -> Task:
    """The task named by an ExecutorSpec (`spec.task`), configured from its fields."""
    if spec.task == "math":
        return MathTask(operand_max=spec.operand_max, operators=tuple(spec.operators))
    if spec.task == "countdown":
        return CountdownTask(rules=spec.countdown_rules)
    if spec.task == "code":
        limits = SandboxLimits(
            wall_s=spec.code_timeout_s, cpu_s=max(1, int(spec.code_timeout_s)),
            memory_bytes=spec.code_memory_bytes, output_bytes=spec.code_output_bytes,
            result_bytes=spec.code_output_bytes, allow_weak=spec.allow_weak_sandbox)
        require_isolation(limits)
        return CodeTask(limits=limits)
    raise ValueError(f"unknown task {spec.task!r}")


def require_isolation(limits: SandboxLimits) -> str:
    """The isolation code runs will get under `limits`; UserError when the sandbox refuses
    (no OS isolation and no allow_weak), so a run fails at start instead of scoring 0 always."""
    probe = sandbox.probe_isolation(limits)      # via the module: tests replace it there
    if probe.isolation == "none":
        raise UserError(f"executor.task=code: {probe.reason} ; run as root (or with "
                        "CAP_SYS_ADMIN) for namespace isolation, or accept the weaker in-process "
                        "audit hook with --allow-weak-sandbox (executor.allow_weak_sandbox: true)")
    if not probe.completed:
        raise UserError(f"executor.task=code: the sandbox cannot run code ({probe.reason}) ; "
                        "check executor.code_timeout_s / code_memory_bytes")
    return probe.isolation
