"""The FHIR R4 uplink profile: stored v1 records as FHIR resources, pure.

One v1 record (a :class:`gateway.record.PlatformRecord`, read from the outbox's
JSON with ``record_id`` included; its shape is the record's to check, what the
profile needs beyond it is checked here) becomes one ``Observation``; a
transaction ``Bundle`` carries one entry per record, created with ``ifNoneExist``
on the record id so a retry can never make a duplicate
(reference/platform-api.md, "FHIR R4 profile").

Choices the contract leaves open, and why:

- Glucose meal context is a *component* coded ``MDC_CTXT_GLU_MEAL``. The PHD IG
  sends it as a separate coded-enumeration Observation linked by ``derivedFrom``;
  we keep one Observation per record so de-duplication stays one identifier.
- Device flags are ``interpretation`` codings: "HI"/"LO" on a meter are the HL7
  off-scale codes ``>``/``<``; the rest (cuff loose, irregular pulse...) have no
  HL7 code and use the local system ``urn:yiyang:device-flag``.
- ``time_source`` is a ``meta.tag`` (``urn:yiyang:time-source``): it says how far
  to trust ``effectiveDateTime`` and lets a platform search ``_tag`` for records
  stamped by an unsynchronised hub clock.
- Every Observation is ``final``. An alert's lifecycle states are separate records,
  each its own Observation; ``amended`` would claim an earlier result changed.
- An alert also gets a ``Flag`` (the task a platform acts on), one per alert id,
  written by conditional update: ``active`` while raised, repeated or escalated,
  ``inactive`` once acknowledged or resolved.
- Control-solution tests are not measurements of the resident and interstitial
  fluid has no mmol/L glucose code in the contract: both are refused, so the
  uplink dead-letters them with the reason instead of filing a false blood glucose.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from gateway.errors import RecordFormatError, UplinkError
from gateway.record import (
    AlertValues,
    BloodPressureValues,
    EventValues,
    EvidenceValue,
    GlucoseValues,
    PlatformRecord,
    RecordType,
    RecordValues,
    SpO2Values,
    TemperatureValues,
)

RECORD_SYSTEM = "urn:yiyang:record"
RESIDENT_SYSTEM = "urn:yiyang:resident"
DEVICE_SYSTEM = "urn:yiyang:device"
ALERT_SYSTEM = "urn:yiyang:alert"
LOCAL_CODE_SYSTEM = "urn:yiyang:code"
DEVICE_FLAG_SYSTEM = "urn:yiyang:device-flag"
TIME_SOURCE_SYSTEM = "urn:yiyang:time-source"
LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"

_FLAG_NAMESPACE = uuid.UUID("5b1f0c52-6a43-4f0e-9a4e-3d7c1b0e8f21")
"""Fixed: a Flag entry's ``fullUrl`` must come out the same on every retry of a record."""


class FhirMappingError(UplinkError):
    """A stored record cannot be expressed in the FHIR profile.

    Permanent for that record: the uplink dead-letters it with this message, so a
    technician can see it (and requeue it after a fix); it is never dropped silently.
    """


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str

    def as_json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class Unit:
    ucum: str
    display: str


@dataclass(frozen=True, slots=True)
class QuantitySpec:
    """One numeric value of a record (``values[key]``) and how FHIR codes it."""

    key: str
    codes: tuple[Coding, ...]
    unit: Unit
    required: bool = True


MM_HG = Unit("mm[Hg]", "mmHg")
PER_MIN = Unit("/min", "beats/minute")
PERCENT = Unit("%", "%")
CELSIUS = Unit("Cel", "°C")
MMOL_L = Unit("mmol/L", "mmol/L")

BP_PANEL = (Coding(LOINC, "85354-9", "Blood pressure panel with all children optional"),
            Coding(MDC, "150020", "MDC_PRESS_BLD_NONINV"))
BP_COMPONENTS = (
    QuantitySpec("systolic", (Coding(LOINC, "8480-6", "Systolic blood pressure"),
                              Coding(MDC, "150021", "MDC_PRESS_BLD_NONINV_SYS")), MM_HG),
    QuantitySpec("diastolic", (Coding(LOINC, "8462-4", "Diastolic blood pressure"),
                               Coding(MDC, "150022", "MDC_PRESS_BLD_NONINV_DIA")), MM_HG),
    QuantitySpec("mean_arterial", (Coding(LOINC, "8478-0", "Mean blood pressure"),
                                   Coding(MDC, "150023", "MDC_PRESS_BLD_NONINV_MEAN")), MM_HG, required=False),
    # A cuff's pulse is MDC_PULS_RATE_NON_INV; 149530 is the oximeter's.
    QuantitySpec("pulse", (Coding(LOINC, "8867-4", "Heart rate"),
                           Coding(MDC, "149546", "MDC_PULS_RATE_NON_INV")), PER_MIN, required=False),
)
SPO2_CODE = (Coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
             Coding(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
             Coding(MDC, "150456", "MDC_PULS_OXIM_SAT_O2"))
SPO2_VALUE = QuantitySpec("spo2", SPO2_CODE, PERCENT)
SPO2_COMPONENTS = (
    QuantitySpec("pulse", (Coding(LOINC, "8867-4", "Heart rate"),
                           Coding(MDC, "149530", "MDC_PULS_OXIM_PULS_RATE")), PER_MIN, required=False),
    # MDC_PULS_OXIM_PERF_REL is term 19376 in partition 2 (2 * 65536 + 19376); LOINC's perfusion
    # index without a pre/postductal site (those are for newborn screening) is 61006-3.
    QuantitySpec("perfusion_index", (Coding(LOINC, "61006-3", "Perfusion index Tissue by Pulse oximetry"),
                                     Coding(MDC, "150448", "MDC_PULS_OXIM_PERF_REL")), PERCENT, required=False),
)
TEMPERATURE_CODE = (Coding(LOINC, "8310-5", "Body temperature"), Coding(MDC, "150364", "MDC_TEMP_BODY"))
TEMPERATURE_VALUE = QuantitySpec("value", TEMPERATURE_CODE, CELSIUS)

CAPILLARY_GLUCOSE_CODE = (Coding(LOINC, "14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
                          Coding(MDC, "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"))
BLOOD_GLUCOSE_CODE = (Coding(LOINC, "15074-8", "Glucose [Moles/volume] in Blood"),)
# 41653-7 is glucose in mg/dL: never paired with the mmol/L we upload, so it is not in this table.
GLUCOSE_CODE_BY_SAMPLE: dict[str, tuple[Coding, ...]] = {
    "capillary_whole_blood": CAPILLARY_GLUCOSE_CODE,
    "capillary_plasma": BLOOD_GLUCOSE_CODE,
    "venous_whole_blood": BLOOD_GLUCOSE_CODE,
    "venous_plasma": BLOOD_GLUCOSE_CODE,
    "unknown": BLOOD_GLUCOSE_CODE,
}
MEAL_CONTEXT = Coding(MDC, "8417864", "MDC_CTXT_GLU_MEAL")
MEAL_BY_NAME: dict[str, Coding] = {
    "preprandial": Coding(MDC, "8417868", "MDC_CTXT_GLU_MEAL_PREPRANDIAL"),
    "postprandial": Coding(MDC, "8417872", "MDC_CTXT_GLU_MEAL_POSTPRANDIAL"),
    "fasting": Coding(MDC, "8417876", "MDC_CTXT_GLU_MEAL_FASTING"),
    "casual": Coding(MDC, "8417880", "MDC_CTXT_GLU_MEAL_CASUAL"),
    "bedtime": Coding(MDC, "8417908", "MDC_CTXT_GLU_MEAL_BEDTIME"),
}

FALL_CODE = (Coding(SNOMED, "1912002", "Fall (event)"), Coding(LOCAL_CODE_SYSTEM, "fall", "Fall"))
HELP_REQUEST_CODE = (Coding(LOCAL_CODE_SYSTEM, "help-request", "Help request (SOS button)"),)
ALERT_CODE = (Coding(LOCAL_CODE_SYSTEM, "alert", "Care alert"),)
DEVICE_STATUS_CODE = (Coding(LOCAL_CODE_SYSTEM, "device-status", "Device status"),)

VITAL_SIGNS = Coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
LABORATORY = Coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")
ACTIVITY = Coding(OBSERVATION_CATEGORY, "activity", "Activity")
DEVICE_CATEGORY = Coding(LOCAL_CODE_SYSTEM, "device", "Device")
ALERT_CATEGORY = Coding(LOCAL_CODE_SYSTEM, "alert", "Alert")

FLAG_BY_NAME: dict[str, Coding] = {
    "above_range": Coding(INTERPRETATION, ">", "Off scale high"),
    "below_range": Coding(INTERPRETATION, "<", "Off scale low"),
}
UNIT_BY_EVIDENCE: dict[str, Unit] = {
    "peak_g": Unit("[g]", "g"),
    "stillness_g": Unit("[g]", "g"),
    "free_fall_min_g": Unit("[g]", "g"),
    "posture_change_deg": Unit("deg", "degree"),
    "tilt_after_deg": Unit("deg", "degree"),
    "detection_delay_s": Unit("s", "s"),
    "cancel_window_s": Unit("s", "s"),
    "confidence": Unit("1", "1"),
}
ACTIVE_ALERT_STATES = frozenset({"raised", "repeated", "escalated"})
CLOSED_ALERT_STATES = frozenset({"acknowledged", "resolved"})
REFUSED_SAMPLES: dict[str, str] = {
    "control_solution": "a control-solution test is not a measurement of the resident",
    "interstitial_fluid": "interstitial-fluid glucose has no mmol/L code in the FHIR profile",
}


def _concept(codes: Sequence[Coding], text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [c.as_json() for c in codes]}
    if text is not None:
        concept["text"] = text
    return concept


def _text(value: str | None, name: str, where: str = "record") -> str:
    if not value:
        raise FhirMappingError(f"{where} has no {name!r} text; the FHIR profile needs it")
    return value


def _timestamp(text: str, key: str) -> str:
    """The record's ISO 8601 text unchanged, once checked to carry a UTC offset as FHIR requires."""
    if datetime.fromisoformat(text).tzinfo is None:  # the record checked that it parses
        raise FhirMappingError(f"record {key} {text!r} has no UTC offset; FHIR dateTime needs one")
    return text


def _quantity(value: float, unit: Unit) -> dict[str, Any]:
    return {"value": value, "unit": unit.display, "system": UCUM, "code": unit.ucum}


def _check_unit(record: PlatformRecord, expected: str) -> None:
    if record.unit != expected:
        raise FhirMappingError(f"record unit is {record.unit!r}; the FHIR profile maps this type only in {expected}")


def _components(values: RecordValues, specs: Sequence[QuantitySpec]) -> list[dict[str, Any]]:
    components = []
    for spec in specs:
        value: float | None = getattr(values, spec.key)
        if value is None:
            continue  # the record's type has every required value
        components.append({"code": _concept(spec.codes), "valueQuantity": _quantity(value, spec.unit)})
    return components


def _value_quantity(value: float, unit: Unit) -> dict[str, Any]:
    return {"valueQuantity": _quantity(value, unit)}


def _evidence_component(key: str, value: EvidenceValue) -> dict[str, Any]:
    """One evidence item of an event or alert, coded by its own name in the local system."""
    component: dict[str, Any] = {"code": {"coding": [{"system": LOCAL_CODE_SYSTEM, "code": key}]}}
    if isinstance(value, bool):
        component["valueBoolean"] = value
    elif isinstance(value, int | float):
        unit = UNIT_BY_EVIDENCE.get(key)
        component["valueQuantity"] = {"value": value} if unit is None else _quantity(value, unit)
    elif isinstance(value, str) and key.endswith("_at"):
        component["valueDateTime"] = value
    elif isinstance(value, str):
        component["valueString"] = value
    else:  # a list of names (None and "" are left out by the caller)
        component["valueString"] = ",".join(value or ())
    return component


def _evidence_components(items: Mapping[str, EvidenceValue]) -> list[dict[str, Any]]:
    return [_evidence_component(key, items[key]) for key in sorted(items)
            if items[key] is not None and items[key] != ""]


def _interpretation(record: PlatformRecord) -> list[dict[str, Any]]:
    return [{"coding": [FLAG_BY_NAME.get(f, Coding(DEVICE_FLAG_SYSTEM, f, f.replace("_", " "))).as_json()]}
            for f in record.flags]


_V = TypeVar("_V", BloodPressureValues, GlucoseValues, SpO2Values, TemperatureValues, AlertValues, EventValues)


def _values(record: PlatformRecord, kind: type[_V]) -> _V:
    values = record.values
    if not isinstance(values, kind):  # a PlatformRecord pairs each type with its values when it is made
        raise FhirMappingError(f"a {record.type} record's values are not {kind.__name__}")
    return values


# --- one function per record type: the parts that differ -------------------------------------------------


def _blood_pressure(record: PlatformRecord) -> dict[str, Any]:
    _check_unit(record, "mmHg")
    return {"category": [VITAL_SIGNS], "code": _concept(BP_PANEL),
            "component": _components(_values(record, BloodPressureValues), BP_COMPONENTS)}


def _glucose(record: PlatformRecord) -> dict[str, Any]:
    _check_unit(record, "mmol/L")
    values = _values(record, GlucoseValues)
    sample = "unknown" if values.sample is None else values.sample
    refused = REFUSED_SAMPLES.get(sample)
    if refused is None and "control_solution" in record.flags:
        refused = REFUSED_SAMPLES["control_solution"]
    if refused is not None:
        raise FhirMappingError(refused)
    codes = GLUCOSE_CODE_BY_SAMPLE.get(sample)
    if codes is None:
        raise FhirMappingError(f"values.sample {sample!r} is not a glucose sample the FHIR profile knows")
    parts: dict[str, Any] = {"category": [LABORATORY], "code": _concept(codes),
                             **_value_quantity(values.value, MMOL_L)}
    meal = "unknown" if values.meal is None else values.meal
    if meal != "unknown":
        if meal not in MEAL_BY_NAME:
            raise FhirMappingError(f"values.meal {meal!r} is not a meal context the FHIR profile knows")
        parts["component"] = [{"code": _concept([MEAL_CONTEXT]),
                               "valueCodeableConcept": _concept([MEAL_BY_NAME[meal]])}]
    return parts


def _spo2(record: PlatformRecord) -> dict[str, Any]:
    _check_unit(record, "%")
    values = _values(record, SpO2Values)
    parts: dict[str, Any] = {"category": [VITAL_SIGNS], "code": _concept(SPO2_CODE),
                             **_value_quantity(values.spo2, SPO2_VALUE.unit)}
    components = _components(values, SPO2_COMPONENTS)
    if components:
        parts["component"] = components
    return parts


def _body_temperature(record: PlatformRecord) -> dict[str, Any]:
    _check_unit(record, "Cel")
    values = _values(record, TemperatureValues)
    parts: dict[str, Any] = {"category": [VITAL_SIGNS], "code": _concept(TEMPERATURE_CODE),
                             **_value_quantity(values.value, TEMPERATURE_VALUE.unit)}
    if values.site:
        # The thermometer's own words (HTS Temperature Type); no SNOMED body-site mapping is promised.
        parts["bodySite"] = {"text": values.site}
    return parts


def _fall(record: PlatformRecord) -> dict[str, Any]:
    return {"category": [ACTIVITY], "code": _concept(FALL_CODE), "valueBoolean": True,
            "component": _evidence_components(_values(record, EventValues).items)}


def _help_request(record: PlatformRecord) -> dict[str, Any]:
    return {"category": [ACTIVITY], "code": _concept(HELP_REQUEST_CODE), "valueBoolean": True,
            "component": _evidence_components(_values(record, EventValues).items)}


def _alert(record: PlatformRecord) -> dict[str, Any]:
    values = _values(record, AlertValues)
    if values.state not in ACTIVE_ALERT_STATES | CLOSED_ALERT_STATES:
        raise FhirMappingError(f"values.state {values.state!r} is not an alert state the FHIR profile knows")
    components = _evidence_components({"alert_id": values.alert_id, "kind": values.kind,
                                       "severity": values.severity, "state": values.state})
    components += [_evidence_component(f"evidence.{key}", values.evidence[key]) for key in sorted(values.evidence)]
    parts: dict[str, Any] = {"category": [ALERT_CATEGORY], "code": _concept(ALERT_CODE, text=values.kind),
                             "component": components}
    if values.related_record_ids:
        parts["derivedFrom"] = [{"identifier": {"system": RECORD_SYSTEM, "value": r}}
                                for r in values.related_record_ids]
    return parts


def _device_status(record: PlatformRecord) -> dict[str, Any]:
    return {"category": [DEVICE_CATEGORY], "code": _concept(DEVICE_STATUS_CODE),
            "component": _evidence_components(_values(record, EventValues).items)}


MAPPERS: dict[RecordType, Callable[[PlatformRecord], dict[str, Any]]] = {
    RecordType.BLOOD_PRESSURE: _blood_pressure,
    RecordType.BLOOD_GLUCOSE: _glucose,
    RecordType.SPO2: _spo2,
    RecordType.BODY_TEMPERATURE: _body_temperature,
    RecordType.FALL: _fall,
    RecordType.HELP_REQUEST: _help_request,
    RecordType.ALERT: _alert,
    RecordType.DEVICE_STATUS: _device_status,
}
RESIDENT_OPTIONAL = frozenset({RecordType.DEVICE_STATUS})
"""A hub's device may not (yet) be assigned to a resident; every other record is about one."""

StoredRecord = PlatformRecord | Mapping[str, Any]
"""What the mapping takes: the typed record, or a stored record's parsed JSON object (read as one first)."""


def typed_record(record: StoredRecord) -> PlatformRecord:
    """The typed record; a JSON object is read by :meth:`PlatformRecord.from_dict`, its faults as
    :class:`FhirMappingError` (a type the contract does not know has no mapping in the profile either)."""
    if isinstance(record, PlatformRecord):
        return record
    try:
        return PlatformRecord.from_dict(record)
    except RecordFormatError as exc:
        if exc.field == "type":
            raise FhirMappingError(f"record type {record.get('type')!r} has no mapping in the FHIR profile "
                                   f"(known: {', '.join(sorted(MAPPERS))})") from exc
        raise FhirMappingError(str(exc)) from exc


def record_from_text(text: str) -> PlatformRecord:
    """The typed record a stored text holds, its faults as :class:`FhirMappingError`."""
    try:
        return PlatformRecord.from_json(text)
    except RecordFormatError as exc:
        raise FhirMappingError(str(exc)) from exc


def record_uuid(record: StoredRecord) -> str:
    """The record id, checked to be a UUID (it becomes the entry's ``urn:uuid:`` fullUrl)."""
    record_id = _text(typed_record(record).record_id, "record_id")
    try:
        return str(uuid.UUID(record_id))
    except ValueError as exc:
        raise FhirMappingError(f"record_id {record_id!r} is not a UUID; a FHIR fullUrl needs one") from exc


def _with_categories(parts: dict[str, Any]) -> dict[str, Any]:
    parts["category"] = [{"coding": [c.as_json()]} for c in parts["category"]]
    return parts


def observation(stored: StoredRecord) -> dict[str, Any]:
    """The FHIR ``Observation`` for one stored v1 record.

    Raises :class:`FhirMappingError` naming what is missing or not mappable.
    """
    record = typed_record(stored)
    mapper = MAPPERS[record.type]
    record_id = record_uuid(record)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"tag": [{"system": TIME_SOURCE_SYSTEM, "code": record.time_source.value}]},
        "identifier": [{"system": RECORD_SYSTEM, "value": record_id}],
        "status": "final",
    }
    parts = _with_categories(mapper(record))
    resource["category"] = parts.pop("category")
    resource["code"] = parts.pop("code")
    if record.resident_id or record.type not in RESIDENT_OPTIONAL:
        resource["subject"] = {"identifier": {"system": RESIDENT_SYSTEM,
                                              "value": _text(record.resident_id, "resident_id")}}
    resource["effectiveDateTime"] = _timestamp(record.measured_at, "measured_at")
    resource["issued"] = _timestamp(record.received_at, "received_at")
    resource.update({k: v for k, v in parts.items() if k not in {"component", "derivedFrom"}})
    interpretation = _interpretation(record)
    if interpretation:
        resource["interpretation"] = interpretation
    if record.device is not None and record.device.id:
        resource["device"] = {"identifier": {"system": DEVICE_SYSTEM, "value": record.device.id}}
    if "derivedFrom" in parts:
        resource["derivedFrom"] = parts["derivedFrom"]
    if parts.get("component"):
        resource["component"] = parts["component"]
    return resource


def alert_flag(stored: StoredRecord) -> dict[str, Any]:
    """The ``Flag`` that tells the platform an alert needs (or no longer needs) someone to act."""
    record = typed_record(stored)
    values = _values(record, AlertValues)
    return {
        "resourceType": "Flag",
        "extension": [{"url": FLAG_DETAIL, "valueReference": {"reference": f"urn:uuid:{record_uuid(record)}"}}],
        "identifier": [{"system": ALERT_SYSTEM, "value": values.alert_id}],
        "status": "active" if values.state in ACTIVE_ALERT_STATES else "inactive",
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}],
        "code": {"coding": [{"system": LOCAL_CODE_SYSTEM, "code": values.kind}],
                 "text": f"{values.severity}: {values.kind}"},
        "subject": {"identifier": {"system": RESIDENT_SYSTEM, "value": _text(record.resident_id, "resident_id")}},
        "period": {"start": _timestamp(record.measured_at, "measured_at")},
    }


@dataclass(frozen=True, slots=True)
class BundleEntryOwner:
    """Which record an entry of the transaction belongs to (answers come back in entry order)."""

    record_id: str
    resource_type: str


@dataclass(frozen=True, slots=True)
class TransactionBundle:
    document: dict[str, Any]
    owners: tuple[BundleEntryOwner, ...]


def _observation_entry(record_id: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{record_id}",
        "resource": resource,
        "request": {"method": "POST", "url": "Observation",
                    "ifNoneExist": f"identifier={RECORD_SYSTEM}|{record_id}"},
    }


def _flag_entry(record_id: str, flag: dict[str, Any]) -> dict[str, Any]:
    alert_id = flag["identifier"][0]["value"]
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(_FLAG_NAMESPACE, record_id)}",
        "resource": flag,
        # One Flag per alert, updated through its lifecycle: a conditional update creates it on the
        # first state and changes its status later, and sending the same state twice changes nothing.
        "request": {"method": "PUT", "url": f"Flag?identifier={ALERT_SYSTEM}|{alert_id}"},
    }


def build_bundle(stored: Sequence[StoredRecord]) -> TransactionBundle:
    """A transaction ``Bundle``: an Observation per record, and a Flag per alert of the batch.

    Two entries of one transaction may not touch the same resource, so of several
    states of one alert in a batch only the last (the latest, in outbox order) writes
    the Flag. Raises :class:`FhirMappingError` for the first record that cannot be
    mapped; check records one by one with :func:`observation` to sort them out first.
    """
    records = [typed_record(record) for record in stored]
    entries: list[dict[str, Any]] = []
    owners: list[BundleEntryOwner] = []
    last_state_of_alert: dict[str, int] = {}
    for index, record in enumerate(records):
        if isinstance(record.values, AlertValues):
            last_state_of_alert[record.values.alert_id] = index
    for index, record in enumerate(records):
        resource = observation(record)
        record_id = resource["identifier"][0]["value"]
        entries.append(_observation_entry(record_id, resource))
        owners.append(BundleEntryOwner(record_id, "Observation"))
        if isinstance(record.values, AlertValues) and last_state_of_alert[record.values.alert_id] == index:
            entries.append(_flag_entry(record_id, alert_flag(record)))
            owners.append(BundleEntryOwner(record_id, "Flag"))
    return TransactionBundle({"resourceType": "Bundle", "type": "transaction", "entry": entries}, tuple(owners))
