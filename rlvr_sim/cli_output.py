"""What commands write: output paths checked before any work, and strict JSON on stdout.

- `check_output_path(path, flag)`: UserError when an output file cannot be written where the
  user pointed (`--trace some_dir/`, a parent that is a file, a read-only folder), so a long run
  does not fail at its last line. Missing parent folders are fine (writers create them).
- `strict_json(obj)`: `json.dumps` that never writes `NaN`/`Infinity` (not JSON; most parsers
  reject them): non-finite floats become `null`, the way a missing measurement is shown.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from rlvr_sim.errors import UserError


def check_output_path(path: str | Path, flag: str, example_suffix: str = ".parquet") -> Path:
    """`path` as a Path if a file can be created or replaced there; else UserError naming `flag`
    (`example_suffix` is the file type the suggested name uses)."""
    p = Path(path).expanduser()
    if str(path).endswith(("/", os.sep)) or p.is_dir():
        raise UserError(f"{flag} {str(path)!r}: is a directory ; give a file name inside it, e.g. "
                        f"{str(p / ('out' + example_suffix))!r}")
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{flag} {str(path)!r}: the file is not writable ; choose another path")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a folder ; choose "
                        "another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {str(path)!r}: folder {str(parent)!r} is not writable ; choose "
                        "another path")
    return p


def finite_or_none(value: Any) -> Any:
    """A copy of `value` (dicts, lists, tuples, scalars) with NaN and +-inf floats as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def strict_json(value: Any, indent: int | None = 2, default: Callable[[Any], Any] | None = None) -> str:
    """Standard JSON text of `value`; non-finite floats written as null; `default` converts
    values JSON has no type for (as in json.dumps)."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False, default=default)
