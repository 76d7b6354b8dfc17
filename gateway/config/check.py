"""The logic behind ``yiyang config check``: list a file's problems, show the effective configuration,
and write the documented default file from the schema (so the file's comments cannot drift from it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.config.schema import GatewayConfig, Setting, format_bound, is_required, setting_of
from gateway.errors import ConfigError

DEFAULT_FILE_HEADER = """\
# yiyang-gateway configuration: every setting with its default.
# Generated from gateway/config/schema.py (gateway.config.check.render_default_toml); a test keeps
# the two identical, so change the schema and regenerate rather than editing this file by hand.
# Settings marked "Required" have no default: the value shown is an example.
"""


def check_file(path: str | os.PathLike[str]) -> list[str]:
    """Every problem in the file itself, formatted ``FILE:LINE: key.path: what is wrong; what to do``.

    An empty list means the file is valid. What it needs from the hub (the files it names, a
    writable data_dir) is :func:`gateway.config.preflight.check_host`'s to say.
    """
    try:
        load_config(path)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def render_effective(config: object) -> dict[str, Any]:
    """The configuration as a JSON-able dict in the file's own shape, defaults filled in.

    Feeding it back to ``parse_config_mapping`` gives an equal configuration.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"render_effective needs a settings dataclass, got {type(config).__name__}")
    return {field.name: _plain(getattr(config, field.name)) for field in dataclasses.fields(config)}


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return render_effective(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if value is None:
        return ""  # TOML has no null; an empty string means "not set"
    return value


def render_default_toml() -> str:
    """The documented default file: every key, its default (or example) and its documentation."""
    blocks = [DEFAULT_FILE_HEADER]
    for field in dataclasses.fields(GatewayConfig):
        hint = typing.get_type_hints(GatewayConfig)[field.name]
        meta = setting_of(field)
        if typing.get_origin(hint) is tuple:
            blocks.append(_render_table(typing.get_args(hint)[0], (field.name,), meta, array=True))
        else:
            blocks.append(_render_table(hint, (field.name,), meta, array=False))
    return "\n".join(blocks)


def _render_table(cls: type[Any], path: tuple[str, ...], meta: Setting, *, array: bool) -> str:
    name = ".".join(path)
    lines = _comment(str(cls.__doc__), meta.doc if array else "")
    lines.append(f"[[{name}]]" if array else f"[{name}]")
    nested: list[str] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        field_meta = setting_of(field)
        if field_meta.inherit is not None:
            # An inherited section is written empty: anything set in it overrides [inherit].
            nested.append("\n".join([*_comment(field_meta.doc, ""), f"[{name}.{field.name}]"]))
            continue
        lines.extend(_comment(field_meta.doc, _constraints(field, field_meta, hints[field.name])))
        lines.append(f"{field.name} = {toml_value(_shown_value(field, field_meta))}")
    return "\n".join([*lines, "", *(block + "\n" for block in nested)]).rstrip("\n") + "\n"


def _shown_value(field: dataclasses.Field[Any], meta: Setting) -> object:
    if meta.example is not None:
        return meta.example
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _constraints(field: dataclasses.Field[Any], meta: Setting, hint: Any) -> str:
    parts = []
    if is_required(field):
        parts.append("Required.")
    if meta.minimum is not None and meta.maximum is not None:
        parts.append(f"Range: {format_bound(meta.minimum)} to {format_bound(meta.maximum)}.")
    if meta.choices is not None:
        parts.append(f"One of: {', '.join(str(c) for c in meta.choices)}.")
    if isinstance(hint, type) and issubclass(hint, Enum):
        parts.append(f"One of: {', '.join(str(member.value) for member in hint)}.")
    if meta.pattern is not None:
        parts.append(f"Form: {meta.form}." if meta.form else f"Pattern: {meta.pattern.pattern}")
    return " ".join(parts)


def _comment(doc: str, constraints: str) -> list[str]:
    text = f"{doc} {constraints}".strip()
    return [f"# {line}" for line in textwrap.wrap(text, width=100, break_on_hyphens=False)]


def comment_for(cls: type[Any], name: str) -> list[str]:
    """The comment lines the default file has above setting ``name`` of section ``cls``."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    meta = setting_of(field)
    return _comment(meta.doc, _constraints(field, meta, typing.get_type_hints(cls)[name]))


def toml_value(value: object) -> str:
    """A TOML literal for a default value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    if value is None:
        return '""'
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML literal for {type(value).__name__}")
