"""The gateway's one MQTT connection (paho-mqtt on its own network thread, bridged to asyncio).

paho runs its network loop in a thread of its own (``loop_start``) and
reconnects by itself; callbacks arrive on that thread and are handed to the
event loop with ``call_soon_threadsafe``. ``publish`` only queues a packet, so
it is safe to call from the loop; QoS 1 messages published while the broker is
away are kept by paho and sent on reconnect.

Topic scheme: docs/mqtt-contract.md and :mod:`gateway.topics`, root ``{topic_root}/{gateway_id}/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

OFFLINE = {"state": "offline"}


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


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    """Topic below the gateway root, e.g. ``residents/r-0001/alerts/abc/ack/c-0001``."""
    payload: bytes
    retained: bool


class MqttLink:
    """One MQTT session: retained status with a last will, publish, and subscriptions."""

    # paho's own backoff between reconnect attempts: the home broker is usually back within
    # seconds (restart), a remote one can be away for long (ISP outage).
    RECONNECT_MIN_S = 1
    RECONNECT_MAX_S = 60

    def __init__(self, settings: LinkSettings, subscriptions: tuple[str, ...] = ()) -> None:
        self._s = settings
        self.root = f"{settings.topic_root}/{settings.gateway_id}/"
        self._subscriptions = subscriptions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._incoming: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        self._on_connect_hooks: list[Callable[[], None]] = []
        self.connected = asyncio.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or f"yiyang-{settings.gateway_id}",
            protocol=paho.MQTTv311,
            clean_session=False,  # keep our subscriptions (acks, commands) across short drops
        )
        if settings.username:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            self._client.tls_set_context(settings.tls)
        self._client.will_set(self.topic("status"), json.dumps(OFFLINE), qos=1, retain=True)
        self._client.reconnect_delay_set(self.RECONNECT_MIN_S, self.RECONNECT_MAX_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._pending_suback: int | None = None

    def topic(self, suffix: str) -> str:
        return self.root + suffix

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the event loop after every (re)connect (e.g. republish status)."""
        self._on_connect_hooks.append(hook)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # connect_async only records the target; the network thread connects (and reconnects).
        self._client.connect_async(self._s.host, self._s.port, keepalive=self._s.keepalive_s)
        self._client.loop_start()

    async def stop(self) -> None:
        """Say we are going offline (retained), then disconnect cleanly."""
        if self._loop is None:
            return
        if self.connected.is_set():
            info = self._client.publish(self.topic("status"), json.dumps(OFFLINE), qos=1, retain=True)
            await asyncio.to_thread(_wait_published, info, 2.0)
        await asyncio.to_thread(self._disconnect)
        self._loop = None

    def _disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, suffix: str, payload: dict[str, Any] | None, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message; ``None`` publishes an empty payload (clears a retained topic)."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        info = self._client.publish(self.topic(suffix), body, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            log.warning("mqtt publish failed topic=%s rc=%s", suffix, info.rc)

    async def receive(self) -> IncomingMessage:
        return await self._incoming.get()

    # -- paho thread callbacks ------------------------------------------------------------
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            log.warning("mqtt connect refused host=%s port=%s reason=%s", self._s.host, self._s.port, rc)
            return
        log.info("mqtt connected host=%s port=%s", self._s.host, self._s.port)
        if not self._subscriptions:
            self._to_loop(self._connected)
            return
        # "Connected" (and so the retained "online" status) only once the broker has acknowledged our
        # subscriptions: a fleet tool that sends a command when it sees us online must not lose it.
        result, mid = client.subscribe([(self.topic(sub), 1) for sub in self._subscriptions])
        if result != paho.MQTT_ERR_SUCCESS:
            log.warning("mqtt subscribe failed rc=%s; paho reconnects", result)
            return
        self._pending_suback = mid

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, _rc: list[ReasonCode], _p: Any) -> None:
        if mid == self._pending_suback:
            self._to_loop(self._connected)

    def _connected(self) -> None:
        self.connected.set()
        for hook in self._on_connect_hooks:
            hook()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            log.warning("mqtt connection lost reason=%s; paho reconnects", rc)
        self._to_loop(self.connected.clear)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if not msg.topic.startswith(self.root):
            return
        item = IncomingMessage(msg.topic[len(self.root):], bytes(msg.payload), bool(msg.retain))
        self._to_loop(self._incoming.put_nowait, item)

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)


def _wait_published(info: paho.MQTTMessageInfo, timeout_s: float) -> None:
    # RuntimeError/ValueError: not connected any more; the broker's last will says offline for us.
    with contextlib.suppress(RuntimeError, ValueError):
        info.wait_for_publish(timeout_s)
