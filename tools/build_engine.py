"""Build the sampler engine's C extensions with mypyc (`make engine`; rlvr_sim.sim.compiled).

Compiles `rlvr_sim.sim.compiled.MODULES` in place (extensions next to their sources, mypyc's
shared library `GROUP`__mypyc beside them, its work files in build/), records the sources' sha256
in the stamp, then checks the build: the five plans of tools/kv_engine_fingerprint.py (three thrash)
simulated by the compiled engine and by the Python sources (`RLVR_SIM_PURE=1`), in two fresh
processes, must give byte-identical summaries; if not, or if the build fails, the build is
removed (the sources run) and the exit status is 1. Prints the CPU seconds of both.

    .venv/bin/python tools/build_engine.py            # build and check
    .venv/bin/python tools/build_engine.py --clean    # remove the build
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlvr_sim.sim.compiled import GROUP, HERE, MODULES, PURE_ENV, STAMP, sha256, source_path  # noqa: E402


def built_files() -> list[Path]:
    """The extensions, mypyc's shared library and the stamp, where present."""
    out = [STAMP] if STAMP.exists() else []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        out += [HERE / f"{m.rsplit('.', 1)[1]}{suffix}" for m in MODULES]
        out += list(ROOT.glob(f"*__mypyc{suffix}")) + list(HERE.glob(f"*__mypyc{suffix}"))
    return [p for p in out if p.exists()]


def clean() -> None:
    for path in built_files():
        path.unlink()


# mypyc's shared library lives in the package (rlvr_sim/sim/engine__mypyc*), not at the
# repository root (mypyc's default), so an installed console script finds it too
SETUP = """
from setuptools import setup
from mypyc.build import mypycify
setup(name="rlvr_sim_engine", script_args=["build_ext", "--inplace"],
      ext_modules=mypycify({sources!r}, opt_level="3", group_name={group!r}))
"""


def build() -> None:
    """mypyc on the sources (raises CalledProcessError when it fails), then the stamp."""
    sources = [str(source_path(m).relative_to(ROOT)) for m in MODULES]
    subprocess.run([sys.executable, "-c", SETUP.format(sources=sources, group=GROUP)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    STAMP.write_text(json.dumps({m: sha256(source_path(m)) for m in MODULES}, indent=1) + "\n")


def summaries(pure: bool, plans: list[str] | None = None) -> tuple[dict[str, str], float, bool]:
    """The fingerprint plans' summaries (`plans`: some of them; default all) in a fresh process
    (the build, or the sources), its CPU seconds, and whether it ran the compiled engine."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop(PURE_ENV, None)
    if pure:
        env[PURE_ENV] = "1"
    code = ("import json, sys, time; sys.path.insert(0, 'tools'); t = time.process_time(); "
            "from kv_engine_fingerprint import summaries; from rlvr_sim.sim.compiled import in_use; "
            f"s = summaries({plans!r}); print(json.dumps([s, time.process_time() - t, in_use()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    found, cpu, compiled = json.loads(out.stdout.strip().splitlines()[-1])
    return found, cpu, compiled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--clean", action="store_true", help="remove the build and exit")
    args = p.parse_args(argv)
    clean()
    if args.clean:
        return 0
    t0 = time.perf_counter()
    try:
        build()
    except (subprocess.CalledProcessError, OSError) as e:
        clean()
        print(f"build_engine: mypyc failed ({e}); the Python sources run", file=sys.stderr)
        return 1
    print(f"build_engine: compiled {', '.join(MODULES)} in {time.perf_counter() - t0:.0f} s")
    fast, fast_cpu, compiled = summaries(pure=False)
    ref, ref_cpu, _ = summaries(pure=True)
    if not compiled or fast != ref:
        clean()
        why = "was not loaded" if not compiled else "gave other summaries than the sources"
        print(f"build_engine: the compiled engine {why}; build removed, the Python sources run",
              file=sys.stderr)
        return 1
    print(f"build_engine: {len(ref)} plans, summaries identical to the sources'; CPU {fast_cpu:.1f} s "
          f"compiled vs {ref_cpu:.1f} s sources ({ref_cpu / fast_cpu:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
