"""The home broker: reachable, and it lets the hub in with the hub's own credentials.

A short MQTT 5 connect as the hub's broker user (``[mqtt] username`` and ``password_file``), under a
client id of its own: connecting under the daemon's client id would take over the daemon's session.
Nothing is subscribed or published. Inside the daemon (the fleet's ``doctor``) the daemon's own
connection answers instead (:func:`connection_check`).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.schema import MqttSettings
from gateway.doctor.report import Check, ok, problem

NAME = "broker"
BROKER_PASSWORDS = Path("/etc/mosquitto/yiyang.passwd")
"""Where config/mosquitto-hub.conf.example (and scripts/install.sh) keep the broker's accounts."""
CREDENTIALS_REFUSED = frozenset({134, 135})
"""CONNACK reason codes: Bad User Name or Password, Not authorized (Mosquitto's for an unknown user)."""
RESTART = "systemctl restart mosquitto (journalctl -u mosquitto -n 20 says why it stopped)"


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: ssl.SSLContext | None


@dataclass(frozen=True, slots=True)
class Attempt:
    connected: bool
    refusal: int | None = None
    """The CONNACK's reason code when the broker answered and refused."""
    error: str | None = None
    """What went wrong when there was no CONNACK: refused, timed out, TLS, DNS."""


async def broker_check(mqtt: MqttSettings, password: str | None, tls: ssl.SSLContext | None,
                       timeout_s: float = 5.0) -> Check:
    """``password``: the text of ``[mqtt] password_file`` (the caller reads and judges the file)."""
    target = Target(mqtt.host, mqtt.port, mqtt.username or None, password, tls)
    attempt = await asyncio.to_thread(try_connect, target, timeout_s)
    return verdict(mqtt, attempt, timeout_s)


def connection_check(connected: bool, mqtt: MqttSettings) -> Check:
    """The running daemon's own connection, for the fleet's ``doctor`` (which can only arrive over it)."""
    where = f"{mqtt.host}:{mqtt.port}"
    if connected:
        return ok(NAME, f"the daemon is connected to {where} as {mqtt.username or 'anonymous'}")
    return problem(NAME, f"the daemon is not connected to {where}", RESTART)


def verdict(mqtt: MqttSettings, attempt: Attempt, timeout_s: float) -> Check:
    where = f"{mqtt.host}:{mqtt.port}"
    user = mqtt.username or "anonymous"
    if attempt.connected:
        return ok(NAME, f"connected to {where} as {user}")
    if attempt.refusal in CREDENTIALS_REFUSED:
        reason = ReasonCode(PacketTypes.CONNACK, identifier=attempt.refusal).getName()
        source = f"the password in {mqtt.password_file}" if mqtt.password_file else "no password"
        return problem(NAME, f"the broker at {where} refuses user {user} with {source} ({reason})",
                       f"mosquitto_passwd {BROKER_PASSWORDS} {user} (type the password in "
                       f"{mqtt.password_file or '[mqtt] password_file'}), then systemctl reload mosquitto")
    if attempt.refusal is not None:
        reason = ReasonCode(PacketTypes.CONNACK, identifier=attempt.refusal).getName()
        return problem(NAME, f"the broker at {where} refuses the hub: {reason}", "journalctl -u mosquitto -n 20")
    if attempt.error is None:
        return problem(NAME, f"no answer from the broker at {where} within {timeout_s:g} s", RESTART)
    return problem(NAME, f"cannot connect to {where}: {attempt.error}", RESTART)


def try_connect(target: Target, timeout_s: float) -> Attempt:
    """One MQTT 5 connect and disconnect (blocking: run it in a thread)."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"yiyang-doctor-{secrets.token_hex(4)}", protocol=paho.MQTTv5,
                         reconnect_on_failure=False)
    client.connect_timeout = timeout_s
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls is not None:
        client.tls_set_context(target.tls)
    answered = threading.Event()
    codes: list[int] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        codes.append(rc.value)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(target.host, target.port, keepalive=30)
    except OSError as exc:  # refused, DNS, TLS (ssl.SSLError) and timeouts are all OSErrors
        return Attempt(False, error=connect_error(exc, target.host, timeout_s))
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return Attempt(False)
    finally:
        client.disconnect()
        client.loop_stop()
    code = codes[0]
    return Attempt(True) if code == 0 else Attempt(False, refusal=code)


def connect_error(exc: OSError, host: str, timeout_s: float) -> str:
    """What a failed TCP (or TLS) connect means, in a technician's words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: the broker is not running"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host} ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, TimeoutError):
        return f"no TCP connection within {timeout_s:g} s"
    return exc.strerror or str(exc)
