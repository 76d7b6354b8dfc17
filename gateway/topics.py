"""The hub's MQTT topics below ``{topic_root}/{gateway_id}/`` (docs/mqtt-contract.md), pure.

Everything about one resident lives under ``residents/{resident_id}/``, so the broker's ACL can give
a family account exactly the residents it is linked to with one rule each. An acknowledgement (and a
snooze) names its sender in the topic (``.../ack/{contact_id}``, ``.../snooze/{contact_id}``), where
the ACL lets each account write only its own id: the hub learns who it was from the broker, never
from the payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

STATUS = "status"
ACK_FILTER = "residents/+/alerts/+/ack/+"
"""Family acknowledgements (family -> hub)."""
SNOOZE_FILTER = "residents/+/alerts/+/snooze/+"
"""A family member silencing an alert's repeats to them for a while (family -> hub)."""
COMMAND_FILTER = "cmd/+"
"""Signed fleet commands (fleet -> hub)."""


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches an MQTT subscription filter (``+`` one level, ``#`` the rest)."""
    levels = topic.split("/")
    for index, wanted in enumerate(topic_filter.split("/")):
        if wanted == "#":
            return True
        if index >= len(levels) or wanted not in ("+", levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))


def resident_root(resident_id: str) -> str:
    return f"residents/{resident_id}"


def alert_topic(resident_id: str, alert_id: str) -> str:
    """Retained while the alert is active; an empty retained message clears it."""
    return f"{resident_root(resident_id)}/alerts/{alert_id}"


def alert_events_topic(resident_id: str) -> str:
    """Every lifecycle change of every alert of the resident, not retained."""
    return f"{resident_root(resident_id)}/events/alert"


def alert_summary_topic(resident_id: str) -> str:
    """Whether the resident has an open alert, retained: one topic a dashboard can show as one state."""
    return f"{resident_root(resident_id)}/alert_summary"


def reading_topic(resident_id: str, reading_type: str) -> str:
    """The resident's last reading of a type, retained."""
    return f"{resident_root(resident_id)}/readings/{reading_type}"


def ack_topic(resident_id: str, alert_id: str, contact_id: str) -> str:
    return f"{alert_topic(resident_id, alert_id)}/ack/{contact_id}"


def snooze_topic(resident_id: str, alert_id: str, contact_id: str) -> str:
    return f"{alert_topic(resident_id, alert_id)}/snooze/{contact_id}"


@dataclass(frozen=True, slots=True)
class ReplyTopic:
    """What the topic of a reply to an alert (ack, snooze) says: whose alert, which, and who (the broker vouches)."""

    resident_id: str
    alert_id: str
    contact_id: str


def parse_ack_topic(topic: str) -> ReplyTopic | None:
    """``residents/{rid}/alerts/{aid}/ack/{cid}`` (below the gateway root), else None."""
    return _parse_reply(topic, "ack")


def parse_snooze_topic(topic: str) -> ReplyTopic | None:
    """``residents/{rid}/alerts/{aid}/snooze/{cid}`` (below the gateway root), else None."""
    return _parse_reply(topic, "snooze")


def _parse_reply(topic: str, verb: str) -> ReplyTopic | None:
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "residents" or parts[2] != "alerts" or parts[4] != verb:
        return None
    if not all(parts[i] for i in (1, 3, 5)):
        return None
    return ReplyTopic(resident_id=parts[1], alert_id=parts[3], contact_id=parts[5])


def legacy_retained_topics(active_alert_ids: Iterable[str], reading_types: Iterable[str]) -> list[str]:
    """Retained topics of the hub-wide scheme before ``residents/...``: cleared once at start.

    Hubs that ran the older version left each resident's last readings (health data) retained on
    ``readings/{type}`` and the open alerts on ``alerts/{id}``; nothing would ever clear them.
    """
    return [*(f"alerts/{alert_id}" for alert_id in active_alert_ids),
            *(f"readings/{reading_type}" for reading_type in reading_types)]
