"""Interaction latency of the app's Plan page for a standard scenario: cold vs cached.

Two measurements, interleaved so machine noise hits both alike, medians reported:
1. library path: `app_pages.state.simulate(source, overrides, steps)` (what the Plan page calls on
   every widget change) for a series of knob changes, each called cold (new overrides) and then
   again (answered by st.cache_data);
2. page path: a streamlit.testing AppTest of the whole app, changing the Sampler TP / Verifier
   workers widgets (`at.run()` wall time: script run + simulate + charts), first visit of a value
   vs a return to a value seen before.

Usage: .venv/bin/python tools/app_latency.py [--scenario scenarios/X.yaml] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SCENARIO = ROOT / "scenarios" / "nemo-rl-llama3.1-8b-onpolicy.yaml"
# Knob changes a user makes one after another (field, values visited in order).
CHANGES = (("sampler.tp", (2, 4, 1)), ("verifier.workers", (32, 128, 64)))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def library_path(scenario: Path, repeats: int) -> dict:
    """Cold and cached seconds of `state.simulate` per knob change (steps = the page's default)."""
    from app_pages import state

    source = state.source_from_file(scenario)
    steps = state.quick_steps()
    cold, cached, full = [], [], []
    for rep in range(repeats):
        state._simulate.clear()
        state._load.clear()
        for field, values in CHANGES:
            for value in values:
                overrides = (f"{field}={value}", f"workload.seed={rep}")
                cold.append(_timed(lambda: state.simulate(source, overrides, steps=steps)))
                cached.append(_timed(lambda: state.simulate(source, overrides, steps=steps)))
        full.append(_timed(lambda: state.simulate(source, (f"workload.seed={rep}",), steps=None)))
    return {"steps": steps, "cold_s": statistics.median(cold), "cached_s": statistics.median(cached),
            "cold_max_s": max(cold), "cached_max_s": max(cached), "calls": len(cold),
            "all_steps_cold_s": statistics.median(full)}


def page_path(scenario: Path, repeats: int) -> dict:
    """AppTest run seconds after a widget change: first visit of a value vs a return to it."""
    from streamlit.testing.v1 import AppTest

    from app_pages import state

    first, revisit = [], []
    key = f"plan:{scenario.name}"
    for _ in range(repeats):
        state._simulate.clear()
        state._load.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        at.sidebar.selectbox(key="plan:file").set_value(scenario.name).run()
        for field, values in CHANGES:
            widget_key = f"{key}:{field}"
            for value in values:
                first.append(_timed(lambda: at.sidebar.number_input(key=widget_key).set_value(value).run()))
            for value in values:
                revisit.append(_timed(lambda: at.sidebar.number_input(key=widget_key).set_value(value).run()))
        if at.exception or not at.metric:
            raise RuntimeError(f"the page did not show results: {at.exception}")
    return {"first_visit_s": statistics.median(first), "revisit_cached_s": statistics.median(revisit),
            "first_visit_max_s": max(first), "revisit_max_s": max(revisit), "changes": len(first)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"scenario": str(args.scenario.relative_to(ROOT) if args.scenario.is_absolute() else args.scenario),
              "library": library_path(args.scenario.resolve(), args.repeats),
              "page": page_path(args.scenario.resolve(), args.repeats)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lib, page = result["library"], result["page"]
        print(f"scenario {result['scenario']} ({lib['steps']} simulated steps per change)")
        print(f"library state.simulate: cold {lib['cold_s']:.3f} s, cached {lib['cached_s'] * 1e3:.1f} ms "
              f"(medians of {lib['calls']}); every step of the run, cold: {lib['all_steps_cold_s']:.2f} s")
        print(f"page AppTest run after a change: first visit {page['first_visit_s']:.3f} s, "
              f"revisit (cached) {page['revisit_cached_s']:.3f} s (medians of {page['changes']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
