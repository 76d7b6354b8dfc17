"""Rewriting a stored record's hub times after the hub clock stepped: pure, on the record's JSON.

A record carries ``received_at`` (always the hub's clock) and ``measured_at`` (the hub's clock when
``time_source`` is ``hub_unsynced``, else the device's). Both keep the UTC offset they were written
with, so a record stamped in Beijing time stays in Beijing time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from drivers.model import TimeSource
from gateway.errors import StoreError

_HUB_STAMPED = frozenset({TimeSource.HUB_UNSYNCED.value, TimeSource.HUB_CORRECTED.value})


def shifted(payload_json: str, delta: timedelta, *, synced: bool) -> str:
    """The record with its hub times moved by ``delta``; marked ``hub_corrected`` if the clock is now
    synchronised (a step to a clock still unsynchronised, fake-hwclock's restore, leaves ``hub_unsynced``)."""
    record = _record(payload_json)
    record["received_at"] = _moved(record, "received_at", delta)
    if record.get("time_source") in _HUB_STAMPED:
        record["measured_at"] = _moved(record, "measured_at", delta)
        if synced:
            record["time_source"] = TimeSource.HUB_CORRECTED.value
    return _json(record)


def estimated(payload_json: str, latest: datetime) -> str:
    """The record with its hub times replaced by ``latest`` (the latest it can have happened),
    marked ``hub_estimated``: for a stamp no step can correct (an earlier boot's clock that was not set)."""
    record = _record(payload_json)
    offset = _parsed(record, "received_at").utcoffset()
    at = latest.astimezone(timezone(offset or timedelta(0))).isoformat(timespec="milliseconds")
    record["received_at"] = at
    if record.get("time_source") == TimeSource.HUB_UNSYNCED.value:
        record["measured_at"] = at
        record["time_source"] = TimeSource.HUB_ESTIMATED.value
    return _json(record)


def _record(payload_json: str) -> dict[str, Any]:
    record = json.loads(payload_json)
    if not isinstance(record, dict):
        raise StoreError("a stored record is not a JSON object: cannot correct its times")
    return record


def _parsed(record: dict[str, Any], key: str) -> datetime:
    text = record.get(key)
    if not isinstance(text, str):
        raise StoreError(f"a stored record has no {key}: cannot correct its times")
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise StoreError(f"a stored record's {key} {text!r} is not ISO 8601: cannot correct its times") from exc
    if at.tzinfo is None:
        raise StoreError(f"a stored record's {key} {text!r} has no UTC offset: cannot correct its times")
    return at


def _moved(record: dict[str, Any], key: str, delta: timedelta) -> str:
    return (_parsed(record, key) + delta).isoformat(timespec="milliseconds")


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
