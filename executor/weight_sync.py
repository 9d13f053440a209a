"""Trainer -> sampler weight update after each RL step, timed.

Colocated HF backend: the sampler holds its own copy of the model (as an inference engine
would), so the sync is a real copy of every tensor (`load_state_dict`). A vLLM backend
implements `Sampler.load_weights` its own way; this function only times and versions it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from executor.sampler import Sampler


@dataclass
class SyncResult:
    start: float          # perf_counter
    end: float
    bytes: int
    policy_version: int   # the version the sampler now holds


def sync_weights(model: torch.nn.Module, sampler: Sampler) -> SyncResult:
    """Copy `model`'s weights into `sampler` and bump its policy version."""
    state = model.state_dict()
    size = sum(t.numel() * t.element_size() for t in state.values())
    dev = next(model.parameters()).device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        sampler.load_weights(state)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    sampler.policy_version += 1
    return SyncResult(t0, time.perf_counter(), size, sampler.policy_version)
