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


class DiskFullError(StorageFullError):
    """The filesystem under the outbox is full (SQLITE_FULL): free disk space on the hub."""


class OutboxCorruptError(StoreError):
    """The outbox file is not a usable SQLite database (damaged page, not a database at all).

    The daemon moves such a file aside and opens a fresh outbox; records keep their ids, so
    nothing read again from a device is counted twice at the platform.
    """


class OutboxUnavailableError(StoreError):
    """The outbox cannot be opened or written at all: a read-only or missing data directory,
    wrong permissions, an I/O error. The daemon keeps running and retries."""


class NotDurableError(StoreError):
    """Records could not be committed; the outbox holds them in memory and retries.

    They are *not* accepted in the durability sense: a driver must not acknowledge them to its
    device (advance an RACP cursor, forget a meter's memory). ``record_ids`` are the ids they
    were given, in the order offered, so alerts can still name them.
    """

    def __init__(self, message: str, record_ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.record_ids = record_ids


class UplinkError(GatewayError):
    """Talking to the provincial platform failed."""


class SecretFileError(GatewayError):
    """The platform secret file is missing, empty or readable by others."""


class InboundError(GatewayError):
    """A message from outside (MQTT payload, command) is refused: too large, not UTF-8, too deep or not JSON.

    The message is dropped and the sender answered or logged; the gateway carries on.
    """


class BrokerAclError(GatewayError):
    """The broker ACL cannot be written from these names (a user or topic level Mosquitto would misread).

    Fix the names in the configuration ([mqtt] username, fleet_username, [[contacts]] ids).
    """


class BrokerAccountError(GatewayError):
    """A family account could not be made, removed or put in force on the hub's Mosquitto (its password
    file, its ACL file, its reload). The message says which and what to do."""


class ReportError(GatewayError):
    """The doctor's report cannot be made: no outbox, an unknown resident, a file name without .png, .svg
    or .pdf, no Chinese font installed. The message says what to do."""


class RecordFormatError(GatewayError):
    """A stored platform record's text is not a record of the contract (docs/platform-api.md).

    ``field`` names the field at fault (``values.systolic``, ``device.id``; ``record`` for the text as a
    whole). Permanent for that text: the uplink dead-letters it with this message.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
