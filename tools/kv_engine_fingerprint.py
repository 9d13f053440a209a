"""Fingerprint of the event engine on KV-bound plans (issue 14): the summary JSON of
`simulate(scenario, steps=3)` for four plans of the README's 32B example that thrash the KV pool.

    PYTHONPATH=$PWD python tools/kv_engine_fingerprint.py record  out.json   # before a change
    PYTHONPATH=$PWD python tools/kv_engine_fingerprint.py check   out.json   # after: byte-identical?

`check` exits 1 naming each plan whose summary JSON differs. The workload is large (tens of
CPU-seconds per plan), which is why this is a tool and not a test.
"""

from __future__ import annotations

import json
import sys
import time

from rlvr_sim.scenario import load_scenario
from rlvr_sim.sim import simulate

SCENARIO = "scenarios/deepseek-r1-zero-like.yaml"
BASE = ["model=qwen2.5-32b", "hardware.gpu=h100-sxm"]
PLANS: dict[str, list[str]] = {
    "coloc S64tp4 sync": [
        "orchestration.placement=colocated", "sampler.gpus=64", "trainer.gpus=64",
        "sampler.tp=4", "trainer.tp=1", "trainer.pp=1"],
    "disagg S32tp4 T32 sync": [
        "orchestration.placement=disaggregated", "sampler.gpus=32", "trainer.gpus=32",
        "sampler.tp=4", "trainer.tp=2", "trainer.pp=2"],
    "disagg S16tp8 T48 async1": [
        "orchestration.placement=disaggregated", "orchestration.mode=async",
        "orchestration.max_staleness=1", "sampler.gpus=16", "trainer.gpus=48", "sampler.tp=8",
        "trainer.tp=4", "trainer.pp=1"],
    "disagg S40tp4 T24 async4": [
        "orchestration.placement=disaggregated", "orchestration.mode=async",
        "orchestration.max_staleness=4", "sampler.gpus=40", "trainer.gpus=24", "sampler.tp=4",
        "trainer.tp=2", "trainer.pp=4"],
    "disagg S24tp4 T40 async2": [        # the README example's recommended plan
        "orchestration.placement=disaggregated", "orchestration.mode=async",
        "orchestration.max_staleness=2", "sampler.gpus=24", "trainer.gpus=40", "sampler.tp=4",
        "trainer.tp=1", "trainer.pp=2"],
}
STEPS = 3


def summaries(names: list[str] | None = None) -> dict[str, str]:
    """Each plan's `summary.model_dump_json()` after STEPS steps."""
    out: dict[str, str] = {}
    for name, overrides in PLANS.items():
        if names and name not in names:
            continue
        scenario = load_scenario(SCENARIO, overrides=BASE + overrides)
        t = time.process_time()
        result = simulate(scenario, steps=STEPS, trace=False)
        print(f"{name:28s} cpu {time.process_time() - t:6.1f} s", file=sys.stderr, flush=True)
        out[name] = result.summary.model_dump_json()
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "check"):
        print("usage: kv_engine_fingerprint.py record|check FILE", file=sys.stderr)
        return 2
    mode, path = argv
    got = summaries()
    if mode == "record":
        with open(path, "w") as f:
            json.dump(got, f, indent=1)
        return 0
    with open(path) as f:
        want = json.load(f)
    bad = [name for name in PLANS if got.get(name) != want.get(name)]
    for name in bad:
        print(f"DIFFERS: {name}")
    print("identical" if not bad else f"{len(bad)} of {len(PLANS)} plans differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
