"""gateway.config: a good file, every class of error on its exact line, the documented default file."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from drivers.catalogue import CATALOGUE
from gateway.config import (
    BleNotify,
    ClockSync,
    ConfigError,
    DetectSettings,
    DeviceSettings,
    DriverName,
    GatewayConfig,
    GatewaySettings,
    LogLevel,
    MqttSettings,
    PlatformSettings,
    ResidentSettings,
    StorageSettings,
    Thresholds,
    load_config,
    merge_sections,
    parse_config,
    parse_config_mapping,
)
from gateway.config.check import check_file, comment_for, render_default_toml, render_effective
from gateway.config.locate import Locator
from gateway.config.schema import setting_of

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILE = REPO / "config" / "gateway.toml"

# Line numbers matter: the error tests replace one numbered line of this document.
GOOD_LINES = [
    "[gateway]",  # 1
    'id = "gw-0001"',  # 2
    'data_dir = "/var/lib/yiyang"',  # 3
    "",  # 4
    "[platform]",  # 5
    'url = "https://platform.example.cn"',  # 6
    'secret_file = "/etc/yiyang/platform.secret"',  # 7
    "",  # 8
    "[[residents]]",  # 9
    'id = "r-0001"',  # 10
    "",  # 11
    "[[residents]]",  # 12
    'id = "r-0002"',  # 13
    "[residents.thresholds]",  # 14
    "glucose_level1_hypo_mmol_l = 4.4",  # 15
    "",  # 16
    "[[devices]]",  # 17
    'id = "glucose-kitchen"',  # 18
    'driver = "onetouch-ultra2"',  # 19
    'port = "/dev/ttyUSB0"',  # 20
    'resident = "r-0001"',  # 21
    "",  # 22
    "[[devices]]",  # 23
    'id = "bp-bedroom"',  # 24
    'driver = "ble-bps"',  # 25
    'address = "C4:7C:8D:6A:11:02"',  # 26
    'resident = "r-0002"',  # 27
]
GOOD = "\n".join(GOOD_LINES) + "\n"


def with_lines(**lines: str) -> str:
    """GOOD with numbered lines replaced: with_lines(l20='port = 5')."""
    edited = list(GOOD_LINES)
    for key, text in lines.items():
        edited[int(key[1:]) - 1] = text
    return "\n".join(edited) + "\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.toml")
    assert caught.value.source == "cfg.toml"
    return caught.value.problems


def test_good_file_parses_into_the_whole_config() -> None:
    overridden = dataclasses.replace(Thresholds(), glucose_level1_hypo_mmol_l=4.4)
    assert parse_config(GOOD, "cfg.toml") == GatewayConfig(
        gateway=GatewaySettings(id="gw-0001", data_dir=Path("/var/lib/yiyang")),
        platform=PlatformSettings(
            url="https://platform.example.cn", secret_file=Path("/etc/yiyang/platform.secret")
        ),
        mqtt=MqttSettings(client_id="yiyang-gw-0001"),
        residents=(
            ResidentSettings(id="r-0001", thresholds=Thresholds()),
            ResidentSettings(id="r-0002", thresholds=overridden),
        ),
        devices=(
            DeviceSettings(
                id="glucose-kitchen",
                driver=DriverName.ONETOUCH_ULTRA2,
                port="/dev/ttyUSB0",
                resident="r-0001",
            ),
            DeviceSettings(
                id="bp-bedroom", driver=DriverName.BLE_BPS, address="C4:7C:8D:6A:11:02", resident="r-0002"
            ),
        ),
    )


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_config(path) == parse_config(GOOD, "cfg.toml")
    assert check_file(path) == []


def test_enum_settings_parse_to_their_enums() -> None:
    text = with_lines(l3='clock_sync = "assume_unsynced"\nlog_level = "debug"')
    gateway = parse_config(text, "cfg.toml").gateway
    assert (gateway.clock_sync, gateway.log_level) == (ClockSync.ASSUME_UNSYNCED, LogLevel.DEBUG)


# --- one problem, on its exact line ----------------------------------------------------------------

ONE_PROBLEM = [
    pytest.param(
        {"l2": 'id = "GW 1"'},
        "cfg.toml:2: gateway.id: 'GW 1' is not lowercase letters, digits and -, not starting with -, "
        "at most 63 characters; correct it",
        id="pattern",
    ),
    pytest.param(
        {"l3": 'data_dir = "var/lib/yiyang"'},
        "cfg.toml:3: gateway.data_dir: 'var/lib/yiyang' is a relative path; write the full path, starting with /",
        id="relative-path",
    ),
    pytest.param(
        {"l3": 'timezone = "Asia/Shangai"'},
        "cfg.toml:3: gateway.timezone: 'Asia/Shangai' is not an IANA time zone; "
        'use a name like "Asia/Shanghai"',
        id="timezone",
    ),
    pytest.param(
        {"l3": 'clock_sync = "synced"'},
        "cfg.toml:3: gateway.clock_sync: a string ('synced') is not allowed; did you mean 'assume_synced'? "
        "use one of: auto, assume_synced, assume_unsynced",
        id="enum",
    ),
    pytest.param(
        {"l3": 'log_levl = "info"'},
        "cfg.toml:3: gateway.log_levl: unknown setting in [gateway]; did you mean 'log_level'? Otherwise remove it",
        id="unknown-key-in-table",
    ),
    pytest.param(
        {"l6": 'url = "ftp://platform.example.cn"'},
        "cfg.toml:6: platform.url: 'ftp://platform.example.cn' is not an http(s) URL; "
        'write the base URL, e.g. "https://platform.example.cn"',
        id="url-scheme",
    ),
    pytest.param(
        {"l7": ""},
        "cfg.toml:5: platform.secret_file: required setting is missing; add secret_file = ... under [platform]",
        id="required-missing-falls-back-to-table",
    ),
    pytest.param(
        {"l7": 'secret_file = "/etc/s"\nbatch_max_records = 501'},
        "cfg.toml:8: platform.batch_max_records: 501 is above the maximum 500; use a value from 1 to 500",
        id="above-range",
    ),
    pytest.param(
        {"l7": 'secret_file = "/etc/s"\ntimeout_s = 0.5'},
        "cfg.toml:8: platform.timeout_s: 0.5 is below the minimum 1; use a value from 1 to 120",
        id="below-range",
    ),
    pytest.param(
        {"l7": 'secret_file = "/etc/s"\ntimeout_s = "15"'},
        "cfg.toml:8: platform.timeout_s: expected a number, got a string ('15'); write a number without quotes",
        id="quoted-number",
    ),
    pytest.param(
        {"l7": 'secret_file = "/etc/s"\ngzip = 1'},
        "cfg.toml:8: platform.gzip: expected true or false, got an integer (1); write true or false",
        id="int-for-bool",
    ),
    pytest.param(
        {"l7": 'secret_file = "/etc/s"\ntimeout_s = nan'},
        "cfg.toml:8: platform.timeout_s: nan is not a finite number; write a number",
        id="nan",
    ),
    pytest.param(
        {"l7": 'secret_file = "/etc/s"\nbackoff_initial_s = 30.0\nbackoff_max_s = 10.0'},
        "cfg.toml:9: platform.backoff_max_s: 10.0 is less than backoff_initial_s (30.0); "
        "raise backoff_max_s or lower backoff_initial_s",
        id="cross-field-backoff",
    ),
    pytest.param(
        {"l4": "[mqtt]\nport = 1883.0"},
        "cfg.toml:5: mqtt.port: expected an integer, got a number (1883.0); write an integer",
        id="float-for-int",
    ),
    pytest.param(
        {"l4": '[mqtt]\nca_file = "/etc/yiyang/ca.pem"'},
        "cfg.toml:5: mqtt.ca_file: ca_file is set but tls is false; set tls = true or remove ca_file",
        id="cross-field-tls",
    ),
    pytest.param(
        {"l4": '[mqtt]\ntopic_root = "yiyang/#"'},
        "cfg.toml:5: mqtt.topic_root: 'yiyang/#' is not topic levels separated by /, without wildcards, "
        "spaces or empty levels; correct it",
        id="topic-wildcard",
    ),
    pytest.param(
        {"l1": "mqtt = 5\n[gateway]"},
        "cfg.toml:1: mqtt: expected a table, got an integer (5); write [mqtt]",
        id="section-not-a-table",
    ),
    pytest.param(
        {"l1": "platfrom = 1\n[gateway]"},
        "cfg.toml:1: platfrom: unknown setting in the top level; did you mean 'platform'? Otherwise remove it",
        id="unknown-top-level",
    ),
    pytest.param(
        {"l4": "[thresholds]\nglucose_level2_hypo_mmol_l = 4.0"},
        "cfg.toml:5: thresholds.glucose_level2_hypo_mmol_l: 4.0 is not below glucose_level1_hypo_mmol_l (3.9); "
        "keep glucose_level2_hypo_mmol_l < glucose_level1_hypo_mmol_l",
        id="thresholds-order",
    ),
    pytest.param(
        {"l4": "[thresholds]\nsystolic_crisis_mmhg = 400"},
        "cfg.toml:5: thresholds.systolic_crisis_mmhg: 400 is above the maximum 260; use a value from 140 to 260",
        id="implausible-threshold",
    ),
    pytest.param(
        {"l15": "glucose_level2_hypo_mmol_l = 4.0"},
        "cfg.toml:15: residents[1].thresholds.glucose_level2_hypo_mmol_l: 4.0 is not below "
        "glucose_level1_hypo_mmol_l (3.9); keep glucose_level2_hypo_mmol_l < glucose_level1_hypo_mmol_l",
        id="resident-override-order",
    ),
    pytest.param(
        {"l15": "glucose_level1_hypo = 4.4"},
        "cfg.toml:15: residents[1].thresholds.glucose_level1_hypo: unknown setting in [residents[1].thresholds]; "
        "did you mean 'glucose_level1_hypo_mmol_l'? Otherwise remove it",
        id="unknown-key-in-resident-thresholds",
    ),
    pytest.param(
        {"l13": 'id = "r-0001"', "l27": 'resident = "r-0001"'},
        "cfg.toml:13: residents[1].id: id 'r-0001' is already used by residents[0]; "
        "give each entry of residents its own id",
        id="duplicate-resident",
    ),
    pytest.param(
        {"l13": 'id = "张三"'},
        "cfg.toml:13: residents[1].id: '张三' is not letters, digits and _.:-, not starting with a symbol, "
        "at most 64 characters; correct it",
        id="resident-name-instead-of-id",
    ),
    pytest.param(
        {"l18": 'id = "glucose-kitchen"\nprot = "/dev/ttyUSB0"'},
        "cfg.toml:19: devices[0].prot: unknown setting in [devices[0]]; did you mean 'port'? Otherwise remove it",
        id="unknown-key-in-array-of-tables",
    ),
    pytest.param(
        {"l19": 'driver = "onetouch"'},
        "cfg.toml:19: devices[0].driver: a string ('onetouch') is not allowed; did you mean 'onetouch-ultra2'? "
        f"use one of: {', '.join(CATALOGUE)}",
        id="unknown-driver",
    ),
    pytest.param(
        {"l20": "port = 5"},
        "cfg.toml:20: devices[0].port: expected a string, got an integer (5); write a string",
        id="int-for-string",
    ),
    pytest.param(
        {"l20": 'port = "ttyUSB0"'},
        "cfg.toml:20: devices[0].port: 'ttyUSB0' is not a device path; "
        'write the full path, e.g. "/dev/serial/by-id/..."',
        id="relative-port",
    ),
    pytest.param(
        {"l20": ""},
        "cfg.toml:17: devices[0].port: driver onetouch-ultra2 is a serial driver and needs a port; set port",
        id="serial-needs-port",
    ),
    pytest.param(
        {"l20": 'port = "/dev/ttyUSB0"\nbaudrate = 9601'},
        "cfg.toml:21: devices[0].baudrate: 9601 is not allowed; use one of: 0, 1200, 2400, 4800, 9600, 19200, "
        "38400, 57600, 115200, 230400, 460800, 921600",
        id="baudrate",
    ),
    pytest.param(
        {"l21": 'resident = "r-0009"'},
        "cfg.toml:21: devices[0].resident: no resident has id 'r-0009'; "
        "use one of: r-0001, r-0002, or add a [[residents]] entry",
        id="unknown-resident",
    ),
    pytest.param(
        {"l21": ""},
        "cfg.toml:17: devices[0].resident: whose readings these are is not said; set resident to a resident id",
        id="resident-missing",
    ),
    pytest.param(
        {"l24": 'id = "glucose-kitchen"'},
        "cfg.toml:24: devices[1].id: id 'glucose-kitchen' is already used by devices[0]; "
        "give each entry of devices its own id",
        id="duplicate-device",
    ),
    pytest.param(
        {"l26": 'address = "C4:7C:8D:6A:11"'},
        "cfg.toml:26: devices[1].address: 'C4:7C:8D:6A:11' is not six hex byte pairs separated by colons, "
        "AA:BB:CC:DD:EE:FF; correct it",
        id="ble-address-form",
    ),
    pytest.param(
        {"l26": ""},
        "cfg.toml:23: devices[1].address: driver ble-bps is a BLE driver and needs an address; set address",
        id="ble-needs-address",
    ),
    pytest.param(
        {"l27": 'resident = "r-0002"\npoll_interval_s = 0.1'},
        "cfg.toml:28: devices[1].poll_interval_s: 0.1 is below the minimum 0.5; use a value from 0.5 to 3600",
        id="poll-interval",
    ),
]


@pytest.mark.parametrize(("lines", "expected"), ONE_PROBLEM)
def test_each_class_of_error_is_reported_on_its_line(lines: dict[str, str], expected: str) -> None:
    assert problems_of(with_lines(**lines)) == [expected]


def test_missing_section_and_empty_residents_have_no_line_to_point_at() -> None:
    text = 'residents = []\n[gateway]\nid = "gw-0001"\n'
    assert problems_of(text) == [
        "cfg.toml:1: residents: needs at least 1 entries, has 0; add [[residents]]",
        "cfg.toml: platform: required setting is missing; add a [platform] table",
    ]


def test_toml_syntax_error_gives_line_and_column() -> None:
    assert problems_of(with_lines(l20="port = /dev/ttyUSB0")) == [
        "cfg.toml:20:8: TOML syntax error: Invalid value; fix the syntax at that position"
    ]


def test_unclosed_array_points_at_the_end_of_the_file() -> None:
    assert problems_of('[gateway]\nids = ["a",\n') == [
        "cfg.toml:3: TOML syntax error: Invalid value at end of file; close what is open"
    ]


def test_every_error_in_a_file_is_reported_at_once_in_file_order() -> None:
    text = with_lines(
        l2='id = "gw_0001"',
        l3='data_dir = "/var/lib/yiyang"\nlog_level = "verbose"',
        l6="url = 8480",
        l15="glucose_level1_hypo_mmol_l = 4.4\nglucose_hypo = 1.0",
        l19='driver = "ble-gls"',
        l27='resident = "r-0003"',
    )
    problems = problems_of(text)
    assert [p.split(": ")[0:2] for p in problems] == [
        ["cfg.toml:2", "gateway.id"],
        ["cfg.toml:4", "gateway.log_level"],
        ["cfg.toml:7", "platform.url"],
        ["cfg.toml:17", "residents[1].thresholds.glucose_hypo"],
        ["cfg.toml:19", "devices[0].address"],
        ["cfg.toml:22", "devices[0].port"],
        ["cfg.toml:29", "devices[1].resident"],
    ]
    assert "did you mean 'glucose_high_mmol_l'" in problems[3]


def test_error_message_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_lines(l2='id = "-"', l6="url = 1"), "cfg.toml")
    assert str(caught.value).startswith("cfg.toml: 2 configuration error(s):\n  - cfg.toml:2: gateway.id: ")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert check_file(missing) == [
        f"{missing}: cannot read the file (No such file or directory); check the path and its permissions"
    ]
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[gateway]\nid = "caf\xe9"\n')
    assert check_file(latin1) == [f"{latin1}: byte 19 is not UTF-8; save the file as UTF-8"]


# --- thresholds per resident ---------------------------------------------------------------------------


def test_resident_overrides_merge_over_the_gateway_thresholds() -> None:
    text = with_lines(l4="[thresholds]\nglucose_level2_hypo_mmol_l = 2.8\npulse_high_bpm = 120\n")
    config = parse_config(text, "cfg.toml")
    defaults = dataclasses.replace(Thresholds(), glucose_level2_hypo_mmol_l=2.8, pulse_high_bpm=120)
    assert config.thresholds == defaults
    assert config.thresholds_for("r-0001") == defaults
    assert config.thresholds_for("r-0002") == dataclasses.replace(defaults, glucose_level1_hypo_mmol_l=4.4)
    with pytest.raises(KeyError, match="r-0404"):
        config.thresholds_for("r-0404")


def test_a_bad_gateway_threshold_is_reported_once_not_per_resident() -> None:
    # Both residents inherit the misordered pair; only the line that wrote it is reported.
    assert problems_of(with_lines(l4="[thresholds]\nspo2_low_percent = 84")) == [
        "cfg.toml:4: thresholds.spo2_very_low_percent: 85 is not below spo2_low_percent (84); "
        "keep spo2_very_low_percent < spo2_low_percent"
    ]


# --- the locator ---------------------------------------------------------------------------------------

LOCATOR_TEXT = """\
# comment [not.a.table]
title = "x"   # trailing comment
"quoted.key" = 1
a.b.c = 2
long = '''
fake = 3
'''
text = \"\"\"
[fake.table]
\"\"\"
inline = { x = 1, y = { z = 2 } }
list = [
  1,
  { id = "second" },  # an inline table in a multi-line array
]

[ spaced . table ]
key = 4

[[arr]]
k = 1
[arr.sub]
s = 1

[[arr]]
k = 2
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("title",), 2),
        (("quoted.key",), 3),
        (("a",), 4),
        (("a", "b", "c"), 4),
        (("long",), 5),
        (("fake",), None),
        (("text",), 8),
        (("inline", "y", "z"), 11),
        (("inline", "missing"), 11),
        (("list",), 12),
        (("list", 0), 13),
        (("list", 1, "id"), 14),
        (("spaced", "table", "key"), 18),
        (("spaced", "table", "nope"), 17),
        (("arr", 0, "k"), 21),
        (("arr", 0, "sub", "s"), 23),
        (("arr", 1), 25),
        (("arr", 1, "k"), 26),
        (("arr", 1, "sub"), 25),
        (("nowhere",), None),
    ],
)
def test_locator_places_key_paths(path: tuple[str | int, ...], line: int | None) -> None:
    assert "fake" not in tomllib.loads(LOCATOR_TEXT)
    assert Locator(LOCATOR_TEXT).line_of(path) == line


# --- the documented default file -----------------------------------------------------------------------


def test_default_file_is_valid_and_generated_from_the_schema() -> None:
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    assert text == render_default_toml(), (
        "config/gateway.toml drifted from gateway/config/schema.py; regenerate it with: "
        ".venv/bin/python -c 'from gateway.config.check import render_default_toml as r; "
        'open("config/gateway.toml", "w").write(r())\''
    )
    assert load_config(DEFAULT_FILE).gateway.id == "gw-0001"


def _all_settings() -> list[tuple[tuple[str, ...], type[Any], str]]:
    """(table path, section class, key) of every leaf setting of the schema."""
    out: list[tuple[tuple[str, ...], type[Any], str]] = []
    sections: list[tuple[tuple[str, ...], type[Any]]] = [
        (("gateway",), GatewaySettings),
        (("platform",), PlatformSettings),
        (("mqtt",), MqttSettings),
        (("storage",), StorageSettings),
        (("detect",), DetectSettings),
        (("thresholds",), Thresholds),
        (("residents",), ResidentSettings),
        (("devices",), DeviceSettings),
    ]
    for table, cls in sections:
        for field in dataclasses.fields(cls):
            if setting_of(field).inherit is None:
                out.append((table, cls, field.name))
    return out


def test_every_schema_key_is_in_the_default_file_with_its_doc() -> None:
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    lines = text.splitlines()
    locator = Locator(text)
    for table, cls, key in _all_settings():
        section = data[table[0]][0] if isinstance(data[table[0]], list) else data[table[0]]
        assert key in section, f"{'.'.join(table)}.{key} is missing from config/gateway.toml"
        path = (table[0], 0, key) if isinstance(data[table[0]], list) else (table[0], key)
        line = locator.line_of(path)
        assert line is not None
        comment = comment_for(cls, key)
        assert lines[line - 1 - len(comment) : line - 1] == comment, f"doc of {path} drifted"
    assert "[residents.thresholds]" in text


# --- effective config, fleet documents -----------------------------------------------------------------


def test_render_effective_is_json_and_parses_back_to_the_same_config() -> None:
    config = parse_config(GOOD, "cfg.toml")
    effective = render_effective(config)
    assert effective["mqtt"]["password_file"] == ""
    assert effective["devices"][1]["driver"] == "ble-bps"
    assert parse_config_mapping(json.loads(json.dumps(effective)), "effective") == config


def test_merge_sections_merges_tables_and_replaces_arrays() -> None:
    base = tomllib.loads(GOOD)
    overlay = {"platform": {"timeout_s": 30.0}, "residents": [{"id": "r-0009"}], "devices": []}
    merged = merge_sections(base, overlay)
    assert merged["platform"] == {**base["platform"], "timeout_s": 30.0}
    assert merged["residents"] == [{"id": "r-0009"}]
    assert base["platform"].get("timeout_s") is None, "the base must not be modified"
    config = parse_config_mapping(merged, "fleet v42")
    assert (config.platform.timeout_s, config.residents[0].id, config.devices) == (30.0, "r-0009", ())


def test_problems_in_a_fleet_document_have_paths_but_no_lines() -> None:
    overlay = {"storage": {"budget_mb": 8}}
    with pytest.raises(ConfigError) as caught:
        parse_config_mapping(merge_sections(tomllib.loads(GOOD), overlay), "fleet v43")
    assert caught.value.problems == [
        "fleet v43: storage.budget_mb: 8 is below the minimum 16; use a value from 16 to 65536"
    ]


def test_explicit_client_id_is_kept() -> None:
    config = parse_config(with_lines(l4='[mqtt]\nclient_id = "hub-kitchen"'), "cfg.toml")
    assert config.mqtt.client_id == "hub-kitchen"


def test_ble_settings_are_checked_against_the_driver() -> None:
    base = """
[gateway]
id = "gw-1"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
[[residents]]
id = "r-1"
"""
    good = parse_config(base + """
[[devices]]
id = "band"
driver = "microbit-accel"
address = "AA:BB:CC:DD:EE:FF"
resident = "r-1"
ble_notify = "acquire-notify"
sample_rate_hz = 100.0
[[devices]]
id = "sos"
driver = "bthome-button"
address = "AA:BB:CC:DD:EE:01"
resident = "r-1"
bind_key = "231d39c1d7cc1ab1aee224cd096db932"
""", "good.toml")
    band, sos = good.devices
    assert (band.ble_notify, band.sample_rate_hz) == (BleNotify.ACQUIRE_NOTIFY, 100.0)
    assert sos.bind_key == "231d39c1d7cc1ab1aee224cd096db932"
    with pytest.raises(ConfigError) as refused:
        parse_config(base + """
[[devices]]
id = "meter"
driver = "onetouch-ultra2"
port = "/dev/ttyUSB0"
resident = "r-1"
sample_rate_hz = 300.0
ble_notify = "acquire-notify"
bind_key = "xyz"
""", "bad.toml")
    text = "\n".join(refused.value.problems)
    assert "300.0 Hz is outside 25-200 Hz" in text
    assert "devices[0].bind_key" in text
    with pytest.raises(ConfigError) as misplaced:
        parse_config(base + """
[[devices]]
id = "meter"
driver = "onetouch-ultra2"
port = "/dev/ttyUSB0"
resident = "r-1"
sample_rate_hz = 100.0
ble_notify = "acquire-notify"
""", "misplaced.toml")
    text = "\n".join(misplaced.value.problems)
    assert "driver onetouch-ultra2 streams no accelerometer" in text
    assert "ble_notify is for BLE drivers" in text


def test_family_contacts_link_residents_and_must_be_told_something() -> None:
    contacts = """
[mqtt]
username = "yiyang-gateway"

[[contacts]]
id = "c-daughter"
residents = ["r-0001"]
app = true

[[contacts]]
id = "c-son"
phone = "+8613800138000"
"""
    config = parse_config(GOOD + contacts, "cfg.toml")
    daughter, son = config.contacts
    assert (daughter.residents, daughter.app, daughter.phone) == (("r-0001",), True, "")
    assert (son.residents, son.app) == ((), False)  # no residents listed: every resident of the hub
    first = len(GOOD_LINES) + 1
    assert problems_of(GOOD + contacts.replace('["r-0001"]', '["r-0001", "r-0009"]')
                       .replace('phone = "+8613800138000"', "")) == [
        f"cfg.toml:{first + 6}: contacts[0].residents[1]: no resident has id 'r-0009'; "
        "use one of: r-0001, r-0002, or add a [[residents]] entry",
        f"cfg.toml:{first + 9}: contacts[1].phone: this contact is told nothing: no phone for SMS and no app "
        "account; set phone, or app = true, or remove the contact",
    ]


def test_contacts_have_a_tier_and_a_least_severity_for_every_channel() -> None:
    contacts = """
[alerts]
escalate_after_s = 120

[[contacts]]
id = "c-daughter"
app = true
min_severity = "warning"

[[contacts]]
id = "c-neighbour"
phone = "+8613800138000"
tier = 3
min_severity = "emergency"
"""
    config = parse_config(GOOD + contacts, "cfg.toml")
    assert config.alerts.escalate_after_s == 120
    assert [(c.id, c.tier, c.min_severity.value) for c in config.contacts] == [
        ("c-daughter", 1, "warning"), ("c-neighbour", 3, "emergency")]
    first = len(GOOD_LINES) + 1
    assert problems_of(GOOD + contacts.replace("tier = 3", "tier = 4").replace("app = true", "phone = "
                                                                                '"+8613900139000"')) == [
        f"cfg.toml:{first + 7}: contacts[0].min_severity: warnings never go by SMS and this contact has no app "
        'account; use "urgent" or "emergency", or set app = true',
        f"cfg.toml:{first + 12}: contacts[1].tier: 4 is above the maximum 3; use a value from 1 to 3",
    ]


def test_the_old_sms_min_severity_is_refused_with_its_new_name() -> None:
    text = GOOD + '\n[[contacts]]\nid = "c-son"\nphone = "+8613800138000"\nsms_min_severity = "emergency"\n'
    assert problems_of(text) == [
        f"cfg.toml:{len(GOOD_LINES) + 5}: contacts[0].sms_min_severity: sms_min_severity was renamed min_severity: "
        "it now applies to every channel, the family app as well as SMS; write min_severity instead (same values)",
    ]


def test_a_family_account_cannot_share_the_hubs_or_the_fleets_broker_name() -> None:
    text = GOOD + '\n[mqtt]\nusername = "fleet"\n\n[[contacts]]\nid = "yiyang-gw"\napp = true\n'
    assert [p.split(": ", 2)[1] for p in problems_of(text)] == ["mqtt.fleet_username"]
    text = GOOD + '\n[mqtt]\nusername = "yiyang-gw"\n\n[[contacts]]\nid = "yiyang-gw"\napp = true\n'
    assert [p.split(": ", 2)[1] for p in problems_of(text)] == ["contacts[0].id"]
    sms_only = GOOD + '\n[mqtt]\nusername = "yiyang-gw"\n\n[[contacts]]\nid = "yiyang-gw"\nphone = "+8613800138000"\n'
    assert parse_config(sms_only, "cfg.toml").contacts[0].id == "yiyang-gw"  # no broker account: no clash
    home = '\n[homeassistant]\ndiscovery = true\n\n[[contacts]]\nid = "homeassistant"\napp = true\n'
    assert [p.split(": ", 2)[1] for p in problems_of(GOOD + home)] == ["contacts[0].id"]
    clash = GOOD + '\n[mqtt]\nusername = "homeassistant"\n\n[homeassistant]\ndiscovery = true\n'
    assert [p.split(": ", 2)[1] for p in problems_of(clash)] == ["homeassistant.username"]
