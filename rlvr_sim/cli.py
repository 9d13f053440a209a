"""`rlvr-sim` command line: one subcommand per module, imported only when it runs.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`. Keeping the heavy
imports (torch for `execute`, ray for `sweep`) inside the command modules keeps `describe` and
`simulate` fast and lets the simulator install without the executor's dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

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
    130), a reader that closed the pipe (`| head`) ends the command quietly (exit 141)."""
    try:
        args = build_parser().parse_args(argv)      # inside: Ctrl-C while importing is one line too
        code = int(importlib.import_module(args._module).run(args) or 0)
        sys.stdout.flush()      # a closed pipe shows up here, inside the handler below
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


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
