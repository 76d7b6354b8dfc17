"""How deeply configuration data may nest, and the guard that refuses anything deeper.

Code that reads nested data recursively (the validator, ``repr`` in a message, tomllib) fails with
RecursionError a few hundred levels down. The schema says how deep a valid document can be, so
deeper data is refused as a problem naming where it starts, before any such code sees it. This
matters most for documents that arrive already parsed (fleet JSON over MQTT): there is no text to
pre-scan, only the mapping.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from gateway.config.locate import KeyPath
from gateway.config.schema import Problem

SLACK = 1
"""Levels allowed beyond the schema's own, so a value written as an array where a number belongs
(``pulse_high_bpm = [120]`` in a resident's thresholds, the deepest table) still gets the
validator's precise "expected a number" rather than a complaint about nesting."""


def schema_nesting(hint: object) -> int:
    """Levels of tables and arrays a valid value of ``hint`` can have: 0 for a scalar."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return max(schema_nesting(arg) for arg in typing.get_args(hint))
    if origin is tuple:
        return 1 + schema_nesting(typing.get_args(hint)[0])
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return 1 + max((schema_nesting(hints[field.name]) for field in dataclasses.fields(hint)), default=0)
    return 0


_LIMITS: dict[type[Any], int] = {}


def nesting_limit(cls: type[Any]) -> int:
    """The most levels data for section ``cls`` may have, its own table counted as level 1."""
    limit = _LIMITS.get(cls)
    if limit is None:  # the schema is fixed at import: walk it once per section class
        limit = _LIMITS[cls] = schema_nesting(cls) + SLACK
    return limit


def nesting_problems(data: object, limit: int) -> list[Problem]:
    """One problem for each table or array that starts below level ``limit`` (``data`` is level 1).

    Iterative, and it never looks inside a container that is already too deep, so its cost is
    bounded by the part of the data within the limit, however deep the rest goes.
    """
    problems: list[Problem] = []
    stack: list[tuple[object, KeyPath, int]] = [(data, (), 1)]
    while stack:
        value, path, level = stack.pop()
        deeper: list[tuple[object, KeyPath, int]] = []
        for child_path, child in _children(value, path):
            if not _is_container(child):
                continue
            if level >= limit:
                problems.append(Problem(
                    child_path,
                    f"tables and arrays nested more than {limit} levels deep, deeper than any setting",
                    "remove the extra [ ] or { } levels",
                ))
            else:
                deeper.append((child, child_path, level + 1))
        stack.extend(reversed(deeper))  # reversed so siblings are visited in document order
    return problems


def _is_container(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple)


def _children(value: object, path: KeyPath) -> list[tuple[KeyPath, object]]:
    if isinstance(value, Mapping):
        return [((*path, str(key)), child) for key, child in value.items()]
    if isinstance(value, list | tuple):
        return [((*path, index), child) for index, child in enumerate(value)]
    return []
