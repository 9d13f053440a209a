"""Reading user files (scenario YAML, config.json, length files, plan lists) with resource limits.

Every function here turns a bad file into a `UserError` that names the file and says how to fix
it, before the content can cost much memory or stack:
- `read_user_text`: only regular files (not a directory, `/dev/zero`, a FIFO), at most
  `MAX_FILE_BYTES` (read with a bound, so a file that grows or lies about its size is still
  capped), UTF-8 text (the error names the byte offset).
- `load_user_yaml`: YAML with duplicate keys rejected, nesting at most `MAX_DEPTH`, at most
  `MAX_ALIASES` alias uses and at most `MAX_NODES` nodes once aliases are expanded (a
  "billion laughs" file is refused while it is still a small node graph, never expanded).
- `load_user_json`: JSON with the same depth limit; the caller says what top-level type it needs.
- `check_depth`: the nesting limit for data that did not come from a file (a dict, a `--set`).
- `echo`: a short, single-line `repr` of a value for error messages (never the whole input).

Limits: the YAML reader is PyYAML's pure-Python SafeLoader (the C loader cannot be hooked);
scenario-sized files load in milliseconds either way.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from rlvr_sim.errors import UserError

MAX_FILE_BYTES = 10 * 2**20
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 200_000
ECHO_CHARS = 80


def echo(value: Any, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` cut to `limit` characters on one line, computed without expanding big
    containers first (a shared-reference bomb stays cheap)."""
    text = _bounded_repr(value, limit + 1)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


def _bounded_repr(value: Any, budget: int) -> str:
    if isinstance(value, (list, tuple)):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        parts, used = [], 1
        for item in value:
            if used > budget:
                parts.append("...")
                break
            part = _bounded_repr(item, budget - used)
            parts.append(part)
            used += len(part) + 2
        return open_ + ", ".join(parts) + close
    if isinstance(value, dict):
        parts, used = [], 1
        for key, item in value.items():
            if used > budget:
                parts.append("...")
                break
            part = f"{_bounded_repr(key, budget - used)}: {_bounded_repr(item, budget - used)}"
            parts.append(part)
            used += len(part) + 2
        return "{" + ", ".join(parts) + "}"
    text = repr(value)
    return text[:budget + 1]


def read_user_text(path: str | Path, what: str, fix: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`; UserError naming `what` and `fix`.

    `what` names the file's role (e.g. "scenario file"), `fix` is the advice appended to a
    not-found error."""
    p = Path(path).expanduser()
    label = f"{what} {str(p)!r}"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UserError(f"{label}: not found (no such file) ; {fix}") from None
    except PermissionError:
        raise UserError(f"{label}: permission denied ; make it readable (chmod +r)") from None
    except OSError as exc:
        raise UserError(f"{label}: cannot be read ({exc.strerror}) ; {fix}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{label}: is a directory ; give a file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{label}: is not a regular file (a device, pipe or socket) ; "
                        "save the content to a file and give its path")
    if st.st_size > max_bytes:
        raise UserError(f"{label}: {st.st_size:,} bytes is over the {max_bytes:,}-byte limit ; "
                        "give a smaller file")
    try:
        with open(p, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except PermissionError:
        raise UserError(f"{label}: permission denied ; make it readable (chmod +r)") from None
    except OSError as exc:
        raise UserError(f"{label}: cannot be read ({exc.strerror}) ; {fix}") from None
    if len(data) > max_bytes:
        raise UserError(f"{label}: over the {max_bytes:,}-byte limit ; give a smaller file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{label}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start}) ; give a text file (is it binary or compressed?)") from None


class _LimitedLoader(yaml.SafeLoader):  # type: ignore[misc]  # (PyYAML has no stubs here)
    """SafeLoader that refuses duplicate keys, deep nesting and alias expansion bombs."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._weights: dict[int, int] = {}   # id(node) -> nodes once expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise UserError(f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name) "
                                "; write the values out instead of repeating anchors")
            return Composer.compose_node(self, parent, index)
        if self.check_event(MappingStartEvent, SequenceStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise UserError(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep "
                                "; a scenario is a few levels of mappings")
            try:
                node = Composer.compose_node(self, parent, index)
            finally:
                self._depth -= 1
        else:
            node = Composer.compose_node(self, parent, index)
        self._weigh(node)
        return node

    def _weigh(self, node: Node) -> None:
        """Node count of `node` with aliases expanded; refuse past MAX_NODES."""
        if isinstance(node, SequenceNode):
            weight = 1 + sum(self._weights.get(id(child), 1) for child in node.value)
        elif isinstance(node, MappingNode):
            weight = 1 + sum(self._weights.get(id(k), 1) + self._weights.get(id(v), 1)
                             for k, v in node.value)
        else:
            weight = 1
        self._weights[id(node)] = weight
        if weight > MAX_NODES:
            raise UserError(f"line {node.start_mark.line + 1}: expands to more than {MAX_NODES:,} "
                            "values (YAML anchors/aliases) ; write a smaller file without alias "
                            "chains")

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:       # an unhashable key: SafeLoader reports it below
                    continue
                if first is not None:
                    raise UserError(f"line {key_node.start_mark.line + 1}: key {echo(key)} appears "
                                    f"twice in one mapping (first on line {first}) ; keep one of "
                                    "them")
                seen[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def load_user_yaml(text: str, label: str) -> Any:
    """Parse YAML text under the limits above; UserError `label: line N: what ; fix`."""
    loader = None
    try:
        loader = _LimitedLoader(text)      # the reader checks characters here
        return loader.get_single_data()
    except UserError as exc:
        raise UserError(f"{label}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        snippet = mark.get_snippet() if mark is not None else None     # a short window + caret
        raise UserError(f"{label} is not valid YAML ({_yaml_reason(exc)}) ; fix the syntax at that "
                        "line" + (f"\n{snippet}" if snippet else "")) from None
    except RecursionError:      # a parser path the depth hook does not see
        raise UserError(f"{label}: nested too deep ; a scenario is a few levels of mappings") \
            from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = " ".join(str(problem).split())
    return where + (problem if len(problem) <= 120 else problem[:120] + "...")


def load_user_json(text: str, label: str) -> Any:
    """Parse JSON text; nesting at most MAX_DEPTH; UserError naming `label` and the line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}) ; fix the syntax there") from None
    except RecursionError:
        raise UserError(f"{label}: nested too deep ; give a flat JSON object") from None
    check_depth(data, label)
    return data


def check_depth(data: Any, label: str, max_depth: int = MAX_DEPTH) -> None:
    """UserError when mappings/lists nest deeper than `max_depth` (iterative: any depth is safe
    to check)."""
    stack = [(data, 0)]
    seen: set[int] = set()
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list, tuple)):
            continue
        if depth >= max_depth:
            raise UserError(f"{label}: nested more than {max_depth} levels deep ; a scenario is a "
                            "few levels of mappings")
        if id(value) in seen:       # shared (aliased) containers are checked once
            continue
        seen.add(id(value))
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)
