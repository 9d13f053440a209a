"""Worker processes (executor verifier pool and sampler process, sweep pool) that die with their
parent and stay quiet on Ctrl-C. Standard library only: the simulator's sweep pool uses it too.

`become_worker()` is the first call of a worker's initialiser or entry point:
- SIGINT is ignored: a terminal Ctrl-C reaches the whole process group, and only the parent
  should react (the CLI prints one `interrupted` line; the parent shuts its pools down).
  A worker's start-up before that call (interpreter start, unpickling, imports: ~1 s) is covered
  by starting it with SIGINT blocked: `sigint_held()` around the start, or `QuietSpawnContext` for
  a pool. A signal mask survives fork and exec, so a Ctrl-C then stays pending in the child and
  `become_worker()` drops it, instead of a KeyboardInterrupt traceback from a half-started worker
  (CPython's resource tracker is started the same way).
- Linux: `prctl(PR_SET_PDEATHSIG, SIGUSR2)`. The kernel sends the signal when the thread that
  spawned this process exits, which is not always the parent process's death (a pool may spawn
  from a helper thread), so the handler exits only if the parent process is really gone
  (`os.getppid()` changed).
- Everywhere: a daemon watchdog thread polls `os.getppid()` every `WATCHDOG_PERIOD_S` and exits
  when the parent is gone (covers non-Linux, and a handler delayed by a long C call).
The exit is `os._exit(EXIT_PARENT_GONE)`: no cleanup handlers, which could block on the pipes
of the dead parent. A multiprocessing resource tracker exits by itself once every process that
holds its pipe (the parent and these workers) is gone.
Limits: a worker stuck in a C call that holds the GIL cannot run either mechanism until the call
returns; the parent's SIGKILL of its process group (what tests and schedulers do) still works.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.context
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import time
from typing import Iterator

PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGUSR2
WATCHDOG_PERIOD_S = 0.5
EXIT_PARENT_GONE = 1

_installed_pid = 0          # the process that installed it (a forked child must install again)


def parent_pid() -> int:
    """The process that started this one (as multiprocessing recorded it, else the OS parent)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getppid()


def become_worker(parent: int | None = None) -> None:
    """Make this process ignore Ctrl-C and exit when `parent` (default: our parent) dies.
    Idempotent; safe to call in every pool initialiser."""
    global _installed_pid
    if _installed_pid == os.getpid():
        return
    _installed_pid = os.getpid()
    parent = parent or parent_pid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # drops a Ctrl-C pending since start-up
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if sys.platform.startswith("linux"):
        signal.signal(PARENT_DEATH_SIGNAL, lambda *_: _exit_if_orphaned(parent))
        _set_parent_death_signal(PARENT_DEATH_SIGNAL)
    _exit_if_orphaned(parent)          # the parent may have died before the signal was armed
    threading.Thread(target=_watchdog, args=(parent,), name="parent-watchdog", daemon=True).start()


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Block SIGINT in this thread while it starts a worker process (which inherits the block
    until `become_worker()`). This process loses no Ctrl-C: the kernel hands it to another
    thread, or it waits until the block ends.

    The multiprocessing resource tracker is started first if it is not running: starting it
    (which a process start does on demand) ends with an unconditional SIG_UNBLOCK of SIGINT in
    the calling thread, which would undo the block before the worker is forked."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    multiprocessing.resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT blocked (see `sigint_held`)."""

    def start(self) -> None:
        with sigint_held():
            super().start()


class QuietSpawnContext(multiprocessing.context.SpawnContext):
    """The spawn context for worker pools (`ProcessPoolExecutor(mp_context=...)`): every worker,
    also one a pool starts later on demand or after a crash, starts with SIGINT blocked."""

    Process = QuietSpawnProcess


def _set_parent_death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _exit_if_orphaned(parent: int) -> None:
    if os.getppid() != parent:
        os._exit(EXIT_PARENT_GONE)


def _watchdog(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD_S)
        _exit_if_orphaned(parent)
