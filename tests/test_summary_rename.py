"""Mutation check (issue 17): renaming a `Summary` field breaks the type check of the code that
reads it. A temporary copy of rlvr_sim/ gets `Summary.utilization` renamed; mypy (the project's
pydantic plugin) must then report `rlvr_sim/commands/simulate.py`, which prints it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIELD = "    utilization: dict[str, float]\n"
CONFIG = """[mypy]
plugins = pydantic.mypy
ignore_missing_imports = True
check_untyped_defs = False
"""


def test_renaming_a_summary_field_fails_the_type_check(tmp_path):
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed (dev extra)")
    shutil.copytree(ROOT / "rlvr_sim", tmp_path / "rlvr_sim",
                    ignore=shutil.ignore_patterns("__pycache__"))
    metrics = tmp_path / "rlvr_sim" / "sim" / "metrics.py"
    text = metrics.read_text()
    assert text.count(FIELD) == 1, "Summary.utilization moved: update this test's mutation"
    metrics.write_text(text.replace(FIELD, "    utilization_renamed: dict[str, float]\n"))
    (tmp_path / "mypy.ini").write_text(CONFIG)
    out = subprocess.run([mypy, "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / ".cache"),
                          "rlvr_sim/commands/simulate.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900)
    hits = [line for line in out.stdout.splitlines()
            if line.startswith("rlvr_sim/commands/simulate.py") and '"utilization"' in line]
    assert hits, f"mypy did not catch the rename:\n{out.stdout[-3000:]}"
