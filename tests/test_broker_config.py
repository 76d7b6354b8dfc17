"""The production broker template (config/mosquitto-hub.conf.example) boots and does what it says."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import devstack
import paho.mqtt.client as paho
import pytest
from mqtt_publisher import publish_once
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = (REPO / "config" / "mosquitto-hub.conf.example").read_text(encoding="utf-8")


def connack(port: int, username: str | None, password: str | None) -> str:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                         reconnect_on_failure=False)
    if username:
        client.username_pw_set(username, password)
    answered = threading.Event()
    reason: list[str] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        reason.append(str(rc))
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
        return reason[0]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.timeout(60)
def test_the_hub_broker_template_refuses_strangers_and_oversized_packets(tmp_path: Path) -> None:
    passwd, acl = tmp_path / "yiyang.passwd", tmp_path / "yiyang.acl"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "yiyang-gateway", "s3cret"], check=True)
    acl.write_text("user yiyang-gateway\ntopic readwrite yiyang/v1/#\n", encoding="utf-8")
    port = devstack.free_port()
    conf = TEMPLATE
    for directive, value in (("password_file", passwd), ("acl_file", acl), ("listener", f"{port} 127.0.0.1")):
        conf, replaced = re.subn(rf"^{directive} .*$", f"{directive} {value}", conf, flags=re.MULTILINE)
        assert replaced == 1, directive
    # Test-only: stay root (the tmp files are root's) and keep the database out of the working directory.
    conf += f"user root\npersistence_location {tmp_path}/\n"
    (tmp_path / "hub.conf").write_text(conf, encoding="utf-8")
    with open(tmp_path / "mosquitto.stderr", "wb") as err:
        proc = subprocess.Popen([devstack.find_mosquitto(), "-c", str(tmp_path / "hub.conf")],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        devstack.wait_port(port, proc=proc)
        assert connack(port, None, None) == "Not authorized"
        assert connack(port, "yiyang-gateway", "wrong") == "Not authorized"
        assert connack(port, "yiyang-gateway", "s3cret") == "Success"
        limit = int(re.search(r"^max_packet_size (\d+)$", TEMPLATE, re.MULTILINE).group(1))  # type: ignore[union-attr]
        assert limit == devstack.BROKER_MAX_PACKET_BYTES
        gateway = {"username": "yiyang-gateway", "password": "s3cret"}
        assert publish_once("127.0.0.1", port, "yiyang/v1/gw/status", b"{}", **gateway)  # type: ignore[arg-type]
        assert not publish_once("127.0.0.1", port, "yiyang/v1/gw/status", b"x" * 300_000,
                                **gateway)  # type: ignore[arg-type]
    finally:
        devstack.stop_process(proc)
