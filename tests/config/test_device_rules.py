"""What a [[devices]] entry accepts and refuses for each driver, message by message.

These pin the words ``yiyang config check`` says about devices: the rules behind them are built from
the driver catalogue (drivers.catalogue), and a new row must not change what a technician reads
about the devices that were there before it.
"""

from __future__ import annotations

import dataclasses

import pytest

from drivers.catalogue import CATALOGUE, Binding, DeviceOption
from gateway.config import ConfigError, parse_config, parse_config_mapping

HEAD = """\
[gateway]
id = "gw-0001"
[platform]
url = "https://platform.example.cn"
secret_file = "/etc/yiyang/platform.secret"
[[residents]]
id = "r-0001"
"""
HEAD_LINES = HEAD.count("\n")

SERIAL = ("onetouch-ultra2", "mr60fda1", "suntech-nibp", "gsm-modem")
BLE = ("ble-bps", "ble-gls", "ble-plx", "ble-hts", "bthome-button", "microbit-accel", "thingy-motion",
       "viatom-oximeter", "o2ring", "ichoice-oximeter")
MEASURING = ("onetouch-ultra2", "suntech-nibp", "ble-bps", "ble-gls", "ble-plx", "ble-hts", "viatom-oximeter", "o2ring",
             "ichoice-oximeter")
OPTIONS = {
    "measure_every_min = 10.0": ("suntech-nibp",),
    "sample_rate_hz = 100.0": ("microbit-accel", "thingy-motion"),
    'bind_key = "231d39c1d7cc1ab1aee224cd096db932"': ("bthome-button",),
}
"""Settings only some drivers take, and which."""


def entry(driver: str, *extra: str, resident: bool = True) -> list[str]:
    """The lines of a valid [[devices]] entry for ``driver``, then ``extra`` lines."""
    where = 'port = "/dev/ttyUSB0"' if driver in SERIAL else 'address = "C4:7C:8D:6A:11:02"'
    lines = ["[[devices]]", 'id = "dev"', f'driver = "{driver}"', where]
    if resident and driver != "gsm-modem":
        lines.append('resident = "r-0001"')
    return [*lines, *extra]


def problems(lines: list[str]) -> list[str]:
    text = HEAD + "\n".join(lines) + "\n"
    try:
        parse_config(text, "cfg.toml")
    except ConfigError as exc:
        return list(exc.problems)
    return []


def at(lines: list[str], key: str) -> int:
    """The file line of ``key = ...`` among ``lines`` (after HEAD)."""
    return HEAD_LINES + 1 + next(i for i, line in enumerate(lines) if line.split(" = ", maxsplit=1)[0] == key)


@pytest.mark.parametrize("driver", SERIAL + BLE)
def test_every_driver_takes_a_plain_entry(driver: str) -> None:
    assert problems(entry(driver)) == []


@pytest.mark.parametrize("driver", SERIAL + BLE)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_options_are_taken_by_their_drivers_only(driver: str, option: str) -> None:
    lines = entry(driver, option)
    key = option.split(" = ", maxsplit=1)[0]
    refusal = {
        "measure_every_min": f"driver {driver} cannot be told to measure",
        "sample_rate_hz": f"driver {driver} streams no accelerometer",
        "bind_key": "bind_key is for bthome-button or xiaomi-mibeacon devices",
    }[key]
    expected = [] if driver in OPTIONS[option] else [f"cfg.toml:{at(lines, key)}: devices[0].{key}: {refusal}; "
                                                     f"remove {key}"]
    assert problems(lines) == expected


@pytest.mark.parametrize("driver", SERIAL + BLE)
def test_a_measurement_schedule_is_for_measuring_drivers(driver: str) -> None:
    lines = entry(driver, "expect_reading_every_h = 26")
    expected = [] if driver in MEASURING else [
        f"cfg.toml:{at(lines, 'expect_reading_every_h')}: devices[0].expect_reading_every_h: driver {driver} takes "
        "no scheduled measurements; remove expect_reading_every_h (use silent_after_min to watch that it is alive)"]
    assert problems(lines) == expected


@pytest.mark.parametrize("driver", SERIAL + BLE)
def test_every_driver_but_the_modem_belongs_to_a_resident(driver: str) -> None:
    lines = entry(driver, resident=False)
    if driver == "gsm-modem":
        assert problems(lines) == []
        with_resident = [*lines, 'resident = "r-0001"']
        assert problems(with_resident) == [
            f"cfg.toml:{at(with_resident, 'resident')}: devices[0].resident: driver gsm-modem measures nobody; "
            "remove resident"]
    else:
        assert problems(lines) == [
            f"cfg.toml:{HEAD_LINES + 1}: devices[0].resident: whose readings these are is not said; "
            "set resident to a resident id"]


@pytest.mark.parametrize("driver", SERIAL + BLE)
def test_a_silence_limit_needs_someone_to_warn(driver: str) -> None:
    lines = entry(driver, "silent_after_min = 30")
    expected = [] if driver != "gsm-modem" else [
        f"cfg.toml:{at(lines, 'silent_after_min')}: devices[0].silent_after_min: driver gsm-modem belongs to no "
        "resident to warn; remove silent_after_min"]
    assert problems(lines) == expected


@pytest.mark.parametrize("driver", SERIAL)
def test_serial_drivers_need_a_port_and_refuse_ble_settings(driver: str) -> None:
    lines = [line for line in entry(driver) if not line.startswith("port")]
    assert problems(lines) == [
        f"cfg.toml:{HEAD_LINES + 1}: devices[0].port: driver {driver} is a serial driver and needs a port; set port"]
    lines = entry(driver, 'address = "C4:7C:8D:6A:11:02"', 'ble_notify = "acquire-notify"')
    assert problems(lines) == [
        f"cfg.toml:{at(lines, 'address')}: devices[0].address: address is for BLE drivers; remove address",
        f"cfg.toml:{at(lines, 'ble_notify')}: devices[0].ble_notify: ble_notify is for BLE drivers; remove ble_notify",
    ]
    assert problems(entry(driver, 'ble_notify = "start-notify"', "baudrate = 9600")) == []


@pytest.mark.parametrize("driver", BLE)
def test_ble_drivers_need_an_address_and_refuse_serial_settings(driver: str) -> None:
    lines = [line for line in entry(driver) if not line.startswith("address")]
    assert problems(lines) == [
        f"cfg.toml:{HEAD_LINES + 1}: devices[0].address: driver {driver} is a BLE driver and needs an address; "
        "set address"]
    lines = entry(driver, 'port = "/dev/ttyUSB0"', "baudrate = 9600")
    assert problems(lines) == [
        f"cfg.toml:{at(lines, 'port')}: devices[0].port: port is for serial drivers; remove port",
        f"cfg.toml:{at(lines, 'baudrate')}: devices[0].baudrate: baudrate is for serial drivers; remove baudrate",
    ]
    assert problems(entry(driver, 'ble_notify = "acquire-notify"')) == []


def test_an_unknown_driver_is_refused_with_the_names_there_are() -> None:
    lines = entry("ble-bp")
    assert problems(lines) == [
        f"cfg.toml:{at(lines, 'driver')}: devices[0].driver: a string ('ble-bp') is not allowed; did you mean "
        f"'ble-bps'? use one of: {', '.join(CATALOGUE)}"]


def test_one_modem_is_used() -> None:
    modem = [line.replace('"dev"', '"modem-1"') for line in entry("gsm-modem")]
    spare = [line.replace('"dev"', '"modem-2"').replace("ttyUSB0", "ttyUSB1") for line in entry("gsm-modem")]
    assert problems([*modem, *spare]) == [
        f"cfg.toml:{HEAD_LINES + 1}: devices: 2 gsm-modem devices (modem-1, modem-2); one is used; "
        "keep one gsm-modem device"]


def test_a_fleet_document_gets_the_same_words_without_lines() -> None:
    document = {
        "gateway": {"id": "gw-0001"},
        "platform": {"url": "https://platform.example.cn", "secret_file": "/etc/yiyang/platform.secret"},
        "residents": [{"id": "r-0001"}],
        "devices": [{"id": "modem", "driver": "gsm-modem", "port": "/dev/ttyUSB0", "resident": "r-0001"},
                    {"id": "cuff", "driver": "ble-bps", "address": "C4:7C:8D:6A:11:02", "resident": "r-0001",
                     "bind_key": "231d39c1d7cc1ab1aee224cd096db932"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config_mapping(document, "fleet")
    assert caught.value.problems == [
        "fleet: devices[0].resident: driver gsm-modem measures nobody; remove resident",
        "fleet: devices[1].bind_key: bind_key is for bthome-button or xiaomi-mibeacon devices; remove bind_key",
    ]


# --- the rules follow the catalogue's rows ---------------------------------------------------------------


def test_a_driver_whose_row_needs_a_key_is_refused_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    button = CATALOGUE["bthome-button"]
    monkeypatch.setitem(CATALOGUE, "bthome-button", dataclasses.replace(button, binding=Binding(key=True)))
    lines = entry("bthome-button")
    assert problems(lines) == [
        f"cfg.toml:{HEAD_LINES + 1}: devices[0].bind_key: driver bthome-button encrypts what it sends and needs "
        "its key; set bind_key to the device's 32-hex-digit key"]
    assert problems(entry("bthome-button", 'bind_key = "231d39c1d7cc1ab1aee224cd096db932"')) == []


def test_an_option_refused_names_every_driver_that_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    wrist = CATALOGUE["microbit-accel"]
    monkeypatch.setitem(CATALOGUE, "microbit-accel",
                        dataclasses.replace(wrist, options=wrist.options | {DeviceOption.BIND_KEY}))
    lines = entry("ble-bps", 'bind_key = "231d39c1d7cc1ab1aee224cd096db932"')
    assert problems(lines) == [f"cfg.toml:{at(lines, 'bind_key')}: devices[0].bind_key: bind_key is for "
                               "bthome-button or microbit-accel or xiaomi-mibeacon devices; remove bind_key"]
    assert problems(entry("microbit-accel", 'bind_key = "231d39c1d7cc1ab1aee224cd096db932"')) == []
