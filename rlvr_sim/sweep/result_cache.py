"""Simulation results kept on disk between runs, so a plan asked again is not simulated again.

A planner user asks the same question many times: another budget or deadline, more robustness
draws, the app's button pressed again. Each simulated plan's Summary is stored under a key that
holds everything the result depends on:
- the resolved scenario (every default filled in, the model inline) and the hardware profile
  actually simulated (after a robustness draw's perturbation);
- the steps, seed and steady rule of the job;
- the simulator's code: a hash of every source and catalog file of the `rlvr_sim` package but
  the planner's own (`rlvr_sim/sweep`, `rlvr_sim/commands`, the CLI and app fronts: `PLANNER_PARTS`), so
  any change to the code a Summary comes from gives new keys (nothing computed by older code is
  ever read). The planner's files decide which plans are asked and how their scenarios are
  loaded; what that gives is in the key already (the resolved scenario and profile), so a new
  search, confirmation or report does not throw away the results it would ask for again.

Races (the planner stops a plan once its hours are certainly above a threshold that depends on
which plans finished first, so it differs from run to run) are not part of the key: a plan
simulated to its end answers a job with any threshold (a raced run that does not stop is that
same run), and a plan stopped above a threshold H answers a job whose threshold is at most H (it
is certainly above that too; the job would have stopped it no later). One stopped entry per plan
is kept, the one with the highest threshold.

Only simulated results are stored (`ok`, and plans the simulator itself rejected); scenarios
that do not load are cheap to reject again. A damaged or unreadable entry counts as missing and
is overwritten; writes go to a temporary file renamed into place, so a run killed mid-write
leaves no partial entry.

Where: `$RLVR_SIM_CACHE` (a folder; `off` turns the cache off), else `~/.cache/rlvr-sim/results`.
Limits: entries are never evicted (a Summary is a few KB; `rm -r` the folder to clear it); the
code hash covers the package's files only, so a different numpy / simpy version that changed
results would be served old ones (none of the simulator's arithmetic depends on them today).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from rlvr_sim.sim.compiled import STAMP
from rlvr_sim.sim.metrics import Summary

ENV = "RLVR_SIM_CACHE"
_SUFFIXES = (".py", ".yaml", ".yml", ".json")


# the planner's own files: which plans it asks, not what a plan's simulation gives
PLANNER_PARTS = frozenset({"sweep", "commands", "cli.py", "cli_output.py", "api.py", "api_types.py"})
# build outputs: the compiled engine's stamp (rlvr_sim.sim.compiled; the build gives the
# sources' results, so a compiled and a pure run share their cache entries)
NOT_CODE = frozenset({STAMP.name})


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the `rlvr_sim` package's source and catalog files (names and bytes) that a plan's
    Summary depends on (module docstring)."""
    return tree_hash(Path(__file__).resolve().parents[1])


def tree_hash(root: Path) -> str:
    """Hash of the source and catalog files under `root` (a copy of the package), names and
    bytes, leaving out `PLANNER_PARTS` at its top level."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and "__pycache__" not in p.parts
                       and p.relative_to(root).parts[0] not in PLANNER_PARTS and p.name not in NOT_CODE):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:20]


def cache_dir() -> Path | None:
    """The cache folder (None: the cache is off)."""
    value = os.environ.get(ENV, "")
    if value.strip().lower() in ("off", "0", "no", "false"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "rlvr-sim" / "results"


@contextmanager
def turned_off() -> Iterator[None]:
    """The cache off while the block runs (pool workers forked meanwhile inherit it); the
    previous setting back afterwards."""
    old = os.environ.get(ENV)
    os.environ[ENV] = "off"
    try:
        yield
    finally:
        if old is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = old


@dataclass(frozen=True)
class CachedResult:
    """A stored simulation: its status (`ok` or the simulator's rejection), reason and Summary."""

    status: str
    error: str | None
    summary: Summary | None


def result_key(scenario_json: str, profile_json: str, steps: int | None, seed: int | None,
               steady: object) -> str:
    """The key of one simulation: its inputs (module docstring) and the code version."""
    items = [code_version(), scenario_json, profile_json, steps, seed, repr(steady)]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def _path(folder: Path, key: str, stopped: bool) -> Path:
    return folder / key[:2] / (f"{key}.stopped.json" if stopped else f"{key}.json")


def _read(path: Path) -> CachedResult | None:
    try:
        data = json.loads(path.read_text())
        summary = None if data["summary"] is None else Summary.model_validate(data["summary"])
        return CachedResult(str(data["status"]), data["error"], summary)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(key: str, stop_above_hours: float | None = None) -> CachedResult | None:
    """The stored result that answers a job of `key` raced against `stop_above_hours` (None: not
    raced): the plan simulated to its end, else (raced jobs) a run stopped above a threshold at
    least this one; None when there is none (or the cache is off, or the entry is unreadable)."""
    folder = cache_dir()
    if folder is None:
        return None
    full = _read(_path(folder, key, False))
    if full is not None or stop_above_hours is None:
        return full
    stopped = _read(_path(folder, key, True))
    if stopped is None or stopped.summary is None:
        return None
    above = stopped.summary.stopped_above_hours
    return stopped if above is not None and above >= stop_above_hours else None


def save(key: str, result: CachedResult) -> None:
    """Store `result` under `key` (atomically; a cache that cannot be written is skipped): as the
    plan's full result, or, when the run was stopped by a race, as its stopped result unless one
    stopped above a higher threshold is stored already."""
    folder = cache_dir()
    if folder is None:
        return
    above = result.summary.stopped_above_hours if result.summary is not None else None
    path = _path(folder, key, above is not None)
    if above is not None:
        old = _read(path)
        old_above = old.summary.stopped_above_hours if old is not None and old.summary is not None else None
        if old_above is not None and old_above >= above:
            return
    data = {"status": result.status, "error": result.error,
            "summary": None if result.summary is None else result.summary.model_dump(mode="json")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
