"""A real process pool of N verifier workers that scores completions as they arrive.

Each verification runs the task's checker in a worker process and records its own start/end
(wall clock, `time.time()`, comparable across processes) and the worker's id, so the trace has
one `verify` row per completion with its real latency. A checker that raises, or a worker that
dies (even by a signal), yields reward 0 with a reason; the pool is rebuilt and keeps working.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from rlvr_sim.lifecycle import become_worker
from executor.tasks import Problem, Task

_TASK: Task | None = None
_WORKER_ID = -1


@dataclass(frozen=True)
class VerifyResult:
    """The reward of one completion, why, and when/where it was computed."""

    index: int
    reward: float
    reason: str
    worker_id: int
    start_s: float       # time.time() in the worker
    end_s: float

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


def _init_worker(task: Task, counter) -> None:
    global _TASK, _WORKER_ID
    become_worker()     # quiet on Ctrl-C, exits with its parent (rlvr_sim.lifecycle)
    _TASK = task
    with counter.get_lock():
        _WORKER_ID = counter.value
        counter.value += 1


def _verify(index: int, problem: Problem, completion: str) -> VerifyResult:
    start = time.time()
    try:
        verdict = _TASK.check(problem, completion)
        reward, reason = float(verdict.reward), verdict.reason
    except Exception as exc:  # a checker bug must never stop the loop
        reward, reason = 0.0, f"checker error: {type(exc).__name__}: {exc}"
    return VerifyResult(index, reward, reason, _WORKER_ID, start, time.time())


class VerifierPool:
    """`workers` processes running `task.check`. Use as a context manager (or call close())."""

    def __init__(self, task: Task, workers: int):
        if workers < 1:
            raise ValueError(f"verifier workers={workers}: need at least 1")
        self.task, self.workers = task, workers
        self._ctx = mp.get_context("spawn")
        self._counter = self._ctx.Value("i", 0)
        self.restarts = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_init_worker,
                                   initargs=(self.task, self._counter))

    def submit(self, index: int, problem: Problem, completion: str) -> Future:
        """Queue one verification now (the caller may keep generating meanwhile)."""
        return self._pool.submit(_verify, index, problem, completion)

    def _recover(self, index: int, exc: BaseException, submitted_s: float) -> VerifyResult:
        return VerifyResult(index, 0.0, f"verifier worker crashed: {type(exc).__name__}", -1,
                            submitted_s, time.time())

    def score(self, items: list[tuple[Problem, str]]) -> list[VerifyResult]:
        """Rewards of (problem, completion) pairs, in input order; never raises for bad input."""
        return self.gather([self.submit(i, p, c) for i, (p, c) in enumerate(items)])

    def gather(self, futures: list[Future], submitted_s: float | None = None) -> list[VerifyResult]:
        """Results of `submit` futures in list order; a dead worker gives reward 0 (pool rebuilt)."""
        submitted_s = time.time() if submitted_s is None else submitted_s
        results, broken = [], False
        for i, fut in enumerate(futures):
            try:
                results.append(fut.result())
            except BrokenProcessPool as exc:
                broken = True
                results.append(self._recover(i, exc, submitted_s))
        if broken:
            self._restart()
        return results

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        self._pool = self._new_pool()

    def warm_up(self) -> None:
        """Start every worker now (spawn costs ~0.1-1 s each), so step 0 is not charged for it."""
        list(self._pool.map(_pid, range(self.workers)))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pid(_: int) -> int:
    time.sleep(0.05)   # keep each worker busy briefly so all of them start
    return os.getpid()
