"""The fleet operator's side in tests: a key pair, signed configuration documents, a hub's local file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.fleet.overlay import LocalConfig
from gateway.fleet.signing import sign

GATEWAY_ID = "gw-0001"
ISSUED_AT = "2026-11-22T09:00:00+08:00"


def local_toml(data_dir: Path, extra: str = "") -> str:
    """A hub with two residents and two devices; ``extra`` is appended (more sections)."""
    return f"""\
[gateway]
id = "{GATEWAY_ID}"
data_dir = "{data_dir}"

[platform]
url = "https://platform.example.cn"
secret_file = "/etc/yiyang/platform.secret"
timeout_s = 5.0

[[residents]]
id = "r-0001"

[[residents]]
id = "r-0002"

[[devices]]
id = "glucose-kitchen"
driver = "onetouch-ultra2"
port = "/dev/ttyUSB0"
resident = "r-0001"

[[devices]]
id = "bp-bedroom"
driver = "ble-bps"
address = "C4:7C:8D:6A:11:02"
resident = "r-0002"
{extra}"""


def local_config(data_dir: Path, extra: str = "") -> LocalConfig:
    return LocalConfig.from_text(local_toml(data_dir, extra), "gateway.toml")


def key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class Fleet:
    """One fleet key pair, signing documents as scripts/ would."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self.key = key or Ed25519PrivateKey.generate()

    @property
    def public(self) -> Ed25519PublicKey:
        return self.key.public_key()

    def document(self, version: object, config: object, *, gateway_id: object = GATEWAY_ID,
                 issued_at: object = ISSUED_AT, **extra: Any) -> dict[str, Any]:
        unsigned = {"gateway_id": gateway_id, "version": version, "issued_at": issued_at, "config": config, **extra}
        return {**unsigned, "signature": sign(unsigned, self.key)}

    def payload(self, version: object, config: object, **fields: Any) -> bytes:
        return json.dumps(self.document(version, config, **fields), ensure_ascii=False).encode()
