"""Editing the technician's configuration file in place: comments kept, the whole file validated.

Commands that change the configuration (``yiyang bind``, ``yiyang family``) edit the TOML with
tomlkit so the technician's comments and layout survive. An edit is prepared first (the edited
text parsed and validated as a whole, nothing written), so a command can check everything else it
must do before it touches any file; committing replaces the file atomically and loads it again,
restoring the original if that fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from gateway.config import GatewayConfig, load_config, parse_config
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ConfigEdit:
    """An edit checked but not yet written."""

    path: Path
    original: str
    edited: str
    config: GatewayConfig
    """The configuration the edited text gives."""


def prepare_edit(config_path: str | os.PathLike[str], mutate: Callable[[tomlkit.TOMLDocument], None]) -> ConfigEdit:
    """Apply ``mutate`` to the file's TOML document and validate the result; ConfigError says what is wrong."""
    path = Path(config_path)
    source = str(path)
    try:
        original = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"{source}: cannot read the file ({exc.strerror}); check the path"]) from exc
    try:
        document = tomlkit.parse(original)
    except TOMLKitError as exc:
        raise ConfigError(source, [f"{source}: TOML syntax error: {exc}; fix the file first"]) from exc
    mutate(document)
    edited = tomlkit.dumps(document)
    return ConfigEdit(path, original, edited, parse_config(edited, source))


def commit_edit(edit: ConfigEdit) -> None:
    """Write the edited text over the file atomically; if it then does not load, put the original back."""
    replace_file(edit.path, edit.edited)
    try:
        load_config(edit.path)
    except ConfigError:
        replace_file(edit.path, edit.original)
        raise


def array_of_tables(document: tomlkit.TOMLDocument, key: str) -> tomlkit.items.AoT:
    """The document's ``[[key]]`` entries, made when there are none; ConfigError when ``key`` is something else."""
    entries = document.get(key)
    if entries is None:
        entries = tomlkit.aot()
        document.append(key, entries)
    if not isinstance(entries, tomlkit.items.AoT):
        raise ConfigError(key, [f"{key}: must be an array of [[{key}]] tables to edit it here"])
    return entries


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` over ``path`` atomically, keeping the file's permissions."""
    mode = path.stat().st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
