"""A fake BlueZ on a private D-Bus, with emulated BLE health devices, for tests and demos.

The real bleak code path (BleakScanner, BleakClient, BlueZ backend over dbus-fast) runs against it.
See docs/fake-bluez.md. In tests use the ``fake_bluez`` fixture from :mod:`fake_bluez.fixtures`.
"""

from fake_bluez.bluez import (
    ADAPTER_PATH,
    Advertisement,
    BluezError,
    CharacteristicSpec,
    ConnectFault,
    FakeBluez,
    Pairing,
    Peripheral,
    ServiceSpec,
    att_error,
    bluez_error,
)
from fake_bluez.bus import private_bus, write_fake_bluetoothctl

__all__ = [
    "ADAPTER_PATH",
    "Advertisement",
    "BluezError",
    "CharacteristicSpec",
    "ConnectFault",
    "FakeBluez",
    "Pairing",
    "Peripheral",
    "ServiceSpec",
    "att_error",
    "bluez_error",
    "private_bus",
    "write_fake_bluetoothctl",
]
