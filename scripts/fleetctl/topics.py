"""The fleet's configuration topics (docs/mqtt-contract.md, "Signed configuration documents"), pure."""

from __future__ import annotations

from dataclasses import dataclass

DESIRED = "config/desired"
"""fleet -> hub: the signed document, QoS 1, retained."""
REPORTED = "config/reported"
"""hub -> fleet: the outcome of a document, QoS 1, retained."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message as the broker delivered it."""

    topic: str
    payload: bytes
    retained: bool


def hub_topic(root: str, gateway_id: str, leaf: str) -> str:
    return f"{root}/{gateway_id}/{leaf}"


def fleet_filter(root: str, leaf: str) -> str:
    """Every hub's ``leaf`` topic: ``{root}/+/{leaf}``."""
    return f"{root}/+/{leaf}"


def hub_of(topic: str, root: str, leaf: str) -> str | None:
    """The gateway id in ``{root}/{gateway_id}/{leaf}``, or None for any other topic."""
    prefix, suffix = f"{root}/", f"/{leaf}"
    if not (topic.startswith(prefix) and topic.endswith(suffix)):
        return None
    hub = topic[len(prefix) : len(topic) - len(suffix)]
    return hub if hub and "/" not in hub else None
