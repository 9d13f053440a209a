"""Atomic checkpoints of a GRPO run, and resume.

A checkpoint is a directory `checkpoints/step_NNNNNN/state.pt` holding the policy, optimizer,
reference model (when beta > 0), RNG states (python, numpy, torch, CUDA), the number of RL
steps completed, the data cursor and the policy version. It is written into a temporary
directory and renamed into place, then `checkpoints/latest` (a one-line file) is replaced
atomically: a run killed at any instant leaves the previous checkpoint intact. Older
checkpoints beyond `keep` are deleted after the new one is in place.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class RunState:
    """What a resumed run continues from."""

    steps_done: int           # RL steps completed (the next step's index)
    data_cursor: int          # index of the next training problem
    policy_version: int
    sft_done: bool


def rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(root: Path, state: RunState, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, ref_model: torch.nn.Module | None = None,
                    keep: int = 2) -> Path:
    """Write checkpoint `step_<steps_done>` atomically and point `latest` at it."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{state.steps_done:06d}"
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    payload = {"run_state": state.__dict__, "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "rng": rng_states(),
               "ref_model": ref_model.state_dict() if ref_model is not None else None}
    torch.save(payload, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    latest_tmp = root / ".latest.tmp"
    latest_tmp.write_text(name + "\n")
    latest_tmp.replace(root / "latest")
    others = sorted(p for p in root.glob("step_*") if p.name != name)
    for old in others[:max(len(others) - (keep - 1), 0)]:     # keep the newest `keep` in all
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "state.pt").exists() else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ref_model: torch.nn.Module | None = None) -> RunState:
    """Restore model, optimizer, reference model and RNGs in place; return the run state."""
    payload = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if ref_model is not None and payload["ref_model"] is not None:
        ref_model.load_state_dict(payload["ref_model"])
    set_rng_states(payload["rng"])
    return RunState(**payload["run_state"])
