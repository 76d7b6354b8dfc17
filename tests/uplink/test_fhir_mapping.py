"""Stored v1 records as FHIR R4 resources: whole resources, exact codes and units.

Validated with ``fhir.resources`` R4B models: its releases on pydantic 2 ship R5
(default) and R4B (4.3.0), no 4.0.1; Observation, Flag and Bundle did not change
between R4 and R4B, so R4B validates the R4 structure of what we send.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation

from gateway.uplink.batch import PlatformAnswerError, RecordResult, RecordStatus
from gateway.uplink.fhir import FhirMappingError, alert_flag, build_bundle, observation
from gateway.uplink.fhir_client import parse_transaction_response

RID = "0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a69"
RID2 = "0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a70"
AT = "2026-11-22T07:31:05+08:00"
RECEIVED = "2026-11-22T07:31:09.412+08:00"
LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def record(record_type: str, values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A record as the outbox stores it (gateway.wire), ``record_id`` first."""
    return {
        "record_id": RID, "type": record_type, "resident_id": "r-430121-0042",
        "device": {"id": "ble:C4:7C:8D:6A:11:02", "model": "Omron HEM-7155T", "transport": "ble"},
        "measured_at": AT, "received_at": RECEIVED, "time_source": "device", "values": values, "flags": [],
    } | changes


def envelope(time_source: str = "device", *, device: bool = True, subject: bool = True) -> dict[str, Any]:
    """The parts every Observation of the profile has, for a record made by :func:`record`."""
    parts: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"tag": [{"system": "urn:yiyang:time-source", "code": time_source}]},
        "identifier": [{"system": "urn:yiyang:record", "value": RID}],
        "status": "final",
    }
    if subject:
        parts["subject"] = {"identifier": {"system": "urn:yiyang:resident", "value": "r-430121-0042"}}
    parts |= {"effectiveDateTime": AT, "issued": RECEIVED}
    if device:
        parts["device"] = {"identifier": {"system": "urn:yiyang:device", "value": "ble:C4:7C:8D:6A:11:02"}}
    return parts


def category(code: str, display: str, system: str = CATEGORY) -> list[dict[str, Any]]:
    return [{"coding": [{"system": system, "code": code, "display": display}]}]


def quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def mapped(stored: dict[str, Any]) -> dict[str, Any]:
    resource = observation(stored)
    Observation.model_validate(resource)
    return resource


def test_blood_pressure_is_the_vital_signs_panel_with_loinc_and_mdc_components() -> None:
    stored = record("blood_pressure", {"systolic": 152, "diastolic": 94, "mean_arterial": 113, "pulse": 71},
                    unit="mmHg", flags=["irregular_pulse"])
    expected = envelope() | {
        "category": category("vital-signs", "Vital Signs"),
        "code": {"coding": [
            {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"},
            {"system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV"}]},
        "interpretation": [{"coding": [
            {"system": "urn:yiyang:device-flag", "code": "irregular_pulse", "display": "irregular pulse"}]}],
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"},
                                 {"system": MDC, "code": "150021", "display": "MDC_PRESS_BLD_NONINV_SYS"}]},
             "valueQuantity": quantity(152, "mmHg", "mm[Hg]")},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"},
                                 {"system": MDC, "code": "150022", "display": "MDC_PRESS_BLD_NONINV_DIA"}]},
             "valueQuantity": quantity(94, "mmHg", "mm[Hg]")},
            {"code": {"coding": [{"system": LOINC, "code": "8478-0", "display": "Mean blood pressure"},
                                 {"system": MDC, "code": "150023", "display": "MDC_PRESS_BLD_NONINV_MEAN"}]},
             "valueQuantity": quantity(113, "mmHg", "mm[Hg]")},
            {"code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"},
                                 {"system": MDC, "code": "149546", "display": "MDC_PULS_RATE_NON_INV"}]},
             "valueQuantity": quantity(71, "beats/minute", "/min")},
        ],
    }
    assert mapped(stored) == expected


def test_capillary_glucose_is_14743_9_with_mdc_and_the_meal_context_component() -> None:
    stored = record("blood_glucose", {"value": 5.6, "meal": "fasting", "sample": "capillary_whole_blood"},
                    unit="mmol/L", time_source="hub_unsynced")
    expected = envelope("hub_unsynced") | {
        "category": category("laboratory", "Laboratory"),
        "code": {"coding": [
            {"system": LOINC, "code": "14743-9", "display": "Glucose [Moles/volume] in Capillary blood by Glucometer"},
            {"system": MDC, "code": "160184", "display": "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"}]},
        "valueQuantity": quantity(5.6, "mmol/L", "mmol/L"),
        "component": [{
            "code": {"coding": [{"system": MDC, "code": "8417864", "display": "MDC_CTXT_GLU_MEAL"}]},
            "valueCodeableConcept": {"coding": [
                {"system": MDC, "code": "8417876", "display": "MDC_CTXT_GLU_MEAL_FASTING"}]},
        }],
    }
    assert mapped(stored) == expected


def test_other_blood_glucose_is_the_generic_mmol_code_without_meal_when_unknown() -> None:
    stored = record("blood_glucose", {"value": 11.2, "meal": "unknown", "sample": "venous_plasma"}, unit="mmol/L")
    expected = envelope() | {
        "category": category("laboratory", "Laboratory"),
        "code": {"coding": [{"system": LOINC, "code": "15074-8", "display": "Glucose [Moles/volume] in Blood"}]},
        "valueQuantity": quantity(11.2, "mmol/L", "mmol/L"),
    }
    assert mapped(stored) == expected


@pytest.mark.parametrize("sample", ["capillary_whole_blood", "capillary_plasma", "venous_whole_blood",
                                    "venous_plasma", "unknown"])
@pytest.mark.parametrize("meal", ["fasting", "preprandial", "postprandial", "bedtime", "casual", "unknown"])
def test_the_mg_dl_code_never_appears_and_glucose_is_always_mmol(sample: str, meal: str) -> None:
    resource = mapped(record("blood_glucose", {"value": 3.1, "meal": meal, "sample": sample}, unit="mmol/L"))
    assert "41653-7" not in json.dumps(resource)
    assert resource["valueQuantity"] == quantity(3.1, "mmol/L", "mmol/L")


@pytest.mark.parametrize(("values", "flags", "message"), [
    ({"value": 5.5, "sample": "control_solution"}, [],
     "a control-solution test is not a measurement of the resident"),
    ({"value": 5.5, "sample": "capillary_whole_blood"}, ["control_solution"],
     "a control-solution test is not a measurement of the resident"),
    ({"value": 5.5, "sample": "interstitial_fluid"}, [],
     "interstitial-fluid glucose has no mmol/L code in the FHIR profile"),
    ({"value": 5.5, "sample": "capillary_whole_blood", "meal": "brunch"}, [],
     "values.meal 'brunch' is not a meal context the FHIR profile knows"),
])
def test_glucose_the_profile_cannot_file_is_refused(values: dict[str, Any], flags: list[str], message: str) -> None:
    with pytest.raises(FhirMappingError) as info:
        observation(record("blood_glucose", values, unit="mmol/L", flags=flags))
    assert str(info.value) == message


def test_spo2_is_2708_6_and_59408_5_with_the_oximeter_pulse() -> None:
    stored = record("spo2", {"spo2": 93.5, "pulse": 88}, unit="%", flags=["measurement_unreliable"])
    expected = envelope() | {
        "category": category("vital-signs", "Vital Signs"),
        "code": {"coding": [
            {"system": LOINC, "code": "2708-6", "display": "Oxygen saturation in Arterial blood"},
            {"system": LOINC, "code": "59408-5", "display": "Oxygen saturation in Arterial blood by Pulse oximetry"},
            {"system": MDC, "code": "150456", "display": "MDC_PULS_OXIM_SAT_O2"}]},
        "valueQuantity": quantity(93.5, "%", "%"),
        "interpretation": [{"coding": [{"system": "urn:yiyang:device-flag", "code": "measurement_unreliable",
                                        "display": "measurement unreliable"}]}],
        "component": [{
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"},
                                {"system": MDC, "code": "149530", "display": "MDC_PULS_OXIM_PULS_RATE"}]},
            "valueQuantity": quantity(88, "beats/minute", "/min"),
        }],
    }
    assert mapped(stored) == expected


def test_a_perfusion_index_is_a_61006_3_component_in_percent() -> None:
    stored = record("spo2", {"spo2": 96, "pulse": 62, "perfusion_index": 8.0}, unit="%")
    components = mapped(stored)["component"]
    assert components[1] == {
        "code": {"coding": [{"system": LOINC, "code": "61006-3", "display": "Perfusion index Tissue by Pulse oximetry"},
                            {"system": MDC, "code": "150448", "display": "MDC_PULS_OXIM_PERF_REL"}]},
        "valueQuantity": quantity(8.0, "%", "%"),
    }
    assert [c["code"]["coding"][0]["code"] for c in components] == ["8867-4", "61006-3"]


def test_body_temperature_is_8310_5_in_cel_with_the_site_in_its_own_words() -> None:
    stored = record("body_temperature", {"value": 38.25, "site": "ear"}, unit="Cel", flags=["above_range"])
    expected = envelope() | {
        "category": category("vital-signs", "Vital Signs"),
        "code": {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"},
                            {"system": MDC, "code": "150364", "display": "MDC_TEMP_BODY"}]},
        "valueQuantity": quantity(38.25, "°C", "Cel"),
        "bodySite": {"text": "ear"},
        "interpretation": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": ">",
             "display": "Off scale high"}]}],
    }
    assert mapped(stored) == expected


def local(code: str) -> dict[str, Any]:
    return {"coding": [{"system": "urn:yiyang:code", "code": code}]}


def test_a_fall_is_snomed_1912002_with_its_evidence() -> None:
    values = {"source": "wearable", "device_id": "ble:D1", "peak_g": 3.4, "confidence": 0.91,
              "impact_at": "2026-11-22T07:31:03.500+08:00", "alert_id": "a-0001"}
    stored = record("fall", values, device={"id": "ble:D1"}, time_source="hub")
    expected = envelope("hub", device=False) | {
        "category": category("activity", "Activity"),
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1912002", "display": "Fall (event)"},
                            {"system": "urn:yiyang:code", "code": "fall", "display": "Fall"}]},
        "valueBoolean": True,
        "device": {"identifier": {"system": "urn:yiyang:device", "value": "ble:D1"}},
        "component": [
            {"code": local("alert_id"), "valueString": "a-0001"},
            {"code": local("confidence"), "valueQuantity": quantity(0.91, "1", "1")},
            {"code": local("device_id"), "valueString": "ble:D1"},
            {"code": local("impact_at"), "valueDateTime": "2026-11-22T07:31:03.500+08:00"},
            {"code": local("peak_g"), "valueQuantity": quantity(3.4, "g", "[g]")},
            {"code": local("source"), "valueString": "wearable"},
        ],
    }
    assert mapped(stored) == expected


def test_a_help_request_uses_the_local_code() -> None:
    stored = record("help_request", {"source": "button", "press": "long"}, device={"id": "ble:SOS"},
                    time_source="hub")
    expected = envelope("hub", device=False) | {
        "category": category("activity", "Activity"),
        "code": {"coding": [{"system": "urn:yiyang:code", "code": "help-request",
                             "display": "Help request (SOS button)"}]},
        "valueBoolean": True,
        "device": {"identifier": {"system": "urn:yiyang:device", "value": "ble:SOS"}},
        "component": [{"code": local("press"), "valueString": "long"},
                      {"code": local("source"), "valueString": "button"}],
    }
    assert mapped(stored) == expected


def alert_record(state: str, record_id: str = RID) -> dict[str, Any]:
    stored = record("alert", {"alert_id": "a-0001", "kind": "hypoglycaemia", "severity": "emergency",
                              "state": state, "evidence": {"value_mmol_l": 2.6, "threshold": 3.0},
                              "related_record_ids": [RID2]}, record_id=record_id, time_source="hub")
    del stored["device"]
    return stored


def test_an_alert_is_an_observation_derived_from_its_readings_plus_an_active_flag() -> None:
    stored = alert_record("raised")
    expected = envelope("hub", device=False) | {
        "category": category("alert", "Alert", "urn:yiyang:code"),
        "code": {"coding": [{"system": "urn:yiyang:code", "code": "alert", "display": "Care alert"}],
                 "text": "hypoglycaemia"},
        "derivedFrom": [{"identifier": {"system": "urn:yiyang:record", "value": RID2}}],
        "component": [
            {"code": local("alert_id"), "valueString": "a-0001"},
            {"code": local("kind"), "valueString": "hypoglycaemia"},
            {"code": local("severity"), "valueString": "emergency"},
            {"code": local("state"), "valueString": "raised"},
            {"code": local("evidence.threshold"), "valueQuantity": {"value": 3.0}},
            {"code": local("evidence.value_mmol_l"), "valueQuantity": {"value": 2.6}},
        ],
    }
    assert mapped(stored) == expected
    flag = alert_flag(stored)
    Flag.model_validate(flag)
    assert flag == {
        "resourceType": "Flag",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/flag-detail",
                       "valueReference": {"reference": f"urn:uuid:{RID}"}}],
        "identifier": [{"system": "urn:yiyang:alert", "value": "a-0001"}],
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                  "code": "clinical", "display": "Clinical"}]}],
        "code": {"coding": [{"system": "urn:yiyang:code", "code": "hypoglycaemia"}],
                 "text": "emergency: hypoglycaemia"},
        "subject": {"identifier": {"system": "urn:yiyang:resident", "value": "r-430121-0042"}},
        "period": {"start": AT},
    }
    assert alert_flag(alert_record("resolved"))["status"] == "inactive"


def test_device_status_without_a_resident_has_no_subject() -> None:
    stored = record("device_status", {"event": "battery", "value": 15}, resident_id="", device={"id": "ble:SOS"},
                    time_source="hub")
    expected = envelope("hub", device=False, subject=False) | {
        "category": category("device", "Device", "urn:yiyang:code"),
        "code": {"coding": [{"system": "urn:yiyang:code", "code": "device-status", "display": "Device status"}]},
        "device": {"identifier": {"system": "urn:yiyang:device", "value": "ble:SOS"}},
        "component": [{"code": local("event"), "valueString": "battery"},
                      {"code": local("value"), "valueQuantity": {"value": 15}}],
    }
    assert mapped(stored) == expected


@pytest.mark.parametrize(("stored", "message"), [
    (record("weight", {"kg": 61}),
     "record type 'weight' has no mapping in the FHIR profile (known: alert, blood_glucose, blood_pressure, "
     "body_temperature, device_status, fall, help_request, spo2)"),
    (record("blood_pressure", {"diastolic": 80}, unit="mmHg"), "values.systolic is missing"),
    (record("blood_pressure", {"systolic": "high", "diastolic": 80}, unit="mmHg"),
     "values.systolic is 'high', not a finite number"),
    (record("blood_pressure", {"systolic": 120, "diastolic": 80}, unit="kPa"),
     "record unit is 'kPa'; the FHIR profile maps this type only in mmHg"),
    (record("spo2", {"spo2": 97}, unit="%", record_id="42"), "record_id '42' is not a UUID; a FHIR fullUrl needs one"),
    (record("spo2", {"spo2": 97}, unit="%", measured_at="2026-11-22T07:31:05"),
     "record measured_at '2026-11-22T07:31:05' has no UTC offset; FHIR dateTime needs one"),
    (record("spo2", {"spo2": 97}, unit="%", resident_id=None),
     "record has no 'resident_id' text; the FHIR profile needs it"),
])
def test_records_the_profile_cannot_map_raise_a_typed_error_naming_the_fault(stored: dict[str, Any],
                                                                              message: str) -> None:
    with pytest.raises(FhirMappingError) as info:
        observation(stored)
    assert str(info.value) == message


def test_the_bundle_is_a_transaction_of_conditional_creates_and_one_flag_per_alert() -> None:
    spo2 = record("spo2", {"spo2": 97}, unit="%", record_id=RID2)
    raised = alert_record("raised", "0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a71")
    resolved = alert_record("resolved", "0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a72")
    bundle = build_bundle([spo2, raised, resolved])
    Bundle.model_validate(bundle.document)
    entries = bundle.document["entry"]
    assert (bundle.document["resourceType"], bundle.document["type"]) == ("Bundle", "transaction")
    assert [(e["fullUrl"], e["request"]) for e in entries[:3]] == [
        (f"urn:uuid:{rid}",
         {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier=urn:yiyang:record|{rid}"})
        for rid in (RID2, raised["record_id"], resolved["record_id"])]
    assert [e["resource"] for e in entries[:3]] == [observation(r) for r in (spo2, raised, resolved)]
    # Two entries of one transaction may not write one Flag: only the latest state does.
    [flag] = entries[3:]
    assert flag["request"] == {"method": "PUT", "url": "Flag?identifier=urn:yiyang:alert|a-0001"}
    assert flag["resource"] == alert_flag(resolved)
    assert flag["fullUrl"] == build_bundle([resolved]).document["entry"][1]["fullUrl"]   # same on every retry
    assert [(o.record_id, o.resource_type) for o in bundle.owners] == [
        (RID2, "Observation"), (raised["record_id"], "Observation"), (resolved["record_id"], "Observation"),
        (resolved["record_id"], "Flag")]


TRANSACTION_RESPONSE = b"""{"resourceType":"Bundle","type":"transaction-response","entry":[
 {"response":{"status":"201 Created","location":"Observation/1/_history/1"}},
 {"response":{"status":"200 OK","location":"Observation/2/_history/1"}},
 {"response":{"status":"422 Unprocessable Entity","outcome":{"resourceType":"OperationOutcome",
   "issue":[{"severity":"error","code":"invalid","diagnostics":"Observation.code: unknown code"}]}}},
 {"response":{"status":"503 Service Unavailable"}},
 {"response":{"status":"201 Created"}},
 {"response":{"status":"409 Conflict"}}
]}"""


def test_a_transaction_response_says_what_happened_to_each_record() -> None:
    owners = ["r1", "r2", "r3", "r4", "r5", "r5"]
    assert parse_transaction_response(TRANSACTION_RESPONSE, owners, "application/fhir+json;charset=utf-8") == (
        RecordResult("r1", RecordStatus.ACCEPTED, None),
        RecordResult("r2", RecordStatus.DUPLICATE, None),
        RecordResult("r3", RecordStatus.REJECTED, "HTTP 422: Observation.code: unknown code"),
        # r4 (server error) and r5 (its Flag hit a conflict) stay pending: no result.
    )


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (TRANSACTION_RESPONSE, "text/html", "answer has Content-Type 'text/html', not FHIR JSON"),
    (b'{"resourceType":"OperationOutcome"}', None, "answer is not a FHIR Bundle"),
    (b'{"resourceType":"Bundle","type":"searchset"}', None,
     "answer Bundle has type 'searchset', not transaction-response"),
    (b'{"resourceType":"Bundle","type":"transaction-response","entry":[]}', None,
     "answer Bundle has 0 entries for the 6 sent"),
    (TRANSACTION_RESPONSE.replace(b"201 Created", b"Created", 1), None,
     "entry[0] response.status 'Created' is not an HTTP status"),
])
def test_an_unusable_answer_marks_nothing(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(PlatformAnswerError) as info:
        parse_transaction_response(body, ["r1", "r2", "r3", "r4", "r5", "r5"], content_type)
    assert str(info.value) == message
