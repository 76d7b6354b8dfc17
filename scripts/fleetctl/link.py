"""The fleet tool's MQTT connection: paho on its own thread, messages handed over through a queue.

MQTT 3.1.1 only, nothing that needs MQTT 5. Subscribing to a filter again makes the broker send its
retained messages again (MQTT 3.1.1 section 3.8.4): the engine uses that to re-read the hubs' retained
reports when live ones may have been dropped (a broker's per-client queue limit).
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from fleetctl.errors import LinkError, UsageError
from fleetctl.topics import Message

CONNECT_TIMEOUT_S = 15.0
"""A broker across the internet (TLS, a cluster's load balancer) answers well within this."""
SUBSCRIBE_TIMEOUT_S = 15.0
PUBLISH_TIMEOUT_S = 60.0
"""For a whole wave's PUBACKs: a thousand small documents take well under a second on a LAN."""
MAX_INFLIGHT = 200
"""QoS 1 publishes awaiting their PUBACK. paho's default of 20 makes a wave of a thousand wait on
fifty round trips; MQTT 3.1.1 has no receive maximum for a broker to ask for fewer."""
KEEPALIVE_S = 30


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    """The fleet identity (``[mqtt] fleet_username`` on the hubs, ``fleet`` by default)."""
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None

    @classmethod
    def parse(cls, host_port: str, **kwargs: Any) -> BrokerAddress:
        host, _, port = host_port.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--broker {host_port!r}: write HOST:PORT")
        return cls(host=host.strip("[]") or "127.0.0.1", port=int(port), **kwargs)


class FleetLink(Protocol):
    """What the engine and ``config status`` need from the broker; tests pass a fake."""

    def subscribe(self, topic_filter: str) -> None:
        """Subscribe at QoS 1 and return once the broker acknowledged; again re-sends the retained messages."""

    def unsubscribe(self, topic_filter: str) -> None: ...

    def receive(self, timeout_s: float) -> list[Message]:
        """Wait up to ``timeout_s`` for a message, then return it with every other one already here."""

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish each (topic, payload) retained at QoS 1, all at once; return when the broker
        acknowledged every one, or raise :class:`LinkError`."""


class MqttLink:
    """A :class:`FleetLink` over paho. paho reconnects by itself; on each connect the subscriptions
    are made again, so retained reports missed while away arrive then."""

    def __init__(self, broker: BrokerAddress) -> None:
        self._broker = broker
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._filters: list[str] = []
        self._lock = threading.Condition()
        self._acked: set[int] = set()
        self._connected = False
        self._refused: str | None = None
        # A fresh client id each run: two operators' tools must not take over each other's session.
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleetctl-{uuid.uuid4().hex[:12]}",
                             protocol=paho.MQTTv311, clean_session=True)
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def connect(self) -> None:
        where = f"{self._broker.host}:{self._broker.port}"
        try:
            self._client.connect(self._broker.host, self._broker.port, keepalive=KEEPALIVE_S)
        except (OSError, ssl.SSLError) as exc:
            raise LinkError(f"cannot reach the broker at {where}: {exc}") from exc
        self._client.loop_start()
        with self._lock:
            self._lock.wait_for(lambda: self._connected or self._refused is not None, CONNECT_TIMEOUT_S)
            if self._refused is not None:
                raise LinkError(f"the broker at {where} refused us: {self._refused} "
                                "(check --username and --password-file)")
            if not self._connected:
                raise LinkError(f"no answer from the broker at {where} within {CONNECT_TIMEOUT_S:.0f} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic_filter: str) -> None:
        with self._lock:
            if topic_filter not in self._filters:
                self._filters.append(topic_filter)
        _, mid = self._client.subscribe(topic_filter, qos=1)
        self._wait_ack(mid, f"subscribing to {topic_filter}")

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            if topic_filter in self._filters:
                self._filters.remove(topic_filter)
        _, mid = self._client.unsubscribe(topic_filter)
        self._wait_ack(mid, f"unsubscribing from {topic_filter}")

    def receive(self, timeout_s: float) -> list[Message]:
        try:
            messages = [self._inbox.get(timeout=max(0.0, timeout_s))]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                return messages

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        infos = [self._client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        try:
            for info in infos:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            raise LinkError(f"publishing failed: {exc}") from exc
        unacked = sum(not info.is_published() for info in infos)
        if unacked:
            raise LinkError(f"the broker did not acknowledge {unacked} of {len(infos)} documents "
                            f"within {PUBLISH_TIMEOUT_S:.0f} s")

    def _wait_ack(self, mid: int | None, what: str) -> None:
        with self._lock:
            if mid is None or not self._lock.wait_for(lambda: mid in self._acked, SUBSCRIBE_TIMEOUT_S):
                raise LinkError(f"the broker did not acknowledge {what}")
            self._acked.discard(mid)

    # paho's thread from here on.

    def _on_connect(self, client: paho.Client, _userdata: object, _flags: object,
                    reason: ReasonCode, _properties: object) -> None:
        with self._lock:
            if reason.is_failure:
                self._refused = str(reason)
            else:
                self._connected = True
            filters = list(self._filters)
            self._lock.notify_all()
        if not reason.is_failure and filters:
            client.subscribe([(topic_filter, 1) for topic_filter in filters])

    def _on_disconnect(self, *_: object) -> None:
        with self._lock:
            self._connected = False

    def _on_subscribe(self, _client: paho.Client, _userdata: object, mid: int, *_: object) -> None:
        with self._lock:
            self._acked.add(mid)
            self._lock.notify_all()

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        self._inbox.put(Message(message.topic, bytes(message.payload), bool(message.retain)))


@contextmanager
def connected(broker: BrokerAddress) -> Iterator[MqttLink]:
    link = MqttLink(broker)
    try:  # a refused connect leaves paho's thread retrying: it is stopped here too
        link.connect()
        yield link
    finally:
        link.close()
