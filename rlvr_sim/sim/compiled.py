"""The sampler engine compiled with mypyc, used only when it is the current source's build.

`tools/build_engine.py` (`make engine`, run by `make venv`) compiles `MODULES` (the replica
engine: admission, preemption, KV blocks; the planner's CPU goes there on KV-thrashing plans)
with mypyc into C extensions next to their sources, and records each source's sha256 in
`STAMP`. Python imports an extension before a `.py` of the same name, so `use_current()` (run
by `rlvr_sim.sim` before any of them is imported) decides, all or nothing (compiled modules of
one build reach into each other's native classes, so a compiled sampler never runs on a Python
running set), between the build and the Python sources:
- the build, when every module has an extension and the stamp's hashes are its sources' now;
- the sources otherwise (no build, an edited source since the build, or `RLVR_SIM_PURE=1`),
  loaded explicitly into `sys.modules`; a stale build also gets a one-line warning.
Results do not depend on the choice: the build is the same code (`make engine` checks the
compiled engine's summaries against the sources' on five plans of the README example, three of
them KV-thrashing, byte for byte, and so does tests/test_compiled_engine.py). The result
cache's code hash covers the sources only.
Limits: monkeypatching a compiled class's methods fails (native classes); run such tools with
`RLVR_SIM_PURE=1`.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

MODULES = ("rlvr_sim.sim.kv_pool", "rlvr_sim.sim.running", "rlvr_sim.sim.sampler")
GROUP = "rlvr_sim.sim.engine"                # mypyc's shared library: rlvr_sim/sim/engine__mypyc*
HERE = Path(__file__).resolve().parent
STAMP = HERE / "_compiled_sources.json"     # {module: sha256 of its source at the build}
PURE_ENV = "RLVR_SIM_PURE"


@dataclass(frozen=True)
class Choice:
    """What `use_current` loads: the build or the sources, and why."""

    compiled: bool
    reason: str


def source_path(module: str) -> Path:
    return HERE / f"{module.rsplit('.', 1)[1]}.py"


def has_extension(module: str) -> bool:
    """Whether a C extension of `module` for this interpreter sits next to its source, with
    the build's shared library."""
    stem = module.rsplit(".", 1)[1]
    lib = GROUP.rsplit(".", 1)[1] + "__mypyc"
    return any((HERE / f"{stem}{suffix}").exists() and (HERE / f"{lib}{suffix}").exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decide(sources: dict[str, str], stamp: dict[str, str] | None, extensions: dict[str, bool],
           pure: bool) -> Choice:
    """The build or the sources (module docstring), from each module's source hash now, the
    stamp's hashes (None: no stamp), which modules have an extension, and `RLVR_SIM_PURE`."""
    if pure:
        return Choice(False, f"{PURE_ENV}=1")
    if not any(extensions.values()):
        return Choice(False, "not built (make engine)")
    missing = sorted(m for m, built in extensions.items() if not built)
    if missing:
        return Choice(False, f"incomplete build: no extension for {', '.join(missing)}")
    if stamp is None:
        return Choice(False, "no build stamp: rebuild with make engine")
    stale = sorted(m for m, digest in sources.items() if stamp.get(m) != digest)
    if stale:
        return Choice(False, f"the build is older than {', '.join(s.rsplit('.', 1)[1] + '.py' for s in stale)}: "
                             "rebuild with make engine")
    return Choice(True, "compiled (mypyc)")


def _read_stamp() -> dict[str, str] | None:
    try:
        data = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def _pure() -> bool:
    """`RLVR_SIM_PURE` set to anything but empty or 0."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def current_choice() -> Choice:
    """`decide` on this checkout."""
    return decide({m: sha256(source_path(m)) for m in MODULES}, _read_stamp(),
                  {m: has_extension(m) for m in MODULES}, _pure())


_CHOSEN: Choice | None = None


def use_current() -> Choice:
    """Load the build or the sources of `MODULES` (once per process; module docstring)."""
    global _CHOSEN
    if _CHOSEN is not None:
        return _CHOSEN
    choice = current_choice()
    if not choice.compiled:
        if any(has_extension(m) for m in MODULES) and not _pure():
            print(f"rlvr_sim: the compiled engine is not used ({choice.reason}); running the Python "
                  "sources (same results, about 2x slower on KV-bound plans)", file=sys.stderr)
        for module in MODULES:            # dependencies first: kv_pool, running, then sampler
            if module in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(module, source_path(module))
            assert spec is not None and spec.loader is not None
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[module] = loaded
            spec.loader.exec_module(loaded)
            package, _, name = module.rpartition(".")
            if package in sys.modules:             # as an import sets it: rlvr_sim.sim.sampler
                setattr(sys.modules[package], name, loaded)
    _CHOSEN = choice
    return choice


def engine_text() -> str:
    """What `plan` says about the engine this process runs."""
    choice = use_current()
    return "compiled engine (mypyc)" if choice.compiled else f"Python engine ({choice.reason})"


def in_use() -> bool:
    """Whether this process runs the compiled engine (imports it first if needed)."""
    import rlvr_sim.sim.sampler as sampler

    return not str(sampler.__file__).endswith(".py")
