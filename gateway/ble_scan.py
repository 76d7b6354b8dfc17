"""What advertises nearby: the sightings of a BLE scan, for ``yiyang scan`` and the fleet's ``scan``.

Two ways to listen, and the choice matters on a real hub. BlueZ gives each D-Bus client one
discovery session: a second ``StartDiscovery`` from the same connection is refused (``InProgress``),
and a ``StopDiscovery`` ends that connection's session. bleak talks to BlueZ over one connection
per process, so inside the daemon a second BleakScanner beside the BLE manager's is refused, or,
where BlueZ let it start, would end the manager's discovery when it stopped: cuffs and meters that
advertise for a few seconds after a measurement would go unheard. So:

- in the daemon with BLE devices configured, a scan listens to the manager's own scanner
  (:class:`AdvertTap`, fed every advert it reports, configured or not);
- otherwise (``yiyang scan``, its own process; or a daemon without BLE devices) it starts a scanner
  of its own, a discovery client of its own beside any other process's.

Importing this module does not import bleak (some 20 MB on a hub without BLE devices): a scanner of
its own imports it when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.catalogue import Advertisement, advertised_drivers
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

AdvertListener = Callable[["BLEDevice", "AdvertisementData"], None]


class BleScanError(GatewayError):
    """No scan could be started: bluetoothd is not running, or the adapter is missing or off."""


@dataclass(frozen=True, slots=True)
class Sighting:
    address: str
    name: str | None
    rssi: int
    drivers: tuple[str, ...]


def drivers_for(service_uuids: Sequence[str], service_data_uuids: Sequence[str], *, local_name: str | None = None,
                manufacturer_data: Mapping[int, bytes] | None = None) -> tuple[str, ...]:
    """The drivers an advertisement says can serve the device (what to pass to ``yiyang bind``).

    The catalogue's advert matchers decide (drivers.catalogue); bleak's UUIDs may come in either case.
    """
    return advertised_drivers(Advertisement(
        local_name=local_name,
        service_uuids=frozenset(u.lower() for u in service_uuids),
        service_data_uuids=frozenset(u.lower() for u in service_data_uuids),
        manufacturer_data=dict(manufacturer_data or {}),
    ))


class Sightings:
    """Collects the latest advert of each address heard; ``on_advert`` is a bleak detection callback."""

    def __init__(self) -> None:
        self._seen: dict[str, Sighting] = {}

    def on_advert(self, device: BLEDevice, advert: AdvertisementData) -> None:
        address = device.address.upper()
        name = advert.local_name or device.name
        self._seen[address] = Sighting(
            address=address,
            name=name,
            rssi=advert.rssi,
            drivers=drivers_for(advert.service_uuids, list(advert.service_data), local_name=name,
                                manufacturer_data=advert.manufacturer_data),
        )

    def all(self) -> list[Sighting]:
        return list(self._seen.values())

    @property
    def health(self) -> int:
        """Devices heard that speak a health profile the gateway has a driver for."""
        return sum(1 for sighting in self._seen.values() if sighting.drivers)


class AdvertTap:
    """The BLE manager's adverts, passed on to whoever listens for a while (give it as ``on_any_advert``)."""

    def __init__(self) -> None:
        self._listeners: list[AdvertListener] = []

    def __call__(self, device: BLEDevice, advert: AdvertisementData) -> None:
        for listener in tuple(self._listeners):
            listener(device, advert)

    @contextlib.contextmanager
    def listening(self, listener: AdvertListener) -> Iterator[None]:
        self._listeners.append(listener)
        try:
            yield
        finally:
            self._listeners.remove(listener)


@contextlib.asynccontextmanager
async def own_scanner(listener: AdvertListener) -> AsyncIterator[None]:
    """A BleakScanner of this process's own, reporting to ``listener`` for the block."""
    from bleak import BleakScanner  # noqa: PLC0415 (bleak only when a scan of our own runs)
    from bleak.exc import BleakError  # noqa: PLC0415

    scanner = BleakScanner(detection_callback=listener, scanning_mode="active")
    try:
        await scanner.start()
    except (BleakError, OSError, EOFError) as exc:
        raise BleScanError(f"cannot scan: {exc}; check that bluetoothd runs and the adapter is powered "
                           "(bluetoothctl show)") from exc
    try:
        yield
    finally:
        with contextlib.suppress(BleakError, OSError, EOFError):
            await scanner.stop()


@dataclass(frozen=True, slots=True)
class ScanReport:
    seconds: float
    listened_with: str
    sightings: tuple[Sighting, ...]
    note: str | None = None
    """Why the scan may have missed devices, when the hub knows a reason."""


class HubScan:
    """The daemon's scan: through the BLE manager's scanner when the hub has one, else its own.

    ``tap`` and ``manager_scanning`` come from the BLE wiring; both None on a hub without BLE devices.
    """

    def __init__(self, tap: AdvertTap | None = None, manager_scanning: Callable[[], bool] | None = None) -> None:
        self._tap = tap
        self._manager_scanning = manager_scanning or (lambda: False)
        # Two scans of our own at once would be two StartDiscovery calls on one connection: refused.
        self._own = asyncio.Lock()

    async def __call__(self, seconds: float) -> ScanReport:
        sightings = Sightings()
        if self._tap is not None:
            scanning_throughout = self._manager_scanning()
            with self._tap.listening(sightings.on_advert):
                await asyncio.sleep(seconds)
            scanning_throughout = scanning_throughout and self._manager_scanning()
            note = None if scanning_throughout else (
                "the BLE manager's scanner was not running for part of the scan (adapter trouble or a "
                "power cycle: see doctor); devices may be missing")
            return ScanReport(seconds, "the BLE manager's scanner", tuple(sightings.all()), note)
        async with self._own, own_scanner(sightings.on_advert):
            await asyncio.sleep(seconds)
        return ScanReport(seconds, "a scanner of its own (no BLE devices configured)", tuple(sightings.all()))
