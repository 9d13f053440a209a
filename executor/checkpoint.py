"""What a GRPO checkpoint holds, and putting it back: `state.pt` with the policy, the optimizer,
the reference model when beta > 0, the RNG states of python/numpy/torch/CUDA and the run state
(steps completed, data cursor, policy version).

How it is written (atomically, with a manifest), verified and found again on resume is
`executor.checkpoint_store`'s job; its names are re-exported here for callers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from executor.checkpoint_store import (MANIFEST, ResumePoint, checkpoint_identity, clean_stale_temp,
                                       find_resume_point, latest_checkpoint, verify_checkpoint,
                                       write_step)
from rlvr_sim.errors import UserError

__all__ = ["MANIFEST", "STATE", "ResumePoint", "RunState", "checkpoint_identity",
           "clean_stale_temp", "find_resume_point", "latest_checkpoint", "load_checkpoint",
           "rng_states", "save_checkpoint", "set_rng_states", "verify_checkpoint"]

STATE = "state.pt"


@dataclass
class RunState:
    """What a resumed run continues from."""

    steps_done: int           # RL steps completed (the next step's index)
    data_cursor: int          # index of the next training problem
    policy_version: int
    sft_done: bool


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(root: Path, state: RunState, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, ref_model: torch.nn.Module | None = None,
                    keep: int = 2, identity: dict[str, str] | None = None) -> Path:
    """Write checkpoint `step_<steps_done>` (`executor.checkpoint_store.write_step`: state, then
    manifest, renamed into place, `latest` updated, older ones pruned beyond `keep`)."""
    payload = {"run_state": state.__dict__, "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "rng": rng_states(),
               "ref_model": ref_model.state_dict() if ref_model is not None else None}
    return write_step(root, state.steps_done, lambda folder: torch.save(payload, folder / STATE),
                      keep, identity)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ref_model: torch.nn.Module | None = None) -> RunState:
    """Restore model, optimizer, reference model and RNGs in place; return the run state.
    UserError when the file cannot be read or holds a model of another shape."""
    file = path / STATE
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise UserError(f"{file}: missing ; resume from another checkpoint or start over without "
                        "--resume") from None
    except Exception as exc:    # torch raises RuntimeError/EOFError/UnpicklingError for damage
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UserError(f"{file}: cannot be read ({type(exc).__name__}: {first}) ; the file is "
                        "damaged: delete this checkpoint folder to resume from an older one, or "
                        "start over without --resume") from None
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if ref_model is not None and payload["ref_model"] is not None:
            ref_model.load_state_dict(payload["ref_model"])
    except (RuntimeError, ValueError, KeyError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        shown = "; ".join(lines[1:3] or lines[:1])[:300]
        raise UserError(f"{file}: holds a model of another shape or kind ({shown}) ; resume with "
                        "the model it was written for, or start over without --resume") from None
    set_rng_states(payload["rng"])
    return RunState(**payload["run_state"])
