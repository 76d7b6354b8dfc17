"""Hostile configuration input: too big, too deep, too long. Each is one ConfigError problem, never a
RecursionError, a memory blow-up or a bare ValueError from tomllib."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load_config, parse_config, parse_config_mapping

BASE = """\
[gateway]
id = "gw-1"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
[[residents]]
id = "r-1"
"""
"""Seven lines; a line appended to it is line 8."""

DEEP = 5000

TOO_MANY_BRACKETS = ("more than 4 arrays or inline tables inside one another, deeper than any setting; "
                     "remove the extra [ ] or { }")
TOO_DEEP = ("tables and arrays nested more than 5 levels deep, deeper than any setting; "
            "remove the extra [ ] or { } levels")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.toml")
    return caught.value.problems


def mapping_problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_mapping(data, "fleet v7")
    return caught.value.problems


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- TOML text ---------------------------------------------------------------------------------------


def test_a_5000_deep_array_is_refused_at_the_bracket_that_goes_too_deep() -> None:
    text = BASE + "thresholds = " + "[" * DEEP + "]" * DEEP + "\n"
    # Column 14 is the first "["; the fifth, at column 18, is one deeper than any setting goes.
    assert problems_of(text) == [f"cfg.toml:8:18: {TOO_MANY_BRACKETS}"]


def test_5000_deep_inline_tables_are_refused_the_same_way() -> None:
    text = BASE + "x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"
    assert problems_of(text) == [f"cfg.toml:8:25: {TOO_MANY_BRACKETS}"]


def test_a_deep_array_in_a_file_is_refused_by_load_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + "[[devices]]\nport = " + "[" * DEEP + "]" * DEEP + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}:9:12: {TOO_MANY_BRACKETS}"]


def test_a_dotted_key_of_300000_parts_is_refused_before_tomllib_keeps_its_prefixes() -> None:
    # tomllib's memory grows with the square of a dotted key's parts: this one would take many GB.
    started = time.monotonic()
    problems = problems_of(BASE + "a" + ".a" * 300_000 + " = 1\n")
    assert problems == [
        "cfg.toml:8:1: a dotted key of more than 5 parts, deeper than any setting; "
        "write the key as config/gateway.toml does"
    ]
    assert time.monotonic() - started < 5


def test_a_table_header_of_300000_parts_is_refused() -> None:
    assert problems_of("[a" + ".a" * 300_000 + "]\n" + BASE) == [
        "cfg.toml:1:2: a dotted key of more than 5 parts, deeper than any setting; "
        "write the key as config/gateway.toml does"
    ]


def test_an_integer_beyond_pythons_digit_limit_is_a_problem_not_a_value_error() -> None:
    assert problems_of(BASE + "[mqtt]\nport = " + "9" * 100_000 + "\n") == [
        "cfg.toml:9:8: a value of more than 100 characters without quotes; "
        "no setting takes a number that long: shorten it, or quote it if it is text"
    ]


def test_one_level_deeper_than_the_schema_still_gets_the_validators_own_message() -> None:
    assert problems_of(BASE + "[residents.thresholds]\npulse_high_bpm = [120]\n") == [
        "cfg.toml:9: residents[0].thresholds.pulse_high_bpm: expected an integer, got an array; write an integer"
    ]


def test_two_levels_deeper_is_refused_by_key_path_and_line() -> None:
    assert problems_of(BASE + "[residents.thresholds]\npulse_high_bpm = [[120]]\n") == [
        f"cfg.toml:9: residents[0].thresholds.pulse_high_bpm[0]: {TOO_DEEP}"
    ]


def test_brackets_in_strings_and_comments_do_not_count_and_the_deepest_inline_form_parses() -> None:
    text = (
        'residents = [{id = "r-1", thresholds = {pulse_high_bpm = 120}}]  # [[[[[[[[ {{{{{{{{\n'
        '[gateway]\nid = "gw-1"\n'
        '[platform]\nurl = "http://127.0.0.1:8480"\nsecret_file = "/etc/yiyang/platform.secret"\n'
        '[mqtt]\nusername = """[[[[[[[[\\"""\n{{{{{{{{"""\nclient_id = \'a.b.c.d.e.f.g\'\n'
        "topic_root = '''x[[[[[[[[/{{{{{{{{'''\n"
    )
    config = parse_config(text, "cfg.toml")
    assert config.residents[0].thresholds.pulse_high_bpm == 120
    assert config.mqtt.username == '[[[[[[[["""\n{{{{{{{{'
    assert config.mqtt.client_id == "a.b.c.d.e.f.g"


def test_a_file_over_one_mebibyte_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + "#" * 2**20 + "\n", encoding="utf-8")
    expected = [f"{path}: the file is larger than 1 MiB, and a hub's configuration is a few KB; "
                "check that this is the configuration file"]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == expected


def test_an_endless_file_is_read_only_up_to_the_limit() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/dev/zero")
    assert caught.value.problems == [
        "/dev/zero: the file is larger than 1 MiB, and a hub's configuration is a few KB; "
        "check that this is the configuration file"
    ]


def test_text_over_one_mebibyte_is_refused_by_parse_config_too() -> None:
    assert problems_of(BASE + "#" * 2**20)[0].startswith("cfg.toml: the file is larger than 1 MiB")


# --- already-parsed mappings (fleet JSON documents) -------------------------------------------------


def test_a_5000_deep_list_inside_a_mapping_is_one_problem_naming_where_it_goes_too_deep() -> None:
    data = {"gateway": {"id": "gw-1", "clock_sync": nested_list(DEEP)}}
    assert mapping_problems(data) == [f"fleet v7: gateway.clock_sync[0][0][0]: {TOO_DEEP}"]


def test_a_100000_deep_chain_of_tables_is_refused() -> None:
    data: dict[str, Any] = {}
    for _ in range(100_000):
        data = {"devices": data}
    assert mapping_problems(data) == [f"fleet v7: devices.devices.devices.devices.devices: {TOO_DEEP}"]


def test_every_place_that_goes_too_deep_is_reported() -> None:
    data = {
        "devices": [{"id": "a", "driver": nested_list(DEEP)}, {"id": "b", "port": nested_list(DEEP)}],
        "residents": [{"id": "r-1", "thresholds": {"pulse_high_bpm": nested_list(DEEP)}}],
    }
    assert mapping_problems(data) == [
        f"fleet v7: devices[0].driver[0][0]: {TOO_DEEP}",
        f"fleet v7: devices[1].port[0][0]: {TOO_DEEP}",
        f"fleet v7: residents[0].thresholds.pulse_high_bpm[0]: {TOO_DEEP}",
    ]
