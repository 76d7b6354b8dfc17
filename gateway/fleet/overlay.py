"""The effective configuration: the hub's local file with the fleet's sections laid over it (pure).

What the fleet has set is kept as an *overlay*, the top-level sections of every configuration
document applied so far (a later document's section replaces an earlier one's), never as a full
copy of the configuration. So a technician's later edit of a section the fleet never sent still
takes effect at the next start, and the local file stays the one valid configuration to fall back to.

Each section in the overlay replaces the local file's section as a whole: an array of tables such
as ``devices`` is the fleet's whole list, and a table is the fleet's whole table (keys it leaves
out take their defaults, not the local file's values). Merging key by key would pair a fleet device
with a local one by position, or keep a local threshold the operator believed gone.

The hub's identity and data directory are the hub's own (``HUB_OWNED``): the fleet may not set
them, so they always come from the local file, even when the fleet sends a ``[gateway]`` table.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import GatewayConfig, Problem, parse_config, parse_config_mapping
from gateway.config.validate import validate

Overlay = Mapping[str, Any]
"""Top-level section name -> the section as the fleet sent it (JSON data, never modified)."""

HUB_OWNED: tuple[str, ...] = ("id", "data_dir")
"""Keys of ``[gateway]`` that only the local file sets: the hub's id names its topics, its platform
account and its records' ids; its data directory holds the outbox and this very overlay."""


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """The technician's file: as parsed (TOML tables) and as validated."""

    mapping: Mapping[str, Any]
    config: GatewayConfig

    @classmethod
    def from_text(cls, text: str, source: str) -> LocalConfig:
        """Raises ConfigError (with lines) when the file itself is invalid."""
        config = parse_config(text, source)
        return cls(tomllib.loads(text), config)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str) -> LocalConfig:
        """For callers that hold parsed tables (a benchmark's simulated hubs); raises ConfigError."""
        return cls(mapping, parse_config_mapping(mapping, source))


def layer(overlay: Overlay, sections: Mapping[str, Any]) -> dict[str, Any]:
    """The overlay after a document's ``sections``: each one replaces the overlay's as a whole.

    The hub-owned keys of a ``gateway`` section are dropped: the local file's are laid over it.
    """
    layered = {**overlay, **sections}
    gateway = sections.get("gateway")
    if isinstance(gateway, Mapping):
        layered["gateway"] = {key: value for key, value in gateway.items() if key not in HUB_OWNED}
    return layered


def effective_mapping(local: Mapping[str, Any], overlay: Overlay) -> dict[str, Any]:
    """The local tables with every overlay section in place of the local one."""
    merged = {**local, **overlay}
    local_gateway = local.get("gateway")
    fleet_gateway = overlay.get("gateway")
    if isinstance(fleet_gateway, Mapping) and isinstance(local_gateway, Mapping):
        owned = {key: local_gateway[key] for key in HUB_OWNED if key in local_gateway}
        merged["gateway"] = {**fleet_gateway, **owned}
    return merged


def validate_effective(local: Mapping[str, Any], overlay: Overlay) -> tuple[GatewayConfig | None, list[Problem]]:
    """The effective configuration through the same validator as ``yiyang config check``.

    Returns the configuration (None when invalid) and every problem, each with its key path.
    """
    config, problems = validate(GatewayConfig, effective_mapping(local, overlay))
    if problems or config is None:
        return None, problems
    return config.with_derived_defaults(), []
