"""Identifiers made on the hub."""

from __future__ import annotations

import os
import time
import uuid


def uuid7(now_ms: int | None = None, rand: bytes | None = None) -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and index well in SQLite."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    tail = os.urandom(10) if rand is None else rand
    value = (ms & (2**48 - 1)) << 80
    value |= 0x7 << 76
    value |= (int.from_bytes(tail[:2]) & 0x0FFF) << 64
    value |= 0b10 << 62
    value |= int.from_bytes(tail[2:]) & (2**62 - 1)
    return str(uuid.UUID(int=value))
