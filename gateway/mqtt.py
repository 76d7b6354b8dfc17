"""The gateway's one MQTT connection (paho-mqtt on its own network thread, bridged to asyncio).

paho runs its network loop in a thread of its own (``loop_start``) and
reconnects by itself; callbacks arrive on that thread and are handed to the
event loop with ``call_soon_threadsafe``. ``publish`` only queues a packet, so
it is safe to call from the loop; QoS 1 messages published while the broker is
away are kept by paho (up to a bound) and sent on reconnect.

MQTT 5, for what 3.1.1 cannot say: the Maximum Packet Size in CONNECT makes the
broker itself refuse to send us anything bigger than a configuration document,
and the Session Expiry Interval keeps our subscriptions and queued acks across
short drops without keeping them for ever (3.1.1's clean_session=False never
expires). There is no automatic fall-back to 3.1.1: every broker the contract
names (Mosquitto 2, EMQX, VerneMQ, HiveMQ) speaks 5, and a silent downgrade would
drop exactly those protections; a broker that refuses 5 shows in the log as
"connect refused reason=Unsupported protocol version".

Everything received is hostile until parsed: a message bigger than its
subscription allows is dropped on the network thread, and the hand-over to the
loop is bounded (gateway/mqtt_inbox.py). Payloads are never logged, only their
size and topic. Limits and backoff: gateway/mqtt_policy.py.

Topic scheme: docs/mqtt-contract.md and :mod:`gateway.topics`, root ``{topic_root}/{gateway_id}/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.inbound import excerpt
from gateway.logs import RateLimitedLog
from gateway.mqtt_inbox import BoundedInbox, Put
from gateway.mqtt_policy import (
    CONNECT_FAILURES_LOGGED,
    DROPS_LOGGED,
    INBOX_MAX_BYTES,
    INBOX_MAX_MESSAGES,
    LOG_WINDOW_S,
    MAX_PACKET_BYTES,
    OUTGOING_MAX_MESSAGES,
    RECONNECT_MIN_S,
    SESSION_EXPIRY_S,
    START_REPORT_S,
    Subscription,
    payload_limit,
    reconnect_cap_s,
)

log = logging.getLogger(__name__)

OFFLINE = {"state": "offline"}
TOPIC_CHARS = 80
"""How much of a received topic (chosen by the sender) goes into a log line."""


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    gateway_id: str
    topic_root: str = "yiyang/v1"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    tls: ssl.SSLContext | None = None
    max_packet_bytes: int = MAX_PACKET_BYTES
    session_expiry_s: int = SESSION_EXPIRY_S
    inbox_max_messages: int = INBOX_MAX_MESSAGES
    inbox_max_bytes: int = INBOX_MAX_BYTES


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    """Topic below the gateway root, e.g. ``residents/r-0001/alerts/abc/ack/c-0001``."""
    payload: bytes
    retained: bool
    oversized: bool = False
    """Bigger than the topic's limit: the payload was not taken (``payload`` is empty). Only a
    retained one is handed on, so its handler can clear it from the broker."""


@dataclass(frozen=True)
class LinkStats:
    """What the link has been through since it was made (tests, the status payload, the bench)."""

    connect_failures: int
    """Connect attempts that failed: refused, unreachable, DNS, or a CONNACK refusal."""
    last_connect_error: str | None
    received: int
    """Messages handed to the event loop."""
    dropped_oversized: int
    """Messages bigger than their subscription allows (or on a topic we never subscribed to)."""
    dropped_inbox_full: int
    inbox_peak: int
    """The most messages ever waiting for the loop at once."""


class MqttLink:
    """One MQTT session: retained status with a last will, publish, and bounded subscriptions."""

    def __init__(self, settings: LinkSettings, subscriptions: tuple[Subscription, ...] = (), *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._s = settings
        self.root = f"{settings.topic_root}/{settings.gateway_id}/"
        self._subscriptions = subscriptions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: BoundedInbox[IncomingMessage] = BoundedInbox(max_items=settings.inbox_max_messages,
                                                                  max_bytes=settings.inbox_max_bytes)
        self._wakeup = asyncio.Event()
        self._on_connect_hooks: list[Callable[[], None]] = []
        self.connected = asyncio.Event()
        self._reconnect_cap_s = reconnect_cap_s(settings.host)
        self._clock = clock
        self._start_report: asyncio.TimerHandle | None = None
        # Counters written by paho's network thread only, read by anyone.
        self._connect_failures = 0
        self._failures_since_connected = 0
        self._last_connect_error: str | None = None
        self._received = 0
        self._dropped_oversized = 0
        self._connect_log = RateLimitedLog(log, "mqtt connect failed", per_window=CONNECT_FAILURES_LOGGED,
                                           window_s=LOG_WINDOW_S, clock=clock)
        self._drop_log = RateLimitedLog(log, "mqtt message dropped", per_window=DROPS_LOGGED,
                                        window_s=LOG_WINDOW_S, clock=clock)
        self._publish_log = RateLimitedLog(log, "mqtt publish failed", per_window=DROPS_LOGGED,
                                           window_s=LOG_WINDOW_S, clock=clock)
        self._pending_suback: int | None = None
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        s = self._s
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id=s.client_id or f"yiyang-{s.gateway_id}", protocol=paho.MQTTv5)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set_context(s.tls)
        client.will_set(self.topic("status"), json.dumps(OFFLINE), qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, self._reconnect_cap_s)
        client.max_queued_messages_set(OUTGOING_MAX_MESSAGES)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def topic(self, suffix: str) -> str:
        return self.root + suffix

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the event loop after every (re)connect (e.g. republish status)."""
        self._on_connect_hooks.append(hook)

    def stats(self) -> LinkStats:
        return LinkStats(connect_failures=self._connect_failures, last_connect_error=self._last_connect_error,
                         received=self._received, dropped_oversized=self._dropped_oversized,
                         dropped_inbox_full=self._inbox.dropped, inbox_peak=self._inbox.peak_items)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._s.session_expiry_s
        properties.MaximumPacketSize = self._s.max_packet_bytes
        # connect_async only records the target; the network thread connects (and reconnects).
        # clean_start=False on the first connect too: acks and commands queued for us while the
        # daemon restarted are delivered (paho's default starts the first session clean).
        self._client.connect_async(self._s.host, self._s.port, keepalive=self._s.keepalive_s, clean_start=False,
                                   properties=properties)
        self._client.loop_start()
        self._start_report = self._loop.call_later(START_REPORT_S, self._report_not_connected, self._clock())

    async def stop(self) -> None:
        """Say we are going offline (retained), then disconnect cleanly."""
        if self._loop is None:
            return
        if self._start_report is not None:
            self._start_report.cancel()
        if self.connected.is_set():
            info = self._client.publish(self.topic("status"), json.dumps(OFFLINE), qos=1, retain=True)
            await asyncio.to_thread(_wait_published, info, 2.0)
        await asyncio.to_thread(self._disconnect)
        self._loop = None

    def _disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def reconfigure(self, settings: LinkSettings) -> None:
        """Go over to other broker settings (host, credentials, TLS, topic root) in the running process.

        The old session says offline and ends; a new paho client connects with the new settings
        (paho cannot change TLS on a client it made). What matters on the new broker is republished
        by the on-connect hooks: status, the active alerts, the last fleet report.
        """
        running = self._loop is not None
        if running:
            await self.stop()
        self._s = settings
        self.root = f"{settings.topic_root}/{settings.gateway_id}/"
        self._reconnect_cap_s = reconnect_cap_s(settings.host)
        self._failures_since_connected = 0
        self.connected.clear()
        self._client = self._make_client()
        log.info("mqtt reconfigured host=%s port=%s", settings.host, settings.port)
        if running:
            await self.start()

    @property
    def settings(self) -> LinkSettings:
        return self._s

    def publish(self, suffix: str, payload: dict[str, Any] | None, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message below the hub's root; ``None`` publishes an empty payload (clears a retained topic)."""
        self.publish_topic(self.topic(suffix), payload, qos=qos, retain=retain)

    def publish_topic(self, topic: str, payload: dict[str, Any] | None, *, qos: int = 1,
                      retain: bool = False) -> None:
        """Like :meth:`publish`, on a whole topic: Home Assistant's discovery configs live outside the hub's root."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        info = self._client.publish(topic, body, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self._publish_log.log(logging.WARNING, "mqtt publish failed topic=%s rc=%s (%s)", topic, info.rc,
                                  paho.error_string(info.rc))

    async def receive(self) -> IncomingMessage:
        while True:
            item = self._inbox.take()
            if item is not None:
                return item
            self._wakeup.clear()
            # Taken again after clear(): a message put in between woke nobody we would hear.
            item = self._inbox.take()
            if item is not None:
                return item
            await self._wakeup.wait()

    # -- event loop -----------------------------------------------------------------------
    def _report_not_connected(self, started: float) -> None:
        self._start_report = None
        if self.connected.is_set():
            return
        log.warning("mqtt not connected %.0f s after start host=%s port=%s failed_attempts=%d last_error=%s; "
                    "retrying every %d s at most", self._clock() - started, self._s.host, self._s.port,
                    self._connect_failures, self._last_connect_error or "none (no answer yet)",
                    self._reconnect_cap_s)

    def _connected(self) -> None:
        self.connected.set()
        for hook in self._on_connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("mqtt on-connect hook failed hook=%s", getattr(hook, "__qualname__", hook))

    # -- paho thread callbacks ------------------------------------------------------------
    # paho re-raises an exception from a callback on its network thread, which then dies: the link
    # would be gone for good without a word. So no callback here may raise.
    def _on_connect(self, client: paho.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._count_connect_failure(f"connect refused reason={rc}")
            return
        log.info("mqtt connected host=%s port=%s session_present=%s after_failed_attempts=%d", self._s.host,
                 self._s.port, bool(getattr(flags, "session_present", False)), self._failures_since_connected)
        self._failures_since_connected = 0
        self._connect_log.flush(logging.WARNING)
        if not self._subscriptions:
            self._to_loop(self._connected)
            return
        # "Connected" (and so the retained "online" status) only once the broker has acknowledged our
        # subscriptions: a fleet tool that sends a command when it sees us online must not lose it.
        # noLocal: nothing we publish ourselves comes back to us as if someone had sent it.
        options = SubscribeOptions(qos=1, noLocal=True)
        result, mid = client.subscribe([(self.topic(sub.topic_filter), options) for sub in self._subscriptions])
        if result != paho.MQTT_ERR_SUCCESS:
            log.warning("mqtt subscribe failed rc=%s; paho reconnects", result)
            return
        self._pending_suback = mid

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        # paho calls this from inside its ``except OSError:`` around the connect: the error is the one
        # being handled (refused, unreachable, DNS), though paho does not pass it on.
        error = sys.exception()
        self._count_connect_failure(f"{type(error).__name__}: {error}" if error is not None else "unknown")

    def _count_connect_failure(self, error: str) -> None:
        self._connect_failures += 1
        self._failures_since_connected += 1
        self._last_connect_error = error
        self._connect_log.log(logging.WARNING, "mqtt connect failed host=%s port=%s error=%s failed_attempts=%d; "
                              "retrying in %d s at most", self._s.host, self._s.port, error,
                              self._failures_since_connected, self._reconnect_cap_s)

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        if mid != self._pending_suback:
            return
        refused = [sub.topic_filter for sub, rc in zip(self._subscriptions, reasons, strict=False) if rc.is_failure]
        if refused:
            # Online all the same: status and alerts still work; the ACL on the broker needs fixing.
            log.warning("mqtt subscription refused by the broker topics=%s: check its ACL for this hub",
                        ",".join(refused))
        self._to_loop(self._connected)

    def _on_disconnect(self, client: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if client is not self._client:
            return  # the client a reconfigure replaced: its goodbye is not ours
        if rc.is_failure:
            self._connect_log.log(logging.WARNING, "mqtt connection lost reason=%s; reconnecting within %d s",
                                  rc, self._reconnect_cap_s)
        self._to_loop(self.connected.clear)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            self._accept(msg)
        except Exception:
            log.exception("mqtt message dropped: could not be taken in")

    def _accept(self, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        if not topic.startswith(self.root):
            return
        suffix = topic[len(self.root):]
        size = len(msg.payload)
        limit = payload_limit(self._subscriptions, suffix)
        if limit is None or size > limit:
            # Before the payload is copied anywhere: it dies with paho's own buffer.
            self._dropped_oversized += 1
            self._drop_log.log(logging.WARNING, "mqtt message dropped topic=%s bytes=%d limit=%s retained=%s",
                               excerpt(suffix, TOPIC_CHARS), size, limit, bool(msg.retain))
            if limit is None or not msg.retain:
                return
            # Retained, it would come back at every reconnect: its handler gets the topic, to clear it.
            message, size = IncomingMessage(suffix, b"", retained=True, oversized=True), 0
        else:
            message = IncomingMessage(suffix, bytes(msg.payload), bool(msg.retain))
        put = self._inbox.put(message, size)
        if put is Put.DROPPED:
            self._drop_log.log(logging.WARNING, "mqtt message dropped topic=%s bytes=%d reason=inbox_full "
                               "dropped_inbox_full=%d", excerpt(suffix, TOPIC_CHARS), size, self._inbox.dropped)
            return
        self._received += 1
        if put is Put.QUEUED_WAKE:
            self._to_loop(self._wakeup.set)

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        # RuntimeError: the loop closed after the check (shutdown); nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(fn, *args)


def _wait_published(info: paho.MQTTMessageInfo, timeout_s: float) -> None:
    # RuntimeError/ValueError: not connected any more; the broker's last will says offline for us.
    with contextlib.suppress(RuntimeError, ValueError):
        info.wait_for_publish(timeout_s)
