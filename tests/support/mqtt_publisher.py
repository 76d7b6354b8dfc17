"""A hostile family member's MQTT client for tests and benchmarks: publishes whatever it is given."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def publish_once(host: str, port: int, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1,
                 timeout_s: float = 30.0, username: str | None = None, password: str | None = None) -> bool:
    """Connect, publish one message, disconnect. True if the broker acknowledged it; False if it
    refused it by dropping the connection (a broker's max_packet_size does that)."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311,
                         reconnect_on_failure=False)
    done = threading.Event()
    outcome: list[bool] = []

    def on_publish(*_: object) -> None:
        outcome.append(True)
        done.set()

    def on_disconnect(*_: object) -> None:
        outcome.append(False)
        done.set()

    client.on_publish, client.on_disconnect = on_publish, on_disconnect
    if username:
        client.username_pw_set(username, password)
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return True
        if not done.wait(timeout_s):
            raise TimeoutError(f"no PUBACK nor disconnect for {len(payload)} bytes on {topic} in {timeout_s} s")
        return outcome[0]
    finally:
        client.disconnect()
        client.loop_stop()


def flood(host: str, port: int, messages: list[tuple[str, bytes]], *, qos: int = 1,
          timeout_s: float = 120.0) -> None:
    """Publish every (topic, payload) from one connection, in order; return once the broker has them all."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(100)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos[-1:]:  # in order on one connection: the last acknowledged means all were
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise TimeoutError(f"flood of {len(messages)} not acknowledged in {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()
