"""Technician BLE commands: bind_device edits the TOML in place, keeps comments, refuses bad edits."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from gateway.ble_cli import bind_device, format_sightings
from gateway.ble_scan import Sighting, drivers_for
from gateway.config import DriverName, load_config
from gateway.errors import ConfigError

CONFIG = """\
# Hub in flat 302, installed 2024-05-01 by technician Wang.
[gateway]
id = "gw-0001"
data_dir = "/var/lib/yiyang"

[platform]
url = "https://platform.example.cn"
secret_file = "/etc/yiyang/platform.secret"  # provisioned by the installer

[[residents]]
id = "r-0001"

# The kitchen meter is on the serial cable.
[[devices]]
id = "glucose-kitchen"
driver = "onetouch-ultra2"
port = "/dev/ttyUSB0"
resident = "r-0001"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG, encoding="utf-8")
    path.chmod(0o640)
    return path


def test_binding_a_new_cuff_appends_an_entry_and_keeps_every_comment(config_file: Path) -> None:
    bind_device(config_file, "bp-bedroom", "ble-bps", "c4:7c:8d:6a:11:02", "r-0001")

    text = config_file.read_text(encoding="utf-8")
    assert text.startswith(CONFIG)
    assert text[len(CONFIG) :] == (
        '\n[[devices]]\nid = "bp-bedroom"\ndriver = "ble-bps"\naddress = "C4:7C:8D:6A:11:02"\nresident = "r-0001"\n'
    )
    devices = load_config(config_file).devices
    assert [(d.id, d.driver, d.address) for d in devices] == [
        ("glucose-kitchen", DriverName.ONETOUCH_ULTRA2, ""),
        ("bp-bedroom", DriverName.BLE_BPS, "C4:7C:8D:6A:11:02"),
    ]
    assert os.stat(config_file).st_mode & 0o777 == 0o640


def test_binding_an_existing_id_replaces_its_address_in_place(config_file: Path) -> None:
    bind_device(config_file, "bp-bedroom", "ble-bps", "C4:7C:8D:6A:11:02", "r-0001")
    bind_device(config_file, "bp-bedroom", "ble-bps", "C4:7C:8D:6A:11:99", "r-0001")

    devices = load_config(config_file).devices
    assert [(d.id, d.address) for d in devices] == [("glucose-kitchen", ""), ("bp-bedroom", "C4:7C:8D:6A:11:99")]
    assert config_file.read_text(encoding="utf-8").count("[[devices]]") == 2


def test_an_edit_that_makes_the_file_invalid_is_refused_and_the_file_left_untouched(config_file: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        bind_device(config_file, "bp-bedroom", "ble-bps", "C4:7C:8D:6A:11:02", "r-9999")
    assert caught.value.source == str(config_file)
    assert any("r-9999" in problem for problem in caught.value.problems)
    assert config_file.read_text(encoding="utf-8") == CONFIG


def test_a_serial_driver_with_an_address_is_refused(config_file: Path) -> None:
    with pytest.raises(ConfigError, match="address"):
        bind_device(config_file, "glucose-kitchen", "onetouch-ultra2", "C4:7C:8D:6A:11:02", "r-0001")
    assert config_file.read_text(encoding="utf-8") == CONFIG


def test_a_file_with_broken_toml_is_refused_before_any_edit(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[gateway\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        bind_device(path, "bp-bedroom", "ble-bps", "C4:7C:8D:6A:11:02", "r-0001")
    assert path.read_text(encoding="utf-8") == "[gateway\n"


def test_adverts_name_the_drivers_that_serve_them() -> None:
    assert drivers_for(["00001810-0000-1000-8000-00805f9b34fb", "0000180f-0000-1000-8000-00805f9b34fb"], []) == (
        "ble-bps",
    )
    assert drivers_for([], ["0000fcd2-0000-1000-8000-00805f9b34fb"]) == ("bthome-button",)
    assert drivers_for(["E95D0753-251D-470A-A062-FA1922DFA9A8"], []) == ("microbit-accel",)
    assert drivers_for([], ["0000fe95-0000-1000-8000-00805f9b34fb"]) == ("xiaomi-mibeacon",)


def test_a_vendors_own_matcher_comes_before_the_sig_profile_its_device_also_advertises() -> None:
    # An A&D UA-651BLE advertises its name and the Blood Pressure Service: bind it as and-bp.
    assert drivers_for(["00001810-0000-1000-8000-00805f9b34fb"], [], local_name="A&D_UA-651BLE_1B") == (
        "and-bp", "ble-bps")


def test_the_scan_table_lists_health_devices_first_and_says_which_are_configured() -> None:
    table = format_sightings(
        [
            Sighting("11:22:33:44:55:66", "TV", -40, ()),
            Sighting("C4:7C:8D:6A:11:02", "BLESmart_0000", -70, ("ble-bps",)),
            Sighting("A4:C1:38:00:00:01", None, -55, ("bthome-button",)),
        ],
        {"c4:7c:8d:6a:11:02": "bp-bedroom"},
    )
    out = io.StringIO()
    print(table, file=out)
    assert out.getvalue().splitlines() == [
        "ADDRESS            NAME           RSSI  DRIVERS        NEEDS  CONFIGURED AS",
        "A4:C1:38:00:00:01  -              -55   bthome-button  -      -",
        "C4:7C:8D:6A:11:02  BLESmart_0000  -70   ble-bps        -      bp-bedroom",
        "11:22:33:44:55:66  TV             -40   -              -      -",
    ]


def test_the_scan_table_says_what_the_driver_to_bind_needs() -> None:
    table = format_sightings(
        [
            Sighting("D0:24:18:53:AB:07", "MMC-W505", -58, ("xiaomi-mibeacon",)),
            Sighting("5C:F8:21:00:65:1B", "A&D_UA-651BLE_1B", -61, ("and-bp", "ble-bps")),
        ],
        {},
    )
    assert table.splitlines() == [
        "ADDRESS            NAME              RSSI  DRIVERS          NEEDS           CONFIGURED AS",
        "D0:24:18:53:AB:07  MMC-W505          -58   xiaomi-mibeacon  key             -",
        "5C:F8:21:00:65:1B  A&D_UA-651BLE_1B  -61   and-bp,ble-bps   pairing+button  -",
    ]
