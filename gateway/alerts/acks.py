"""Acknowledgements from the family app: which ones the hub accepts, pure.

An acknowledgement arrives on ``residents/{rid}/alerts/{aid}/ack/{contact_id}``; the broker's ACL
lets each family account write only its own contact id there, so the topic says who acknowledged.
The hub accepts it only for an active alert of that resident, from a contact with an app account
linked to that resident. The payload (``{"at", "note"}``, optional) is hostile input: bounded
before it is parsed, and a ``by`` in it is ignored.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.alerts.model import Alert, AlertState
from gateway.errors import InboundError
from gateway.family import FamilyLinks
from gateway.inbound import parse_json_bounded
from gateway.topics import AckTopic

ACK_MAX_BYTES = 1024
"""An ack is a time and a short note: 1 KiB is ample, and bounds what one message can cost."""
ACK_MAX_DEPTH = 4


class AckOutcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    NOT_ACTIVE = "not_active"
    """No such alert, or it is resolved."""
    OTHER_RESIDENT = "other_resident"
    """The alert is another resident's than the topic says."""
    NOT_LINKED = "not_linked"
    """Not a contact with an app account linked to that resident."""
    MALFORMED = "malformed"
    """Not an ack topic, or a payload too large, too deep, not JSON or not an object."""

    @property
    def accepted(self) -> bool:
        return self in (AckOutcome.ACKNOWLEDGED, AckOutcome.ALREADY_ACKNOWLEDGED)


def payload_is_valid(payload: bytes) -> bool:
    """Empty, or a JSON object within the bounds; its fields are informative only."""
    if not payload:
        return True
    try:
        body = parse_json_bounded(payload, max_bytes=ACK_MAX_BYTES, max_depth=ACK_MAX_DEPTH)
    except InboundError:
        return False
    return isinstance(body, dict)


def judge_ack(ack: AckTopic, alert: Alert | None, links: FamilyLinks) -> AckOutcome:
    """What to do with an ack whose topic and payload are well formed; ``alert`` is the active one, if any."""
    if not links.may_acknowledge(ack.contact_id, ack.resident_id):
        return AckOutcome.NOT_LINKED
    if alert is None:
        return AckOutcome.NOT_ACTIVE
    if alert.resident_id != ack.resident_id:
        return AckOutcome.OTHER_RESIDENT
    if alert.state is AlertState.ACKNOWLEDGED:
        return AckOutcome.ALREADY_ACKNOWLEDGED
    return AckOutcome.ACKNOWLEDGED
