"""The daemon against what a family account (or anyone on the home LAN) can publish at it.

The poison of the hostile report, retained where it can be: a 5,000-deep ack that used to raise
RecursionError and crash-loop the hub on every restart, a 1 MB ``by``, non-UTF-8 bytes, a deep
command, a message bigger than the broker lets through. The hub must stay up, keep alerting the
family, come back up with the retained poison still there, and clear a retained ack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import devstack
import paho.mqtt.client as paho
import pytest
from gatewayproc import GATEWAY_ID, RESIDENT_ID, GatewayProcess, platform_records, wait_until, write_config
from mqtt_probe import Probe
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.timeout(180)

ROOT = f"yiyang/v1/{GATEWAY_ID}/"
ACK = f"{ROOT}residents/{RESIDENT_ID}/alerts/a-1/ack/c-0001"
POISON: list[tuple[str, bytes, bool]] = [
    (ACK, b"[" * 5000 + b"]" * 5000, True),                     # the retained crash-loop of the report
    (f"{ROOT}residents/{RESIDENT_ID}/alerts/a-2/ack/c-0001", b"[" * 2000 + b"]" * 2000, False),
    (f"{ROOT}residents/{RESIDENT_ID}/alerts/a-3/ack/c-0001", b'{"by": "' + b"x" * 1_000_000 + b'"}', False),
    (f"{ROOT}residents/{RESIDENT_ID}/alerts/a-4/ack/c-0001", b'{"note": "\xff\xfe\xfd"}', True),
    (f"{ROOT}cmd/ping", b'{"request_id": "r", "args": ' + b"[" * 5000 + b"]" * 5000 + b"}", False),
    (f"{ROOT}cmd/ping", b"\xff" * 100, False),
]


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[devstack.PtySimulator]:
    with devstack.onetouch_meter(tmp_path / "meter", records=3) as m:
        yield m


def publish_raw(broker: devstack.Broker, topic: str, payload: bytes, *, retain: bool) -> None:
    """What a hostile client does: QoS 1, retained where it hurts most. The broker may refuse it."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    except (RuntimeError, ValueError):
        pass  # the broker dropped us for the size: what it should do
    finally:
        client.disconnect()
        client.loop_stop()


def retained_on(broker: devstack.Broker, topic: str) -> bytes | None:
    """The retained payload on ``topic`` now, or None (waits for the broker to send it, if any)."""
    probe = Probe(broker.host, broker.port, topic)
    try:
        deadline = time.monotonic() + 1.0  # retained messages come right after SUBACK
        while time.monotonic() < deadline:
            with probe.lock:
                found = [p for t, p, retained in probe.messages if retained]
            if found:
                return found[-1]
            time.sleep(0.05)
        return None
    finally:
        probe.close()


def test_poison_messages_leave_the_hub_up_and_alerting_through_a_restart(
        tmp_path: Path, broker: devstack.Broker, platform: devstack.Platform,
        meter: devstack.PtySimulator) -> None:
    config = write_config(tmp_path / "gateway.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                          secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link)
    gateway = GatewayProcess(config, tmp_path / "daemon.log")
    family = Probe(broker.host, broker.port, f"{ROOT}#")
    try:
        # The retained poison is there before the hub starts, as after the first crash of the report.
        for topic, payload, retain in POISON:
            publish_raw(broker, topic, payload, retain=retain)
        gateway.start()
        wait_until(lambda: family.json_on("status") and family.json_on("status")[-1]["state"] == "online", 20,
                   "the hub online")
        for topic, payload, retain in POISON:  # and more while it runs
            publish_raw(broker, topic, payload, retain=retain)
        wait_until(lambda: len([r for r in platform_records(platform.db) if r["type"] == "blood_glucose"]) == 3, 20,
                   "the meter's readings at the platform")

        # A restart with the retained poison still on the broker: it used to kill every restart.
        assert gateway.stop() == 0
        meter.command("add 45")  # measured while the hub was down: read when it is back
        gateway.start()
        wait_until(lambda: any(a["kind"] == "hypoglycaemia" for a in family.json_on("events/alert")), 20,
                   "the family told of the hypoglycaemia")
        assert gateway.proc is not None and gateway.proc.poll() is None

        # Acks are never retained: the hub cleared the retained poison acks it was handed.
        wait_until(lambda: retained_on(broker, ACK) is None, 10, "the retained poison ack cleared")
        assert "RecursionError" not in gateway.log_text()
        assert "Traceback" not in gateway.log_text()
    finally:
        family.close()
        gateway.kill()
