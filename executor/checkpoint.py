"""Atomic, verified checkpoints of a GRPO run, and a resume that never destroys data.

A checkpoint is a directory `checkpoints/step_NNNNNN/` holding `state.pt` (policy, optimizer,
reference model when beta > 0, RNG states of python/numpy/torch/CUDA, steps completed, data
cursor, policy version) and `manifest.json`, written LAST: the size and SHA-256 of `state.pt`
and the scenario identity (`checkpoint_identity`: the model and the settings that shape the
training state). Writing goes to `.step_NNNNNN.tmp-PID/`, is fsynced, and is renamed into place;
`checkpoints/latest` (one line) is replaced atomically after. A kill at any instant leaves every
earlier checkpoint intact, and a half-written one has no valid manifest.

Resume (`find_resume_point`) takes the newest checkpoint whose manifest verifies, whatever
`latest` says (a kill between the rename and the pointer update, or a pointer at a folder that
is gone, is explained and survived), lists what it skipped and why, and refuses one written for
another model or scenario with the differing fields named. Nothing is deleted on the way:
stale temp folders of dead processes are removed, and a `.old` folder left by a kill mid-replace
is put back when its checkpoint is missing. Only checkpoints OLDER than the one just written are
pruned (keeping `keep` in all).

Limits: verification reads the whole `state.pt` once (SHA-256, ~1 GB/s); checkpoints written
before manifests existed are skipped (their integrity cannot be told).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from rlvr_sim.errors import UserError

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario

MANIFEST = "manifest.json"
STATE = "state.pt"
FORMAT = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TEMP_DIR = re.compile(r"^\.(step_\d+)\.(tmp|old)-(\d+)$")

# Scenario fields a checkpoint must agree on: the model and what shapes the training state and
# the data order. Run-control fields (steps, out_dir, threads, device, checkpoint cadence, eval
# size, verifier pool) may change between a run and its resume.
_IDENTITY_PREFIXES = ("model.", "workload.", "trainer.", "executor.")
_IDENTITY_IGNORED = {"workload.steps", "executor.out_dir", "executor.checkpoint_every",
                     "executor.threads", "executor.device", "executor.eval_problems",
                     "executor.verifier_workers", "executor.code_timeout_s",
                     "executor.code_memory_bytes", "executor.code_output_bytes",
                     "executor.stale_policy", "trainer.gpus", "trainer.tp", "trainer.pp",
                     "trainer.fsdp", "trainer.recompute_activations", "model.name"}


@dataclass
class RunState:
    """What a resumed run continues from."""

    steps_done: int           # RL steps completed (the next step's index)
    data_cursor: int          # index of the next training problem
    policy_version: int
    sft_done: bool


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resume continues from, and the newer ones it passed over (with why)."""

    path: Path
    steps_done: int
    skipped: list[str] = field(default_factory=list)

    def explain(self) -> list[str]:
        """Lines for the user: what was skipped and where the run continues."""
        lines = [f"resume: skipped {s}" for s in self.skipped]
        return lines + [f"resume: continuing from {self.path} ({self.steps_done} steps done)"]


def checkpoint_identity(scenario: "Scenario") -> dict[str, str]:
    """Dotted field -> JSON text of every scenario field a checkpoint must agree on."""
    flat: dict[str, str] = {}

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif path.startswith(_IDENTITY_PREFIXES) and path not in _IDENTITY_IGNORED:
            flat[path] = json.dumps(value, sort_keys=True)

    walk(scenario.resolved_dict(), "")
    return flat


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False          # our own leftovers: this process is not writing them now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp(root: Path) -> list[str]:
    """Remove temp folders of dead writers; put back a `.old` checkpoint whose final folder is
    missing (a kill between the two renames of a replace). Returns what was done, for the log."""
    done: list[str] = []
    if not root.is_dir():
        return done
    for entry in sorted(root.iterdir()):
        match = _TEMP_DIR.match(entry.name)
        if match is None or not entry.is_dir() or _pid_alive(int(match.group(3))):
            continue
        final = root / match.group(1)
        if match.group(2) == "old" and not final.exists() and verify_checkpoint(entry) is None:
            entry.rename(final)
            done.append(f"restored {final.name} from {entry.name}")
        else:
            shutil.rmtree(entry, ignore_errors=True)
            done.append(f"removed stale {entry.name}")
    stale_pointer = root / ".latest.tmp"
    if stale_pointer.exists():
        stale_pointer.unlink(missing_ok=True)
    return done


def save_checkpoint(root: Path, state: RunState, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, ref_model: torch.nn.Module | None = None,
                    keep: int = 2, identity: dict[str, str] | None = None) -> Path:
    """Write checkpoint `step_<steps_done>` (state, then manifest), rename it into place, point
    `latest` at it, then prune checkpoints older than it beyond `keep` in all."""
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_temp(root)
    name = f"step_{state.steps_done:06d}"
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    payload = {"run_state": state.__dict__, "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "rng": rng_states(),
               "ref_model": ref_model.state_dict() if ref_model is not None else None}
    torch.save(payload, tmp / STATE)
    _fsync(tmp / STATE)
    manifest = {"format": FORMAT, "steps_done": state.steps_done, "written_unix_s": time.time(),
                "files": {STATE: {"bytes": (tmp / STATE).stat().st_size,
                                  "sha256": _sha256(tmp / STATE)}},
                "identity": identity or {}}
    _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1))      # last: marks it complete
    _fsync(tmp)
    old = None
    if final.exists():         # an earlier timeline's folder of the same step: keep until replaced
        old = root / f".{name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    _fsync(root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    latest_tmp = root / ".latest.tmp"
    _write_synced(latest_tmp, name + "\n")
    latest_tmp.replace(root / "latest")
    _fsync(root)
    older = sorted((p for p in root.iterdir() if _step_of(p) is not None
                    and _step_of(p) < state.steps_done), key=_step_of, reverse=True)
    for stale in older[max(keep - 1, 0):]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _step_of(path: Path) -> int | None:
    match = _STEP_DIR.match(path.name)
    return int(match.group(1)) if match and path.is_dir() else None


def verify_checkpoint(path: Path) -> str | None:
    """None when `path` holds a complete checkpoint (manifest present, every file at its recorded
    size and SHA-256); else why not, in a few words."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return (f"no {MANIFEST} (its write did not finish, or an rlvr-sim without manifests "
                "wrote it)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            return f"{MANIFEST} has format {manifest.get('format')!r}, expected {FORMAT}"
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, OSError):
        return f"{MANIFEST} is unreadable (torn write)"
    for name, meta in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != meta.get("bytes"):
            return f"{name} is {size:,} bytes, the manifest says {meta.get('bytes'):,} (truncated)"
        if _sha256(file) != meta.get("sha256"):
            return f"{name} does not match its SHA-256 in the manifest (corrupted)"
    return None


def _identity_diff(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k} {saved.get(k, '(unset)')} -> {current.get(k, '(unset)')}" for k in keys
            if saved.get(k) != current.get(k)]


def find_resume_point(root: Path, identity: dict[str, str] | None = None) -> ResumePoint | None:
    """The newest verified checkpoint under `root`, or None when there is no checkpoint folder at
    all. UserError when folders exist but none verifies (nothing is deleted), or when the newest
    verified one was written for a different scenario (`identity` differs)."""
    if not root.is_dir():
        return None
    notes = clean_stale_temp(root)
    candidates = sorted((p for p in root.iterdir() if _step_of(p) is not None),
                        key=_step_of, reverse=True)
    skipped = list(notes)
    pointer = root / "latest"
    if pointer.is_file():
        named = pointer.read_text(errors="replace").strip()
        if not (root / named).is_dir():
            skipped.append(f"`latest` names {named!r}, which does not exist")
    if not candidates:
        return None
    for path in candidates:
        why = verify_checkpoint(path)
        if why is not None:
            skipped.append(f"{path.name}: {why}")
            continue
        manifest = json.loads((path / MANIFEST).read_text())
        diff = _identity_diff(manifest.get("identity") or {}, identity) if identity is not None \
            else []
        if diff:
            shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise UserError(f"{path}: written for a different scenario ({shown}) ; resume with the "
                            "scenario it was written for, or start over without --resume (that "
                            f"replaces {root}) or with another --out")
        return ResumePoint(path, int(manifest["steps_done"]), skipped)
    raise UserError(f"{root}: no valid checkpoint to resume from ({'; '.join(skipped)}) ; nothing "
                    "was deleted: run without --resume to start over (that replaces the folder), "
                    "or use another --out")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest verified checkpoint folder (see `find_resume_point`), or None."""
    try:
        point = find_resume_point(root)
    except UserError:
        return None
    return point.path if point is not None else None


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
