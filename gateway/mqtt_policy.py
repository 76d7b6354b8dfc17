"""What the MQTT link accepts and how it reconnects: named limits and pure decisions, no I/O.

Every number here answers a failure seen on a hub: a 200 MB message that drove the daemon to 707 MB
of RSS, an alert that reached the family 28 s after a broker restart because paho's backoff had
grown to 16 s, a flood of small messages that had nowhere to stop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

MAX_DOCUMENT_BYTES = 256 * 1024
"""The biggest payload the hub accepts on any topic: a signed fleet configuration document
(mqtt-contract.md: "an oversized document (> 256 KiB)" is refused)."""

MAX_PACKET_BYTES = MAX_DOCUMENT_BYTES + 4 * 1024
"""Sent as the MQTT 5 Maximum Packet Size in CONNECT: the broker then never sends us a bigger packet
(it drops it for us, MQTT 5 section 3.1.2.11.4), so paho never buffers one. The packet is the payload
plus the fixed header, topic and properties: 4 KiB is room for any topic of ours.

The broker should refuse such packets from publishers too (``max_packet_size`` with this value,
config/mosquitto-hub.conf.example): Mosquitto 2.0.11 keeps each QoS 1 message it may not send us in
our in-flight window (20), so twenty of them leave the hub deaf to acks and commands, though still
connected, until the next reconnect."""

SESSION_EXPIRY_S = 3600
"""MQTT 5 Session Expiry Interval. The broker keeps our subscriptions, and queues the QoS 1 acks and
commands sent meanwhile, across a daemon restart (seconds), a Wi-Fi drop or a remote broker's
failover (minutes). After an hour away the session goes: a command an hour old should not run by
surprise, and the retained alerts and their repeats bring the family back to anything still open."""

INBOX_MAX_MESSAGES = 1000
"""Received messages waiting for the event loop. The loop handles one in well under a millisecond,
so a full inbox means a flood: the newest are dropped and counted."""

INBOX_MAX_BYTES = 4 * 1024 * 1024
"""The same inbox in bytes: a thousand 256 KiB documents would be 256 MB on a 1 GB hub."""

OUTGOING_MAX_MESSAGES = 1000
"""QoS 1 messages paho holds for the broker while it is away; without a bound a day's outage grows
without end. Active alerts do not depend on it: they are republished (retained) on every connect."""

RECONNECT_MIN_S = 1
LOCAL_RECONNECT_MAX_S = 2
"""A broker on this box or on the home LAN restarts in well under a second (a package upgrade, a
reboot of the router): retrying every 2 s at most puts a raised alert in front of the family within
seconds of it coming back. paho's default doubling to 60 s cost 28 s after one restart."""
REMOTE_RECONNECT_MAX_S = 60
"""A remote broker is away for long (ISP outage, maintenance); hammering it from every hub of a
fleet at once helps nobody."""

START_REPORT_S = 2.0
"""A hub not connected this long after start says so in its log, whatever is wrong (a refused or
blackholed connect, a slow DNS), instead of saying nothing until paho's connect timeout."""

CONNECT_FAILURES_LOGGED = 3
"""Connect failures logged per window (then one summary): refused every 2 s for a day is 43,000 lines."""
DROPS_LOGGED = 5
"""Dropped messages logged per window (then one summary): a flood must not turn into a log flood."""
LOG_WINDOW_S = 300.0

_LAN_SUFFIXES = (".local", ".lan", ".home.arpa")
"""mDNS and home-router names: a broker found by one of these is on the home network."""


def is_local_host(host: str) -> bool:
    """A broker on this box or on a private network (by address or by a home-network name).

    No DNS lookup: it would block, and the answer is only needed to choose a backoff.
    """
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(_LAN_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def reconnect_cap_s(host: str) -> int:
    """paho's longest wait between reconnect attempts for a broker at ``host``."""
    return LOCAL_RECONNECT_MAX_S if is_local_host(host) else REMOTE_RECONNECT_MAX_S


@dataclass(frozen=True)
class Subscription:
    """A topic filter below the gateway root and the largest payload accepted on it."""

    topic_filter: str
    max_payload_bytes: int

    def __post_init__(self) -> None:
        # Nothing bigger than the packet we told the broker we take can arrive anyway.
        if not 0 < self.max_payload_bytes <= MAX_PACKET_BYTES:
            raise ValueError(f"{self.topic_filter}: max_payload_bytes must be 1..{MAX_PACKET_BYTES}, "
                             f"not {self.max_payload_bytes}")
        if not self.topic_filter or self.topic_filter.startswith("/"):
            raise ValueError(f"topic filter {self.topic_filter!r} must be relative to the gateway root")


def payload_limit(subscriptions: Sequence[Subscription], topic: str) -> int | None:
    """The limit for a message on ``topic`` (below the root): the first matching subscription's,
    or None when no subscription of ours matches (a message we never asked for)."""
    for subscription in subscriptions:
        if topic_matches_sub(subscription.topic_filter, topic):
            return subscription.max_payload_bytes
    return None
