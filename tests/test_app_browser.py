"""The app in a real browser: `streamlit run app.py` served headless on localhost, Debian's
Chromium (headless, driven through chromedriver's W3C WebDriver HTTP API with the standard
library only) loads each page by its own path, waits for its expected elements, checks that no
traceback and no Deploy button is shown and saves a screenshot per page; and a new user's
question ("32 H100s, Qwen3-8B, 64 x 16, responses ~4K up to 16K, 300 steps: colocated or split,
sync or async, hours and dollars?") is walked end to end from the start page in at most 8
interactions.

Skipped when Chromium or chromedriver is missing (`tools/install_chromium.sh` installs both).
Screenshots go to $APP_SCREENSHOT_DIR when set (the committed ones: docs/screenshots/), else to
pytest's tmp dir, so a test run never rewrites tracked files.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Chromium + chromedriver (run tools/install_chromium.sh)")

# Flags for a root, offline, headless Chromium: without the background-networking ones the
# closed network makes it stall on start-up requests.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]
PAGE_WAIT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


class WebDriver:
    """The few W3C WebDriver commands the test needs, over HTTP to chromedriver."""

    def __init__(self, base: str):
        self.base = base
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": CHROMIUM_FLAGS + [f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
                                                       "--window-size=1400,1800"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        self.interactions = 0        # clicks and typed fields, as a user counts them

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read() or b"{}").get("value") or {}
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read()[:500]!r}") from None

    def cmd(self, method: str, path: str, body: dict | None = None) -> dict:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str) -> object:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": []})

    def resize(self, width: int, height: int) -> None:
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def click_button(self, text: str) -> None:
        xpath = f"//button[.//p[normalize-space()='{text}'] or normalize-space()='{text}']"
        element = self.cmd("POST", "/element", {"using": "xpath", "value": xpath})
        self.cmd("POST", f"/element/{next(iter(element.values()))}/click", {})
        self.interactions += 1

    def type_into(self, label: str, text: str, tag: str = "input") -> None:
        """Replace the text of the input (or textarea) whose aria-label is `label` and commit it:
        Enter for an input, Ctrl+Enter for a textarea."""
        element = self.cmd("POST", "/element", {"using": "css selector", "value": f"{tag}[aria-label='{label}']"})
        element_id = next(iter(element.values()))
        # Ctrl+A, release modifiers, then the new text and Enter (WebDriver's clear() bypasses React)
        commit = "\ue007" if tag == "input" else "\ue009\ue007\ue000"
        self.cmd("POST", f"/element/{element_id}/value", {"text": "\ue009a\ue000" + text + commit})
        self.interactions += 1

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self.cmd("GET", "/screenshot"))  # type: ignore[arg-type]
        path.write_bytes(png)
        return png

    def close(self) -> None:
        self._call("DELETE", f"/session/{self.session}")


@dataclass
class Page:
    url_path: str
    expect: tuple[str, ...]      # text the rendered page must contain
    plots: int                   # Plotly charts that must have rendered
    frames: int = 0              # st.dataframe grids that must be on the page
    height: int = 1800
    clicks: tuple[tuple[str, tuple[str, ...]], ...] = ()   # buttons to press, each with the text it brings
    typed: tuple[tuple[str, str, str], ...] = ()            # (tag, aria-label, text) typed before the clicks


PAGES = {
    "ask": Page("", ("Ask a question", "GPUs available", "Typical response (tokens)", "Answer"), plots=0),
    "plan": Page("plan?scenario=minimal.yaml", ("Plan a run", "Step time", "Tokens/s per GPU", "$ per step",
                                                "Hours for the run", "Critical-path bottleneck", "Downloads",
                                                "Results JSON", "Hours and $ are for a run of", "The step waits longest on"),
                 plots=5, height=2900),
    # two tables: the KPIs and the scenario differences (there is one only when plan B differs)
    "compare": Page("compare", ("Compare plans", "Plan A", "Plan B", "Results", "Scenario differences"),
                    plots=1, frames=2, height=2200,
                    typed=(("textarea", "Overrides (one `dotted.key=value` per line)", "sampler.tp=2"),)),
    "sweep": Page("sweep", ("Sweep and plan", "Grid over two knobs", "Step time (s)", "Pareto frontier",
                            "valid simulated plans", "Bottleneck"),
                  plots=4, frames=2, height=3200,
                  clicks=(("Run sweep", ("Step time (s)", "$ for the run")),
                          ("Recommend a plan", ("valid simulated plans",)))),
}


def calibration_page() -> Page:
    """What the Calibration page must show, given the profiles folder it reads (app_pages/state.py)."""
    folder = Path(os.environ.get("RLVR_SIM_PROFILES") or ROOT / "profiles")
    engine = bool(any(folder.rglob("*.engine-validation.json")) if folder.is_dir() else False)
    if any(folder.rglob("*.validation.json")) if folder.is_dir() else False:
        extra = ("Engine validation (vLLM)", "Misses most") if engine else ()
        return Page("calibration", ("Calibration", "What a profile is", "MAPE step time", "Error table", *extra),
                    plots=1 + engine, frames=2 + 2 * engine, height=2600 + 1600 * engine)
    if any(folder.rglob("*.y*ml")) if folder.is_dir() else False:
        return Page("calibration", ("Calibration", "Profile", "rlvr-sim validate"), plots=0, frames=1)
    return Page("calibration", ("Calibration", "No hardware profile found", "rlvr-sim calibrate"), plots=0)


PAGES["calibration"] = calibration_page()


@contextlib.contextmanager
def served_app(log_path: Path | None = None) -> Iterator[str]:
    """`streamlit run app.py` headless on a free localhost port; yields its base URL."""
    port = free_port()
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log = open(log_path or os.devnull, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def webdriver_session() -> Iterator[WebDriver]:
    """chromedriver on a free port and one headless Chromium session."""
    port = free_port()
    proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/status", 30)
        driver = WebDriver(f"http://127.0.0.1:{port}")
        try:
            yield driver
        finally:
            driver.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_app(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with webdriver_session() as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("APP_SCREENSHOT_DIR")
    out = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def page_state(driver: WebDriver) -> tuple[str, int, int, bool]:
    """(visible text, rendered Plotly charts, dataframe grids, whether a script run is unfinished).

    Unfinished: Streamlit's own run state on the app root is not `notRunning`, or elements of the
    previous run are still marked stale.
    """
    got = driver.js("""const app = document.querySelector('[data-testid="stApp"]');
        return [document.body.innerText,
        document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 ?
            document.querySelectorAll('.js-plotly-plot').length : 0,
        document.querySelectorAll('[data-testid="stDataFrame"]').length,
        !app || app.getAttribute('data-test-script-state') !== 'notRunning' ||
            document.querySelector('[data-stale="true"]') !== null];""")
    return str(got[0]), int(got[1]), int(got[2]), bool(got[3])  # type: ignore[index]


def wait_for(driver: WebDriver, page: Page, expect: tuple[str, ...], plots: int, frames: int = 0,
             wait_s: float = PAGE_WAIT_S) -> str:
    deadline = time.monotonic() + wait_s
    text, rendered, grids, running = "", 0, 0, True
    while time.monotonic() < deadline:
        text, rendered, grids, running = page_state(driver)
        if all(e in text for e in expect) and rendered >= plots and grids >= frames and not running:
            time.sleep(1.0)  # let Plotly finish drawing before the screenshot
            return page_state(driver)[0]
        time.sleep(0.5)
    missing = [e for e in expect if e not in text]
    raise AssertionError(f"page /{page.url_path}: missing {missing}, {rendered}/{plots} charts, "
                         f"{grids}/{frames} tables, running={running}; text: {text[:1500]}")


def check_png(png: bytes, width: int, height: int) -> None:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib (calibration extra)
        return
    import io

    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size[0] >= width * 0.9 and image.size[1] >= height * 0.5
    lo, hi = image.getextrema()
    assert hi - lo > 100, "screenshot is blank"


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_in_chromium(name: str, server: str, browser: WebDriver, shots: Path) -> None:
    page = PAGES[name]
    browser.resize(1400, page.height)
    browser.get(f"{server}/{page.url_path}")
    for tag, label, value in page.typed:
        wait_for(browser, page, (), 0)
        browser.type_into(label, value, tag)
    for button, brings in page.clicks:
        wait_for(browser, page, (button,), 0)
        for attempt in range(3):   # a click that lands while Streamlit reruns is dropped: retry
            browser.click_button(button)
            try:
                wait_for(browser, page, brings, 0, wait_s=PAGE_WAIT_S / 3)
                break
            except AssertionError:
                if page_state(browser)[3]:     # still running what the click started (a plan
                    # search, minutes on a loaded 2-core machine): wait, a click would restart it
                    wait_for(browser, page, brings, 0, wait_s=6 * PAGE_WAIT_S)
                    break
                if attempt == 2:
                    raise
    text = wait_for(browser, page, page.expect, page.plots, page.frames)
    assert "Traceback" not in text and "Page not found" not in text and "Deploy" not in text
    png = browser.screenshot(shots / f"{name}.png")
    check_png(png, 1400, page.height)


def test_invalid_knob_shows_its_error_between_that_field_and_the_next(server: str, browser: WebDriver,
                                                                      shots: Path) -> None:
    page = Page("plan?scenario=minimal.yaml", ("Plan a run", "Step time"), plots=4, height=1800)
    browser.resize(1400, page.height)
    browser.get(f"{server}/{page.url_path}")
    wait_for(browser, page, page.expect, page.plots)
    browser.type_into("Sampler TP", "3")
    text = wait_for(browser, page, ("sampler.tp=3 does not divide", "Invalid scenario", "see Sampler TP"), 0)
    assert "Traceback" not in text and "Tokens/s/GPU" not in text        # no results, no traceback
    box = browser.js("""
        const top = label => document.querySelector(`input[aria-label='${label}']`).getBoundingClientRect();
        const alert = [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stAlert"]')]
            .map(a => a.getBoundingClientRect());
        return [top('Sampler TP').bottom, top('Trainer TP').top, alert.map(a => a.top)];""")
    tp_bottom, next_top, alerts = box  # type: ignore[misc]
    assert len(alerts) == 1 and tp_bottom < alerts[0] < next_top
    assert str(ROOT) not in text                                          # relative paths only
    png = browser.screenshot(shots / "plan-invalid.png")
    check_png(png, 1400, page.height)


# The question of issue 18, as a new user types it into the start page.
QUESTION = (("GPUs available", "32"), ("Model", "qwen3-8b"), ("Typical response (tokens)", "4096"),
            ("Longest response (tokens)", "16384"), ("Run length (RL steps)", "300"))
MAX_INTERACTIONS = 8


def test_new_users_question_end_to_end_in_at_most_8_interactions(server: str, browser: WebDriver,
                                                                  shots: Path) -> None:
    """Start page -> five answers (GPU type and 64 x 16 are the form's defaults) -> Answer ->
    the answer in words -> Open this plan on Plan -> its KPIs; screenshots of each stage."""
    browser.resize(1400, 1900)
    browser.get(f"{server}/")
    start = Page("", ("Ask a question", "Answer"), plots=0)
    text = wait_for(browser, start, start.expect, 0)
    assert "Prompts per step" in text
    browser.interactions = 0
    for label, value in QUESTION:
        browser.type_into(label, value)
    got = browser.js("return [...document.querySelectorAll('input')].map(i => [i.getAttribute('aria-label'), i.value])")
    fields = dict(got)  # type: ignore[arg-type]
    assert fields["GPUs available"] == "32" and fields["Model"] == "qwen3-8b" and fields["GPU type"] == "h100-sxm"
    assert fields["Prompts per step"] == "64" and fields["Samples per prompt"] == "16"
    assert fields["Longest response (tokens)"] == "16384" and fields["Run length (RL steps)"] == "300"
    browser.screenshot(shots / "ask-question.png")
    browser.click_button("Answer")
    answer = Page("", ("Colocated or split:", "Sync or async:", "Hours and dollars:", "for 300 steps",
                       "Pareto frontier"), plots=1, frames=1, height=2600)
    browser.resize(1400, answer.height)
    text = wait_for(browser, answer, answer.expect, answer.plots, answer.frames, wait_s=600)
    assert "Traceback" not in text and "32x h100-sxm" in text
    png = browser.screenshot(shots / "ask-answer.png")
    check_png(png, 1400, answer.height)
    browser.click_button("Open this plan on Plan")
    plan = Page("plan", ("Plan a run", "Hours for the run", "question.yaml", "Hours and $ are for a run of",
                         "300 steps"), plots=5, height=2900)
    text = wait_for(browser, plan, plan.expect, plan.plots, wait_s=300)
    assert "Traceback" not in text and "Invalid scenario" not in text
    png = browser.screenshot(shots / "plan-from-question.png")
    check_png(png, 1400, plan.height)
    assert browser.interactions <= MAX_INTERACTIONS, browser.interactions
