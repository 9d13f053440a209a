"""The checkpoint folder as a durable store: atomic writes, verification, and finding where to
resume, whatever the checkpoint holds (`executor.checkpoint` decides that: the torch state).

Layout: `checkpoints/step_NNNNNN/` holds the payload files and `manifest.json`, written LAST:
the size and SHA-256 of every payload file and the scenario identity (`checkpoint_identity`:
the model and the settings that shape the training state). Writing goes to
`.step_NNNNNN.tmp-PID/`, is fsynced, and is renamed into place; `checkpoints/latest` (one line)
is replaced atomically after. A kill at any instant leaves every earlier checkpoint intact, and
a half-written one has no valid manifest.

Resume (`find_resume_point`) takes the newest checkpoint whose manifest verifies, whatever
`latest` says (a kill between the rename and the pointer update, or a pointer at a folder that
is gone, is explained and survived), lists what it skipped and why, and refuses one written for
another model or scenario with the differing fields named. Nothing is deleted on the way:
stale temp folders of dead processes are removed, and a `.old` folder left by a kill mid-replace
is put back when its checkpoint is missing. Only checkpoints OLDER than the one just written are
pruned (keeping `keep` in all).

Limits: verification reads every payload file once (SHA-256, ~1 GB/s); checkpoints written
before manifests existed are skipped (their integrity cannot be told). No torch here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rlvr_sim.errors import UserError

if TYPE_CHECKING:
    from rlvr_sim.scenario import Scenario

MANIFEST = "manifest.json"
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


def checkpoint_identity(scenario: Scenario) -> dict[str, str]:
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


def write_step(root: Path, steps_done: int, write_payload: Callable[[Path], None],
               keep: int = 2, identity: dict[str, str] | None = None) -> Path:
    """Write checkpoint `step_<steps_done>`: `write_payload(folder)` writes the payload files
    into a temp folder, then each is fsynced and recorded in the manifest (written last); the
    folder is renamed into place, `latest` pointed at it, and checkpoints older than it pruned
    beyond `keep` in all."""
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_temp(root)
    name = f"step_{steps_done:06d}"
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_payload(tmp)
    files = sorted(p for p in tmp.iterdir() if p.is_file())
    for payload in files:
        _fsync(payload)
    manifest = {"format": FORMAT, "steps_done": steps_done, "written_unix_s": time.time(),
                "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
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
    steps = {p: _step_of(p) for p in root.iterdir()}
    older = sorted((p for p, s in steps.items() if s is not None and s < steps_done),
                   key=lambda p: steps[p] or 0, reverse=True)
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
    steps = {p: _step_of(p) for p in root.iterdir()}
    candidates = sorted((p for p, s in steps.items() if s is not None),
                        key=lambda p: steps[p] or 0, reverse=True)
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


