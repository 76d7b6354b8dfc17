"""One advertisement's service data as the Home Assistant parser libraries take it (bthome-ble, xiaomi-ble).

Those parsers read a ``BluetoothServiceInfoBleak``; the hub has only the address, one service
data entry and when it was heard, so the rest is left empty.
"""

from __future__ import annotations

from bleak.backends.device import BLEDevice
from habluetooth import BluetoothServiceInfoBleak


def service_data_info(address: str, service_uuid: str, data: bytes, advertised_at: float) -> BluetoothServiceInfoBleak:
    """``data`` under ``service_uuid`` from ``address``, heard at ``advertised_at`` (monotonic s)."""
    return BluetoothServiceInfoBleak(
        name=address,
        address=address,
        rssi=0,
        manufacturer_data={},
        service_data={service_uuid: data},
        service_uuids=[],
        source="hub",
        device=BLEDevice(address, None, None),
        advertisement=None,
        connectable=False,
        time=advertised_at,
        tx_power=None,
    )
