"""The platform: reachable, and accepting this hub's signature, without storing a record.

Platform Upload API v1 has no probe endpoint, and a probe must not store anything. So the doctor
sends two signed requests with an empty batch (v1: ``{"sent_at", "records": []}``; FHIR: a
transaction Bundle without entries), which the contract refuses as malformed (400):

1. signed with the hub's secret. 401 means the signature (or the timestamp) is refused; after a 401
   whose ``Date`` shows the clocks differ, it is signed once more with the platform's time, as the
   uplink does (gateway.uplink.sender);
2. signed with a random key: the control. A platform that checks the signature before it looks at
   the body (docs/platform-api.md, "The doctor's probe"; scripts/platform_server.py does) answers it
   401. Only then does step 1's 400 prove the signature. A platform that answers the control as it
   answered step 1 looks at the body first: the verdict is a warning that the signature could not be
   proved without storing a record, not a pass.

Neither request can store a record (there is none in it), and each has its own nonce.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from gateway.config.schema import PlatformSettings, UplinkProfile
from gateway.doctor.report import Check, ok, problem, skipped, warning
from gateway.uplink.backoff import server_clock_offset
from gateway.uplink.batch import V1Encoder, build_body
from gateway.uplink.fhir_client import FhirEncoder
from gateway.uplink.http import HttpResponse, Transport, TransportError, post
from gateway.uplink.sender import CLOCK_OFFSET_TOLERANCE_S
from gateway.uplink.signing import HmacSha256Signer

NAME = "platform"
SIGNATURE_REFUSED = 401
CONTROL_KEY_BYTES = 32
MAX_PROBE_TIMEOUT_S = 10.0
"""A technician waits for the doctor: a platform slower than this is a finding, not something to wait out."""


@dataclass(frozen=True, slots=True)
class Probe:
    url: str
    path: str
    """As signed: the URL's path."""
    body: bytes
    content_type: str


def probe_for(settings: PlatformSettings, gateway_id: str, sent_at: str) -> Probe:
    """The empty batch for the configured profile, at the URL the uplink posts to."""
    if settings.profile is UplinkProfile.FHIR_R4:
        encoder: V1Encoder | FhirEncoder = FhirEncoder()
        base = settings.fhir_base
        body = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []}).encode()
    else:
        encoder = V1Encoder()
        base = settings.url
        body = build_body([], sent_at)
    parts = urlsplit(base)
    path = encoder.request_path(parts.path, gateway_id)
    return Probe(f"{parts.scheme}://{parts.netloc}{path}", path, body, encoder.content_type)


async def platform_check(settings: PlatformSettings, gateway_id: str, secret: bytes, *,
                         transport: Transport = post, now: Callable[[], float] = time.time) -> Check:
    if not settings.enabled:
        return skipped(NAME, "upload is off ([platform] enabled = false)")
    probe = probe_for(settings, gateway_id, datetime.now().astimezone().isoformat(timespec="milliseconds"))
    timeout_s = min(settings.timeout_s, MAX_PROBE_TIMEOUT_S)
    hub = HmacSha256Signer(gateway_id, secret)
    offset_s = 0.0

    async def send(signer: HmacSha256Signer) -> HttpResponse:
        headers = {"Content-Type": probe.content_type,
                   **signer.auth_headers(path=probe.path, timestamp_ms=round((now() + offset_s) * 1000),
                                         body=probe.body)}
        return await asyncio.to_thread(transport, probe.url, probe.body, headers, timeout_s)

    try:
        answer = await send(hub)
        if answer.status == SIGNATURE_REFUSED:
            learned = server_clock_offset(answer.headers.get("date"), datetime.fromtimestamp(now(), UTC))
            if learned is not None and abs(learned) > CLOCK_OFFSET_TOLERANCE_S:
                offset_s = learned
                answer = await send(hub)
        refused = _refused(answer, probe, settings, gateway_id)
        if refused is not None:
            return refused
        control = await send(HmacSha256Signer(gateway_id, secrets.token_bytes(CONTROL_KEY_BYTES)))
    except TransportError as exc:
        return problem(NAME, f"cannot reach {probe.url}: {exc}",
                       f"check the internet connection and [platform] url: curl -sS -o /dev/null {probe.url}")
    if control.status != SIGNATURE_REFUSED:
        return warning(NAME, f"{probe.url} answers, but an empty batch gets HTTP {answer.status} whatever its "
                             "signature: the signature cannot be proved without storing a record",
                       "yiyang status (after the next upload: a refused signature shows as HTTP 401)")
    if offset_s:
        return warning(NAME, f"{probe.url} accepts this hub's signature only with the platform's time: the hub "
                             f"clock is {abs(offset_s):.0f} s {'behind' if offset_s > 0 else 'ahead'}",
                       "timedatectl set-ntp true (the uplink signs with the platform's time meanwhile)")
    return ok(NAME, f"{probe.url} accepts this hub's signature (a signed empty batch, HTTP {answer.status}; a "
                    "wrongly signed one, HTTP 401; nothing stored)")


def _refused(answer: HttpResponse, probe: Probe, settings: PlatformSettings, gateway_id: str) -> Check | None:
    """The verdict when the platform did not take the hub's signed request as a signed request."""
    status = answer.status
    if status == SIGNATURE_REFUSED:
        return problem(NAME, f"{probe.url} refuses this hub's signature (HTTP 401): the secret in "
                             f"{settings.secret_file} or the gateway id {gateway_id} is not the one the platform "
                             "issued",
                       f"install -m 0600 -o yiyang -g yiyang ISSUED_SECRET_FILE {settings.secret_file} && "
                       "systemctl restart yiyang")
    if status == 403:
        return problem(NAME, f"{probe.url} forbids this hub (HTTP 403)", "ask the platform to enable "
                                                                        f"gateway {gateway_id}")
    if status == 404:
        key = "fhir_base" if settings.profile is UplinkProfile.FHIR_R4 else "url"
        return problem(NAME, f"no upload endpoint at {probe.url} (HTTP 404)",
                       f"set [platform] {key} to the address the platform gave, then yiyang config check")
    if status == 429 or status >= 500:
        return problem(NAME, f"{probe.url} answers HTTP {status}: the platform is busy or failing",
                       "wait: the hub retries by itself (yiyang status shows the uplink)")
    return None
