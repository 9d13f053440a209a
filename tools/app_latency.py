"""Interaction latency of the app's Plan page for a standard scenario: cold vs cached.

Measurements, interleaved so machine noise hits both alike, medians reported:
1. library path: `app_pages.state.simulate(request)` (the cached `rlvr_sim.api.simulate`, what the
   Plan page calls on every widget change) for a series of knob changes, each called cold (new
   overrides) and then again (answered by st.cache_data);
2. page path: a streamlit.testing AppTest of the whole app, changing the Sampler TP / Verifier
   workers widgets (`at.run()` wall time: script run + simulate + charts), first visit of a value
   vs a return to a value seen before.

3. with --browser: the app served on localhost and driven in headless Chromium (as the browser
   test does): seconds from pressing Enter in the Sampler TP / Verifier workers input to the
   finished page (new caption, no run in progress, all four charts drawn).

Usage: .venv/bin/python tools/app_latency.py [--scenario scenarios/X.yaml] [--repeats 3] [--browser] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
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
    from rlvr_sim.api import SimulateRequest

    source = state.source_from_file(scenario)
    steps = state.quick_steps()
    cold, cached, full = [], [], []
    for rep in range(repeats):
        state._simulate.clear()
        state._load.clear()
        for field, values in CHANGES:
            for value in values:
                request = SimulateRequest(source, (f"{field}={value}", f"workload.seed={rep}"), sim_steps=steps)
                cold.append(_timed(lambda: state.simulate(request)))
                cached.append(_timed(lambda: state.simulate(request)))
        every = SimulateRequest(source, (f"workload.seed={rep}",), sim_steps=None)
        full.append(_timed(lambda: state.simulate(every)))
    return {"steps": steps, "cold_s": statistics.median(cold), "cached_s": statistics.median(cached),
            "cold_max_s": max(cold), "cached_max_s": max(cached), "calls": len(cold),
            "all_steps_cold_s": statistics.median(full)}


def page_path(scenario: Path, repeats: int) -> dict:
    """AppTest run seconds after a widget change: first visit of a value vs a return to it."""
    from streamlit.testing.v1 import AppTest

    from app_pages import state

    first, revisit = [], []
    for _ in range(repeats):
        state._simulate.clear()
        state._load.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        at.switch_page("app_pages/plan.py").run()
        at.sidebar.selectbox(key="run:file").set_value(scenario.name).run()
        for field, values in CHANGES:
            widget_key = f"knob:{field}"
            for value in values:
                first.append(_timed(lambda: at.sidebar.number_input(key=widget_key).set_value(value).run()))
            for value in values:
                revisit.append(_timed(lambda: at.sidebar.number_input(key=widget_key).set_value(value).run()))
        if at.exception or not at.metric:
            raise RuntimeError(f"the page did not show results: {at.exception}")
    return {"first_visit_s": statistics.median(first), "revisit_cached_s": statistics.median(revisit),
            "first_visit_max_s": max(first), "revisit_max_s": max(revisit), "changes": len(first)}


# Widget labels of the knobs in CHANGES on the Plan page (app_pages/widgets.py KNOBS).
LABELS = {"sampler.tp": "Sampler TP", "verifier.workers": "Verifier workers"}


_PROBE = """const app = document.querySelector('[data-testid="stApp"]');
    const caption = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
        .map(c => c.innerText).find(t => t.startsWith('Scenario:')) || '';
    const server = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
        .map(c => c.innerText).find(t => t.startsWith('Page computed in')) || '';
    return [caption, server, document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 ?
                document.querySelectorAll('.js-plotly-plot').length : 0,
            !!app && app.getAttribute('data-test-script-state') === 'notRunning' &&
                document.querySelector('[data-stale="true"]') === null,
            document.querySelectorAll('[data-testid="stMetric"]').length];"""


def _settled(driver, field: str, value: int, base_value: int) -> bool:
    """The page shows the finished run for `field=value`: its caption, no run in progress, nothing
    stale, the 4 charts and the KPIs drawn (a light probe: it must not slow the page it watches)."""
    caption, _, plots, finished, metrics = driver.js(_PROBE)
    shows = f"{field}={value}" in caption if value != base_value else f"{field}=" not in caption
    return bool(caption) and shows and finished and plots >= 4 and metrics >= 8


def _server_s(driver) -> float:
    """The server's own compute time of the page, from its 'Page computed in X s' caption."""
    text = driver.js(_PROBE)[1]
    return float(text.split("Page computed in ")[1].split(" s")[0])


def browser_path(scenario: Path) -> dict:
    """Seconds from pressing Enter in a Plan-page number input to the finished results in Chromium.

    One server, so each non-default value is cold on its first visit (the page's default plan was
    simulated on load) and cached when visited again.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from test_app_browser import CHROMEDRIVER, CHROMIUM, served_app, webdriver_session

    from app_pages import state, widgets

    if CHROMIUM is None or CHROMEDRIVER is None:
        return {"skipped": "Chromium is not installed (tools/install_chromium.sh)"}
    base = state.resolved_dict(state.load(state.source_from_file(scenario)))
    first, revisit, server_first, server_revisit = [], [], [], []
    with served_app() as url, webdriver_session() as driver:
        driver.resize(1400, 2600)
        driver.get(f"{url}/plan?scenario={scenario.name}")
        _wait(lambda: _settled(driver, "sampler.tp", -1, -1), 120)
        for field, values in CHANGES:
            base_value = widgets.get_path(base, field)
            for out in (first, revisit):
                for value in values:
                    start = time.perf_counter()
                    driver.type_into(LABELS[field], str(value))
                    _wait(lambda: _settled(driver, field, value, base_value), 120)
                    if out is revisit or value != base_value:
                        out.append(time.perf_counter() - start)
                        (server_revisit if out is revisit else server_first).append(_server_s(driver))
    return {"first_visit_s": statistics.median(first), "revisit_cached_s": statistics.median(revisit),
            "server_first_visit_s": statistics.median(server_first),
            "server_revisit_cached_s": statistics.median(server_revisit),
            "first_visit_max_s": max(first), "revisit_max_s": max(revisit),
            "changes": len(first), "revisits": len(revisit)}


def _wait(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError("the page did not settle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time the page in headless Chromium")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    result = {"scenario": str(args.scenario.relative_to(ROOT) if args.scenario.is_absolute() else args.scenario),
              "library": library_path(args.scenario.resolve(), args.repeats),
              "page": page_path(args.scenario.resolve(), args.repeats)}
    if args.browser:
        result["browser"] = browser_path(args.scenario.resolve())
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lib, page = result["library"], result["page"]
        load = result["load_average_1min"]
        print(f"scenario {result['scenario']} ({lib['steps']} simulated steps per change); "
              f"load average {load['before']:.1f} -> {load['after']:.1f} on {load['cpus']} CPUs")
        print(f"library state.simulate: cold {lib['cold_s']:.3f} s, cached {lib['cached_s'] * 1e3:.1f} ms "
              f"(medians of {lib['calls']}); every step of the run, cold: {lib['all_steps_cold_s']:.2f} s")
        print(f"page AppTest run after a change: first visit {page['first_visit_s']:.3f} s, "
              f"revisit (cached) {page['revisit_cached_s']:.3f} s (medians of {page['changes']})")
        if "browser" in result and "skipped" not in result["browser"]:
            b = result["browser"]
            print(f"Chromium, Enter to results: first visit {b['first_visit_s']:.3f} s, "
                  f"revisit (cached) {b['revisit_cached_s']:.3f} s; of which the server computed "
                  f"{b['server_first_visit_s']:.3f} s / {b['server_revisit_cached_s']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
