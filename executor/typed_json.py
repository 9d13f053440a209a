"""Typed JSON values: how the code verifier's trusted side encodes and compares results.

The sandbox launcher encodes a candidate's return values with the same rules (its own copy,
since it imports nothing from the package; `tests/test_reward_hacking.py` checks they agree):
None, bool, int, str and finite float are JSON scalars; a non-finite float is
{"float": repr}; a list is a JSON list; a tuple is {"tuple": [...]}; a dict with str keys is
{"dict": {...}}. Anything else (sets, objects, subclasses of builtins) is not serialisable.

`strict_equal` compares two decoded trees by exact type and value: 1 is not True, 5.0 is not 5,
[1] is not (1,). It only ever sees json.loads output, never an object with a custom __eq__.
"""

from __future__ import annotations

import json
from typing import Union

JsonValue = Union[None, bool, int, float, str, list, dict]
MAX_DEPTH = 32
MAX_INT_BITS = 4096


def encode(value, depth: int = 0) -> JsonValue:
    """The typed-JSON tree of a trusted Python value (raises TypeError if not encodable)."""
    if depth > MAX_DEPTH:
        raise TypeError(f"value nested deeper than {MAX_DEPTH}")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        if value.bit_length() > MAX_INT_BITS:
            raise TypeError(f"int longer than {MAX_INT_BITS} bits")
        return value
    if t is float:
        return value if value - value == 0.0 else {"float": repr(value)}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"tuple": [encode(v, depth + 1) for v in value]}
    if t is dict:
        if any(type(k) is not str for k in value):
            raise TypeError("dict with a non-str key")
        return {"dict": {k: encode(v, depth + 1) for k, v in value.items()}}
    raise TypeError(f"value of type {t.__name__} is not encodable")


def canonical(value) -> JsonValue:
    """encode + a JSON round trip: the exact tree the parent gets back from a sandbox line."""
    return json.loads(json.dumps(encode(value), allow_nan=False))


def is_json_tree(value, depth: int = 0) -> bool:
    """True iff `value` is made only of json.loads output types (a defensive shape check)."""
    if depth > MAX_DEPTH + 2:
        return False
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return True
    if t is list:
        return all(is_json_tree(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and is_json_tree(v, depth + 1) for k, v in value.items())
    return False


def strict_equal(a: JsonValue, b: JsonValue) -> bool:
    """Exact equality of two JSON trees: same types at every node (bool is not int, float is
    not int), same values, same keys, same lengths."""
    if type(a) is not type(b):
        return False
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return a == b


def short(value: JsonValue, limit: int = 60) -> str:
    """A JSON rendering of a value cut to `limit` characters (for reasons)."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."
