"""Gateway configuration: one TOML file, parsed once into frozen dataclasses.

Every problem in a file is reported at once, by key path and line, as a :class:`ConfigError`;
nothing invalid is clamped or ignored. Each part of the daemon then receives only its own section.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from drivers.catalogue import Transport
from gateway.config.locate import KeyPath, Locator
from gateway.config.nesting import nesting_limit
from gateway.config.schema import (
    BleNotify,
    ClockSync,
    DetectSettings,
    DeviceSettings,
    DriverName,
    GatewayConfig,
    GatewaySettings,
    LogLevel,
    MqttSettings,
    PlatformSettings,
    Problem,
    ResidentSettings,
    StorageSettings,
    Thresholds,
    UplinkProfile,
)
from gateway.config.toml_bounds import MAX_CONFIG_BYTES, size_problem, text_problem
from gateway.config.validate import format_path, format_problem, problem_line, validate
from gateway.errors import ConfigError

__all__ = [
    "BleNotify",
    "ClockSync",
    "ConfigError",
    "DetectSettings",
    "DeviceSettings",
    "DriverName",
    "GatewayConfig",
    "GatewaySettings",
    "KeyPath",
    "LogLevel",
    "MqttSettings",
    "PlatformSettings",
    "Problem",
    "ResidentSettings",
    "StorageSettings",
    "Thresholds",
    "Transport",
    "UplinkProfile",
    "format_path",
    "load_config",
    "merge_sections",
    "parse_config",
    "parse_config_mapping",
    "read_config_text",
]

_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def load_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and parse the configuration file (blocking: call it before the loop or in a thread)."""
    return parse_config(read_config_text(path), os.fspath(path))


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The file's text, refused (ConfigError) when it cannot be read, is not UTF-8 or is too big."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            # Read one byte past the limit rather than trusting the size: /dev/zero has none.
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = f"{source}: cannot read the file ({reason}); check the path and its permissions"
        raise ConfigError(source, [problem]) from exc
    too_big = size_problem(len(data))
    if too_big is not None:
        raise ConfigError(source, [f"{source}: {too_big}"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, [f"{source}: byte {exc.start} is not UTF-8; save the file as UTF-8"]
        ) from exc


def parse_config(text: str, source: str) -> GatewayConfig:
    """Parse TOML text; ``source`` names it in problems (usually the file path).

    The text is bounded before tomllib reads it (:mod:`gateway.config.toml_bounds`).
    """
    # Characters first: there are never more of them than bytes, and counting them copies nothing.
    too_big = size_problem(len(text)) or size_problem(len(text.encode("utf-8", "surrogatepass")))
    if too_big is not None:
        raise ConfigError(source, [f"{source}: {too_big}"])
    beyond = text_problem(text, nesting_limit(GatewayConfig))
    if beyond is not None:
        raise ConfigError(source, [f"{source}:{beyond.line}:{beyond.column}: {beyond.what}; {beyond.todo}"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_syntax_problem(source, text, exc)]) from exc
    except ValueError as exc:  # tomllib lets a few value errors through undecorated; say so plainly
        raise ConfigError(source, [f"{source}: a value tomllib cannot read ({exc}); correct it"]) from exc
    return parse_config_mapping(data, source, text)


def parse_config_mapping(data: Mapping[str, Any], source: str, text: str | None = None) -> GatewayConfig:
    """Validate already-parsed data (TOML tables or a fleet JSON document).

    With ``text`` (the TOML it came from) problems carry line numbers.
    """
    config, problems = validate(GatewayConfig, data)
    if problems or config is None:
        locator = Locator(text) if text is not None else None
        problems.sort(key=lambda problem: problem_line(problem, locator))
        raise ConfigError(source, [format_problem(source, problem, locator) for problem in problems])
    return config.with_derived_defaults()


def merge_sections(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Lay ``overlay`` over ``base``: tables merge key by key, everything else (arrays too) is replaced.

    Arrays of tables (residents, devices) are replaced whole, because merging them by position would
    silently pair a new entry with an old one. Neither argument is modified.
    """
    merged = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_sections(current, value)
        else:
            merged[key] = value
    return merged


def _syntax_problem(source: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    if match is None:
        return f"{source}: TOML syntax error: {message}; fix the syntax there"
    reason = message[: match.start()]
    line, column = match.groups()
    if line is None:  # tomllib ran off the end: usually an unclosed bracket, quote or a missing value
        return f"{source}:{text.count(chr(10)) + 1}: TOML syntax error: {reason} at end of file; close what is open"
    return f"{source}:{line}:{column}: TOML syntax error: {reason}; fix the syntax at that position"
