"""Document bodies and the signed per-hub documents (scripts/fleetctl/documents.py)."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fleetctl.documents import (
    DocumentSpec,
    body_problems,
    check_against,
    check_size,
    load_body,
    public_key_text,
    signed_payload,
)
from fleetctl.errors import UsageError

from gateway.fleet.signing import SignatureError, verify

REPO = Path(__file__).resolve().parents[2]
SPEC = DocumentSpec(version=42, issued_at="2026-11-22T09:00:00+08:00",
                    config={"alerts": {"repeat_emergency_s": 120}, "contacts": [{"id": "c-0001", "name": "王芳"}]})


def test_each_hub_gets_its_own_signed_document_that_verifies_with_the_fleet_key() -> None:
    key = Ed25519PrivateKey.generate()
    one = json.loads(signed_payload(SPEC, "gw-0001", key))
    two = json.loads(signed_payload(SPEC, "gw-0002", key))
    assert set(one) == {"gateway_id", "version", "issued_at", "config", "signature"}
    assert (one["gateway_id"], one["version"], one["config"]) == ("gw-0001", 42, SPEC.config)
    verify(one, key.public_key())
    verify(two, key.public_key())
    with pytest.raises(SignatureError):  # the id is signed: one hub's document is no good for another
        verify({**one, "gateway_id": "gw-0002"}, key.public_key())


def test_signing_again_gives_the_same_bytes() -> None:
    # What lets a resumed rollout publish a document again without it being a different one.
    key = Ed25519PrivateKey.generate()
    assert signed_payload(SPEC, "gw-0001", key) == signed_payload(SPEC, "gw-0001", key)


def test_a_rotation_document_carries_and_signs_the_next_fleet_key(tmp_path: Path) -> None:
    key, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pem = tmp_path / "next.pub"
    pem.write_bytes(new.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    raw = new.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public_key_text(pem) == base64.b64encode(raw).decode()
    spec = DocumentSpec(version=43, issued_at=SPEC.issued_at, config={"alerts": {}},
                        fleet_public_key=public_key_text(pem))
    document = json.loads(signed_payload(spec, "gw-0001", key))
    assert base64.b64decode(document["fleet_public_key"]) == raw
    verify(document, key.public_key())  # signed by the current key, not the next one
    with pytest.raises(UsageError, match="not an Ed25519 public key"):
        public_key_text(_write(tmp_path / "junk.pub", "junk"))


def test_bodies_from_toml_and_json(tmp_path: Path) -> None:
    toml = _write(tmp_path / "change.toml", '[alerts]\nrepeat_emergency_s = 120\n\n[[contacts]]\nid = "c-0001"\n')
    assert load_body(toml) == {"alerts": {"repeat_emergency_s": 120}, "contacts": [{"id": "c-0001"}]}
    js = _write(tmp_path / "change.json", '{"mqtt": {"keepalive_s": 60}}')
    assert load_body(js) == {"mqtt": {"keepalive_s": 60}}
    with pytest.raises(UsageError, match=r"name the body \.toml"):
        load_body(_write(tmp_path / "change.yaml", "mqtt: {}"))
    with pytest.raises(UsageError, match=r"change\.json"):
        load_body(_write(tmp_path / "change.json", "{nope"))


def test_what_no_hub_could_accept_is_refused_before_signing() -> None:
    assert body_problems({"alerts": {}}) == []
    assert body_problems([]) == ["the body must be a non-empty table (object) of gateway.toml sections"]
    assert body_problems({}) == body_problems([])
    [unknown] = body_problems({"alert": {}})
    assert unknown.startswith("'alert' is not a section of gateway.toml")
    problems = body_problems({"gateway": {"when": datetime.date(2027, 1, 1)}, "detect": {"x": float("nan")}})
    assert problems == ["gateway.when: a TOML date has no JSON form; write it as a string",
                        "detect.x: nan and inf have no JSON form"]


def test_a_document_too_big_for_the_hubs_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    assert check_size(SPEC, ("gw-1", "gw-0001"), key) == len(signed_payload(SPEC, "gw-0001", key))
    big = DocumentSpec(version=1, issued_at=SPEC.issued_at, config={"alerts": {"note": "x" * 300_000}})
    with pytest.raises(UsageError, match="hubs refuse more than 262144"):
        check_size(big, ("gw-0001",), key)


def test_check_against_validates_the_body_over_a_hub_configuration() -> None:
    hub = REPO / "config" / "gateway.toml"
    check_against({"mqtt": {"keepalive_s": 60}}, hub)
    with pytest.raises(UsageError, match="keepalive_s"):
        check_against({"mqtt": {"keepalive_s": 1}}, hub)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
