"""Trainer pool: one RL step's update (ref + old log-prob forwards, mini-batch forward/backward,
optimizer steps), timed by `cm.train_step` for the whole pool and all mini-batches.

The parts run one after another in the trace (ref_logprob, old_logprob, forward_backward,
optimizer); whatever `total_s` holds beyond their sum (fixed overheads) is a `train` row.
"""

from __future__ import annotations

import simpy

from rlvr_sim.sim.protocols import CostModelLike, ProcessBody
from rlvr_sim.sim.recorder import Recorder
from rlvr_sim.sim.steps import StepRecord

PARTS = ("ref_logprob", "old_logprob", "forward_backward", "optimizer")


def train(env: simpy.Environment, cm: CostModelLike, rec: Recorder, r: StepRecord) -> ProcessBody:
    """Train on step `r.step`'s samples (all generated and verified; `r` holds the batch size
    and receives the train times); SimPy process body."""
    step = r.step
    tb = cm.train_step(r.sequences, r.prompt_tokens, r.output_tokens)
    r.train_start_s = t = env.now
    parts = {p: float(getattr(tb, f"{p}_s")) for p in PARTS}
    parts["train"] = max(0.0, float(tb.total_s) - sum(parts.values()))
    for phase, seconds in parts.items():
        if seconds > 0:
            rec.event("trainer", 0, phase, step, step, t, t + seconds, r.sequences, r.prompt_tokens,
                      r.output_tokens)
            t += seconds
    r.train_parts_s = parts
    yield env.timeout(float(tb.total_s))
    r.train_end_s = env.now


def train_minibatch(env: simpy.Environment, cm: CostModelLike, rec: Recorder, r: StepRecord,
                    index: int, sequences: int, prompt_tokens: int,
                    output_tokens: int, first: bool = False) -> ProcessBody:
    """Streaming trainer: one mini-batch of step `step` (its log-prob forwards, forward/backward
    and one optimizer step), timed by `cm.train_minibatch`; SimPy process body. The step's
    train_start_s is its first (`first`) mini-batch's start, train_end_s its last one's end."""
    step = r.step
    tb = cm.train_minibatch(sequences, prompt_tokens, output_tokens)
    if first:
        r.train_start_s = env.now
    t = env.now
    parts = {p: float(getattr(tb, f"{p}_s")) for p in PARTS}
    parts["train"] = max(0.0, float(tb.total_s) - sum(parts.values()))
    for phase, seconds in parts.items():
        if seconds > 0:
            rec.event("trainer", 0, phase, step, step, t, t + seconds, sequences, prompt_tokens,
                      output_tokens, minibatch=index)
            t += seconds
        r.train_parts_s[phase] = r.train_parts_s.get(phase, 0.0) + seconds
    yield env.timeout(float(tb.total_s))
    r.train_end_s = env.now
