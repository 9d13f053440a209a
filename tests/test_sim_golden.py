"""Golden outputs: every shipped scenario, 3 steps, seed 7, fast and exact, against
tests/data/golden_sim.json (written by tools/golden_sim.py).

A refactor of the simulator must leave the summaries as they are (floats to 1e-9 relative: a
reordering of a sum may move the last bits); a change of behaviour regenerates the file
(`python tools/golden_sim.py tests/data/golden_sim.json --compare <old>` prints what moved) and
says so in its commit. The trace hash is compared by the tool, not here (it changes with the
last bit of any time).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "data" / "golden_sim.json").read_text())
sys.path.insert(0, str(ROOT / "tools"))


def _same(a, b, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only on one side" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += _same(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [m for i, (x, y) in enumerate(zip(a, b)) for m in _same(x, y, f"{where}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
                and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
            return []
    elif a == b:
        return []
    return [f"{where}: golden {a!r}, now {b!r}"]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_scenario_summary_matches_the_golden_file(name):
    import golden_sim

    now = golden_sim.golden(ROOT / "scenarios" / f"{name}.yaml")
    for kind in ("fast", "exact"):
        assert now[kind]["trace_rows"] == GOLDEN[name][kind]["trace_rows"]
        diff = _same(GOLDEN[name][kind]["summary"], now[kind]["summary"], kind)
        assert not diff, "\n".join(diff[:20])


def test_the_golden_file_covers_every_shipped_scenario():
    assert sorted(GOLDEN) == sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
