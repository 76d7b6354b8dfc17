"""Signed configuration documents from the fleet (docs/mqtt-contract.md): checked, pure, no I/O.

``{"gateway_id", "version", "issued_at", "config": {...}, "fleet_public_key"?, "signature"}``.

The checks run in the order that costs least and trusts least first, and stop at the first failure:
size, JSON (bounded in depth), the Ed25519 signature over every other field, the hub's id, the
version, ``issued_at``, the shape of the document, the settings the fleet may not change; only the
last step, the merged configuration through the validator of ``yiyang config check``, lists every
error, each with its key path. Nothing is read from a field before the signature says the fleet
wrote it.

:func:`open_document` does everything up to the configuration, so the caller can answer a replay or
a retained copy from its state before validating anything; :func:`check_config` then validates.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.config import GatewayConfig, format_path
from gateway.errors import GatewayError, InboundError
from gateway.fleet.overlay import HUB_OWNED, LocalConfig, Overlay, layer, validate_effective
from gateway.fleet.report import WHOLE_DOCUMENT, DocumentError
from gateway.fleet.signing import SignatureError, verify
from gateway.inbound import excerpt, parse_json_bounded
from gateway.mqtt_policy import MAX_DOCUMENT_BYTES

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_VERSION",
    "Candidate",
    "DocumentError",
    "DocumentRejected",
    "SignedDocument",
    "check_config",
    "check_document",
    "open_document",
]

MAX_DEPTH = 16
"""JSON nesting allowed at all: the document's object, then the configuration, whose deepest setting
(a resident's thresholds) is five levels down. Anything up to this is parsed and the validator names
exactly where it goes too deep; deeper is refused as a whole before ``json.loads`` recurses into it."""

MAX_VERSION = 2**63 - 1
"""Versions are compared and stored as integers; a bigger one is a mistake of the fleet's tool."""

FIELDS = ("gateway_id", "version", "issued_at", "config", "fleet_public_key", "signature")


class DocumentRejected(GatewayError):
    """The document is refused: ``errors`` says why (every configuration error, with its key path).

    ``version`` is the document's version once it proved to be the fleet's, for this hub; None for a
    document that did not (its claimed version means nothing). Nothing of it is applied.
    """

    def __init__(self, version: int | None, errors: tuple[DocumentError, ...]) -> None:
        self.version = version
        self.errors = errors
        which = f" version {version}" if version is not None else ""
        shown = "; ".join(f"{error.path}: {error.message}" for error in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__(f"configuration document{which} rejected: {shown}{more}")


def _refuse(path: str, message: str, version: int | None = None) -> DocumentRejected:
    return DocumentRejected(version, (DocumentError(path, message),))


@dataclass(frozen=True, slots=True)
class SignedDocument:
    """A document the fleet signed, for this hub, with a valid version; its configuration not yet checked."""

    version: int
    issued_at: datetime
    sections: Mapping[str, Any]
    """``config``: top-level sections of the configuration file, as JSON."""
    fleet_public_key: str | None
    """The fleet's next public key (base64 of the raw 32 bytes), checked to be an Ed25519 key."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A document whose configuration is valid on this hub: what the hub would run if it passes."""

    version: int
    config: GatewayConfig
    overlay: Overlay
    """The fleet's sections after this document: what the fleet state keeps instead of a full copy."""
    fleet_public_key: str | None


def open_document(payload: bytes, *, gateway_id: str, key: Ed25519PublicKey | None) -> SignedDocument:
    """Everything up to the configuration: raises :class:`DocumentRejected` at the first failure."""
    if len(payload) > MAX_DOCUMENT_BYTES:
        raise _refuse(WHOLE_DOCUMENT, f"the document is {len(payload)} bytes, more than {MAX_DOCUMENT_BYTES} "
                      "(256 KiB); send only the sections that change")
    try:
        document = parse_json_bounded(payload, max_bytes=MAX_DOCUMENT_BYTES, max_depth=MAX_DEPTH)
    except InboundError as exc:
        raise _refuse(WHOLE_DOCUMENT, f"{exc}; send one JSON object") from exc
    if not isinstance(document, dict):
        raise _refuse(WHOLE_DOCUMENT, "not a JSON object; send {\"gateway_id\", \"version\", \"issued_at\", "
                      "\"config\", \"signature\"}")
    if key is None:
        raise _refuse("signature", "this hub has no fleet public key ([fleet] public_key_file), so it takes no "
                      "configuration from the fleet; install the key")
    try:
        verify(document, key)
    except SignatureError as exc:
        raise _refuse("signature", f"{exc}; sign the document with the fleet key this hub holds") from exc
    claimed = document.get("gateway_id")
    if claimed != gateway_id:
        shown = excerpt(claimed, 64) if isinstance(claimed, str) else "no gateway_id"
        raise _refuse("gateway_id", f"this document is for another hub ({shown}), not {gateway_id}; "
                      "publish it to that hub's config/desired")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise _refuse("version", "expected a positive integer; number each document above the last")
    # From here on the version is the fleet's: a refusal carries it, and the caller records it as seen.
    issued_at = _issued_at(document.get("issued_at"), version)
    sections = _sections(document, version)
    next_key = _next_key(document.get("fleet_public_key"), version)
    return SignedDocument(version, issued_at, sections, next_key)


def _issued_at(value: object, version: int) -> datetime:
    todo = 'write an ISO 8601 time with its UTC offset, e.g. "2026-11-22T09:00:00+08:00"'
    if not isinstance(value, str):
        raise _refuse("issued_at", f"missing or not a string; {todo}", version)
    try:
        issued = datetime.fromisoformat(value)
    except ValueError:
        raise _refuse("issued_at", f"not an ISO 8601 time; {todo}", version) from None
    if issued.tzinfo is None:
        raise _refuse("issued_at", f"the time has no UTC offset; {todo}", version)
    return issued


def _sections(document: Mapping[str, Any], version: int) -> Mapping[str, Any]:
    sections = document.get("config")
    if not isinstance(sections, dict):
        raise _refuse("config", "expected an object of configuration sections, e.g. {\"thresholds\": {...}}",
                      version)
    unknown = sorted(name for name in document if name not in FIELDS)
    if unknown:
        raise _refuse(format_path((unknown[0],)), f"not a field of a configuration document; remove it "
                      f"(fields: {', '.join(FIELDS)})", version)
    return sections


def _next_key(value: object, version: int) -> str | None:
    if value is None:
        return None
    todo = "give the raw 32-byte Ed25519 public key in base64"
    if not isinstance(value, str):
        raise _refuse("fleet_public_key", f"expected a string; {todo}", version)
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise _refuse("fleet_public_key", f"not an Ed25519 public key; {todo}", version) from None
    return value


def check_config(document: SignedDocument, local: LocalConfig, overlay: Overlay) -> Candidate:
    """The configuration the hub would run: ``local`` with ``overlay`` and then the document's sections.

    Raises :class:`DocumentRejected` for a hub-owned setting the document changes, else with every
    problem of the merged configuration, each with its key path and ``config check``'s words.
    """
    forbidden = _hub_owned_changes(document.sections, local.config)
    if forbidden:
        raise DocumentRejected(document.version, forbidden)
    new_overlay = layer(overlay, document.sections)
    config, problems = validate_effective(local.mapping, new_overlay)
    if config is None:
        errors = tuple(DocumentError(format_path(p.path), f"{p.what}; {p.todo}") for p in problems)
        raise DocumentRejected(document.version, errors)
    return Candidate(document.version, config, new_overlay, document.fleet_public_key)


def check_document(payload: bytes, *, local: LocalConfig, overlay: Overlay,
                   key: Ed25519PublicKey | None) -> Candidate:
    """Every check at once, for a caller without fleet state (no replay or no-op decisions)."""
    document = open_document(payload, gateway_id=local.config.gateway.id, key=key)
    return check_config(document, local, overlay)


def _hub_owned_changes(sections: Mapping[str, Any], local: GatewayConfig) -> tuple[DocumentError, ...]:
    gateway = sections.get("gateway")
    if not isinstance(gateway, Mapping):
        return ()  # no [gateway], or not a table: the validator says so in the words of config check
    ours = {"id": local.gateway.id, "data_dir": str(local.gateway.data_dir)}
    errors = []
    for key in HUB_OWNED:
        if key in gateway and not _same(key, gateway[key], ours[key]):
            errors.append(DocumentError(
                f"gateway.{key}",
                f"the fleet may not change the hub's {_NOUNS[key]} ({ours[key]}) remotely; leave {key} out "
                "(a technician changes it in the hub's own file)",
            ))
    return tuple(errors)


_NOUNS = {"id": "id", "data_dir": "data directory"}


def _same(key: str, value: object, ours: str) -> bool:
    if not isinstance(value, str):
        return False
    if key == "data_dir":  # "/var/lib/yiyang/" is the hub's "/var/lib/yiyang"
        return value.rstrip("/") == ours.rstrip("/") and value != ""
    return value == ours
