"""Shared fixtures for the BLE codec tests: the device and hub time a session would pass in."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

# tests/conftest.py puts tests/ on sys.path, where tests/drivers/ shadows the real `drivers`
# package as a namespace package (the editable install's finder runs after the path finder).
# Putting the repository root first lets the real package win. The lasting fix belongs in
# pyproject.toml (`pythonpath = ["."]` under [tool.pytest.ini_options]).
_REPO = str(Path(__file__).resolve().parents[3])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
for _name in [name for name in sys.modules if name == "drivers" or name.startswith("drivers.")]:
    if getattr(sys.modules[_name], "__file__", None) is None:
        del sys.modules[_name]

from drivers.model import DeviceInfo, HubTime  # noqa: E402


@pytest.fixture
def device() -> DeviceInfo:
    return DeviceInfo(id="ble-AA:BB:CC:DD:EE:FF", transport="ble", model="test-model")


@pytest.fixture
def received() -> HubTime:
    return HubTime(wall=datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC), monotonic=1234.5, synced=True)
