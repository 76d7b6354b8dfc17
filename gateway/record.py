"""The platform record (Platform Upload API v1, docs/platform-api.md) as one typed value, pure.

:class:`PlatformRecord` is what the outbox stores and both uplink profiles send:
``gateway.wire`` builds it from readings, alerts and hub events, :meth:`PlatformRecord.to_json`
is the text stored at acceptance (and spliced as is into a v1 body), and
:meth:`PlatformRecord.from_json` reads a stored text back for the FHIR profile.

``from_json`` is strict and bounded: the text is at most what one request can carry, numbers
are finite, each type has its own ``values`` shape, and the first fault raises one
:class:`~gateway.errors.RecordFormatError` naming the field. It checks what the record *is*;
what a profile additionally needs (a UUID record id, a UTC offset, a unit, a code for a glucose
sample) is the profile's to say (``gateway.uplink.fhir``).

``to_json`` writes the keys in the order ``gateway.wire`` always has, so a record read back
and written again is the same text: times stay the text they were stamped as (the contract's
milliseconds and offset), a number stays an int or a float as it was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from drivers.model import TimeSource
from gateway.errors import RecordFormatError
from gateway.platform_limits import MAX_BODY_BYTES

MAX_RECORD_CHARS = MAX_BODY_BYTES
"""A record longer than one request's whole body can never be uploaded: refused before parsing."""

EvidenceValue = str | int | float | bool | list[str] | None
"""One item of an event's or an alert's evidence: text, a number, a flag or a list of names."""


class RecordType(StrEnum):
    BLOOD_PRESSURE = "blood_pressure"
    BLOOD_GLUCOSE = "blood_glucose"
    SPO2 = "spo2"
    BODY_TEMPERATURE = "body_temperature"
    FALL = "fall"
    HELP_REQUEST = "help_request"
    ALERT = "alert"
    DEVICE_STATUS = "device_status"


@dataclass(frozen=True, slots=True)
class RecordDevice:
    """``device``: the device's id, and what is known of it (a hub event names only the id)."""

    id: str
    transport: str | None = None
    model: str | None = None
    serial: str | None = None

    def as_json(self) -> dict[str, Any]:
        device: dict[str, Any] = {"id": self.id}
        if self.transport is not None:
            device["transport"] = self.transport
        if self.model is not None:
            device["model"] = self.model
        if self.serial is not None:
            device["serial"] = self.serial
        return device


def _present(pairs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pairs.items() if v is not None}


@dataclass(frozen=True, slots=True)
class BloodPressureValues:
    systolic: float
    diastolic: float
    mean_arterial: float | None = None
    pulse: float | None = None

    def as_json(self) -> dict[str, Any]:
        return _present({"systolic": self.systolic, "diastolic": self.diastolic,
                         "mean_arterial": self.mean_arterial, "pulse": self.pulse})


@dataclass(frozen=True, slots=True)
class GlucoseValues:
    value: float
    meal: str | None = None
    sample: str | None = None

    def as_json(self) -> dict[str, Any]:
        return _present({"value": self.value, "meal": self.meal, "sample": self.sample})


@dataclass(frozen=True, slots=True)
class SpO2Values:
    spo2: float
    pulse: float | None = None
    perfusion_index: float | None = None

    def as_json(self) -> dict[str, Any]:
        return _present({"spo2": self.spo2, "pulse": self.pulse, "perfusion_index": self.perfusion_index})


@dataclass(frozen=True, slots=True)
class TemperatureValues:
    value: float
    site: str | None = None

    def as_json(self) -> dict[str, Any]:
        return _present({"value": self.value, "site": self.site})


@dataclass(frozen=True, slots=True)
class AlertValues:
    """One lifecycle state of an alert: which alert, what and how serious, why, and from which records."""

    alert_id: str
    kind: str
    severity: str
    state: str
    evidence: Mapping[str, EvidenceValue] = field(default_factory=dict)
    related_record_ids: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "kind": self.kind, "severity": self.severity, "state": self.state,
                "evidence": dict(self.evidence), "related_record_ids": list(self.related_record_ids)}


@dataclass(frozen=True, slots=True)
class EventValues:
    """A hub event's evidence (``fall``, ``help_request``, ``device_status``), in the order it was given."""

    items: Mapping[str, EvidenceValue] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return dict(self.items)


RecordValues = BloodPressureValues | GlucoseValues | SpO2Values | TemperatureValues | AlertValues | EventValues

_VALUES_OF: dict[RecordType, type[RecordValues]] = {
    RecordType.BLOOD_PRESSURE: BloodPressureValues,
    RecordType.BLOOD_GLUCOSE: GlucoseValues,
    RecordType.SPO2: SpO2Values,
    RecordType.BODY_TEMPERATURE: TemperatureValues,
    RecordType.ALERT: AlertValues,
    RecordType.FALL: EventValues,
    RecordType.HELP_REQUEST: EventValues,
    RecordType.DEVICE_STATUS: EventValues,
}


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    """One record as the platform receives it; ``record_id`` is None until the outbox gives it one.

    ``resident_id`` None means the record names no resident (the hub's own ``device_status``);
    ``unit`` is there for readings only, ``device`` for all but alerts.
    """

    type: RecordType
    resident_id: str | None
    measured_at: str
    received_at: str
    time_source: TimeSource
    values: RecordValues
    device: RecordDevice | None = None
    unit: str | None = None
    flags: tuple[str, ...] = ()
    record_id: str | None = None

    def __post_init__(self) -> None:
        expected = _VALUES_OF[self.type]
        if not isinstance(self.values, expected):
            raise RecordFormatError("values", f"a {self.type} record's values are {expected.__name__}, "
                                              f"not {type(self.values).__name__}")

    def as_json(self) -> dict[str, Any]:
        """The record's JSON object, keys in the contract's order (``record_id`` first when it has one)."""
        record: dict[str, Any] = {} if self.record_id is None else {"record_id": self.record_id}
        record["type"] = self.type.value
        if self.resident_id is not None:
            record["resident_id"] = self.resident_id
        if self.device is not None:
            record["device"] = self.device.as_json()
        record["measured_at"] = self.measured_at
        record["received_at"] = self.received_at
        record["time_source"] = self.time_source.value
        record["values"] = self.values.as_json()
        if self.unit is not None:
            record["unit"] = self.unit
        record["flags"] = list(self.flags)
        return record

    def to_json(self) -> str:
        """The compact text the outbox stores (UTF-8 kept as is, no spaces)."""
        return json.dumps(self.as_json(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PlatformRecord:
        """The record a stored text holds; raises :class:`RecordFormatError` naming the first field at fault."""
        if len(text) > MAX_RECORD_CHARS:
            raise RecordFormatError("record", f"record text is {len(text)} characters; at most {MAX_RECORD_CHARS}")
        try:
            document = json.loads(text, parse_constant=_reject_constant)
        except RecursionError as exc:
            raise RecordFormatError("record", "record text is nested too deeply") from exc
        except ValueError as exc:
            raise RecordFormatError("record", f"record text is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise RecordFormatError("record", "record text is not a JSON object")
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> PlatformRecord:
        """The record a parsed JSON object holds (as :meth:`from_json`, for an object already parsed)."""
        type_text = document.get("type")
        try:
            record_type = RecordType(type_text) if isinstance(type_text, str) else None
        except ValueError:
            record_type = None
        if record_type is None:
            known = ", ".join(sorted(t.value for t in RecordType))
            raise RecordFormatError("type", f"record type {type_text!r} is not a platform record type "
                                            f"(known: {known})")
        time_source_text = _text(document, "time_source")
        try:
            time_source = TimeSource(time_source_text)
        except ValueError:
            raise RecordFormatError("time_source", f"record time_source {time_source_text!r} is not one the "
                                                   "contract knows") from None
        flags = document.get("flags")
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise RecordFormatError("flags", "record flags are not a list of names")
        unit = document.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise RecordFormatError("unit", f"record unit is {unit!r}, not text")
        return cls(
            type=record_type,
            resident_id=_optional_text(document, "resident_id"),
            measured_at=_timestamp(document, "measured_at"),
            received_at=_timestamp(document, "received_at"),
            time_source=time_source,
            values=_values(record_type, document.get("values")),
            device=_device(document.get("device")),
            unit=unit,
            flags=tuple(flags),
            record_id=_optional_text(document, "record_id"),
        )


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _text(document: Mapping[str, Any], key: str, where: str = "record") -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise RecordFormatError(_field(where, key), f"{where} has no {key!r} text")
    return value


def _optional_text(document: Mapping[str, Any], key: str, where: str = "record") -> str | None:
    """Text when present; absent and ``null`` are both "not given"."""
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordFormatError(_field(where, key), f"{_field(where, key)} is {value!r}, not text")
    return value


def _field(where: str, key: str) -> str:
    return key if where == "record" else f"{where}.{key}"


def _timestamp(document: Mapping[str, Any], key: str) -> str:
    """The time's text unchanged, once checked to be ISO 8601 (a profile may ask more: an offset)."""
    text = _text(document, key)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise RecordFormatError(key, f"record {key} {text!r} is not an ISO 8601 time") from None
    return text


def _number(values: Mapping[str, Any], key: str, *, required: bool) -> float | None:
    value = values.get(key)
    if value is None:
        if required:
            raise RecordFormatError(f"values.{key}", f"values.{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordFormatError(f"values.{key}", f"values.{key} is {value!r}, not a finite number")
    return value


def _evidence(items: Mapping[str, Any], where: str) -> dict[str, EvidenceValue]:
    evidence: dict[str, EvidenceValue] = {}
    for key, value in items.items():
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise RecordFormatError(f"{where}.{key}", f"{where}.{key} is a list of something other than text")
        elif value is not None and not isinstance(value, str | int | float):  # bool is an int
            raise RecordFormatError(f"{where}.{key}",
                                    f"{where}.{key} is {type(value).__name__}; evidence is text, numbers or names")
        elif isinstance(value, float) and not math.isfinite(value):
            raise RecordFormatError(f"{where}.{key}", f"{where}.{key} is {value!r}, not a finite number")
        evidence[key] = value
    return evidence


def _values(record_type: RecordType, values: object) -> RecordValues:
    if not isinstance(values, dict):
        raise RecordFormatError("values", "record has no 'values' object")
    match record_type:
        case RecordType.BLOOD_PRESSURE:
            return BloodPressureValues(_required(values, "systolic"), _required(values, "diastolic"),
                                       _number(values, "mean_arterial", required=False),
                                       _number(values, "pulse", required=False))
        case RecordType.BLOOD_GLUCOSE:
            return GlucoseValues(_required(values, "value"), _optional_text(values, "meal", "values"),
                                 _optional_text(values, "sample", "values"))
        case RecordType.SPO2:
            return SpO2Values(_required(values, "spo2"), _number(values, "pulse", required=False),
                              _number(values, "perfusion_index", required=False))
        case RecordType.BODY_TEMPERATURE:
            return TemperatureValues(_required(values, "value"), _optional_text(values, "site", "values"))
        case RecordType.ALERT:
            return _alert_values(values)
        case _:
            return EventValues(_evidence(values, "values"))


def _required(values: Mapping[str, Any], key: str) -> float:
    value = _number(values, key, required=True)
    if value is None:  # _number has raised already; this tells the type checker
        raise RecordFormatError(f"values.{key}", f"values.{key} is missing")
    return value


def _alert_values(values: Mapping[str, Any]) -> AlertValues:
    evidence = values.get("evidence")
    if not isinstance(evidence, dict):
        raise RecordFormatError("values.evidence", "values.evidence is not an object")
    related = values.get("related_record_ids")
    if not isinstance(related, list) or not all(isinstance(r, str) for r in related):
        raise RecordFormatError("values.related_record_ids", "values.related_record_ids is not a list of record ids")
    return AlertValues(
        alert_id=_text(values, "alert_id", "values"),
        kind=_text(values, "kind", "values"),
        severity=_text(values, "severity", "values"),
        state=_text(values, "state", "values"),
        evidence=_evidence(evidence, "values.evidence"),
        related_record_ids=tuple(related),
    )


def _device(device: object) -> RecordDevice | None:
    if device is None:
        return None
    if not isinstance(device, dict):
        raise RecordFormatError("device", "record device is not an object")
    identifier = device.get("id")
    if not isinstance(identifier, str):
        raise RecordFormatError("device.id", "device has no 'id' text")
    return RecordDevice(identifier, _optional_text(device, "transport", "device"),
                        _optional_text(device, "model", "device"), _optional_text(device, "serial", "device"))
