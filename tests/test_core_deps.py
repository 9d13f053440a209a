"""The simulator installs light (numpy, pandas, simpy, pydantic, pyyaml, pyarrow, tqdm): its
modules must import and simulate with the optional extras (scipy, torch, streamlit, ray...)
unavailable. A subprocess blocks them so the check holds whatever this venv has installed."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK = """
import sys
for name in ("scipy", "torch", "transformers", "vllm", "streamlit", "plotly", "ray", "matplotlib"):
    sys.modules[name] = None          # import of a blocked module raises ImportError
from rlvr_sim.cli import main
import rlvr_sim.schedule, rlvr_sim.dynamic_sampling, rlvr_sim.sim, rlvr_sim.sweep.planner
sys.exit(main(["simulate", "scenarios/minimal.yaml", "--steps", "2", "--json"]))
"""


def test_simulator_imports_and_runs_without_optional_extras():
    out = subprocess.run([sys.executable, "-c", BLOCK], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"step_time_s"' in out.stdout
