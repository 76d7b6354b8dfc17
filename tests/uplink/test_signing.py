import hashlib
import hmac
import re

from gateway.uplink.signing import HmacSha256Signer, new_nonce, sign

SECRET = b"s3cr3t-for-gw-0001"
PATH = "/v1/gateways/gw-0001/records"
BODY = b'{"sent_at":"2026-11-22T10:15:00.120+08:00","records":[]}'


def test_sign_matches_an_independent_hmac_of_the_contract_message() -> None:
    body_hash = hashlib.sha256(BODY).hexdigest()
    message = f"POST\n{PATH}\n1795832100120\n0123456789abcdef0123456789abcdef\n{body_hash}".encode()
    expected = hmac.new(SECRET, message, hashlib.sha256).hexdigest()

    assert sign(SECRET, PATH, 1795832100120, "0123456789abcdef0123456789abcdef", BODY) == expected


def test_sign_fixed_vector() -> None:
    # Pinned so a change of the message layout cannot pass unnoticed.
    assert sign(b"key", "/v1/gateways/gw-0001/records", 1700000000000, "00" * 8, b"") == hmac.new(
        b"key",
        b"POST\n/v1/gateways/gw-0001/records\n1700000000000\n0000000000000000\n"
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        hashlib.sha256,
    ).hexdigest()


def test_nonces_are_long_hex_and_never_repeat() -> None:
    nonces = {new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)


def test_signer_headers_verify_and_repr_hides_the_secret() -> None:
    signer = HmacSha256Signer("gw-0001", SECRET)
    headers = signer.auth_headers(path=PATH, timestamp_ms=1795832100120, body=BODY)

    assert headers["X-Gateway-Id"] == "gw-0001"
    assert headers["X-Timestamp"] == "1795832100120"
    assert headers["X-Signature"] == sign(SECRET, PATH, 1795832100120, headers["X-Nonce"], BODY)
    assert "s3cr3t" not in repr(signer)
