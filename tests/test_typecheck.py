"""The type checker runs in `make test` as a ratchet: mypy over rlvr_sim/, executor/,
calibration/ and the app (app.py, app_pages/; config in pyproject.toml) may report errors only in the files listed here (none today), each
at most as many as listed. A file not listed must stay clean, so a renamed field that breaks a typed
caller (e.g. `Summary.utilization` read in rlvr_sim/commands/simulate.py) fails this test. Lower
a count or drop a file as it gets fixed; never raise one."""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# errors per file allowed: none since 2026-11-30 (164 in 35 files before issue 17's work); keep
# the table so a file can be listed while it is being brought in, never to hide a regression
KNOWN_ERRORS: dict[str, int] = {}


def test_mypy_reports_no_new_errors():
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed (dev extra)")
    out = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True, timeout=900)
    errors = Counter(line.split(":", 1)[0] for line in out.stdout.splitlines() if ": error:" in line)
    worse = {f: (n, KNOWN_ERRORS.get(f, 0)) for f, n in errors.items() if n > KNOWN_ERRORS.get(f, 0)}
    assert not worse, f"new mypy errors (file: (now, allowed)): {worse}\n{out.stdout[-3000:]}"


# The typed seams between packages: every def annotated, no Any leaking from untyped calls.
STRICT_SEAMS = ["executor/results.py", "executor/run.py", "executor/records.py",
                "executor/channels.py", "executor/checkpoint.py", "executor/checkpoint_store.py",
                "executor/cli.py", "executor/orchestrator.py", "executor/tracing.py",
                "rlvr_sim/trace.py"]


def test_typed_seams_pass_mypy_strict():
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed (dev extra)")
    out = subprocess.run([mypy, "--strict", "--follow-imports=silent", *STRICT_SEAMS], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:]
