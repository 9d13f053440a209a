"""Where jobs run: in-process (1 worker), a local process pool, or Ray (local or a cluster).

Every pool has the same interface: `run(jobs)` yields `PlanOutcome`s as chunks finish (in no
particular order) and `close()` releases the workers. The evaluate function travels with each
chunk, so it must be a module-level function (the default `evaluate_plan` is). A pool stays open
across calls, so the planner's search rounds do not pay worker start-up again.

Streaming (`Streaming`: `submit(job)` then `next_done()`, one outcome per submitted job as it
finishes): what the branch and bound and the robustness draws use to keep every worker busy,
choosing the next plan only when a worker frees (so with the results known so far), instead of
waiting for a whole round. `InlinePool` runs a job at `next_done()`, in submission order, so a
serial search is deterministic. `streaming(pool)` gives any pool that only has `run` (a wrapper)
the streaming interface by running what was submitted as one batch.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Iterator, Protocol, cast

from rlvr_sim.errors import UserError
from rlvr_sim.lifecycle import become_worker, sigint_held
from rlvr_sim.sweep.jobs import Evaluate, PlanJob, PlanOutcome, evaluate_chunk, evaluate_plan, preload_simulator


class Pool(Protocol):
    workers: int

    def run(self, jobs: list[PlanJob]) -> Iterator[PlanOutcome]: ...

    def close(self) -> None: ...


class Streaming(Protocol):
    """A pool that takes jobs one at a time and hands back outcomes as they finish."""

    workers: int

    def submit(self, job: PlanJob) -> None: ...

    def next_done(self) -> PlanOutcome:
        """The outcome of one submitted job that has not been handed back yet (blocks until one
        finishes; `LookupError` when none is pending)."""
        ...


class BatchStream:
    """The streaming interface over a pool that only has `run`: `next_done` runs every job
    submitted since the last batch together and hands their outcomes back one by one (rounds,
    but correct: for wrappers such as a progress-counting pool)."""

    def __init__(self, pool: Pool):
        self.pool = pool
        self.workers = max(int(getattr(pool, "workers", 1)), 1)
        self._queued: list[PlanJob] = []
        self._done: deque[PlanOutcome] = deque()

    def submit(self, job: PlanJob) -> None:
        self._queued.append(job)

    def next_done(self) -> PlanOutcome:
        if not self._done:
            if not self._queued:
                raise LookupError("next_done: no job pending")
            batch, self._queued = self._queued, []
            self._done.extend(self.pool.run(batch))
        return self._done.popleft()


def streaming(pool: Pool | Any) -> Streaming:
    """`pool` itself when it streams (has `submit` and `next_done`), else a `BatchStream` of it."""
    if callable(getattr(pool, "submit", None)) and callable(getattr(pool, "next_done", None)):
        return cast(Streaming, pool)
    return BatchStream(pool)


def chunked(jobs: list[PlanJob], workers: int, max_chunk: int = 8) -> list[list[PlanJob]]:
    """Split jobs into chunks: about 4 per worker for load balance, at most `max_chunk` plans each."""
    if not jobs:
        return []
    size = max(1, min(max_chunk, len(jobs) // (4 * workers)))
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


class InlinePool:
    """Runs jobs one after the other in this process (workers=1: no pickling, no start-up)."""

    workers = 1

    def __init__(self, evaluate: Evaluate = evaluate_plan):
        self.evaluate = evaluate
        self._queued: deque[PlanJob] = deque()

    def run(self, jobs: list[PlanJob]) -> Iterator[PlanOutcome]:
        for job in jobs:
            yield self.evaluate(job)

    def submit(self, job: PlanJob) -> None:
        self._queued.append(job)

    def next_done(self) -> PlanOutcome:
        """Runs the oldest submitted job now (deterministic: submission order)."""
        if not self._queued:
            raise LookupError("next_done: no job pending")
        return self.evaluate(self._queued.popleft())

    def close(self) -> None:
        """Nothing to release: the jobs ran in this process (the pool protocol's close)."""


class LocalPool:
    """A `ProcessPoolExecutor` of `workers` processes."""

    def __init__(self, workers: int, evaluate: Evaluate = evaluate_plan):
        self.workers = workers
        self.evaluate = evaluate
        if evaluate is evaluate_plan:
            preload_simulator()
        self._executor = ProcessPoolExecutor(max_workers=workers, initializer=become_worker)
        self._pending: set[Future[list[PlanOutcome]]] = set()
        self._done: deque[PlanOutcome] = deque()

    def submit(self, job: PlanJob) -> None:
        # the first submit forks the workers: with SIGINT blocked until become_worker() ignores
        # it, a Ctrl-C during their start-up prints no KeyboardInterrupt from a worker
        with sigint_held():
            self._pending.add(self._executor.submit(evaluate_chunk, self.evaluate, [job]))

    def next_done(self) -> PlanOutcome:
        if not self._done:
            if not self._pending:
                raise LookupError("next_done: no job pending")
            done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in done:
                self._done.extend(future.result())
        return self._done.popleft()

    def run(self, jobs: list[PlanJob]) -> Iterator[PlanOutcome]:
        with sigint_held():                  # as in `submit`: workers may start here
            pending: set[Future[list[PlanOutcome]]] = {self._executor.submit(evaluate_chunk, self.evaluate, chunk)
                                                       for chunk in chunked(jobs, self.workers)}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class RayPool:
    """Ray tasks, one per chunk. `address=None` starts a local Ray with `workers` CPUs."""

    def __init__(self, workers: int, address: str | None = None, evaluate: Evaluate = evaluate_plan):
        try:
            import ray
        except ImportError as exc:
            raise UserError("--ray needs the ray package: pip install 'rlvr-sim[sweep]' (ray==2.60.0)") from exc
        self._ray = ray
        self.evaluate = evaluate
        self._started_here = not ray.is_initialized()
        if self._started_here:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))  # type: ignore[no-untyped-call]  # ray ships no annotations for it
        self._remote = ray.remote(num_cpus=1)(evaluate_chunk)
        self._pending: list[Any] = []
        self._done: deque[PlanOutcome] = deque()

    def submit(self, job: PlanJob) -> None:
        self._pending.append(self._remote.remote(self.evaluate, [job]))

    def next_done(self) -> PlanOutcome:
        if not self._done:
            if not self._pending:
                raise LookupError("next_done: no job pending")
            done, self._pending = self._ray.wait(self._pending, num_returns=1)
            for ref in done:
                self._done.extend(self._ray.get(ref))
        return self._done.popleft()

    def run(self, jobs: list[PlanJob]) -> Iterator[PlanOutcome]:
        ray = self._ray
        pending = [self._remote.remote(self.evaluate, chunk) for chunk in chunked(jobs, self.workers)]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield from ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self._started_here:
            self._ray.shutdown()


def open_pool(workers: int | None = None, ray_address: str | None = None, use_ray: bool = False,
              evaluate: Evaluate = evaluate_plan) -> Pool:
    """The pool a command asked for: Ray if `use_ray`, else local processes (inline for 1 worker)."""
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise UserError(f"--workers {count}: give at least 1")
    if use_ray:
        return RayPool(count, ray_address, evaluate)
    if count == 1:
        return InlinePool(evaluate)
    return LocalPool(count, evaluate)
