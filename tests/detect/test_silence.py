"""Silence rules with plain monotonic times: missed measurements and wearables gone quiet."""

from __future__ import annotations

import pytest

from gateway.alerts.model import Message
from gateway.config import ConfigError, DeviceSettings, DriverName, parse_config
from gateway.detect.silence import (
    SilenceChange,
    SilenceFinding,
    SilenceWatch,
    WatchedDevice,
    watched_device,
)
from gateway.respond import messages
from gateway.respond.silence import AUDIENCES, Audience
from gateway.vocabulary import AlertKind, Severity

START = 1000.0
MIN = 60.0
HOUR = 3600.0
FAMILY = frozenset({Audience.FAMILY})
FAMILY_AND_TECHNICIAN = frozenset({Audience.FAMILY, Audience.TECHNICIAN})

BP_DAILY = WatchedDevice("bp-bedroom", "r-1", expect_reading_every_h=26)
WRIST = WatchedDevice("wrist", "r-1", silent_after_min=15, fall_protection=True)


def said(findings: list[SilenceFinding]) -> list[tuple[Message, frozenset[Audience]]]:
    """What the family reads of the findings, and who else it is for (gateway.respond's to say)."""
    return [(messages.silence(f), AUDIENCES[f.kind]) for f in findings]


def test_a_missed_measurement_warns_the_family_once() -> None:
    watch = SilenceWatch([BP_DAILY], started_at=START)

    assert watch.check(START + 26 * HOUR - 1) == []
    found = watch.check(START + 26 * HOUR)
    assert found == [SilenceFinding(
        BP_DAILY, AlertKind.MEASUREMENT_MISSED, Severity.WARNING, SilenceChange.STARTED, START,
    )]
    assert said(found) == [(
        Message("测量未完成：设备 bp-bedroom 已 26 小时没有新的测量结果",
                "Measurement missed: no reading from bp-bedroom for 26 h"),
        FAMILY,
    )]
    assert watch.check(START + 40 * HOUR) == []
    assert watch.check(START + 300 * HOUR) == []


def test_the_next_reading_ends_the_missed_measurement_and_re_arms_it() -> None:
    watch = SilenceWatch([BP_DAILY], started_at=START)
    assert len(watch.check(START + 27 * HOUR)) == 1

    came = START + 30 * HOUR
    found = watch.note_reading("bp-bedroom", came)
    assert found == [SilenceFinding(
        BP_DAILY, AlertKind.MEASUREMENT_MISSED, Severity.WARNING, SilenceChange.ENDED, came,
    )]
    assert said(found) == [
        (Message("已收到设备 bp-bedroom 的新测量结果", "A new reading from bp-bedroom came in"), FAMILY),
    ]
    assert watch.note_reading("bp-bedroom", came + 60) == []
    assert watch.check(came + 60 + 26 * HOUR - 1) == []
    assert [f.change for f in watch.check(came + 60 + 26 * HOUR)] == [SilenceChange.STARTED]


def test_being_seen_is_not_a_reading() -> None:
    watch = SilenceWatch([BP_DAILY], started_at=START)
    for hour in range(1, 26):
        assert watch.note_seen("bp-bedroom", START + hour * HOUR) == []
    assert [f.kind for f in watch.check(START + 26 * HOUR)] == [AlertKind.MEASUREMENT_MISSED]


def test_daily_readings_never_warn() -> None:
    watch = SilenceWatch([BP_DAILY], started_at=START)
    for day in range(1, 10):
        t = START + day * 24 * HOUR
        assert watch.check(t) == []
        assert watch.note_reading("bp-bedroom", t) == []


def test_a_silent_wearable_is_urgent_for_family_and_technician_once() -> None:
    watch = SilenceWatch([WRIST], started_at=START)
    watch.note_seen("wrist", START + 5 * MIN)

    assert watch.check(START + 20 * MIN - 1) == []
    found = watch.check(START + 20 * MIN)
    assert found == [SilenceFinding(
        WRIST, AlertKind.DEVICE_SILENT, Severity.URGENT, SilenceChange.STARTED, START + 5 * MIN,
    )]
    assert said(found) == [(
        Message("跌倒监护已中断：设备 wrist 超过 15 分钟没有信号，请检查设备",
                "Fall protection is off: device wrist not heard from for 15 min; check it"),
        FAMILY_AND_TECHNICIAN,
    )]
    assert watch.check(START + 21 * MIN) == []
    assert watch.check(START + 9 * HOUR) == []


def test_a_wearable_coming_back_ends_the_silence_and_re_arms_it() -> None:
    watch = SilenceWatch([WRIST], started_at=START)
    assert len(watch.check(START + 15 * MIN)) == 1

    back = START + 40 * MIN
    found = watch.note_seen("wrist", back)
    assert found == [SilenceFinding(WRIST, AlertKind.DEVICE_SILENT, Severity.URGENT, SilenceChange.ENDED, back)]
    assert said(found) == [(
        Message("设备 wrist 已恢复信号，跌倒监护已恢复", "Device wrist is back: fall protection is on again"),
        FAMILY_AND_TECHNICIAN,
    )]
    assert watch.note_seen("wrist", back + 1) == []
    assert watch.check(back + 1 + 15 * MIN - 1) == []
    found = watch.check(back + 1 + 15 * MIN)
    assert [(f.kind, f.change, f.last_heard) for f in found] == [
        (AlertKind.DEVICE_SILENT, SilenceChange.STARTED, back + 1)
    ]
    assert found[0].key == ("wrist", AlertKind.DEVICE_SILENT)


def test_a_wearable_heard_from_regularly_never_alarms() -> None:
    watch = SilenceWatch([WRIST], started_at=START)
    for minute in range(1, 200, 14):
        t = START + minute * MIN
        assert watch.check(t) == []
        assert watch.note_seen("wrist", t) == []


def test_a_reading_is_a_sign_of_life_too() -> None:
    device = WatchedDevice("cuff", "r-1", expect_reading_every_h=26, silent_after_min=60)
    watch = SilenceWatch([device], started_at=START)
    assert [f.kind for f in watch.check(START + HOUR)] == [AlertKind.DEVICE_SILENT]
    found = watch.note_reading("cuff", START + 2 * HOUR)
    assert [(f.kind, f.change) for f in found] == [(AlertKind.DEVICE_SILENT, SilenceChange.ENDED)]
    assert messages.silence(found[0]) == Message("设备 cuff 已恢复信号", "Device cuff is back")


def test_silence_of_a_device_that_is_no_fall_protection_says_so_plainly() -> None:
    device = WatchedDevice("cuff", "r-1", silent_after_min=60)
    watch = SilenceWatch([device], started_at=START)
    assert [messages.silence(f) for f in watch.check(START + HOUR)] == [Message(
        "设备 cuff 超过 60 分钟没有信号，请检查设备", "Device cuff not heard from for 60 min; check it"
    )]


def test_both_rules_on_several_devices_in_one_check() -> None:
    watch = SilenceWatch([BP_DAILY, WRIST], started_at=START)
    found = watch.check(START + 30 * HOUR)
    assert sorted((f.device_id, f.kind) for f in found) == [
        ("bp-bedroom", AlertKind.MEASUREMENT_MISSED), ("wrist", AlertKind.DEVICE_SILENT)
    ]


def test_a_time_from_the_past_does_not_rewind_the_clock() -> None:
    watch = SilenceWatch([WRIST], started_at=START)
    watch.note_seen("wrist", START + 10 * MIN)
    watch.note_seen("wrist", START + 1 * MIN)
    assert watch.check(START + 24 * MIN) == []
    assert len(watch.check(START + 25 * MIN)) == 1


def test_unwatched_devices_are_ignored() -> None:
    watch = SilenceWatch([WRIST], started_at=START)
    assert watch.note_seen("modem", START + 1) == []
    assert watch.note_reading("thermometer", START + 1) == []


def test_a_device_watched_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'wrist' is watched twice"):
        SilenceWatch([WRIST, WRIST], started_at=START)


def test_a_zero_allowance_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cuff: silent_after_min must be > 0 or None \(off\), got 0"):
        WatchedDevice("cuff", "r-1", silent_after_min=0)


# --- from the configuration: driver defaults -------------------------------------------------------------


def device(driver: DriverName, **settings: float) -> DeviceSettings:
    where = {"address": "C4:7C:8D:6A:11:02"} if driver.startswith(("ble", "microbit", "thingy", "bthome")) \
        else {"port": "/dev/ttyUSB0"}
    return DeviceSettings(id="dev", driver=driver, resident="r-1", **where, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("driver", [DriverName.MICROBIT_ACCEL, DriverName.THINGY_MOTION, DriverName.MR60FDA1])
def test_wearables_and_radars_default_to_15_min(driver: DriverName) -> None:
    assert watched_device(device(driver)) == WatchedDevice("dev", "r-1", None, 15.0, fall_protection=True)
    assert watched_device(device(driver, silent_after_min=5)) == WatchedDevice("dev", "r-1", None, 5, True)


@pytest.mark.parametrize("driver", [
    DriverName.ONETOUCH_ULTRA2, DriverName.SUNTECH_NIBP, DriverName.BLE_BPS, DriverName.BLE_GLS,
    DriverName.BLE_PLX, DriverName.BLE_HTS, DriverName.BTHOME_BUTTON,
])
def test_other_devices_are_not_watched_unless_configured(driver: DriverName) -> None:
    assert watched_device(device(driver)) is None


@pytest.mark.parametrize("driver", [DriverName.BLE_BPS, DriverName.ONETOUCH_ULTRA2])
def test_a_measurement_schedule_and_a_silence_limit_can_be_set(driver: DriverName) -> None:
    configured = device(driver, expect_reading_every_h=26, silent_after_min=120)
    assert watched_device(configured) == WatchedDevice("dev", "r-1", 26, 120, fall_protection=False)


CONFIG = """\
[gateway]
id = "gw-0001"
[platform]
url = "https://platform.example.cn"
secret_file = "/etc/yiyang/platform.secret"
[[residents]]
id = "r-0001"
[[devices]]
id = "bp"
driver = "ble-bps"
address = "C4:7C:8D:6A:11:02"
resident = "r-0001"
expect_reading_every_h = 26
[[devices]]
id = "wrist"
driver = "microbit-accel"
address = "C4:7C:8D:6A:11:03"
resident = "r-0001"
"""


def test_the_configuration_gives_the_watched_devices() -> None:
    config = parse_config(CONFIG, "cfg.toml")
    assert [watched_device(d) for d in config.devices] == [
        WatchedDevice("bp", "r-0001", 26, None, False), WatchedDevice("wrist", "r-0001", None, 15.0, True)
    ]


@pytest.mark.parametrize(("line", "problem"), [
    ("expect_reading_every_h = 0.5",
     "cfg.toml:19: devices[1].expect_reading_every_h: 0.5 is too short to tell silence from an ordinary "
     "pause; use 0 (off) or 1 or more"),
    ("expect_reading_every_h = 721",
     "cfg.toml:19: devices[1].expect_reading_every_h: 721.0 is above the maximum 720; use a value from 0 to 720"),
    ("expect_reading_every_h = 26",
     "cfg.toml:19: devices[1].expect_reading_every_h: driver microbit-accel takes no scheduled measurements; "
     "remove expect_reading_every_h (use silent_after_min to watch that it is alive)"),
    ("silent_after_min = 1441",
     "cfg.toml:19: devices[1].silent_after_min: 1441.0 is above the maximum 1440; use a value from 0 to 1440"),
])
def test_bad_silence_settings_are_refused_with_the_reason(line: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG + line + "\n", "cfg.toml")
    assert caught.value.problems == [problem]
