"""The mypyc build of the sampler engine (rlvr_sim.sim.compiled, tools/build_engine.py): used
only when it is the current sources' build, all or nothing, and it gives the sources' results
byte for byte. The comparisons run in fresh processes (a process loads one or the other)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr_sim.sim.compiled import MODULES, PURE_ENV, Choice, current_choice, decide

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from build_engine import summaries  # noqa: E402  (the build's own check, on some plans)

HASHES = {m: f"h-{m}" for m in MODULES}
ALL = {m: True for m in MODULES}


def test_the_build_is_used_only_when_complete_current_and_not_refused():
    assert decide(HASHES, dict(HASHES), ALL, pure=False) == Choice(True, "compiled (mypyc)")
    assert not decide(HASHES, dict(HASHES), ALL, pure=True).compiled                 # RLVR_SIM_PURE=1
    assert decide(HASHES, None, {m: False for m in MODULES}, pure=False).reason == "not built (make engine)"
    partial = decide(HASHES, dict(HASHES), {**ALL, "rlvr_sim.sim.running": False}, pure=False)
    assert not partial.compiled and "rlvr_sim.sim.running" in partial.reason          # all or nothing
    assert not decide(HASHES, None, ALL, pure=False).compiled                        # no stamp
    edited = decide({**HASHES, "rlvr_sim.sim.sampler": "edited"}, dict(HASHES), ALL, pure=False)
    assert not edited.compiled and "sampler.py" in edited.reason and "make engine" in edited.reason


def test_pure_mode_runs_the_sources():
    _, _, compiled = summaries(pure=True, plans=["coloc S64tp4 sync"])
    assert compiled is False


@pytest.mark.skipif(not current_choice().compiled, reason=f"the compiled engine is not used: {current_choice().reason}")
def test_the_build_gives_the_sources_results_byte_for_byte():
    plans = ["disagg S32tp4 T32 sync", "disagg S16tp8 T48 async1"]     # one thrashes, one does not
    fast, _, compiled = summaries(pure=False, plans=plans)
    ref, _, pure = summaries(pure=True, plans=plans)
    assert compiled is True and pure is False
    assert fast == ref and set(fast) == set(plans)


@pytest.mark.skipif(not current_choice().compiled, reason=f"the compiled engine is not used: {current_choice().reason}")
def test_a_build_older_than_its_source_is_not_used(tmp_path):
    """A copy of the package whose sampler.py changed after the build (one comment line): the
    process runs the sources, all three of them, and says why on stderr."""
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "rlvr_sim", copy / "rlvr_sim", ignore=shutil.ignore_patterns("__pycache__"))
    sampler = copy / "rlvr_sim" / "sim" / "sampler.py"
    sampler.write_text(sampler.read_text() + "\n# edited after the build\n")
    code = ("import rlvr_sim.sim, sys; from rlvr_sim.sim import kv_pool, running, sampler; "
            "print([m.__file__.endswith('.py') for m in (kv_pool, running, sampler)])")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop(PURE_ENV, None)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[True, True, True]"
    assert "older than sampler.py" in out.stderr
    # the untouched copy runs the build
    sampler.write_text((ROOT / "rlvr_sim" / "sim" / "sampler.py").read_text())
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[False, False, False]" and out.stderr == ""


def test_plan_says_which_engine_ran(capsys):
    """`plan --json` names the engine (the build or the sources, and why), as its text does."""
    from rlvr_sim.cli import main
    from rlvr_sim.sim.compiled import engine_text

    small = Path(__file__).parent / "data" / "small-qwen1.5b.yaml"
    args = ["plan", str(small), "--total-gpus", "4", "--sampler-tp", "1", "--trainer-tp", "1",
            "--staleness", "0", "--workers", "1", "--draws", "0", "--confirm", "0", "--no-cache"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == engine_text()
    assert out["engine"].startswith("compiled") == current_choice().compiled
    assert main(args) == 0
    assert engine_text() in capsys.readouterr().out
