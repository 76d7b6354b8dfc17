import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.platform_limits import MAX_BODY_BYTES
from gateway.uplink.batch import (
    ENVELOPE_RESERVE_BYTES,
    BadRecordTextError,
    BatchTooLargeError,
    EncodedBody,
    PlatformAnswerError,
    RecordResult,
    RecordStatus,
    build_body,
    encode_body,
    parse_results,
    record_bytes_budget,
)

BP = (
    '{"record_id":"0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a69","type":"blood_pressure","resident_id":"r-430121-0042",'
    '"device":{"id":"ble:C4:7C:8D:6A:11:02","model":"Omron HEM-7155T","transport":"ble"},'
    '"measured_at":"2026-11-22T07:31:05+08:00","received_at":"2026-11-22T07:31:09.412+08:00",'
    '"time_source":"device","values":{"systolic":152,"diastolic":94,"mean_arterial":113,"pulse":71},'
    '"unit":"mmHg","flags":["irregular_pulse"]}'
)
# Key order and spacing that a re-serialisation would change: splicing must keep them byte for byte.
SPO2 = '{"type": "spo2", "record_id": "7d1b0a52-3c7e-4f0e-8a11-9c2b4f6e1d03", "values": {"spo2": 95.0}}'
SENT_AT = "2026-11-22T10:15:00.120+08:00"
BP_ID = "0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a69"
SPO2_ID = "7d1b0a52-3c7e-4f0e-8a11-9c2b4f6e1d03"


def test_body_splices_the_stored_texts_verbatim() -> None:
    body = build_body([BP, SPO2], SENT_AT)

    assert body == ('{"sent_at":"2026-11-22T10:15:00.120+08:00","records":[' + BP + "," + SPO2 + "]}").encode()
    assert json.loads(body)["records"][1] == json.loads(SPO2)


def test_body_keeps_chinese_text_as_utf8() -> None:
    record = '{"record_id":"x","type":"alert","values":{"message":"跌倒"}}'
    assert json.loads(build_body([record], SENT_AT).decode("utf-8"))["records"][0]["values"]["message"] == "跌倒"


def test_body_over_500_records_is_refused() -> None:
    with pytest.raises(BatchTooLargeError, match="501 records in one request; the platform takes at most 500"):
        build_body([SPO2] * 501, SENT_AT)
    assert len(json.loads(build_body([SPO2] * 500, SENT_AT))["records"]) == 500


def test_body_over_1_mib_is_refused() -> None:
    big = '{"type":"alert","pad":"' + "x" * (MAX_BODY_BYTES // 2) + '"}'
    build_body([big], SENT_AT)
    with pytest.raises(BatchTooLargeError, match="at most 1048576 before compression"):
        build_body([big, big], SENT_AT)


@pytest.mark.parametrize("text", ["", "[1,2]", '"x"', '1],"evil":[2', "{broken"])
def test_text_that_is_not_an_object_cannot_be_spliced(text: str) -> None:
    with pytest.raises(BadRecordTextError, match="record #1 in the batch is not a JSON object"):
        build_body([SPO2, text], SENT_AT)


def test_gzip_round_trip_and_plain() -> None:
    body = build_body([BP, SPO2] * 50, SENT_AT)
    encoded = encode_body(body, gzip=True)

    assert encoded.content_encoding == "gzip"
    assert encoded.raw_size == len(body)
    assert len(encoded.data) < len(body) // 5
    assert gzip.decompress(encoded.data) == body
    assert encode_body(body, gzip=True) == encoded  # reproducible bytes, so reproducible signatures
    assert encode_body(body, gzip=False) == EncodedBody(data=body, content_encoding=None, raw_size=len(body))


def test_results_of_a_contract_answer() -> None:
    answer = json.dumps({"results": [
        {"record_id": BP_ID, "status": "accepted"},
        {"record_id": SPO2_ID, "status": "rejected", "reason": "resident_id missing"},
    ]}).encode()

    assert parse_results(answer, {BP_ID, SPO2_ID}, "application/json; charset=utf-8") == (
        RecordResult(record_id=BP_ID, status=RecordStatus.ACCEPTED, reason=None),
        RecordResult(record_id=SPO2_ID, status=RecordStatus.REJECTED, reason="resident_id missing"),
    )


def test_missing_records_are_simply_absent_and_duplicates_are_a_status() -> None:
    answer = b'{"results": [{"record_id": "' + BP_ID.encode() + b'", "status": "duplicate", "reason": null}]}'
    assert parse_results(answer, [BP_ID, SPO2_ID]) == (
        RecordResult(record_id=BP_ID, status=RecordStatus.DUPLICATE, reason=None),
    )


@pytest.mark.parametrize(
    ("answer", "content_type", "message"),
    [
        (b"<html><body>Portal login</body></html>", "text/html", "Content-Type 'text/html'"),
        (b"<html><body>Portal login</body></html>", None, "not JSON"),
        (b'{"results": [', "application/json", "not JSON"),
        (b"\xff\xfe", "application/json", "not JSON"),
        (b'{"ok": true}', None, 'no "results" list'),
        (b'[{"record_id": "a", "status": "accepted"}]', None, 'no "results" list'),
        (b'{"results": [1]}', None, r"results\[0\] is not an object"),
        (b'{"results": [{"status": "accepted"}]}', None, r"results\[0\] has no record_id"),
        (b'{"results": [{"record_id": "' + BP_ID.encode() + b'", "status": "ok"}]}', None, "unknown status 'ok'"),
        (b'{"results": [{"record_id": "' + BP_ID.encode() + b'", "status": ["accepted"]}]}', None, "unknown status"),
        (b'{"results": [{"record_id": "' + BP_ID.encode() + b'", "status": "rejected", "reason": 7}]}', None,
         "reason that is not text"),
        (b'{"results": [{"record_id": "someone-else", "status": "accepted"}]}', None, "was not in the batch"),
        (b'{"results": [{"record_id": "' + BP_ID.encode() + b'", "status": "accepted"},'
         b' {"record_id": "' + BP_ID.encode() + b'", "status": "duplicate"}]}', None, "a second time"),
        (b'{"results": NaN}', None, "not JSON"),
    ],
)
def test_nonsense_answers_raise(answer: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(PlatformAnswerError, match=message):
        parse_results(answer, {BP_ID, SPO2_ID}, content_type)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_yield_results(data: bytes) -> None:
    try:
        results = parse_results(data, {BP_ID, SPO2_ID})
    except PlatformAnswerError:
        return
    assert results == ()  # at most an empty, harmless {"results": []}


@settings(deadline=None, max_examples=300, derandomize=True)
@given(document=json_values | st.fixed_dictionaries({"results": st.lists(json_values, max_size=4)}))
def test_random_json_never_yields_results(document: object) -> None:
    try:
        results = parse_results(json.dumps(document).encode(), {BP_ID, SPO2_ID})
    except PlatformAnswerError:
        return
    assert results == ()


def test_the_records_budget_leaves_room_for_the_envelope_only_where_it_is_needed() -> None:
    assert record_bytes_budget(1_048_576) == 1_048_576 - ENVELOPE_RESERVE_BYTES
    assert record_bytes_budget(1_000_000) == 1_000_000
    assert record_bytes_budget(1024) == 1024
    # 500 records' commas and the envelope around them fit in the reserve.
    texts = ["{}"] * 500
    assert len(build_body(texts, "2026-11-22T10:15:00.120+08:00")) - sum(map(len, texts)) <= ENVELOPE_RESERVE_BYTES
