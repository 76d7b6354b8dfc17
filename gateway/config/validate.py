"""The one generic validator: walks a settings dataclass's type hints and collects every problem.

It knows types, not sections: str, int, float, bool, Path, StrEnum, Literal, ``X | None``, nested
settings dataclasses and tuples of them. What a field accepts beyond its type comes from its
``setting(...)`` metadata. Nothing is clamped or coerced beyond int -> float: a value is accepted as
written or refused with a problem naming its key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from gateway.config.locate import KeyPath, Locator
from gateway.config.nesting import nesting_limit, nesting_problems
from gateway.config.schema import (
    Problem,
    Setting,
    format_bound,
    is_required,
    renamed_settings,
    rules_of,
    setting_of,
)

T = TypeVar("T")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Invalid:
    """Marks a value that was refused (its problem is already recorded)."""


_INVALID = _Invalid()


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    hint: Any
    setting: Setting
    required: bool
    default: Any


def _fields(cls: type[Any]) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        default: Any = field.default
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        out.append(_Field(field.name, hints[field.name], setting_of(field), is_required(field), default))
    return tuple(out)


def validate(cls: type[T], data: object) -> tuple[T | None, list[Problem]]:
    """Build ``cls`` from parsed TOML/JSON data; returns the value (None if invalid) and every problem.

    Data nested deeper than the schema allows is refused first, with only those problems: the walk
    below (and the messages it writes) would otherwise recurse into it.
    """
    too_deep = nesting_problems(data, nesting_limit(cls))
    if too_deep:
        return None, too_deep
    walker = _Walker()
    value = walker.section(cls, data, (), base=None)
    return value, walker.problems


def format_path(path: KeyPath) -> str:
    """``("devices", 1, "port")`` -> ``devices[1].port``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{name}" if text else name
    return text or "(top level)"


def format_problem(source: str, problem: Problem, locator: Locator | None) -> str:
    """``FILE:LINE: key.path: what is wrong; what to do`` (no line when there is no source text)."""
    line = locator.line_of(problem.path) if locator is not None else None
    where = f"{source}:{line}" if line is not None else source
    return f"{where}: {format_path(problem.path)}: {problem.what}; {problem.todo}"


def problem_line(problem: Problem, locator: Locator | None) -> float:
    """Sort key that puts problems in file order, unplaceable ones last."""
    line = locator.line_of(problem.path) if locator is not None else None
    return math.inf if line is None else line


class _Walker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # Top-level sections built so far, for fields that inherit from one (resident thresholds).
        self._top: dict[str, object] = {}

    def _refuse(self, path: KeyPath, what: str, todo: str) -> _Invalid:
        self.problems.append(Problem(path, what, todo))
        return _INVALID

    # --- sections -------------------------------------------------------------------------------

    def section(self, cls: type[T], data: object, path: KeyPath, base: T | None) -> T | None:
        if not isinstance(data, Mapping):
            self._refuse(path, f"expected a table, got {_describe(data)}", f"write [{format_path(path)}]")
            return None
        fields = _fields(cls)
        self._unknown_keys(data, [f.name for f in fields], path, renamed_settings(cls))
        values: dict[str, Any] = {}
        refused: set[str] = set()
        for field in fields:
            value = self._field_value(field, data, path, base)
            if isinstance(value, _Invalid):
                refused.add(field.name)
                continue
            if value is dataclasses.MISSING:
                value = field.default
            values[field.name] = value
            if not path:
                self._top[field.name] = value
        if refused:
            self._rule_problems(cls, _partial(cls, values), path, base)
            return None
        built = cls(**values)
        self._rule_problems(cls, built, path, base)
        return built

    def _field_value(self, field: _Field, data: Mapping[Any, Any], path: KeyPath, base: object) -> Any:
        key_path = (*path, field.name)
        if field.name in data:
            return self.value(field.hint, data[field.name], key_path, field.setting)
        if base is not None:
            return getattr(base, field.name)
        if field.setting.inherit is not None:
            return self._top.get(field.setting.inherit, dataclasses.MISSING)
        if field.required:
            if dataclasses.is_dataclass(field.hint) or typing.get_origin(field.hint) is tuple:
                todo = f"add a [{format_path(key_path)}] table"
            else:
                todo = f"add {field.name} = ... under [{format_path(path)}]" if path else f"add {field.name}"
            return self._refuse(key_path, "required setting is missing", todo)
        return dataclasses.MISSING

    def _rule_problems(self, cls: type[Any], section: object, path: KeyPath, base: object) -> None:
        found = _run_rules(cls, section)
        if base is not None:
            # An inherited section (a resident's thresholds) repeats its base's problems, which are
            # already reported once where they were written.
            inherited = set(_run_rules(cls, base))
            found = [problem for problem in found if problem not in inherited]
        for problem in found:
            self.problems.append(Problem((*path, *problem.path), problem.what, problem.todo))

    def _unknown_keys(self, data: Mapping[Any, Any], known: list[str], path: KeyPath,
                      renamed: Mapping[str, tuple[str, str]]) -> None:
        for key in data:
            if key in known:
                continue
            name = str(key)
            if name in renamed:
                new_name, why = renamed[name]
                self._refuse((*path, name), f"{name} was renamed {new_name}: {why}",
                             f"write {new_name} instead (same values)")
                continue
            close = difflib.get_close_matches(name, known, n=1)
            table = f"[{format_path(path)}]" if path else "the top level"
            if close:
                todo = f"did you mean {close[0]!r}? Otherwise remove it"
            else:
                todo = f"remove it; {table} accepts: {', '.join(known)}"
            self._refuse((*path, name), f"unknown setting in {table}", todo)

    # --- values ---------------------------------------------------------------------------------

    def value(self, hint: Any, raw: object, path: KeyPath, setting: Setting) -> Any:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if raw == "":  # TOML has no null: an empty string means "not set"
                return None
            hint = options[0]
            origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint):
            base = self._top.get(setting.inherit) if setting.inherit is not None else None
            built = self.section(typing.cast(type[Any], hint), raw, path, base)
            return _INVALID if built is None else built
        if origin is tuple:
            return self._array(typing.get_args(hint)[0], raw, path, setting)
        if origin is typing.Literal:
            value = self._choice(typing.get_args(hint), raw, path)
        elif isinstance(hint, type) and issubclass(hint, Enum):
            value = self._choice(tuple(hint), raw, path)
        else:
            value = self._scalar(hint, raw, path)
        if isinstance(value, _Invalid):
            return value
        return self._constraints(value, path, setting)

    def _array(self, item_hint: Any, raw: object, path: KeyPath, setting: Setting) -> Any:
        if not isinstance(raw, list):
            return self._refuse(
                path, f"expected an array, got {_describe(raw)}", f"write [[{path[-1]}]] tables"
            )
        items = [self.value(item_hint, item, (*path, index), setting) for index, item in enumerate(raw)]
        if setting.minimum is not None and len(items) < setting.minimum:
            return self._refuse(
                path,
                f"needs at least {format_bound(setting.minimum)} entries, has {len(items)}",
                f"add [[{path[-1]}]]",
            )
        if setting.maximum is not None and len(items) > setting.maximum:
            return self._refuse(
                path,
                f"allows at most {format_bound(setting.maximum)} entries, has {len(items)}",
                "remove some",
            )
        if any(isinstance(item, _Invalid) for item in items):
            return _INVALID
        return tuple(items)

    def _choice(self, choices: tuple[Any, ...], raw: object, path: KeyPath) -> Any:
        for choice in choices:
            if type(raw) is type(choice.value if isinstance(choice, Enum) else choice) and raw == choice:
                return choice
        names = [str(c.value if isinstance(c, Enum) else c) for c in choices]
        close = difflib.get_close_matches(str(raw), names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return self._refuse(path, f"{_describe(raw)} is not allowed", f"{hint}use one of: {', '.join(names)}")

    def _scalar(self, hint: Any, raw: object, path: KeyPath) -> Any:
        converter = _SCALARS.get(hint)
        if converter is None:
            raise TypeError(f"the config schema uses {hint!r}, which the validator does not support")
        type_name, convert = converter
        value = convert(raw)
        if value is None:
            unquote = (
                " without quotes" if isinstance(raw, str) and convert(_toml_literal(raw)) is not None else ""
            )
            return self._refuse(
                path, f"expected {type_name}, got {_describe(raw)}", f"write {type_name}{unquote}"
            )
        return value

    def _constraints(self, value: Any, path: KeyPath, setting: Setting) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return self._refuse(path, f"{value} is not a finite number", "write a number")
        if setting.choices is not None and value not in setting.choices:
            allowed = ", ".join(str(c) for c in setting.choices)
            return self._refuse(path, f"{value!r} is not allowed", f"use one of: {allowed}")
        if setting.pattern is not None and not setting.pattern.fullmatch(str(value)):
            form = setting.form or f"the pattern {setting.pattern.pattern}"
            return self._refuse(path, f"{str(value)!r} is not {form}", "correct it")
        complaint = _out_of_range(value, setting)
        if complaint is not None:
            return self._refuse(path, *complaint)
        if setting.check is not None:
            complaint = setting.check(value)
            if complaint is not None:
                return self._refuse(path, *complaint)
        return value


def _run_rules(cls: type[Any], section: object) -> list[Problem]:
    found: list[Problem] = []
    for check in rules_of(cls):
        try:
            found.extend(check(section))
        except AttributeError:
            continue  # the rule reads a refused field, which is reported already
    return found


def _partial(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance with only the valid fields set, so rules over those fields can still run."""
    section: T = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(section, name, value)
    return section


def _out_of_range(value: object, setting: Setting) -> tuple[str, str] | None:
    if not isinstance(value, int | float):
        return None
    low, high = setting.minimum, setting.maximum
    if low is not None and high is not None:
        todo = f"use a value from {format_bound(low)} to {format_bound(high)}"
    elif low is not None:
        todo = f"use {format_bound(low)} or more"
    elif high is not None:
        todo = f"use {format_bound(high)} or less"
    if low is not None and value < low:
        return f"{value} is below the minimum {format_bound(low)}", todo
    if high is not None and value > high:
        return f"{value} is above the maximum {format_bound(high)}", todo
    return None


def _as_bool(raw: object) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _as_int(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _as_float(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def _as_str(raw: object) -> str | None:
    return raw if isinstance(raw, str) else None


def _as_path(raw: object) -> Path | None:
    return Path(raw) if isinstance(raw, str) and raw else None


_SCALARS: Mapping[Any, tuple[str, Any]] = {
    bool: ("true or false", _as_bool),
    int: ("an integer", _as_int),
    float: ("a number", _as_float),
    str: ("a string", _as_str),
    Path: ("a path (a non-empty string)", _as_path),
}


def _toml_literal(text: str) -> object:
    """What ``text`` would be if written without quotes, for the "remove the quotes" hint."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def _describe(raw: object) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    name = next((label for t, label in kind.items() if type(raw) is t), None)
    if name is None:
        name = "a table" if isinstance(raw, Mapping) else f"a {type(raw).__name__}"
    if isinstance(raw, Mapping | list):
        return name
    shown = repr(raw)
    return f"{name} ({shown[:40]}{'...' if len(shown) > 40 else ''})"
