"""Worker processes (executor verifier pool and sampler process, sweep pool) that die with their
parent and stay quiet on Ctrl-C. Standard library only: the simulator's sweep pool uses it too.

`become_worker()` is the first call of a worker's initialiser or entry point:
- SIGINT is ignored: a terminal Ctrl-C reaches the whole process group, and only the parent
  should react (the CLI prints one `interrupted` line; the parent shuts its pools down).
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

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        signal.signal(PARENT_DEATH_SIGNAL, lambda *_: _exit_if_orphaned(parent))
        _set_parent_death_signal(PARENT_DEATH_SIGNAL)
    _exit_if_orphaned(parent)          # the parent may have died before the signal was armed
    threading.Thread(target=_watchdog, args=(parent,), name="parent-watchdog", daemon=True).start()


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
