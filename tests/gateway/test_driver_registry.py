"""Every driver name the configuration accepts is served by this build."""

from __future__ import annotations

from gateway.ble_wiring import ADVERT_SESSIONS, CONNECTED_SESSIONS
from gateway.config import DriverName
from gateway.driver_registry import NOTIFIER_DRIVERS, SESSIONS, available_drivers, ble_drivers


def test_every_ble_driver_has_a_session_in_the_ble_manager() -> None:
    assert ble_drivers() == frozenset(CONNECTED_SESSIONS) | frozenset(ADVERT_SESSIONS)


def test_the_daemon_serves_every_configurable_driver_but_the_nibp_module() -> None:
    # The SunTech NIBP module is in the configuration schema (its protocol is in the fact sheet) but
    # has no driver yet: `yiyang config check` and the daemon refuse it with a clear message.
    assert set(DriverName) - available_drivers() == {DriverName.SUNTECH_NIBP}
    assert not (frozenset(SESSIONS) & ble_drivers()) and not (NOTIFIER_DRIVERS & ble_drivers())
