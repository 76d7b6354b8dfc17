"""gateway.fleet.document: every way a configuration document is refused, with its exact reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fleetdocs import GATEWAY_ID, Fleet, key_text, local_config

from gateway.config import GatewayConfig
from gateway.config.nesting import nesting_limit
from gateway.errors import GatewayError
from gateway.fleet.document import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    Candidate,
    DocumentError,
    DocumentRejected,
    check_document,
)
from gateway.fleet.overlay import LocalConfig

FLEET = Fleet()
DATA_DIR = Path("/var/lib/yiyang")
LOCAL = local_config(DATA_DIR)
THRESHOLDS = {"thresholds": {"glucose_level1_hypo_mmol_l": 4.2}}


def check(payload: bytes, *, local: LocalConfig = LOCAL, key: Any = FLEET.public) -> Candidate:
    return check_document(payload, local=local, overlay={}, key=key)


def refusal(payload: bytes, **kwargs: Any) -> tuple[int | None, tuple[DocumentError, ...]]:
    with pytest.raises(DocumentRejected) as caught:
        check(payload, **kwargs)
    assert isinstance(caught.value, GatewayError)
    return caught.value.version, caught.value.errors


def only(path: str, message: str) -> tuple[DocumentError, ...]:
    return (DocumentError(path, message),)


def test_a_good_document_gives_the_merged_configuration_and_the_overlay() -> None:
    candidate = check(FLEET.payload(42, THRESHOLDS))
    assert candidate.version == 42
    assert candidate.overlay == THRESHOLDS
    assert candidate.config.thresholds.glucose_level1_hypo_mmol_l == 4.2
    assert candidate.config.devices == LOCAL.config.devices, "sections the document leaves out are kept"
    assert candidate.fleet_public_key is None


# --- before the signature: nothing in the document is trusted, so no version is known ----------------


def test_oversized_document() -> None:
    padding = "x" * MAX_DOCUMENT_BYTES
    payload = FLEET.payload(1, {"platform": {"url": "https://p.example.cn", "secret_file": f"/{padding}"}})
    assert refusal(payload) == (None, only(
        "(document)", f"the document is {len(payload)} bytes, more than 262144 (256 KiB); send only the sections "
        "that change"))


def test_one_byte_under_the_limit_is_judged_on_its_content() -> None:
    document = FLEET.document(1, THRESHOLDS, note="")
    filler = MAX_DOCUMENT_BYTES - len(json.dumps(document).encode())
    payload = FLEET.payload(1, THRESHOLDS, note="y" * filler)
    assert len(payload) == MAX_DOCUMENT_BYTES
    assert refusal(payload) == (1, only(
        "note", "not a field of a configuration document; remove it (fields: gateway_id, version, issued_at, "
        "config, fleet_public_key, signature)"))


def test_deep_json_is_refused_before_it_is_parsed() -> None:
    assert refusal(b"[" * 100_000 + b"]" * 100_000) == (None, only(
        "(document)", "nested deeper than 16; send one JSON object"))


def test_a_deep_value_within_the_bound_is_named_by_the_validator() -> None:
    assert 1 + nesting_limit(GatewayConfig) < MAX_DEPTH, "the validator must see values a little too deep"
    payload = FLEET.payload(7, {"thresholds": {"pulse_high_bpm": [[[[[[1]]]]]]}})
    assert refusal(payload) == (7, only(
        "thresholds.pulse_high_bpm[0][0][0]",
        "tables and arrays nested more than 5 levels deep, deeper than any setting; remove the extra [ ] or { } "
        "levels"))


@pytest.mark.parametrize(("payload", "message"), [
    (b"\xff{}", "not UTF-8 at byte 0; send one JSON object"),
    (b'{"version": 1,', "not JSON: Expecting property name enclosed in double quotes (byte 14); send one JSON object"),
    (b'{"version": NaN}', "not JSON: NaN is not JSON; send one JSON object"),
    (b"[]", 'not a JSON object; send {"gateway_id", "version", "issued_at", "config", "signature"}'),
])
def test_not_a_json_object(payload: bytes, message: str) -> None:
    assert refusal(payload) == (None, only("(document)", message))


def test_unsigned() -> None:
    unsigned = {k: v for k, v in FLEET.document(1, THRESHOLDS).items() if k != "signature"}
    assert refusal(json.dumps(unsigned).encode()) == (None, only(
        "signature", "no signature: the fleet signs every command and configuration document; sign the document "
        "with the fleet key this hub holds"))


def test_forged_by_another_key() -> None:
    assert refusal(Fleet().payload(1, THRESHOLDS)) == (None, only(
        "signature", "bad signature: not signed by this hub's fleet key; sign the document with the fleet key this "
        "hub holds"))


def test_tampered_after_signing() -> None:
    document = FLEET.document(1, THRESHOLDS)
    document["config"] = {"thresholds": {"glucose_level1_hypo_mmol_l": 2.0}}
    assert refusal(json.dumps(document).encode())[1][0].path == "signature"


def test_signature_that_is_not_base64() -> None:
    document = {**FLEET.document(1, THRESHOLDS), "signature": "not base64!"}
    assert refusal(json.dumps(document).encode())[1][0].message.startswith("bad signature")


def test_a_hub_without_a_fleet_key_takes_no_configuration() -> None:
    assert refusal(FLEET.payload(1, THRESHOLDS), key=None) == (None, only(
        "signature", "this hub has no fleet public key ([fleet] public_key_file), so it takes no configuration "
        "from the fleet; install the key"))


# --- signed: from here on the fleet wrote it ------------------------------------------------------------


def test_another_hubs_document() -> None:
    assert refusal(FLEET.payload(1, THRESHOLDS, gateway_id="gw-0002")) == (None, only(
        "gateway_id", "this document is for another hub (gw-0002), not gw-0001; publish it to that hub's "
        "config/desired"))
    assert refusal(FLEET.payload(1, THRESHOLDS, gateway_id=None))[1][0].message.startswith(
        "this document is for another hub (no gateway_id)")


@pytest.mark.parametrize("version", ["42", 4.0, True, 0, -1, None, 2**63, [1]])
def test_version_must_be_a_positive_integer(version: object) -> None:
    assert refusal(FLEET.payload(version, THRESHOLDS)) == (None, only(
        "version", "expected a positive integer; number each document above the last"))


@pytest.mark.parametrize(("issued_at", "what"), [
    ("2026-11-22T09:00:00", "the time has no UTC offset"),
    ("22/11/2026 9am", "not an ISO 8601 time"),
    (1763773200, "missing or not a string"),
    (None, "missing or not a string"),
])
def test_issued_at_is_iso_8601_with_an_offset(issued_at: object, what: str) -> None:
    assert refusal(FLEET.payload(3, THRESHOLDS, issued_at=issued_at)) == (3, only(
        "issued_at", f'{what}; write an ISO 8601 time with its UTC offset, e.g. "2026-11-22T09:00:00+08:00"'))


def test_issued_at_in_utc_with_z_is_accepted() -> None:
    assert check(FLEET.payload(3, THRESHOLDS, issued_at="2026-11-22T01:00:00Z")).version == 3


@pytest.mark.parametrize("config", [[], "thresholds", None])
def test_config_must_be_an_object(config: object) -> None:
    assert refusal(FLEET.payload(3, config)) == (3, only(
        "config", 'expected an object of configuration sections, e.g. {"thresholds": {...}}'))


def test_a_next_fleet_key_must_be_an_ed25519_key() -> None:
    good = key_text(Ed25519PrivateKey.generate().public_key())
    assert check(FLEET.payload(3, THRESHOLDS, fleet_public_key=good)).fleet_public_key == good
    for bad in ("AAAA", "not base64", 32):
        assert refusal(FLEET.payload(3, THRESHOLDS, fleet_public_key=bad))[1][0].path == "fleet_public_key"


def test_the_fleet_may_not_change_the_hubs_id_or_data_directory() -> None:
    payload = FLEET.payload(5, {"gateway": {"id": "gw-9999", "data_dir": "/srv/other", "timezone": "UTC"}})
    assert refusal(payload) == (5, (
        DocumentError("gateway.id", "the fleet may not change the hub's id (gw-0001) remotely; leave id out (a "
                                    "technician changes it in the hub's own file)"),
        DocumentError("gateway.data_dir", "the fleet may not change the hub's data directory (/var/lib/yiyang) "
                                          "remotely; leave data_dir out (a technician changes it in the hub's own "
                                          "file)"),
    ))


def test_the_hubs_own_id_and_data_directory_may_be_repeated_or_left_out() -> None:
    same = check(FLEET.payload(5, {"gateway": {"id": GATEWAY_ID, "data_dir": "/var/lib/yiyang/", "timezone": "UTC"}}))
    left_out = check(FLEET.payload(5, {"gateway": {"timezone": "UTC"}}))
    for candidate in (same, left_out):
        assert (candidate.config.gateway.id, candidate.config.gateway.data_dir) == (GATEWAY_ID, DATA_DIR)
        assert candidate.config.gateway.timezone == "UTC"
        assert candidate.overlay == {"gateway": {"timezone": "UTC"}}, "the overlay never holds the hub's own keys"


def test_an_invalid_configuration_lists_every_error_with_its_key_path() -> None:
    config = {
        "devices": [
            {"id": "glucose-kitchen", "driver": "onetouch-ultra2", "port": "/dev/ttyUSB0", "resident": "r-0009"},
            {"id": "nibp", "driver": "suntech-nibp", "port": "dev/ttyUSB1", "resident": "r-0001", "baudrate": 7},
        ],
        "storage": {"budget_mb": 8},
        "thresholdz": {},
    }
    assert refusal(FLEET.payload(9, config)) == (9, (
        DocumentError("thresholdz", "unknown setting in the top level; did you mean 'thresholds'? Otherwise remove it"),
        DocumentError("storage.budget_mb", "8 is below the minimum 16; use a value from 16 to 65536"),
        DocumentError("devices[1].port", "'dev/ttyUSB1' is not a device path; write the full path, e.g. "
                                         '"/dev/serial/by-id/..."'),
        DocumentError("devices[1].baudrate", "7 is not allowed; use one of: 0, 1200, 2400, 4800, 9600, 19200, 38400, "
                                             "57600, 115200, 230400, 460800, 921600"),
    ))


def test_a_rule_across_sections_names_the_merged_path() -> None:
    # The fleet's residents no longer include the local devices' r-0002: the error is where it shows.
    assert refusal(FLEET.payload(9, {"residents": [{"id": "r-0001"}]})) == (9, only(
        "devices[1].resident", "no resident has id 'r-0002'; use one of: r-0001, or add a [[residents]] entry"))


def test_the_exception_says_what_was_refused() -> None:
    with pytest.raises(DocumentRejected, match=r"^configuration document version 9 rejected: storage.budget_mb: 8 is"):
        check(FLEET.payload(9, {"storage": {"budget_mb": 8}}))
