"""The configuration document: its body (the config sections), and one signed copy per hub. Pure
apart from reading the operator's files.

Every hub gets the same document except for ``gateway_id``, which is signed too, so a document
captured on one hub's topic cannot be replayed at another. Ed25519 signatures are deterministic:
the same key and document always give the same bytes, which is what lets a resumed rollout publish
again, unchanged, a document it may or may not have sent before it stopped.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from fleetctl.errors import UsageError
from gateway.config import ConfigError, merge_sections, parse_config_mapping
from gateway.config.schema import GatewayConfig
from gateway.fleet.signing import SignatureError, load_public_key, sign
from gateway.mqtt_policy import MAX_DOCUMENT_BYTES

SECTIONS = frozenset(field.name for field in dataclasses.fields(GatewayConfig))
"""The top-level sections of gateway.toml: a body may carry any subset of them, nothing else."""

MAX_KEY_FILE_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentSpec:
    """What every hub's document of a rollout shares."""

    version: int
    issued_at: str
    """ISO 8601 with its offset, fixed when the rollout starts (and kept in its state file)."""
    config: Mapping[str, Any]
    fleet_public_key: str | None = None
    """The next fleet public key (base64 of the raw 32 bytes), for a key rotation."""

    def unsigned(self, gateway_id: str) -> dict[str, Any]:
        document: dict[str, Any] = {
            "gateway_id": gateway_id,
            "version": self.version,
            "issued_at": self.issued_at,
            "config": self.config,
        }
        if self.fleet_public_key is not None:
            document["fleet_public_key"] = self.fleet_public_key
        return document


def signed_payload(spec: DocumentSpec, gateway_id: str, key: Ed25519PrivateKey) -> bytes:
    """The bytes published on the hub's ``config/desired``."""
    document = spec.unsigned(gateway_id)
    document["signature"] = sign(document, key)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def check_size(spec: DocumentSpec, hubs: tuple[str, ...], key: Ed25519PrivateKey) -> int:
    """The largest document's size; :class:`UsageError` when it is over what a hub accepts.

    Documents differ only in the hub's id, so the longest id makes the largest one.
    """
    longest = max(hubs, key=len)
    size = len(signed_payload(spec, longest, key))
    if size > MAX_DOCUMENT_BYTES:
        raise UsageError(f"the signed document is {size} bytes; hubs refuse more than {MAX_DOCUMENT_BYTES}: "
                         "send fewer sections at once")
    return size


def issued_now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def load_body(path: Path) -> dict[str, Any]:
    """The config sections in a ``.toml`` or ``.json`` file, checked by :func:`body_problems`."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the document body ({exc.strerror})") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UsageError(f"{path}: over {MAX_DOCUMENT_BYTES} bytes, more than any hub accepts")
    try:
        text = data.decode("utf-8")
        if path.suffix == ".toml":
            body: object = tomllib.loads(text)
        elif path.suffix == ".json":
            body = json.loads(text)
        else:
            raise UsageError(f"{path}: name the body .toml (gateway.toml sections) or .json (an object of sections)")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: byte {exc.start} is not UTF-8") from exc
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    problems = body_problems(body)
    if problems:
        raise UsageError("\n".join(f"{path}: {problem}" for problem in problems))
    assert isinstance(body, dict)
    return body


def body_problems(body: object) -> list[str]:
    """Why ``body`` cannot be a document's ``config``, caught here rather than by every hub at once.

    The hubs validate the values themselves (and ``--check-against`` can too); this checks only what
    no hub could accept: unknown sections, and values that JSON cannot carry.
    """
    if not isinstance(body, dict) or not body:
        return ["the body must be a non-empty table (object) of gateway.toml sections"]
    problems = [f"{name!r} is not a section of gateway.toml (one of: {', '.join(sorted(SECTIONS))})"
                for name in body if name not in SECTIONS]
    problems += [f"{where}: {what}" for where, what in _unjsonable(body, "")]
    return problems


def _unjsonable(value: object, where: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [problem for key, item in value.items() for problem in _unjsonable(item, f"{where}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in _unjsonable(item, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [(where, "nan and inf have no JSON form")]
    if value is None or isinstance(value, str | int | float | bool):
        return []
    return [(where, f"a TOML {type(value).__name__} has no JSON form; write it as a string")]


def check_against(body: Mapping[str, Any], hub_config: Path) -> None:
    """Lay the body over a representative hub's gateway.toml and validate the result as the hub will.

    Files the configuration names (secrets, keys) are not checked: they are on the hubs, not here.
    """
    try:
        base = tomllib.loads(hub_config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{hub_config}: cannot read it as gateway.toml ({exc})") from exc
    try:
        parse_config_mapping(merge_sections(base, body), f"{hub_config} + the body")
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes()[:MAX_KEY_FILE_BYTES], password=None)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the fleet key ({exc.strerror})") from exc
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not an unencrypted PEM private key (make one with `fleet.py keygen`)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: the fleet key must be Ed25519, not {type(key).__name__}")
    return key


def public_key_text(path: Path) -> str:
    """``fleet_public_key`` for a rotation: the raw 32-byte key in base64, from a PEM or base64 file."""
    try:
        key = load_public_key(path)
    except SignatureError as exc:
        raise UsageError(str(exc)) from exc
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def signer_fingerprint(key: Ed25519PrivateKey) -> str:
    """Names the signing key in the state file, so a resumed rollout is signed by the same key."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()
