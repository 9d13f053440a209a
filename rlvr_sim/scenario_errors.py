"""Scenario validation errors as user messages: one line per problem, `dotted.field: what is
wrong (got VALUE); fix`, with pydantic's union-member tags removed from the field path and long
messages cut (they may quote the input)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rlvr_sim.safe_read import echo

_DIST_TAGS = {"fixed", "uniform", "lognormal", "empirical"}
_DIST_FIELDS = {"prompt_tokens", "response_tokens", "latency_s"}


def _loc(loc: tuple[Any, ...]) -> str:
    """Dotted field path, without pydantic's union-member tags (`response_tokens.lognormal`)."""
    parts: list[str] = []
    for p in map(str, loc):
        if p.startswith("function-") or (p in _DIST_TAGS and parts and parts[-1] in _DIST_FIELDS):
            continue
        parts.append(p)
    return ".".join(parts) or "(top level)"


def one_line(exc: ValidationError) -> str:
    """The first few problems on one line (messages cut short: they may quote the input)."""
    errors = exc.errors()
    text = "; ".join(f"{_loc(e['loc'])}: {str(e['msg'])[:200]}" for e in errors[:5])
    return text + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")


def _fix_hint(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "; unknown key: remove it or check the spelling (see docs/contracts.md)"
    if kind == "missing":
        return "; add it (e.g. `model: llama-3.1-8b`)" if err["loc"] == ("model",) else "; add it"
    return ""


MAX_ERROR_LINES = 20
MAX_MESSAGE_CHARS = 2000


def format_validation_error(exc: ValidationError, label: str = "scenario") -> str:
    """One line per problem: `dotted.field: what is wrong (got VALUE); fix`."""
    lines = [f"{label} is invalid:"]
    errors = exc.errors()
    for err in errors[:MAX_ERROR_LINES]:
        msg = str(err["msg"])
        if len(msg) > MAX_MESSAGE_CHARS:
            msg = msg[:MAX_MESSAGE_CHARS] + "..."
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        if err["type"] == "scenario_check":
            lines.append(f"  - {msg}")
            continue
        got = ""
        if err["type"] not in ("missing", "scenario_check") and "input" in err:
            got = f" (got {echo(err['input'])})"     # bounded: never repr a whole (aliased) input
        lines.append(f"  - {_loc(err['loc'])}: {msg}{got}{_fix_hint(err)}")
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"  ... and {len(errors) - MAX_ERROR_LINES} more problems of the same kinds")
    return "\n".join(lines)

