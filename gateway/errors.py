"""The one exception root of the gateway package."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error raised by :mod:`gateway`."""


class ConfigError(GatewayError):
    """The configuration is invalid; ``problems`` lists every error by key path and line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} configuration error(s):\n{lines}")


class StoreError(GatewayError):
    """The outbox could not do what was asked (disk full, corrupt database, ...)."""


class StorageFullError(StoreError):
    """The outbox is at its hard budget with nothing left that may be pruned.

    Free disk space or get the hub online so pending records can be delivered.
    """


class UplinkError(GatewayError):
    """Talking to the provincial platform failed."""


class SecretFileError(GatewayError):
    """The platform secret file is missing, empty or readable by others."""


class InboundError(GatewayError):
    """A message from outside (MQTT payload, command) is refused: too large, not UTF-8, too deep or not JSON.

    The message is dropped and the sender answered or logged; the gateway carries on.
    """
