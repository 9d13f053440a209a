"""Run a command and watch how much CPU it got while it worked, step by step.

On a shared machine a run's wall time depends on other people's load. `watch_run` polls the
process (and its process tree) every `poll_s`: CPU seconds and the number of lines of a
metrics file the run appends one line per finished step to. `StepWindow.share` is then the
CPU share over the steady steps only (after the first step line, until the last), without the
start-up (imports, model build, worker spawn) that a whole-run share would mix in.
Limits: times resolve to `poll_s`; a process tree's CPU counts only live processes.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Sample:
    t_s: float          # time.time()
    cpu_main_s: float   # the command's own process
    cpu_tree_s: float   # it and its live descendants
    lines: int          # lines in the metrics file


@dataclass
class RunWatch:
    returncode: int
    wall_s: float
    stderr_tail: str
    samples: list[Sample]

    def step_window(self) -> tuple[Sample, Sample] | None:
        """First samples after the first and after the last metrics line appeared."""
        if not self.samples or self.samples[-1].lines < 2:
            return None
        first = next(s for s in self.samples if s.lines >= 1)
        last = next(s for s in self.samples if s.lines >= self.samples[-1].lines)
        return (first, last) if last.t_s > first.t_s else None

    def share(self, processes: int = 1, waiting_s: float = 0.0, tree: bool = False) -> float | None:
        """CPU share over the steady steps: CPU seconds / (processes x (window - waiting_s)).
        `waiting_s` is time in the window the process waits on others (verification)."""
        win = self.step_window()
        if win is None:
            return None
        a, b = win
        cpu = (b.cpu_tree_s - a.cpu_tree_s) if tree else (b.cpu_main_s - a.cpu_main_s)
        busy = max(b.t_s - a.t_s - waiting_s, 1e-9)
        return max(min(cpu / (processes * busy), 1.0), 0.0)


def _cpu(proc: psutil.Process) -> tuple[float, float]:
    try:
        t = proc.cpu_times()
        main = t.user + t.system
        tree = main
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
                tree += c.user + c.system
            except psutil.Error:
                pass
        return main, tree
    except psutil.Error:
        return float("nan"), float("nan")


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def watch_run(cmd: list[str], env: dict, metrics_path: Path, log_path: Path,
              timeout_s: float, poll_s: float = 0.1) -> RunWatch:
    """Run `cmd` to completion (killing it after `timeout_s`), sampling as described above."""
    samples: list[Sample] = []
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout_s:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(cmd, timeout_s)
            main, tree = _cpu(ps)
            if main == main:   # not nan: the process is still there
                samples.append(Sample(time.time(), main, tree, _lines(metrics_path)))
            time.sleep(poll_s)
    wall = time.perf_counter() - t0
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    return RunWatch(proc.returncode, wall, tail, samples)
