"""A real process pool of N verifier workers that scores completions as they arrive.

Each verification runs the task's checker in a worker process and records its own start/end
(wall clock, `time.time()`, comparable across processes) and the worker's id, so the trace has
one `verify` row per completion with its real latency. A checker that raises, or a worker that
dies (even by a signal), yields reward 0 with a reason; the pool is rebuilt and keeps working.

Per-item timeout (`item_timeout_s`): inside the worker a SIGALRM interrupts a checker that runs
longer (reward 0, "verifier timeout"; sre regexes and subprocess waits are interruptible). As
a backstop for a checker stuck where signals cannot reach it, `gather` kills the workers when no
item has finished for item_timeout_s + HARD_GRACE_S; the items that had not reached a worker
are resubmitted, the others score 0 ("verifier hard timeout").
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
import time
import weakref
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from rlvr_sim.lifecycle import QuietSpawnContext, become_worker
from executor.tasks import Problem, Task

_TASK: Task | None = None
_WORKER_ID = -1
# reason prefixes of results that are not a grade of the answer (see VerifyResult.outcome)
TIMEOUT = "verifier timeout"
HARD_TIMEOUT = "verifier hard timeout"
CHECKER_ERROR = "checker error"          # = rlvr_sim.trace.CHECKER_ERROR (older traces' reasons)
WORKER_CRASHED = "verifier worker crashed"
DEFAULT_ITEM_TIMEOUT_S = 30.0
HARD_GRACE_S = 5.0


class ItemTimeout(BaseException):
    """Raised in a worker by SIGALRM when one check runs past the item timeout. A
    BaseException, so a checker's own `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
    raise ItemTimeout()


@dataclass(frozen=True)
class VerifyResult:
    """The reward of one completion, why, and when/where it was computed."""

    index: int
    reward: float
    reason: str
    worker_id: int
    start_s: float       # time.time() in the worker
    end_s: float
    isolation: str = ""  # sandbox of a code check ("os" / "python" / "none"); "" otherwise

    @property
    def outcome(self) -> str:
        """"timeout" (past the item timeout, soft or hard), "checker_error" (the checker raised
        or its worker died), "wrong_answer" (graded, reward 0) or "scored" (graded, reward > 0).
        The trace's verify rows count the first three apart (not one `failures` count)."""
        if self.reason.startswith((TIMEOUT, HARD_TIMEOUT)):
            return "timeout"
        if self.reason.startswith((CHECKER_ERROR, WORKER_CRASHED)):
            return "checker_error"
        return "wrong_answer" if self.reward == 0 else "scored"

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


_BEACON_FD: dict[str, int] = {}


def _beacon(beacon_dir: str, token: int) -> None:
    """Record the item this worker is running: one pwrite on a file kept open per worker."""
    fd = _BEACON_FD.get(beacon_dir)
    if fd is None:
        fd = _BEACON_FD[beacon_dir] = os.open(os.path.join(beacon_dir, str(os.getpid())),
                                              os.O_WRONLY | os.O_CREAT, 0o600)
    os.pwrite(fd, b"%20d" % token, 0)


def _verify(index: int, problem: Problem, completion: str, timeout_s: float | None = None,
            token: int = -1, beacon_dir: str | None = None) -> VerifyResult:
    start = time.time()
    isolation = ""
    if beacon_dir is not None:      # which item this worker runs, for the hard-timeout watchdog
        _beacon(beacon_dir, token)
    if timeout_s:
        if signal.getsignal(signal.SIGALRM) is not _on_alarm:
            signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        try:
            if _TASK is None:
                raise RuntimeError("verifier worker was not initialised with a task")
            verdict = _TASK.check(problem, completion)
        finally:
            if timeout_s:
                signal.setitimer(signal.ITIMER_REAL, 0)
        reward, reason = float(verdict.reward), verdict.reason
        isolation = getattr(verdict, "isolation", "")
    except ItemTimeout:
        reward, reason = 0.0, f"{TIMEOUT}: item over {timeout_s:g} s"
    except Exception as exc:  # a checker bug must never stop the loop
        reward, reason = 0.0, f"{CHECKER_ERROR}: {type(exc).__name__}: {exc}"
    return VerifyResult(index, reward, reason, _WORKER_ID, start, time.time(), isolation)


class VerifierPool:
    """`workers` processes running `task.check`. Use as a context manager (or call close()).

    item_timeout_s: the most one check may take (reward 0 beyond; None: no limit)."""

    def __init__(self, task: Task, workers: int,
                 item_timeout_s: float | None = DEFAULT_ITEM_TIMEOUT_S):
        if workers < 1:
            raise ValueError(f"verifier workers={workers}: need at least 1")
        if item_timeout_s is not None and item_timeout_s <= 0:
            raise ValueError(f"verifier item_timeout_s={item_timeout_s}: give a positive time or None")
        self.task, self.workers, self.item_timeout_s = task, workers, item_timeout_s
        self._ctx = QuietSpawnContext()     # spawn; a Ctrl-C during a worker's start-up is dropped
        self._counter = self._ctx.Value("i", 0)
        self.restarts = 0
        self._args: weakref.WeakKeyDictionary[Future, tuple[int, Problem, str]] = \
            weakref.WeakKeyDictionary()
        self._tokens: weakref.WeakKeyDictionary[Future, int] = weakref.WeakKeyDictionary()
        self._token_counter = itertools.count()
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self._beacons = tempfile.mkdtemp(prefix="rlvr-verifier-", dir=shm) if item_timeout_s else None
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_init_worker,
                                   initargs=(self.task, self._counter))

    def submit(self, index: int, problem: Problem, completion: str) -> Future:
        """Queue one verification now (the caller may keep generating meanwhile)."""
        token = next(self._token_counter)      # atomic: submit may come from several threads
        fut = self._pool.submit(_verify, index, problem, completion, self.item_timeout_s, token,
                                self._beacons)
        self._args[fut], self._tokens[fut] = (index, problem, completion), token
        return fut

    def _recover(self, index: int, exc: BaseException, submitted_s: float) -> VerifyResult:
        return VerifyResult(index, 0.0, f"{WORKER_CRASHED}: {type(exc).__name__}", -1,
                            submitted_s, time.time())

    def score(self, items: list[tuple[Problem, str]]) -> list[VerifyResult]:
        """Rewards of (problem, completion) pairs, in input order; never raises for bad input."""
        return self.gather([self.submit(i, p, c) for i, (p, c) in enumerate(items)])

    def gather(self, futures: list[Future], submitted_s: float | None = None) -> list[VerifyResult]:
        """Results of `submit` futures in list order; a dead worker gives reward 0 (pool rebuilt)."""
        submitted_s = time.time() if submitted_s is None else submitted_s
        futures = self._watch(list(futures))
        results, broken = [], False
        for i, fut in enumerate(futures):
            try:
                results.append(fut.result())
            except BrokenProcessPool as exc:
                broken = True
                results.append(self._recover(i, exc, submitted_s))
            except _HardTimeout as exc:
                results.append(VerifyResult(i, 0.0, str(exc), -1, submitted_s, time.time()))
            self._args.pop(fut, None)
        if broken:
            self._restart()
        return results

    def _watch(self, futures: list[Future]) -> list[Future]:
        """Wait until every future is done; if none finishes for item_timeout_s + HARD_GRACE_S
        (every busy worker is stuck past its SIGALRM), kill the workers, fail the items they
        were running (each worker names its item in a beacon file) and resubmit the others.
        Returns the futures to read, in order."""
        if self.item_timeout_s is None:
            return futures
        window = self.item_timeout_s + HARD_GRACE_S
        pending = [f for f in futures if not f.done()]
        while True:
            done, not_done = wait(pending, timeout=window)
            if not not_done:
                return futures
            pending = list(not_done)
            if done:        # progress during this window: the workers are alive
                continue
            procs = list(getattr(self._pool, "_processes", {}).values())
            running = self._running_tokens([p.pid for p in procs])
            stuck = [f for f in pending if self._tokens.get(f) in running]
            queued = [f for f in pending if f not in stuck]
            for proc in procs:
                proc.kill()
            for f in pending:       # the pool breaks; wait until it has failed every future
                try:
                    f.exception(timeout=window)
                except Exception:
                    pass
            self._restart()
            self.warm_up()          # the next window must not count the new workers' start-up
            replaced = {}
            for f in queued:
                replaced[f] = self.submit(*self._args.pop(f))
            for f in stuck:
                self._args.pop(f, None)
                failed: Future[VerifyResult] = Future()
                failed.set_exception(_HardTimeout(
                    f"{HARD_TIMEOUT}: no result within {window:g} s (worker killed)"))
                replaced[f] = failed
            futures = [replaced.get(f, f) for f in futures]
            pending = [f for f in futures if not f.done()]

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        self._pool = self._new_pool()

    def warm_up(self) -> None:
        """Start every worker now (spawn costs ~0.1-1 s each), so step 0 is not charged for it."""
        list(self._pool.map(_pid, range(self.workers)))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._beacons:
            shutil.rmtree(self._beacons, ignore_errors=True)

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


    def _running_tokens(self, pids: list[int]) -> set[int]:
        tokens: set[int] = set()
        if self._beacons is None:         # no item timeout: no beacons written
            return tokens
        for pid in pids:
            try:
                with open(os.path.join(self._beacons, str(pid))) as f:
                    tokens.add(int(f.read()))
            except (OSError, ValueError):
                pass
        return tokens


class _HardTimeout(Exception):
    """An item whose worker was killed by the gather watchdog."""


def _pid(_: int) -> int:
    time.sleep(0.05)   # keep each worker busy briefly so all of them start
    return os.getpid()
