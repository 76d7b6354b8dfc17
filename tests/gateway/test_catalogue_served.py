"""Every row of the driver catalogue is served by exactly one of the gateway's factory tables.

Each table checks itself against the catalogue when it is imported (drivers.catalogue.check_served);
this imports them all, the BLE one too, which the daemon imports only with BLE devices configured.
"""

from __future__ import annotations

from drivers.catalogue import CATALOGUE
from gateway import ble_wiring, driver_registry
from gateway.config import DriverName


def test_every_row_has_one_factory_and_every_factory_a_row() -> None:
    tables = (driver_registry.SERIAL_SESSIONS, driver_registry.NOTIFIERS, ble_wiring.CONNECTED_SESSIONS,
              ble_wiring.ADVERT_SESSIONS)
    served = [name for table in tables for name in table]
    assert sorted(served) == sorted(CATALOGUE)


def test_the_configuration_accepts_the_catalogue_names_in_its_order() -> None:
    assert [member.value for member in DriverName] == list(CATALOGUE)
    assert DriverName.BLE_BPS == "ble-bps"
