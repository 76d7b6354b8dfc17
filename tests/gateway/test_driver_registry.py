"""Every driver name the configuration accepts is served by this build."""

from __future__ import annotations

from gateway.ble_wiring import ADVERT_SESSIONS, CONNECTED_SESSIONS
from gateway.config import DriverName
from gateway.driver_registry import NOTIFIER_DRIVERS, SESSIONS, available_drivers, ble_drivers


def test_every_ble_driver_has_a_session_in_the_ble_manager() -> None:
    assert ble_drivers() == frozenset(CONNECTED_SESSIONS) | frozenset(ADVERT_SESSIONS)


def test_the_daemon_serves_every_configurable_driver() -> None:
    assert set(DriverName) == available_drivers()
    assert not (frozenset(SESSIONS) & ble_drivers()) and not (NOTIFIER_DRIVERS & ble_drivers())
