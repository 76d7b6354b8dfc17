"""Record ids: UUIDv7 (RFC 9562), made on the hub when a record is first accepted; or, for a
record read from a device's memory, a name-based UUIDv5 derived from its identity at the device.

Why UUIDv7: the platform deduplicates on ``record_id``, so an id must be unique
across every hub without coordination (74 random bits), and time-ordered so the
outbox's primary-key index grows at its end and pruning the oldest rows frees
whole pages.

The hub has no real-time clock and NTP may step the wall clock backwards; ids
from one :class:`RecordIdFactory` stay strictly increasing regardless, by
carrying the last timestamp forward and counting in the random bits.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache

_VERSION = 0x7
_VARIANT = 0b10
_RAND_BITS = 74  # 12 bits of rand_a + 62 bits of rand_b
_RAND_MASK = (1 << _RAND_BITS) - 1
_MS_MAX = (1 << 48) - 1


def uuid7(unix_ms: int, rand74: int) -> str:
    """The canonical text of the UUIDv7 with this millisecond timestamp and 74 random bits."""
    if not 0 <= unix_ms <= _MS_MAX:
        raise ValueError(f"UUIDv7 timestamp {unix_ms} ms is outside 0..2**48-1")
    if not 0 <= rand74 <= _RAND_MASK:
        raise ValueError(f"UUIDv7 random part {rand74} does not fit in 74 bits")
    rand_a = rand74 >> 62
    rand_b = rand74 & ((1 << 62) - 1)
    value = (unix_ms << 80) | (_VERSION << 76) | (rand_a << 64) | (_VARIANT << 62) | rand_b
    return str(uuid.UUID(int=value))


def uuid7_time(record_id: str) -> datetime:
    """When a UUIDv7 was made (millisecond precision, UTC); ValueError if it is not a UUIDv7."""
    parsed = uuid.UUID(record_id)
    if parsed.version != _VERSION:
        raise ValueError(f"{record_id!r} is not a UUIDv7 (version {parsed.version})")
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, tz=UTC)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class RecordIdFactory:
    """Makes strictly increasing UUIDv7 ids.

    Within one millisecond (or while the wall clock is behind the last id) the
    74-bit random part is incremented by a fresh random step rather than by one,
    so consecutive ids do not reveal how many records were made in between.
    """

    def __init__(
        self,
        *,
        wall_ms: Callable[[], int] = _wall_ms,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._wall_ms = wall_ms
        self._random_bytes = random_bytes
        self._last_ms = -1
        self._last_rand = 0

    def _random(self, bits: int) -> int:
        return int.from_bytes(self._random_bytes((bits + 7) // 8), "big") >> (-bits % 8)

    def new_id(self, unix_ms: int | None = None) -> str:
        """A new id; ``unix_ms`` is the acceptance time (defaults to the injected wall clock)."""
        now_ms = self._wall_ms() if unix_ms is None else unix_ms
        if now_ms > self._last_ms:
            self._last_ms = now_ms
            # Top bit clear leaves room to count up within this millisecond.
            self._last_rand = self._random(_RAND_BITS - 1)
        else:
            self._last_rand += 1 + self._random(32)
            if self._last_rand > _RAND_MASK:
                self._last_ms += 1
                self._last_rand = self._random(_RAND_BITS - 1)
        return uuid7(self._last_ms, self._last_rand)


RECORD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:yiyang:record")
"""Root of the name-based record ids; each gateway gets its own namespace below it."""


@cache
def gateway_namespace(gateway_id: str) -> uuid.UUID:
    return uuid.uuid5(RECORD_NAMESPACE, gateway_id)


def derived_record_id(gateway_id: str, source_identity: str) -> str:
    """The id of a record that has an identity at its source (device id + the device's record key).

    Why derived and not random: the hub's memory of what it already took lives in the outbox. A lost
    or corrupt outbox is replaced by a fresh one, and the meter's whole memory is read again; with
    ids derived from the record's own identity those readings come back under the same ids, and the
    platform, which deduplicates on ``record_id``, answers "duplicate" instead of counting them twice.
    UUIDv5 (RFC 9562, name-based, SHA-1) in a namespace per gateway: the same device id on two hubs
    never collides, and the text is an ordinary UUID for the platform.
    """
    if not source_identity:
        raise ValueError("a derived record id needs a non-empty source identity")
    return str(uuid.uuid5(gateway_namespace(gateway_id), source_identity))
