"""The driver catalogue: one row per kind of device the hub can serve, read by every part that needs to know.

A row (:class:`DriverSpec`) is what the hub knows of a driver before it talks to a device: how the
device is reached, what it is for, the readings it takes, the settings it accepts beyond its
transport's, how a scan recognises it, what a technician does before binding it, and whether its
silence means falls go unseen. The configuration's driver names and device rules, the session
registry, the BLE wiring, ``yiyang scan``, the daemon's SMS modem, the silence rules and Home
Assistant's sensors are all built from these rows; none keeps a list of drivers of its own.

Adding a device is its row here, its codec and session, and the factory that builds its session
from its settings (``gateway.driver_registry`` for serial devices, ``gateway.ble_wiring`` for BLE
ones), keyed by the row's name and checked against these rows when that module is imported.

Facts only, as in Home Assistant's integration manifests (whose bluetooth matchers the core reads)
and bthome-ble's ``MEAS_TYPES``: nothing here imports the gateway, bleak or pyserial.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from drivers.ble import uuids
from drivers.ble.ichoice import SERVICE_PREFIX_OXIMETER as ICHOICE_OXIMETER_SERVICE_PREFIX
from drivers.ble.o2ring import O2RING_SERVICE
from drivers.ble.omron_eeprom import OMRON_NEWER_SERVICE
from drivers.errors import DriverError
from drivers.model import ReadingType

_SIG_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
"""The Bluetooth base UUID's tail: a UUID ending in it is a 16-bit one the SIG assigned."""


class CatalogueError(DriverError):
    """A catalogue row contradicts itself, or the gateway's session factories do not match the rows.

    A build error, not a device's: every module that checks itself against the catalogue does so
    when it is imported, and the tests import them all. Correct the row or the factory table named.
    """


class Transport(StrEnum):
    SERIAL = "serial"
    BLE = "ble"


class Role(StrEnum):
    """What a device is for in the home."""

    MEASURES = "measures"
    """A resident measures with it: it takes readings, and a schedule of them can be expected."""
    STREAMS_MOTION = "streams motion"
    """A wearable streaming accelerometer samples to the hub's fall detector."""
    SIGNALS = "signals"
    """It sends events: a help button pressed; presence, motion and falls seen by a radar."""
    NOTIFIES = "notifies"
    """It carries alerts out to people (the SMS modem); it measures nobody."""


class DeviceOption(StrEnum):
    """Device settings that only some drivers take; each value is the configuration key."""

    MEASURE_EVERY_MIN = "measure_every_min"
    """The hub can start a measurement (a NIBP module) on a schedule."""
    SAMPLE_RATE_HZ = "sample_rate_hz"
    """The accelerometer rate to ask a wearable for."""
    BIND_KEY = "bind_key"
    """The key of a device that encrypts its advertisements."""


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What a scan heard in one advertisement: the parts a matcher reads, UUIDs in lower case."""

    local_name: str | None = None
    service_uuids: frozenset[str] = frozenset()
    service_data_uuids: frozenset[str] = frozenset()
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvertMatcher:
    """One way to recognise a device by its advertisement: every field given must match.

    The fields of Home Assistant's bluetooth matchers. A row lists several when any will do (a
    vendor that advertises a SIG service on some models and only a name on others).
    """

    service_uuid: str | None = None
    service_uuid_prefix: str | None = None
    """A service UUID that starts so: devices whose service UUID carries their own address (iChoice)."""
    service_data_uuid: str | None = None
    local_name: str | None = None
    """A shell-style pattern, case-sensitive: ``"BLESmart_*"``."""
    manufacturer_id: int | None = None
    """A Bluetooth SIG company identifier in the advertisement's manufacturer data."""
    manufacturer_data_start: bytes = b""
    """With ``manufacturer_id``: how that company's data starts."""

    def __post_init__(self) -> None:
        if self.manufacturer_data_start and self.manufacturer_id is None:
            raise CatalogueError("manufacturer_data_start needs the manufacturer_id it belongs to")
        fields = (self.service_uuid, self.service_uuid_prefix, self.service_data_uuid, self.local_name,
                  self.manufacturer_id)
        if fields == (None,) * len(fields):
            raise CatalogueError("an advert matcher needs at least one field")
        for uuid in (self.service_uuid, self.service_uuid_prefix, self.service_data_uuid):
            if uuid is not None and uuid != uuid.lower():
                raise CatalogueError(f"advert matcher UUID {uuid!r} must be lower case, as bleak reports UUIDs")

    @property
    def specificity(self) -> int:
        """How narrowly it points at one kind of device: a vendor's name, company id or own UUID
        counts more than a SIG profile's UUID, which every vendor's device of that kind advertises."""
        fields = (self.local_name, self.manufacturer_id)
        score = 2 * sum(1 for value in fields if value is not None)
        for uuid in (self.service_uuid, self.service_data_uuid):
            if uuid is not None:
                score += 1 if uuid.endswith(_SIG_BASE_SUFFIX) else 2
        if self.service_uuid_prefix is not None:
            score += 2  # a vendor's own UUID, even when its tail is the device's address
        return score

    def matches(self, advert: Advertisement) -> bool:
        if self.service_uuid is not None and self.service_uuid not in advert.service_uuids:
            return False
        prefix = self.service_uuid_prefix
        if prefix is not None and not any(uuid.startswith(prefix) for uuid in advert.service_uuids):
            return False
        if self.service_data_uuid is not None and self.service_data_uuid not in advert.service_data_uuids:
            return False
        if self.local_name is not None and not fnmatch.fnmatchcase(advert.local_name or "", self.local_name):
            return False
        if self.manufacturer_id is not None:
            data = advert.manufacturer_data.get(self.manufacturer_id)
            return data is not None and data.startswith(self.manufacturer_data_start)
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """What a technician does before the hub can use a device; ``yiyang scan`` says it."""

    pairing: bool = False
    """The device must be bonded with the hub (``yiyang pair``) before it sends anything."""
    hold: str | None = None
    """What to hold for it to pair or advertise, e.g. ``"the Bluetooth button until -P- blinks"``."""
    key: bool = False
    """It encrypts what it sends with a key of its own, which its [[devices]] entry must carry (bind_key)."""

    @property
    def needed(self) -> bool:
        return self.pairing or self.key or self.hold is not None


FALL_PROTECTION_SILENT_AFTER_MIN = 15.0
"""Wearables and radars: Nightscout warns after 15 min without data. These devices report every
few seconds, so 15 min is far beyond any BLE reconnect or radar restart."""

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverSpec:
    """One kind of device the hub can serve: a row of the catalogue."""

    name: str
    """What ``driver = "..."`` says in the configuration."""
    transport: Transport
    role: Role
    readings: frozenset[ReadingType] = frozenset()
    """The kinds of reading it takes: at least one for a measuring driver, none for the others."""
    options: frozenset[DeviceOption] = frozenset()
    """The settings it takes beyond its transport's (port and baudrate; address and ble_notify)."""
    advertises: tuple[AdvertMatcher, ...] = ()
    """How a scan recognises a device it serves (BLE): by any one of these."""
    advertisements_only: bool = False
    """BLE: the hub only listens to its advertisements and never connects (it takes no connection slot)."""
    binding: Binding = Binding()
    fall_protection: bool = False
    """While it is silent, falls go unseen: its silence is urgent, and the alert says so."""
    silent_after_min: float | None = None
    """Minutes without a sign of life before its silence is told, when its entry leaves silent_after_min
    at 0; None: not watched unless the entry asks."""

    def __post_init__(self) -> None:
        problems = list(_contradictions(self))
        if problems:
            raise CatalogueError(f"driver {self.name!r}: {'; '.join(problems)}")

    @property
    def has_resident(self) -> bool:
        """Its records belong to a resident: every driver but a notifier, which measures nobody."""
        return self.role is not Role.NOTIFIES


def _contradictions(spec: DriverSpec) -> Iterable[str]:
    ble = spec.transport is Transport.BLE
    if not _NAME.fullmatch(spec.name):
        yield "the name must be lowercase words of letters and digits joined by -"
    if (spec.role is Role.MEASURES) != bool(spec.readings):
        yield "a measuring driver names the readings it takes, and only a measuring driver takes readings"
    if spec.role is Role.NOTIFIES and ble:
        yield "the notifier the daemon builds is a serial modem"
    if not ble and (spec.advertises or spec.advertisements_only or spec.binding.needed):
        yield "advertisements and binding steps are for BLE drivers"
    if spec.advertisements_only and not spec.advertises:
        yield "a driver that only listens to advertisements must say which (advertises)"
    if spec.binding.key and DeviceOption.BIND_KEY not in spec.options:
        yield "a driver that needs a key takes the bind_key option"
    if spec.fall_protection and spec.silent_after_min is None:
        yield "a fall-protection driver's silence must be watched by default (silent_after_min)"
    if spec.silent_after_min is not None and not (1 <= spec.silent_after_min <= 1440):  # the setting's range
        yield "silent_after_min must be 1 to 1440 minutes"
    if not spec.has_resident and spec.silent_after_min is not None:
        yield "a notifier belongs to no resident whose family could be told of its silence"


def _index(rows: Iterable[DriverSpec]) -> dict[str, DriverSpec]:
    index: dict[str, DriverSpec] = {}
    for row in rows:
        if row.name in index:
            raise CatalogueError(f"driver {row.name!r} has two rows")
        index[row.name] = row
    return index


CATALOGUE: Mapping[str, DriverSpec] = _index((
    # Serial devices, each on its USB-serial adapter.
    DriverSpec(  # LifeScan OneTouch Ultra 2, its memory read over the meter's cable
        name="onetouch-ultra2", transport=Transport.SERIAL, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_GLUCOSE}),
    ),
    DriverSpec(  # Seeed MR60FDA1 60 GHz radar: presence, motion and falls
        name="mr60fda1", transport=Transport.SERIAL, role=Role.SIGNALS,
        fall_protection=True, silent_after_min=FALL_PROTECTION_SILENT_AFTER_MIN,
    ),
    DriverSpec(  # SunTech Advantage OEM NIBP module: the hub starts its measurements
        name="suntech-nibp", transport=Transport.SERIAL, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_PRESSURE}), options=frozenset({DeviceOption.MEASURE_EVERY_MIN}),
    ),
    DriverSpec(  # GSM/4G modem: SMS alerts when the internet is down
        name="gsm-modem", transport=Transport.SERIAL, role=Role.NOTIFIES,
    ),
    # Bluetooth SIG health profiles.
    DriverSpec(  # Blood Pressure Service
        name="ble-bps", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_PRESSURE}),
        advertises=(AdvertMatcher(service_uuid=uuids.BLOOD_PRESSURE_SERVICE),),
    ),
    DriverSpec(  # Glucose Service, its memory read through RACP
        name="ble-gls", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_GLUCOSE}),
        advertises=(AdvertMatcher(service_uuid=uuids.GLUCOSE_SERVICE),),
    ),
    DriverSpec(  # Pulse Oximeter Service
        name="ble-plx", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.SPO2}),
        advertises=(AdvertMatcher(service_uuid=uuids.PULSE_OXIMETER_SERVICE),),
    ),
    DriverSpec(  # Health Thermometer Service
        name="ble-hts", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BODY_TEMPERATURE}),
        advertises=(AdvertMatcher(service_uuid=uuids.HEALTH_THERMOMETER_SERVICE),),
    ),
    # Help buttons and fall wearables.
    DriverSpec(  # BTHome v2 buttons (Shelly BLU Button and others); a key only when encrypted
        name="bthome-button", transport=Transport.BLE, role=Role.SIGNALS,
        options=frozenset({DeviceOption.BIND_KEY}), advertisements_only=True,
        advertises=(AdvertMatcher(service_data_uuid=uuids.BTHOME_SERVICE_DATA),),
    ),
    DriverSpec(  # BBC micro:bit worn as a fall sensor
        name="microbit-accel", transport=Transport.BLE, role=Role.STREAMS_MOTION,
        options=frozenset({DeviceOption.SAMPLE_RATE_HZ}),
        advertises=(AdvertMatcher(service_uuid=uuids.MICROBIT_ACCELEROMETER_SERVICE),),
        fall_protection=True, silent_after_min=FALL_PROTECTION_SILENT_AFTER_MIN,
    ),
    DriverSpec(  # Nordic Thingy:52 worn as a fall sensor
        name="thingy-motion", transport=Transport.BLE, role=Role.STREAMS_MOTION,
        options=frozenset({DeviceOption.SAMPLE_RATE_HZ}),
        advertises=(AdvertMatcher(service_uuid=uuids.THINGY_MOTION_SERVICE),),
        fall_protection=True, silent_after_min=FALL_PROTECTION_SILENT_AFTER_MIN,
    ),
    # Vendor protocols of devices common in Chinese homes.
    DriverSpec(  # Omron cuffs: every user's memory over Omron's own protocol, with the hub's key
        name="omron-bp", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_PRESSURE}),
        advertises=(AdvertMatcher(local_name="BLESmart_*"), AdvertMatcher(service_uuid=OMRON_NEWER_SERVICE)),
        binding=Binding(pairing=True, hold="the Bluetooth button until -P- blinks (the hub writes its key "
                                           "at its first connection, while -P- shows)"),
    ),
    DriverSpec(  # Sinocare 三诺 安稳+Air glucose meter: real-time and history results
        name="sinocare-glucose", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_GLUCOSE}),
        advertises=(AdvertMatcher(local_name="BDE_WEIXIN_TTM*"),),
    ),
    DriverSpec(  # Xiaomi MiBeacon body thermometers (MMC-W505, MMC-T201-1) through xiaomi-ble; not the BPX1 cuff
        name="xiaomi-mibeacon", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BODY_TEMPERATURE}),
        options=frozenset({DeviceOption.BIND_KEY}), advertisements_only=True,
        advertises=(AdvertMatcher(service_data_uuid=uuids.MIBEACON_SERVICE_DATA),),
        binding=Binding(key=True),
    ),
    DriverSpec(  # A&D UA-651BLE / UA-651CNBLE: A&D's command and the clock, then the Blood Pressure Service
        name="and-bp", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.BLOOD_PRESSURE}),
        advertises=(AdvertMatcher(local_name="A&D_UA-651*"),),
        binding=Binding(pairing=True, hold="the power button until Pr shows"),
    ),
    # Vendor oximeters streaming live SpO2 into the sustained-SpO2 rule.
    DriverSpec(  # Creative/Viatom PC-60F/FW, POD (also Wellue and other labels): AA 55 frames
        name="viatom-oximeter", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.SPO2}),
        advertises=(AdvertMatcher(local_name="PC-60F*"), AdvertMatcher(local_name="POD-1*")),
    ),
    DriverSpec(  # Wellue O2Ring worn overnight: live values polled, its clock set
        name="o2ring", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.SPO2}),
        advertises=(AdvertMatcher(service_uuid=O2RING_SERVICE), AdvertMatcher(local_name="O2Ring*")),
    ),
    DriverSpec(  # ChoiceMMed iChoice: a service named after its address, an enable command
        name="ichoice-oximeter", transport=Transport.BLE, role=Role.MEASURES,
        readings=frozenset({ReadingType.SPO2}),
        advertises=(AdvertMatcher(service_uuid_prefix=ICHOICE_OXIMETER_SERVICE_PREFIX),),
    ),
))
"""Every driver by name, in the order the configuration lists them."""


def spec_of(name: str) -> DriverSpec:
    """The row of a driver the configuration named (it only accepts the catalogue's names)."""
    return CATALOGUE[name]


def names(where: Callable[[DriverSpec], bool]) -> list[str]:
    """The names of the rows ``where`` holds for, in catalogue order."""
    return [spec.name for spec in CATALOGUE.values() if where(spec)]


def advertised_drivers(advert: Advertisement) -> tuple[str, ...]:
    """The drivers that can serve a device advertising ``advert``, the one to bind first.

    The most specific match comes first (:attr:`AdvertMatcher.specificity`): an A&D cuff that
    advertises its name and the Blood Pressure Service is an ``and-bp`` before it is a ``ble-bps``.
    Ties keep catalogue order.
    """
    scored = [(max((m.specificity for m in spec.advertises if m.matches(advert)), default=0), spec.name)
              for spec in CATALOGUE.values()]
    return tuple(name for score, name in sorted(scored, key=lambda pair: -pair[0]) if score)


def check_served(what: str, served: Iterable[str], where: Callable[[DriverSpec], bool]) -> None:
    """Refuse a factory table (``served``: driver names) that is not exactly the rows ``where`` holds for.

    Called by each gateway table when it is imported, so a row without its session, or a session
    without its row, stops the build rather than a device at a home.
    """
    wanted, have = set(names(where)), set(served)
    if wanted != have:
        raise CatalogueError(f"{what}: no factory for {sorted(wanted - have)}; "
                             f"factories for drivers not in the catalogue as such: {sorted(have - wanted)}")
