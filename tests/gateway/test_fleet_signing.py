"""Fleet signatures: canonical JSON exactly as the contract defines it, Ed25519 verify, key files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.fleet.signing import SignatureError, canonical_json, load_public_key, sign, verify


def test_canonical_json_is_the_contracts_json_dumps_without_the_signature() -> None:
    doc = {"version": 42, "gateway_id": "gw-0001", "config": {"b": 1, "a": "血压"}, "signature": "x"}
    assert canonical_json(doc) == '{"config":{"a":"血压","b":1},"gateway_id":"gw-0001","version":42}'.encode()


def test_sign_and_verify_and_every_way_to_fail() -> None:
    key = Ed25519PrivateKey.generate()
    doc = {"request_id": "r-1", "args": {}}
    signed = {**doc, "signature": sign(doc, key)}
    verify(signed, key.public_key())
    with pytest.raises(SignatureError, match="no signature"):
        verify(doc, key.public_key())
    with pytest.raises(SignatureError, match="bad signature"):
        verify({**signed, "args": {"n": 1}}, key.public_key())  # tampered
    with pytest.raises(SignatureError, match="bad signature"):
        verify(signed, Ed25519PrivateKey.generate().public_key())  # another fleet
    with pytest.raises(SignatureError, match="bad signature"):
        verify({**doc, "signature": "not base64!"}, key.public_key())


def test_public_key_files_pem_or_raw_base64(tmp_path: Path) -> None:
    public = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "fleet.pub"
    pem.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    raw = tmp_path / "fleet.b64"
    raw.write_text(base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode() + "\n")
    for path in (pem, raw):
        assert load_public_key(path).public_bytes(Encoding.Raw, PublicFormat.Raw) == public.public_bytes(
            Encoding.Raw, PublicFormat.Raw)
    bad = tmp_path / "bad"
    bad.write_text("hello")
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        load_public_key(bad)
    with pytest.raises(SignatureError, match="cannot read"):
        load_public_key(tmp_path / "missing")
