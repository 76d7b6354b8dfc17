"""Random mutations of a valid document never crash the parser: a GatewayConfig or a ConfigError
whose every problem names a key path (and, for TOML text, a line)."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, GatewayConfig, parse_config, parse_config_mapping

VALID = """\
[gateway]
id = "gw-0001"

[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
backoff_max_s = 60.0

[mqtt]
port = 1883
tls = true
ca_file = "/etc/yiyang/ca.pem"

[thresholds]
glucose_level1_hypo_mmol_l = 4.0
pulse_high_bpm = 120

[[residents]]
id = "r-0001"
[residents.thresholds]
spo2_low_percent = 92

[[devices]]
id = "glucose-kitchen"
driver = "onetouch-ultra2"
port = "/dev/ttyUSB0"
resident = "r-0001"

[[devices]]
id = "sos"
driver = "bthome-button"
address = "AA:BB:CC:DD:EE:FF"
resident = "r-0001"
"""
BASE: dict[str, Any] = tomllib.loads(VALID)

# A problem from the validator: "SOURCE[:LINE]: key.path: what; todo", keys bare or JSON-quoted.
_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
PROBLEM = re.compile(rf"^doc(:\d+)?: {_KEY}(?:\[\d+\]|\.{_KEY})*: .+; .+$", re.DOTALL)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "auto", "ble-bps", "/dev/ttyS0", "r-0001", "AA:BB:CC:DD:EE:FF", "Asia/Shanghai"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789-", min_size=1, max_size=16)


def _containers(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every table and array in the document, the root included."""
    found = [path]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, child in items:
        if isinstance(child, dict | list):
            found.extend(_containers(child, (*path, key)))
    return found


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = _at(document, draw(st.sampled_from(_containers(document))))
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if isinstance(target, dict):
            if action == "add" or not target:
                target[draw(keys)] = draw(values)
            else:
                key = draw(st.sampled_from(sorted(target)))
                if action == "delete":
                    del target[key]
                else:
                    target[key] = draw(values)
        elif target:
            index = draw(st.integers(min_value=0, max_value=len(target) - 1))
            if action == "delete":
                del target[index]
            else:
                target[index] = draw(values)
    return document


def _outcome(parse: Callable[[], GatewayConfig]) -> tuple[GatewayConfig | None, list[str]]:
    try:
        return parse(), []
    except ConfigError as exc:
        return None, exc.problems


@settings(deadline=None, max_examples=300, derandomize=True)
@given(mutated())
def test_mutated_mappings_give_a_config_or_problems_naming_key_paths(document: dict[str, Any]) -> None:
    config, problems = _outcome(lambda: parse_config_mapping(document, "doc"))
    assert isinstance(config, GatewayConfig) or problems, "a ConfigError must list at least one problem"
    for problem in problems:
        assert PROBLEM.match(problem), problem


def _toml(value: Any) -> str:
    """Inline TOML for the values the strategies make (None has no TOML form, so the key is left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    items = ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items() if v is not None)
    return "{ " + items + " }"


def _document_toml(document: dict[str, Any]) -> str:
    """Standard tables for sections, arrays of tables for lists of tables: how a technician writes it."""
    lines = []
    for key, value in document.items():
        if value is None:
            continue
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines.extend(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items() if v is not None)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for element in value:
                lines.append(f"[[{json.dumps(key)}]]")
                lines.extend(f"{json.dumps(k)} = {_toml(v)}" for k, v in element.items() if v is not None)
        else:
            lines.insert(0, f"{json.dumps(key)} = {_toml(value)}")
    return "\n".join(lines) + "\n"


@settings(deadline=None, max_examples=200, derandomize=True)
@given(mutated())
def test_mutated_toml_text_gives_a_config_or_problems_with_lines(document: dict[str, Any]) -> None:
    text = _document_toml(document)
    config, problems = _outcome(lambda: parse_config(text, "doc"))
    assert isinstance(config, GatewayConfig) or problems, "a ConfigError must list at least one problem"
    for problem in problems:
        if re.match(r"^doc:\d+(:\d+)?: TOML syntax error: ", problem):
            continue
        assert PROBLEM.match(problem), problem
        # Only a section that is not written at all has no line to point at.
        assert re.match(r"^doc:\d+: ", problem) or "required setting is missing" in problem, problem


def test_the_unmutated_document_is_valid() -> None:
    assert parse_config(VALID, "doc").thresholds_for("r-0001").spo2_low_percent == 92
