"""`rlvr-sim` command line: one subcommand per module, imported only when it runs.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`. Keeping the heavy
imports (torch for `execute`, ray for `sweep`) inside the command modules keeps `describe` and
`simulate` fast and lets the simulator install without the executor's dependencies.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.util
import os
import signal
import sys
import threading
from typing import NoReturn

from rlvr_sim.errors import UserError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "describe": ("rlvr_sim.commands.describe", "memory plan and per-token costs of a scenario"),
    "simulate": ("rlvr_sim.commands.simulate", "simulate a scenario's RL steps"),
    "execute": ("executor.cli", "run the real GRPO loop of a scenario (needs the executor extra)"),
    "calibrate": ("calibration.cli_calibrate", "micro-benchmark this machine and fit a hardware profile"),
    "validate": ("calibration.cli_validate", "compare simulated and measured step times for a profile"),
    "sweep": ("rlvr_sim.commands.sweep", "simulate a grid of plans in parallel"),
    "plan": ("rlvr_sim.commands.plan", "search GPU allocations; Pareto frontier and a recommendation"),
}


def _available() -> dict[str, tuple[str, str]]:
    """Commands whose module is importable in this checkout (extras may be missing)."""
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr-sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in _available().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


EXIT_BROKEN_PIPE = 141      # 128 + SIGPIPE, what a shell reports for `cmd | head`


def main(argv: list[str] | None = None) -> int:
    """Run one command. User mistakes print `error: ...` (exit 2), Ctrl-C prints one line (exit
    130), a reader that closed the pipe (`| head`) ends the command quietly (exit 141).

    argv None: this is the `rlvr-sim` process itself, which ends here (`_exit`), so that a Ctrl-C
    during the interpreter's shutdown is one `interrupted` line and exit 130 too."""
    whole_process = argv is None
    try:
        try:
            args = build_parser().parse_args(argv)      # inside: Ctrl-C while importing is one line too
            code = int(importlib.import_module(args._module).run(args) or 0)
            sys.stdout.flush()      # a closed pipe shows up here, inside the handler below
        finally:
            if whole_process:
                _hold_interrupts()      # from here to the exit a Ctrl-C is recorded, not raised
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        _silence_stdout()
        code = EXIT_BROKEN_PIPE
    if whole_process:
        _exit(code)
    return code


_late_interrupts: list[int] = []


def _hold_interrupts() -> None:
    """Record a Ctrl-C instead of raising KeyboardInterrupt (unless SIGINT is ignored or has
    another handler: then it stays as it is)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, lambda signum, frame: _late_interrupts.append(signum))


def _exit(code: int) -> NoReturn:
    """End the process: with `code`, or with 130 and the one `interrupted` line if a Ctrl-C came
    after the command (`_hold_interrupts`).

    The interpreter's own shutdown after a command (joining threads, then atexit callbacks such
    as multiprocessing's and torch's, then tearing the modules down: ~0.3 s after `execute`)
    would otherwise turn a Ctrl-C into an "Exception ignored in atexit callback ...
    KeyboardInterrupt" traceback and exit 0, or, once it has dropped its signal handlers, into
    a silent death by SIGINT. Here the steps that run code are done with the Ctrl-C held, then
    os._exit skips the teardown, which only frees memory: the command's files are closed and
    its output is flushed by then."""
    try:
        shutdown_threads = getattr(threading, "_shutdown", None)
        if shutdown_threads is not None:
            shutdown_threads()      # what the interpreter does first: join the non-daemon threads
        atexit._run_exitfuncs()     # runs and clears the atexit callbacks
    finally:
        if _late_interrupts and code != 130:
            print("interrupted", file=sys.stderr)
            code = 130
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):       # a closed pipe or stream: nothing more to say
                pass
        os._exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):   # stdout is not a real file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
