"""Upload to the provincial platform: signing, batching, backoff and the async service."""

from gateway.uplink.backoff import backoff_delay, parse_retry_after, server_clock_offset
from gateway.uplink.batch import (
    BatchTooLargeError,
    EncodedBody,
    PlatformAnswerError,
    RecordResult,
    RecordStatus,
    build_body,
    encode_body,
    parse_results,
)
from gateway.uplink.http import HttpResponse, Transport, TransportError, post
from gateway.uplink.secret import load_secret
from gateway.uplink.service import AsyncOutboxLike, Uplink, UplinkStatus
from gateway.uplink.signing import HmacSha256Signer, Signer, new_nonce, sign

__all__ = [
    "AsyncOutboxLike",
    "BatchTooLargeError",
    "EncodedBody",
    "HmacSha256Signer",
    "HttpResponse",
    "PlatformAnswerError",
    "RecordResult",
    "RecordStatus",
    "Signer",
    "Transport",
    "TransportError",
    "Uplink",
    "UplinkStatus",
    "backoff_delay",
    "build_body",
    "encode_body",
    "load_secret",
    "new_nonce",
    "parse_results",
    "parse_retry_after",
    "post",
    "server_clock_offset",
    "sign",
]
