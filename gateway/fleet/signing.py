"""Ed25519 signatures over canonical JSON (docs/mqtt-contract.md, "Signed configuration documents").

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8: exactly
``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` of the document
without its ``signature``. The hub holds the fleet's public key, installed with the hub.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.errors import GatewayError


class SignatureError(GatewayError):
    """A fleet document or command is unsigned, or its signature does not verify."""


def canonical_json(document: Mapping[str, Any]) -> bytes:
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(document: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """The base64 signature a fleet tool puts in ``signature`` (used by scripts/ and tests)."""
    return base64.b64encode(key.sign(canonical_json(document))).decode()


def verify(document: Mapping[str, Any], key: Ed25519PublicKey) -> None:
    signature = document.get("signature")
    if not isinstance(signature, str) or not signature:
        raise SignatureError("no signature: the fleet signs every command and configuration document")
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, canonical_json(document))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise SignatureError("bad signature: not signed by this hub's fleet key") from exc


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The fleet's public key: a PEM file, or the raw 32-byte key in base64 on one line."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read the fleet public key ({exc.strerror}); install it") from exc
    try:
        if text.lstrip().startswith(b"-----BEGIN"):
            key = load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise SignatureError(f"{path}: not an Ed25519 public key (PEM, or 32 bytes in base64)") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: the fleet key must be Ed25519, not {type(key).__name__}")
    return key
