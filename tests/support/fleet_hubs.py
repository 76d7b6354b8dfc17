"""Simulated hubs for fleet rollout tests and the rollout benchmark: the hub side of
config/desired -> config/reported, in the test process.

Each hub verifies the document's signature with ``gateway.fleet.signing.verify``, checks its id and
version the way the contract says, and reports retained on its ``config/reported``: ``applied``, or
the ``rejected`` / ``rolled_back`` it was told to give, or nothing (``silent``: switched off). A
document with the version already applied is a no-op, as on a real hub. Every document received and
every report sent goes into a :class:`Journal` that tests wait on.

Hubs share MQTT connections in groups (``per_client``): one client per hub for a few dozen, fewer
clients for a thousand. One process cannot hold a thousand paho clients: paho's network loop uses
select(), which cannot watch a file descriptor above 1023, and each client takes three (its socket
and a socket pair), so the 340th or so never gets its CONNACK.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from gateway.fleet.signing import SignatureError, verify

ROOT = "yiyang/v1"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    """``received`` (a non-empty config/desired) or ``reported``."""
    hub: str
    version: int | None
    status: str | None = None
    retained: bool = False


class Journal:
    """What every simulated hub received and reported, in order; tests wait on it."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._changed = threading.Condition()

    def add(self, event: Event) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def events(self, kind: str | None = None, hub: str | None = None) -> list[Event]:
        with self._changed:
            return [e for e in self._events if (kind is None or e.kind == kind) and (hub is None or e.hub == hub)]

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout_s: float, what: str) -> list[Event]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._events), timeout_s):
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            return list(self._events)


@dataclass
class HubLogic:
    """One hub's side of the contract, without I/O: a document's bytes in, the report to publish out."""

    gateway_id: str
    key: Ed25519PublicKey
    outcome: str = "applied"
    """applied | rejected | rolled_back | silent"""
    errors: list[dict[str, str]] = field(default_factory=list)
    applied_version: int = 0
    highest_seen: int = 0

    def handle(self, payload: bytes) -> dict[str, Any] | None:
        try:
            document = json.loads(payload)
        except ValueError:
            return self._report(None, "rejected", [{"path": "", "message": "not JSON"}])
        version = document.get("version")
        try:
            verify(document, self.key)
        except SignatureError as exc:
            return self._report(version, "rejected", [{"path": "signature", "message": str(exc)}])
        if document.get("gateway_id") != self.gateway_id:
            return self._report(version, "rejected", [{"path": "gateway_id", "message": "another hub's document"}])
        if version == self.applied_version:
            return None  # the retained copy seen again: a no-op, not a new report
        if version < self.highest_seen:
            return self._report(version, "rejected", [{"path": "version", "message": "lower than one seen: replay"}])
        self.highest_seen = version
        if self.outcome == "silent":
            return None
        if self.outcome in ("rejected", "rolled_back"):
            return self._report(version, self.outcome, self.errors)
        self.applied_version = version
        if "fleet_public_key" in document:  # a rotation: later documents are signed with the new key
            raw = base64.b64decode(document["fleet_public_key"])
            self.key = Ed25519PublicKey.from_public_bytes(raw)
        return self._report(version, "applied", [])

    def _report(self, version: object, status: str, errors: list[dict[str, str]]) -> dict[str, Any]:
        return {"version": version, "status": status, "errors": errors,
                "applied_version": self.applied_version or None,
                "applied_at": datetime.now().astimezone().isoformat(timespec="seconds"), "effective": {}}


class HubGroup:
    """Some hubs on one MQTT connection, each subscribed to its own config/desired."""

    def __init__(self, host: str, port: int, hubs: Sequence[HubLogic], journal: Journal, root: str = ROOT,
                 account: tuple[str, str] | None = None) -> None:
        self.hubs = {f"{root}/{hub.gateway_id}/config/desired": hub for hub in hubs}
        self._root = root
        self._journal = journal
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if account is not None:
            self._client.username_pw_set(*account)
        self._client.max_inflight_messages_set(100)
        subscribed = threading.Event()
        self._client.on_connect = lambda c, *_: c.subscribe([(topic, 1) for topic in self.hubs])
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        assert subscribed.wait(10), "simulated hubs could not subscribe"

    def _on_message(self, client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        hub = self.hubs.get(message.topic)
        if hub is None or not message.payload:
            return
        version = _version_of(message.payload)
        self._journal.add(Event("received", hub.gateway_id, version, retained=bool(message.retain)))
        report = hub.handle(bytes(message.payload))
        if report is None:
            return
        topic = f"{self._root}/{hub.gateway_id}/config/reported"
        client.publish(topic, json.dumps(report), qos=1, retain=True)
        self._journal.add(Event("reported", hub.gateway_id, report["version"], report["status"]))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class SimulatedFleet:
    """Simulated hubs with ``ids``, all ``applied`` except those in ``outcomes``; ``account`` is the
    broker user and password they connect with, if the broker wants one."""

    def __init__(self, host: str, port: int, key: Ed25519PublicKey, ids: Iterable[str],
                 outcomes: dict[str, str] | None = None, per_client: int = 1, root: str = ROOT,
                 account: tuple[str, str] | None = None) -> None:
        self.journal = Journal()
        outcomes = outcomes or {}
        self.hubs = [HubLogic(hub, key, outcome=outcomes.get(hub, "applied"),
                              errors=[{"path": "config.mqtt.keepalive_s", "message": f"{hub}: must be at most 600"}])
                     for hub in ids]
        self._groups: list[HubGroup] = []
        try:
            for start in range(0, len(self.hubs), per_client):
                group = self.hubs[start : start + per_client]
                self._groups.append(HubGroup(host, port, group, self.journal, root, account))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for group in self._groups:
            group.close()

    def __enter__(self) -> SimulatedFleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def hub_ids(count: int) -> list[str]:
    return [f"gw-sim-{n:04d}" for n in range(1, count + 1)]


def retained_on(host: str, port: int, topics: Sequence[str]) -> dict[str, bytes]:
    """What the broker holds retained on ``topics``, as a newcomer subscribing now would get it.

    Absence cannot be waited for, so a marker is: Mosquitto queues a new subscription's retained
    messages to the client as it handles the SUBSCRIBE, so a message published after the SUBACK
    reaches us after all of them. When the marker is here, whatever was retained is too.
    """
    marker = f"test/marker/{uuid.uuid4().hex}"
    found: dict[str, bytes] = {}
    lock = threading.Lock()
    subscribed, marked = threading.Event(), threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        if message.topic == marker:
            marked.set()
        elif message.retain and message.payload:
            with lock:
                found[message.topic] = bytes(message.payload)

    client.on_connect = lambda c, *_: c.subscribe([(topic, 1) for topic in [*topics, marker]])
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect(host, port)
    client.loop_start()
    try:
        assert subscribed.wait(10), "could not subscribe"
        client.publish(marker, b"marker", qos=1)
        assert marked.wait(10), "the marker did not come back"
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return dict(found)


def _version_of(payload: bytes) -> int | None:
    try:
        version = json.loads(payload).get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, int) else None
