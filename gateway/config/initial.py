"""The configuration a new hub starts from: every documented default, with this hub's identity (``yiyang config init``).

scripts/install.sh writes ``/etc/yiyang/gateway.toml`` with it. A new file is the documented default
file (gateway.config.check.render_default_toml) with the hub's id, platform URL, residents and the
paths of the files the installer put in place; the example device and contact are kept as comments
to copy from (devices are added with ``yiyang bind``, family accounts afterwards). An existing file
(the technician's, with devices bound) keeps everything but the keys the installer owns, edited in
place with tomlkit so its comments stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from gateway.config import parse_config
from gateway.config.check import DEFAULT_FILE_HEADER, render_default_toml
from gateway.errors import ConfigError

EXAMPLE_ARRAYS = ("devices", "contacts")
"""Tables whose entry in the default file is an example, not something every hub has."""


@dataclass(frozen=True, slots=True)
class HubIdentity:
    """What the installer knows of the hub and put on it."""

    gateway_id: str
    platform_url: str
    residents: tuple[str, ...]
    """Pseudonymous ids the platform issued; required for a new file, checked present in an existing one."""
    data_dir: Path
    secret_file: Path
    broker_user: str
    broker_password_file: Path | None
    fleet_key_file: Path | None
    """None: leave the file's setting as it is (a new file: no fleet key)."""


def new_config(hub: HubIdentity, source: str = "gateway.toml") -> str:
    """A new hub's file; ConfigError (lines naming keys) when the result would not be valid."""
    if not hub.residents:
        raise ConfigError(source, [f"{source}: a new configuration needs at least one resident: give the "
                                   "pseudonymous resident id the platform issued (--resident ID)"])
    text = _hub_header(render_default_toml(), hub.gateway_id)
    for name in EXAMPLE_ARRAYS:
        text = _commented_out(text, name)
    text = _with_residents(text, hub.residents)
    return _finish(_parse(text, source), hub, source)


def updated_config(existing: str, hub: HubIdentity, source: str) -> str:
    """``existing`` with the installer's keys set to ``hub``'s; the rest untouched."""
    document = _parse(existing, source)
    residents = document.get("residents")
    have = {str(entry.get("id")) for entry in residents} if isinstance(residents, AoT) else set()
    missing = [rid for rid in hub.residents if rid not in have]
    if missing:
        raise ConfigError(source, [f"{source}: residents: {', '.join(missing)} not in the file: add a [[residents]] "
                                   "entry for each by hand (the installer does not change who is cared for)"])
    return _finish(document, hub, source)


def _finish(document: tomlkit.TOMLDocument, hub: HubIdentity, source: str) -> str:
    _put(document, "gateway", "id", hub.gateway_id)
    _put(document, "gateway", "data_dir", str(hub.data_dir))
    _put(document, "platform", "url", hub.platform_url)
    _put(document, "platform", "secret_file", str(hub.secret_file))
    _put(document, "mqtt", "username", hub.broker_user)
    _put(document, "mqtt", "password_file", str(hub.broker_password_file or ""))
    if hub.fleet_key_file is not None:
        _put(document, "fleet", "public_key_file", str(hub.fleet_key_file))
    text = tomlkit.dumps(document)
    parse_config(text, source)  # raises ConfigError with every problem, by line and key
    return text


def _put(document: tomlkit.TOMLDocument, section: str, key: str, value: str) -> None:
    table = document.get(section)
    if table is None:
        table = tomlkit.table()
        document.append(section, table)
    if not isinstance(table, Table):
        raise ConfigError(section, [f"{section}: must be a [{section}] table"])
    if table.get(key) != value:  # an equal value keeps its own quoting
        table[key] = value


def _parse(text: str, source: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(source, [f"{source}: TOML syntax error: {exc}; fix the file first"]) from exc


def _hub_header(text: str, gateway_id: str) -> str:
    header = (f"# yiyang-gateway configuration of hub {gateway_id}, first written by scripts/install.sh (yiyang "
              "config init).\n# Every setting is shown with its default and documented. `yiyang config check "
              "--user yiyang FILE` checks\n# it; `yiyang bind` adds Bluetooth devices; the installer changes only "
              "the hub's id, the platform URL\n# and the paths of the files it installs when it runs again.\n")
    assert text.startswith(DEFAULT_FILE_HEADER)
    return header + text[len(DEFAULT_FILE_HEADER):]


def _commented_out(text: str, name: str) -> str:
    """The example ``[[name]]`` entry as comments: its header and settings, below its documentation."""
    lines = text.split("\n")
    start = lines.index(f"[[{name}]]")
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    example = [line if line.startswith("#") else f"# {line}" for line in lines[start:end]]
    note = f"# (an example, commented out: copy it without the leading '# ' on its [[{name}]] and key lines)"
    return "\n".join([*lines[:start], note, *example, *lines[end:]])


def _with_residents(text: str, residents: tuple[str, ...]) -> str:
    """The example ``[[residents]]`` entry once for each resident id."""
    block = re.search(r"^\[\[residents\]\]\n(?:#.*\n)*id = .*\n\n(?:#.*\n)*\[residents\.thresholds\]\n", text,
                      re.MULTILINE)
    assert block is not None, "the default file's [[residents]] block"
    example = block.group(0)
    entries = [re.sub(r"^id = .*$", f"id = {tomlkit.string(rid).as_string()}", example, count=1, flags=re.MULTILINE)
               for rid in residents]
    return text[:block.start()] + "\n".join(entries) + text[block.end():]
