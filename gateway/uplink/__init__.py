"""Upload to the provincial platform: signing, batching, backoff and the async service."""

from gateway.uplink.backoff import backoff_delay, parse_retry_after, server_clock_offset
from gateway.uplink.batch import (
    BatchEncoder,
    BatchTooLargeError,
    EncodedBody,
    PlatformAnswerError,
    PreparedRequest,
    RecordResult,
    RecordStatus,
    V1Encoder,
    build_body,
    encode_body,
    parse_results,
)
from gateway.uplink.fhir import FhirMappingError
from gateway.uplink.fhir_client import FhirEncoder
from gateway.uplink.http import HttpResponse, Transport, TransportError, post
from gateway.uplink.pacing import ThrottleSettings
from gateway.uplink.secret import load_secret
from gateway.uplink.service import Uplink, UplinkStatus
from gateway.uplink.signing import HmacSha256Signer, Signer, new_nonce, sign

__all__ = [
    "BatchEncoder",
    "BatchTooLargeError",
    "EncodedBody",
    "FhirEncoder",
    "FhirMappingError",
    "HmacSha256Signer",
    "HttpResponse",
    "PlatformAnswerError",
    "PreparedRequest",
    "RecordResult",
    "RecordStatus",
    "Signer",
    "ThrottleSettings",
    "Transport",
    "TransportError",
    "Uplink",
    "UplinkStatus",
    "V1Encoder",
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
