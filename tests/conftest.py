"""Shared fixtures: real parts started per test (or per module) and stopped after."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests" / "support"))

import devstack  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[devstack.Broker]:
    """A real Mosquitto on a free loopback port."""
    with devstack.mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[devstack.Platform]:
    """The reference platform server for gateway ``gw-test``."""
    with devstack.platform_server(tmp_path / "platform", "gw-test") as p:
        yield p


# The emulated BlueZ on a private D-Bus (tests/support/fake_bluez): `fake_bluez_bus`, `fake_bluez`.
from fake_bluez.fixtures import fake_bluez_bus_fixture, fake_bluez_fixture  # noqa: E402, F401
