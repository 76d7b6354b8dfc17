"""A command's arguments, checked: each is refused with what was expected, never clamped silently.

Numbers may come as JSON numbers or as decimal strings: ``scripts/fleet.py --arg lines=200`` sends
every argument as a string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.fleet.errors import CommandError

ID_MAX_CHARS = 64


def number(args: Mapping[str, Any], name: str, *, default: float, low: float, high: float,
           integer: bool = False) -> float:
    """``args[name]`` (or ``default``) as a number from ``low`` to ``high``."""
    raw = args.get(name, default)
    kind = "a whole number" if integer else "a number"
    value: float
    if isinstance(raw, bool):  # JSON true is not 1 here
        raise CommandError(f"{name} must be {kind} from {low:g} to {high:g}, not {raw}")
    if isinstance(raw, int | float):
        value = raw
    elif isinstance(raw, str) and len(raw) <= 20:
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise CommandError(f"{name} must be {kind} from {low:g} to {high:g}, not {raw!r}") from None
    else:
        raise CommandError(f"{name} must be {kind} from {low:g} to {high:g}")
    if not math.isfinite(value) or not low <= value <= high or (integer and value != int(value)):
        raise CommandError(f"{name} must be {kind} from {low:g} to {high:g}, not {value:g}")
    return value


def whole_number(args: Mapping[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    return int(number(args, name, default=default, low=low, high=high, integer=True))


def optional_id(args: Mapping[str, Any], name: str) -> str | None:
    """``args[name]`` as an id (a device's, a resident's), or None when absent or empty."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > ID_MAX_CHARS:
        raise CommandError(f"{name} must be an id (a string of at most {ID_MAX_CHARS} characters)")
    return raw
