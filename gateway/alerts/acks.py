"""Replies from the family app to an alert (acknowledge, snooze): which ones the hub accepts, pure.

A reply arrives on ``residents/{rid}/alerts/{aid}/ack/{contact_id}`` or ``.../snooze/{contact_id}``;
the broker's ACL lets each family account write only its own contact id there, so the topic says
who replied. The hub accepts it only for an active alert of that resident, from a contact it knows
with an app account linked to that resident. The payload is hostile input, bounded before it is
parsed: an ack's (``{"at", "note"}``, optional) is informative only, and a ``by`` in it is ignored;
a snooze's says for how long (``{"minutes": N}``, 1 to :data:`SNOOZE_MAX_MINUTES`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from gateway.alerts.model import Alert, AlertState
from gateway.errors import InboundError
from gateway.inbound import parse_json_bounded
from gateway.topics import ReplyTopic

ACK_MAX_BYTES = 1024
"""An ack is a time and a short note: 1 KiB is ample, and bounds what one message can cost."""
ACK_MAX_DEPTH = 4
SNOOZE_MAX_BYTES = ACK_MAX_BYTES
SNOOZE_MAX_MINUTES = 120
"""Two hours, the longest snooze Nightscout offers for an urgent alarm: longer hides an alert for the
rest of a day. Escalation goes on whatever the snooze, so this bounds only one contact's quiet."""


class Repliers(Protocol):
    """Who may reply: the hub's contacts (:class:`gateway.respond.contacts.Roster` is one)."""

    def get(self, contact_id: str) -> object | None: ...
    def may_respond(self, contact_id: str, resident_id: str) -> bool: ...


class ReplyOutcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    """Accepted, nothing to do: someone acknowledged it first (an ack or a snooze)."""
    SNOOZED = "snoozed"
    NOT_ACTIVE = "not_active"
    """No such alert, or it is resolved."""
    OTHER_RESIDENT = "other_resident"
    """The alert is another resident's than the topic says."""
    UNKNOWN_CONTACT = "unknown_contact"
    """No contact of the hub has that id."""
    NOT_LINKED = "not_linked"
    """A contact without an app account, or not linked to that resident."""
    MALFORMED = "malformed"
    """Not a reply topic, or a payload too large, too deep, not JSON, not an object, or out of bounds."""

    @property
    def accepted(self) -> bool:
        return self in (ReplyOutcome.ACKNOWLEDGED, ReplyOutcome.ALREADY_ACKNOWLEDGED, ReplyOutcome.SNOOZED)


def _body(payload: bytes) -> object:
    """The parsed payload within the bounds, or None when it is not (empty: an empty object)."""
    if not payload:
        return {}
    try:
        return parse_json_bounded(payload, max_bytes=ACK_MAX_BYTES, max_depth=ACK_MAX_DEPTH)
    except InboundError:
        return None


def payload_is_valid(payload: bytes) -> bool:
    """An ack's payload: empty, or a JSON object within the bounds; its fields are informative only."""
    return isinstance(_body(payload), dict)


def snooze_minutes(payload: bytes) -> int | None:
    """A snooze's ``{"minutes": N}``, N a whole number from 1 to :data:`SNOOZE_MAX_MINUTES`; else None."""
    body = _body(payload)
    if not isinstance(body, dict):
        return None
    minutes = body.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= SNOOZE_MAX_MINUTES:
        return None
    return minutes


def judge_reply(reply: ReplyTopic, alert: Alert | None, roster: Repliers) -> ReplyOutcome | None:
    """Why a well-formed reply is refused or has nothing to do; None: act on it. ``alert``: the active one."""
    if roster.get(reply.contact_id) is None:
        return ReplyOutcome.UNKNOWN_CONTACT
    if not roster.may_respond(reply.contact_id, reply.resident_id):
        return ReplyOutcome.NOT_LINKED
    if alert is None:
        return ReplyOutcome.NOT_ACTIVE
    if alert.resident_id != reply.resident_id:
        return ReplyOutcome.OTHER_RESIDENT
    if alert.state is AlertState.ACKNOWLEDGED:
        return ReplyOutcome.ALREADY_ACKNOWLEDGED
    return None
