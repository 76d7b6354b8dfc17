"""`yiyang doctor`'s checks against real parts: each broken one at a time names that problem and its fix.

Real: the fake BlueZ on a private D-Bus (the real dbus-fast client), ptys, Mosquitto with passwords,
the reference platform, a tmpfs as the data directory. Injected: the kernel's clock state (this
machine's NTP is not the test's to change) and /proc/devices (a pty is no ttyUSB).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import devstack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fake_bluez import FakeBluez
from tmpfs import fill, tmpfs

from gateway.clock import ClockSyncMode
from gateway.config import GatewayConfig, parse_config
from gateway.config.access import ServiceUser
from gateway.config.schema import PlatformSettings, UplinkProfile
from gateway.doctor import Report, Status, hub_report
from gateway.doctor.bluetooth import bluetooth_check
from gateway.doctor.broker import broker_check
from gateway.doctor.daemon_status import daemon_check, outbox_checks, reported_check
from gateway.doctor.host import clock_check, disk_check, fleet_key_check
from gateway.doctor.platform_probe import platform_check
from gateway.doctor.report import Check
from gateway.doctor.serial_ports import port_check, stable_names
from gateway.doctor.unit import char_devices

GATEWAY = "gw-test"
SECRET = "demo-secret-0123456789abcdef"
HUB_USER, HUB_PASSWORD = "yiyang-gateway", "hub-password-1"
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
PROC_DEVICES = "Character devices:\n  4 tty\n  4 ttyS\n136 pts\n166 ttyACM\n188 ttyUSB\n\nBlock devices:\n  7 loop\n"


def status_document(updated_at: datetime, **queue: Any) -> dict[str, Any]:
    """What gateway.status_publisher writes, in the shape the doctor reads."""
    return {
        "state": "online", "gateway_id": GATEWAY, "version": "0.1.0", "started_at": (updated_at - timedelta(hours=2))
        .isoformat(), "updated_at": updated_at.isoformat(), "clock_synced": True, "mqtt_connected": True,
        "devices": {}, "problems": [], "uplink": {"enabled": True, "consecutive_failures": 0, "last_error": None},
        "queue": {"pending": 0, "dead": 0, "delivered": 12, "pending_alerts": 0, "oldest_pending_at": None,
                  "db_bytes": 3 * 2**20, "budget_bytes": 16 * 2**20, "budget_state": "ok", **queue},
    }


@pytest.fixture
def pty() -> Iterator[str]:
    """A serial device node that exists: the slave side of a pty."""
    controller, device = os.openpty()
    try:
        yield os.ttyname(device)
    finally:
        os.close(controller)
        os.close(device)


def fleet_key(path: Path) -> Path:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(raw)
    path.chmod(0o644)
    return path


# -- the report's lines are an interface -------------------------------------------------------------


def test_a_check_is_one_line_and_a_failed_one_adds_its_fix() -> None:
    report = Report((Check("clock", Status.OK, "synchronised by NTP"),
                     Check("broker", Status.PROBLEM, "cannot connect to 127.0.0.1:1883: connection refused",
                           "systemctl restart mosquitto"),
                     Check("bluetooth", Status.SKIPPED, "no Bluetooth devices configured")))
    assert report.lines() == [
        "ok       clock: synchronised by NTP",
        "PROBLEM  broker: cannot connect to 127.0.0.1:1883: connection refused",
        "         fix: systemctl restart mosquitto",
        "skipped  bluetooth: no Bluetooth devices configured",
        "1 problem(s) found",
    ]
    assert not report.ok
    assert report.as_json()["problems"] == ["broker: cannot connect to 127.0.0.1:1883: connection refused"]
    assert report.as_json()["checks"][1] == {
        "name": "broker", "status": "problem", "fix": "systemctl restart mosquitto",
        "verdict": "cannot connect to 127.0.0.1:1883: connection refused"}
    with pytest.raises(ValueError, match="one line"):
        Check("x", Status.OK, "two\nlines")


# -- the daemon, from its status ---------------------------------------------------------------------


def test_the_daemon_is_alive_while_its_status_is_fresh_and_stuck_when_it_is_not(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    alive = daemon_check(status_document(NOW - timedelta(seconds=20)), NOW, path)
    assert alive.status is Status.OK and "status written 20 s ago" in alive.verdict
    stuck = daemon_check(status_document(NOW - timedelta(minutes=5)), NOW, path)
    assert stuck.status is Status.PROBLEM
    assert "the daemon is stopped or its event loop is stuck" in stuck.verdict
    assert stuck.fix is not None and stuck.fix.startswith("systemctl restart yiyang")
    gone = daemon_check(None, NOW, path)
    assert gone.verdict == f"not running: no status file at {path}"
    assert gone.fix is not None and gone.fix.startswith("systemctl start yiyang")


def test_what_the_daemon_reports_of_itself_is_one_check_pointing_at_yiyang_status() -> None:
    status = status_document(NOW, dead=2)
    status["devices"] = {"glucose-kitchen": {"last_error": "port vanished"}}
    check = reported_check(status)
    assert check.status is Status.PROBLEM
    assert check.verdict == "2 record(s) rejected by the platform: `yiyang queue --dead 20` (and 1 more)"
    assert check.fix == "yiyang status"
    assert reported_check(status_document(NOW)).status is Status.OK


def test_the_outbox_budget_and_the_oldest_pending_record() -> None:
    budget, pending = outbox_checks(status_document(NOW), NOW, upload_enabled=True)
    assert (budget.status, pending.status) == (Status.OK, Status.OK)
    assert budget.verdict == "3.0 of 16.0 MiB used (storage.budget_mb)"
    full, late = outbox_checks(status_document(NOW, budget_state="full", pending=40,
                                               oldest_pending_at=(NOW - timedelta(hours=3, minutes=5)).isoformat()),
                               NOW, upload_enabled=True)
    assert full.status is Status.PROBLEM and "full: only undelivered records are left" in full.verdict
    assert late.verdict == "40 record(s) waiting, the oldest for 3h05m: uploads are not getting through"
    assert late.fix == "yiyang status"
    stopped = outbox_checks(None, NOW, upload_enabled=True)
    assert [c.status for c in stopped] == [Status.SKIPPED, Status.SKIPPED]


# -- the Bluetooth adapter over D-Bus (fake BlueZ) ---------------------------------------------------


async def test_the_adapter_present_and_powered(fake_bluez: FakeBluez) -> None:
    check = await bluetooth_check(needed=True)
    assert check.status is Status.OK
    assert check.verdict == f"adapter hci0 ({fake_bluez.adapter_address}) present and powered"
    assert (await bluetooth_check(needed=False)).status is Status.SKIPPED


async def test_an_adapter_switched_off(fake_bluez: FakeBluez) -> None:
    await fake_bluez._set_powered(False)
    check = await bluetooth_check(needed=True)
    assert check.status is Status.PROBLEM
    assert check.verdict == f"adapter hci0 ({fake_bluez.adapter_address}) is switched off"
    assert check.fix == "bluetoothctl power on"


async def test_an_adapter_gone(fake_bluez: FakeBluez) -> None:
    await fake_bluez.remove_adapter()
    check = await bluetooth_check(needed=True)
    assert check.status is Status.PROBLEM
    assert check.verdict == "no Bluetooth adapter hci0; BlueZ sees no adapter at all"
    assert check.fix is not None and check.fix.endswith("then systemctl restart bluetooth")


async def test_bluetoothd_not_running(fake_bluez_bus: str) -> None:
    check = await bluetooth_check(needed=True)
    assert check.status is Status.PROBLEM
    assert check.verdict == "bluetoothd is not running (nothing owns org.bluez on the system D-Bus)"
    assert check.fix == "systemctl enable --now bluetooth"


# -- serial ports ------------------------------------------------------------------------------------


def test_a_port_that_is_there_and_open_to_the_service_user(pty: str) -> None:
    check = port_check("glucose-kitchen", pty, ServiceUser.current(), None)
    assert check.status is Status.OK
    assert check.verdict == f"{pty} present, user {ServiceUser.current().name} may read and write it"


def test_a_port_gone(tmp_path: Path) -> None:
    check = port_check("glucose-kitchen", "/dev/yiyang-serial-ch340-port-9.9", ServiceUser.current(), None)
    assert check.status is Status.PROBLEM
    assert check.verdict == ("/dev/yiyang-serial-ch340-port-9.9 is not there: the adapter is unplugged, "
                             "or its name changed")
    assert check.fix == "plug it in, then find its name: ls -l /dev/yiyang-serial-* /dev/serial/by-id/"


def test_a_port_the_service_user_may_not_open(pty: str) -> None:
    nobody = ServiceUser.named("nobody")
    check = port_check("glucose-kitchen", pty, nobody, None)
    assert check.status is Status.PROBLEM
    assert check.verdict.startswith(f"user nobody cannot read and write {pty} (owner ")
    assert check.fix is not None and check.fix.startswith(f"chgrp dialout {pty} && chmod g+rw {pty}")


def test_a_port_of_a_class_the_unit_does_not_allow(pty: str) -> None:
    check = port_check("glucose-kitchen", pty, ServiceUser.current(), char_devices(PROC_DEVICES))
    assert check.status is Status.PROBLEM
    assert check.verdict == (f"{pty} is a pts device: the service may open only ttyUSB, ttyACM, ttyAMA, ttyS "
                             "(DeviceAllow= in its unit)")
    assert check.fix == "systemctl edit yiyang, and add [Service] DeviceAllow=char-pts rw"
    assert char_devices(PROC_DEVICES)[4] == ("tty", "ttyS")


def test_stable_names_are_found_for_a_kernel_numbered_port(tmp_path: Path, pty: str) -> None:
    (tmp_path / "serial" / "by-id").mkdir(parents=True)
    (tmp_path / "yiyang-serial-ch340-port-1.2").symlink_to(pty)
    (tmp_path / "serial" / "by-id" / "usb-1a86_USB_Serial-if00-port0").symlink_to(pty)
    (tmp_path / "yiyang-serial-ftdi-A50285BI").symlink_to("/dev/null")
    assert stable_names(pty, tmp_path) == [str(tmp_path / "yiyang-serial-ch340-port-1.2"),
                                           str(tmp_path / "serial" / "by-id" / "usb-1a86_USB_Serial-if00-port0")]


# -- the broker, with the hub's credentials ----------------------------------------------------------


def mqtt_settings(port: int, password_file: Path | None) -> GatewayConfig:
    return parse_config(config_text(mqtt=f'port = {port}\nusername = "{HUB_USER}"\n'
                                         + (f'password_file = "{password_file}"\n' if password_file else "")),
                        "test.toml")


async def test_the_broker_lets_the_hub_in(tmp_path: Path) -> None:
    password_file = tmp_path / "broker.password"
    with devstack.mosquitto(tmp_path / "broker", accounts={HUB_USER: HUB_PASSWORD}) as broker:
        cfg = mqtt_settings(broker.port, password_file)
        check = await broker_check(cfg.mqtt, HUB_PASSWORD, None)
        assert check.status is Status.OK
        assert check.verdict == f"connected to 127.0.0.1:{broker.port} as {HUB_USER}"
        refused = await broker_check(cfg.mqtt, "not-the-password", None)
    assert refused.status is Status.PROBLEM
    # Mosquitto 2.0 answers a wrong password "Not authorized" (135), some brokers "Bad user name or password" (134).
    assert refused.verdict == (f"the broker at 127.0.0.1:{broker.port} refuses user {HUB_USER} with the password in "
                               f"{password_file} (Not authorized)")
    assert refused.fix is not None
    assert refused.fix.startswith(f"mosquitto_passwd /etc/mosquitto/yiyang.passwd {HUB_USER}")


async def test_a_broker_that_is_down() -> None:
    port = devstack.free_port()
    check = await broker_check(mqtt_settings(port, None).mqtt, HUB_PASSWORD, None)
    assert check.status is Status.PROBLEM
    assert check.verdict == f"cannot connect to 127.0.0.1:{port}: connection refused: the broker is not running"
    assert check.fix is not None and check.fix.startswith("systemctl restart mosquitto")


# -- the platform: a signed probe that stores nothing ------------------------------------------------


def platform_settings(url: str, **extra: Any) -> PlatformSettings:
    return PlatformSettings(url=url, secret_file=Path("/etc/yiyang/platform.secret"), timeout_s=3.0, **extra)


def stored(platform: devstack.Platform) -> dict[str, Any]:
    with urllib.request.urlopen(f"{platform.url}/admin/records", timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


async def test_the_platform_accepts_the_hubs_signature_and_stores_nothing(platform: devstack.Platform) -> None:
    check = await platform_check(platform_settings(platform.url), GATEWAY, SECRET.encode())
    assert check.status is Status.OK
    assert check.verdict == (f"{platform.url}/v1/gateways/{GATEWAY}/records accepts this hub's signature (a signed "
                             "empty batch, HTTP 400; a wrongly signed one, HTTP 401; nothing stored)")
    seen = stored(platform)
    assert seen["count"] == 0
    assert seen["upload_answers"] == {"400": 1, "401": 1}


async def test_a_wrong_secret_is_named(platform: devstack.Platform) -> None:
    check = await platform_check(platform_settings(platform.url), GATEWAY, b"not-the-secret")
    assert check.status is Status.PROBLEM
    assert check.verdict == (f"{platform.url}/v1/gateways/{GATEWAY}/records refuses this hub's signature (HTTP 401): "
                             f"the secret in /etc/yiyang/platform.secret or the gateway id {GATEWAY} is not the "
                             "one the platform issued")
    assert check.fix == ("install -m 0600 -o yiyang -g yiyang ISSUED_SECRET_FILE /etc/yiyang/platform.secret && "
                         "systemctl restart yiyang")


async def test_a_platform_that_judges_the_body_first_proves_nothing(tmp_path: Path) -> None:
    with devstack.platform_server(tmp_path / "p", GATEWAY, extra_args=("--faults", "400")) as platform:
        check = await platform_check(platform_settings(platform.url), GATEWAY, SECRET.encode())
    assert check.status is Status.WARNING
    assert "the signature cannot be proved without storing a record" in check.verdict


async def test_a_hub_clock_far_off_is_told_apart_from_a_wrong_secret(tmp_path: Path) -> None:
    with devstack.platform_server(tmp_path / "p", GATEWAY, extra_args=("--clock-offset-s", "3600")) as platform:
        check = await platform_check(platform_settings(platform.url), GATEWAY, SECRET.encode())
    assert check.status is Status.WARNING
    assert "accepts this hub's signature only with the platform's time: the hub clock is 3600 s behind" in check.verdict


async def test_the_fhir_profile_is_probed_at_its_base(tmp_path: Path, platform: devstack.Platform) -> None:
    settings = platform_settings(platform.url, profile=UplinkProfile.FHIR_R4, fhir_base=f"{platform.url}/fhir")
    check = await platform_check(settings, GATEWAY, SECRET.encode())
    assert check.status is Status.OK, check
    assert check.verdict.startswith(f"{platform.url}/fhir accepts this hub's signature")


async def test_a_platform_out_of_reach() -> None:
    url = f"http://127.0.0.1:{devstack.free_port()}"
    check = await platform_check(platform_settings(url), GATEWAY, SECRET.encode())
    assert check.status is Status.PROBLEM
    assert check.verdict.startswith(f"cannot reach {url}/v1/gateways/{GATEWAY}/records: ")


# -- the hub's machine: clock, disk, fleet key -------------------------------------------------------


def test_the_clock_verdict_follows_the_kernel() -> None:
    assert clock_check(True, ClockSyncMode.AUTO).verdict == "synchronised by NTP"
    unsynced = clock_check(False, ClockSyncMode.AUTO)
    assert unsynced.status is Status.PROBLEM
    assert unsynced.verdict == ("not synchronised by NTP: records are stamped hub_unsynced and fleet commands that "
                                "must not run twice are refused")
    assert unsynced.fix is not None and unsynced.fix.startswith("timedatectl set-ntp true")
    assert clock_check(None, ClockSyncMode.AUTO).status is Status.WARNING


def test_a_disk_that_fills_before_the_outbox_budget(tmp_path: Path) -> None:
    storage = parse_config(config_text(storage="budget_mb = 16\n"), "t.toml").storage
    with tmpfs(tmp_path / "data", 24 * 1024) as data:
        assert disk_check(data, storage).status is Status.OK
        fill(data, leave_bytes=4 * 2**20)
        check = disk_check(data, storage)
    assert check.status is Status.PROBLEM
    assert check.verdict.endswith("the outbox uses 0.0 of its 16 MiB budget: the disk fills before the budget "
                                  "stops the outbox")
    assert check.fix is not None and "lower [storage] budget_mb" in check.fix


def test_the_fleet_key(tmp_path: Path) -> None:
    user = ServiceUser.current()
    none = fleet_key_check(parse_config(config_text(), "t.toml").fleet, user)
    assert none.status is Status.PROBLEM and none.verdict.startswith("none installed")
    key = fleet_key(tmp_path / "fleet.pub")
    good = fleet_key_check(parse_config(config_text(fleet=f'public_key_file = "{key}"\n'), "t.toml").fleet, user)
    assert good.status is Status.OK
    key.write_text("not a key\n")
    bad = fleet_key_check(parse_config(config_text(fleet=f'public_key_file = "{key}"\n'), "t.toml").fleet, user)
    assert bad.status is Status.PROBLEM


# -- the whole report, each check broken one at a time -----------------------------------------------


def config_text(*, data_dir: Path = Path("/var/lib/yiyang"), platform_url: str = "http://127.0.0.1:9",
                secret_file: Path = Path("/etc/yiyang/platform.secret"), mqtt: str = "", storage: str = "",
                fleet: str = "", devices: str = "") -> str:
    return f"""
[gateway]
id = "{GATEWAY}"
data_dir = "{data_dir}"
[platform]
url = "{platform_url}"
secret_file = "{secret_file}"
timeout_s = 3.0
[mqtt]
{mqtt}
[storage]
{storage}
[fleet]
{fleet}
[[residents]]
id = "r-0001"
{devices}
"""


BREAKAGES = ("adapter missing", "port gone", "broker down", "wrong secret", "clock unsynced", "disk nearly full")


@pytest.mark.parametrize("broken", [None, *BREAKAGES])
async def test_each_breakage_alone_is_the_one_problem_named(broken: str | None, tmp_path: Path, pty: str,
                                                            fake_bluez: FakeBluez) -> None:
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(devstack.mosquitto(tmp_path / "broker", accounts={HUB_USER: HUB_PASSWORD}))
        platform = stack.enter_context(devstack.platform_server(tmp_path / "platform", GATEWAY, SECRET))
        data = stack.enter_context(tmpfs(tmp_path / "data", 24 * 1024))
        secret = devstack.write_secret(tmp_path / "etc" / "platform.secret",
                                       "a-wrong-secret" if broken == "wrong secret" else SECRET)
        password = devstack.write_secret(tmp_path / "etc" / "broker.password", HUB_PASSWORD)
        key = fleet_key(tmp_path / "etc" / "fleet.pub")
        port = "/dev/yiyang-serial-gone" if broken == "port gone" else pty
        cfg = parse_config(config_text(
            data_dir=data, platform_url=platform.url, secret_file=secret, storage="budget_mb = 16\n",
            mqtt=(f"port = {devstack.free_port() if broken == 'broker down' else broker.port}\n"
                  f'username = "{HUB_USER}"\npassword_file = "{password}"\n'),
            fleet=f'public_key_file = "{key}"\n',
            devices=f"""
[[devices]]
id = "glucose-kitchen"
driver = "onetouch-ultra2"
port = "{port}"
resident = "r-0001"
[[devices]]
id = "bp-bedroom"
driver = "ble-bps"
address = "A4:C1:38:00:00:01"
resident = "r-0001"
"""), "gateway.toml")
        if broken == "adapter missing":
            await fake_bluez.remove_adapter()
        if broken == "disk nearly full":
            fill(data, leave_bytes=4 * 2**20)
        now = datetime.now(UTC)
        report = await hub_report(cfg, user=ServiceUser.current(), status=status_document(now), now=now,
                                  status_file=data / "status.json", char_devices=None,
                                  kernel_synced=lambda: broken != "clock unsynced")
    named = {"adapter missing": "bluetooth", "port gone": "serial glucose-kitchen", "broker down": "broker",
             "wrong secret": "platform", "clock unsynced": "clock", "disk nearly full": "disk"}
    assert [c.name for c in report.problems] == ([] if broken is None else [named[broken]]), report.lines()
    assert all(c.fix for c in report.problems)
    assert [c.name for c in report.checks] == [
        "daemon", "daemon reports", "bluetooth", "serial glucose-kitchen", "broker", "platform", "clock", "disk",
        "outbox", "oldest pending", "fleet key"]
