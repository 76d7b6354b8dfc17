"""Request signing for Platform Upload API v1, pure.

The v1 signature is HMAC-SHA256 over ``POST\\n{path}\\n{timestamp}\\n{nonce}\\n{sha256hex(body)}``
(reference/platform-api.md). Provincial platforms sign in other ways too (MD5 over sorted
parameters, AES bodies), so the service only knows the :class:`Signer` protocol and a
province with its own scheme gets its own small signer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Protocol

NONCE_HEX_CHARS = 32
"""The contract asks for 16 or more hex characters; 128 random bits make a reuse impossible in practice."""


def body_digest(body: bytes) -> str:
    """Lowercase hex SHA-256 of the body bytes exactly as sent (after compression)."""
    return hashlib.sha256(body).hexdigest()


def string_to_sign(path: str, timestamp_ms: int, nonce: str, body: bytes) -> str:
    return f"POST\n{path}\n{timestamp_ms}\n{nonce}\n{body_digest(body)}"


def sign(secret: bytes, path: str, timestamp_ms: int, nonce: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 signature of one upload request (v1)."""
    message = string_to_sign(path, timestamp_ms, nonce, body).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(NONCE_HEX_CHARS // 2)


class Signer(Protocol):
    """Makes the authentication headers of one request."""

    def auth_headers(self, *, path: str, timestamp_ms: int, body: bytes) -> dict[str, str]: ...


class HmacSha256Signer:
    """The v1 signer: ``X-Gateway-Id``, ``X-Timestamp``, ``X-Nonce``, ``X-Signature``."""

    __slots__ = ("_gateway_id", "_secret")

    def __init__(self, gateway_id: str, secret: bytes) -> None:
        if not secret:
            raise ValueError("the platform secret is empty: put the secret issued for this gateway in its secret file")
        self._gateway_id = gateway_id
        self._secret = secret

    def __repr__(self) -> str:
        # The secret must never reach a log line through a repr.
        return f"HmacSha256Signer(gateway_id={self._gateway_id!r})"

    def auth_headers(self, *, path: str, timestamp_ms: int, body: bytes) -> dict[str, str]:
        nonce = new_nonce()
        return {
            "X-Gateway-Id": self._gateway_id,
            "X-Timestamp": str(timestamp_ms),
            "X-Nonce": nonce,
            "X-Signature": sign(self._secret, path, timestamp_ms, nonce, body),
        }
