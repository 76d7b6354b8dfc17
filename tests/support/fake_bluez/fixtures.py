"""pytest fixtures: a private system bus with the fake BlueZ on it, per test.

Use from a test module (or tests/conftest.py)::

    from fake_bluez.fixtures import fake_bluez_bus_fixture, fake_bluez_fixture  # noqa: F401

    async def test_cuff(fake_bluez: FakeBluez) -> None:
        cuff = fake_bluez.add(BloodPressureCuff(measurements=[...]))
        cuff.measure()
        device = await BleakScanner.find_device_by_address(cuff.address)

``fake_bluez_bus`` (sync) starts ``dbus-daemon`` and points ``DBUS_SYSTEM_BUS_ADDRESS`` at it, and
puts a fake ``bluetoothctl`` (reporting BlueZ 5.66) first on PATH for bleak's version check.
``fake_bluez`` (async, on the test's own event loop, so bleak and the fake share it) starts the
fake bluetoothd on that bus and stops it after the test.

The functions are named ``*_fixture`` so that importing them does not shadow the test
argument names (ruff F811); the fixtures themselves are ``fake_bluez_bus`` and ``fake_bluez``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fake_bluez.bluez import FakeBluez
from fake_bluez.bus import private_bus, write_fake_bluetoothctl


@pytest.fixture(name="fake_bluez_bus")
def fake_bluez_bus_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The address of a private system bus, already set as ``DBUS_SYSTEM_BUS_ADDRESS``."""
    bin_dir = write_fake_bluetoothctl(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with private_bus() as address:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        yield address


@pytest.fixture(name="fake_bluez")
async def fake_bluez_fixture(fake_bluez_bus: str) -> AsyncIterator[FakeBluez]:
    """A running fake bluetoothd with one powered adapter (hci0) and no devices yet."""
    bluez = await FakeBluez.start(fake_bluez_bus)
    try:
        yield bluez
    finally:
        await bluez.stop()
