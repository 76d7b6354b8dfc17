"""The driver catalogue: its rows are whole and consistent, its matchers recognise adverts, its checks bite."""

from __future__ import annotations

import pytest

from drivers.ble import uuids
from drivers.catalogue import (
    CATALOGUE,
    Advertisement,
    AdvertMatcher,
    Binding,
    CatalogueError,
    DeviceOption,
    DriverSpec,
    Role,
    Transport,
    advertised_drivers,
    check_served,
    names,
    spec_of,
)
from drivers.model import ReadingType

OMRON_COMPANY_ID = 0x020E
"""Omron Healthcare's Bluetooth SIG company identifier (for the matcher examples)."""


def row(**changes: object) -> DriverSpec:
    """A valid BLE measuring row, with ``changes``."""
    fields: dict[str, object] = {
        "name": "example-bp", "transport": Transport.BLE, "role": Role.MEASURES,
        "readings": frozenset({ReadingType.BLOOD_PRESSURE}),
        "advertises": (AdvertMatcher(service_uuid=uuids.BLOOD_PRESSURE_SERVICE),),
    }
    return DriverSpec(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", list(CATALOGUE.values()), ids=list(CATALOGUE))
def test_every_row_is_whole(spec: DriverSpec) -> None:
    assert spec_of(spec.name) is spec
    assert (spec.role is Role.MEASURES) == bool(spec.readings)
    if spec.transport is Transport.BLE:
        assert spec.advertises, "a BLE device the scan cannot recognise cannot be bound from the scan"
    if spec.fall_protection:
        assert spec.silent_after_min is not None


def test_the_drivers_whose_silence_means_danger_are_the_fall_watchers() -> None:
    # Adding a driver touches its own row only: no list of every driver is pinned here.
    assert names(lambda spec: spec.fall_protection) == ["mr60fda1", "microbit-accel", "thingy-motion"]


@pytest.mark.parametrize(("changes", "contradiction"), [
    ({"name": "Example_BP"}, "lowercase words"),
    ({"readings": frozenset()}, "a measuring driver names the readings it takes"),
    ({"role": Role.SIGNALS}, "only a measuring driver takes readings"),
    ({"role": Role.NOTIFIES, "readings": frozenset()}, "the notifier the daemon builds is a serial modem"),
    ({"transport": Transport.SERIAL}, "advertisements and binding steps are for BLE drivers"),
    ({"advertises": (), "advertisements_only": True}, "must say which"),
    ({"binding": Binding(key=True)}, "takes the bind_key option"),
    ({"fall_protection": True}, "watched by default"),
    ({"silent_after_min": 0.5}, "1 to 1440 minutes"),
])
def test_a_row_that_contradicts_itself_is_refused(changes: dict[str, object], contradiction: str) -> None:
    with pytest.raises(CatalogueError, match=contradiction):
        row(**changes)


def test_a_row_with_everything_a_vendor_device_needs_is_accepted() -> None:
    spec = row(name="omron-bp", binding=Binding(pairing=True, hold="the Bluetooth button until -P- blinks"),
               advertises=(AdvertMatcher(local_name="BLESmart_*"), AdvertMatcher(manufacturer_id=OMRON_COMPANY_ID)))
    assert spec.binding.needed and spec.has_resident
    keyed = row(name="xiaomi-bp", advertisements_only=True, options=frozenset({DeviceOption.BIND_KEY}),
                binding=Binding(key=True), advertises=(AdvertMatcher(service_data_uuid=uuids.sig_uuid(0xFE95)),))
    assert keyed.binding.needed
    assert not row().binding.needed


def test_the_modem_measures_nobody_and_everything_else_someone() -> None:
    assert names(lambda spec: not spec.has_resident) == ["gsm-modem"]


@pytest.mark.parametrize(("matcher", "advert", "matches"), [
    (AdvertMatcher(service_uuid=uuids.GLUCOSE_SERVICE),
     Advertisement(service_uuids=frozenset({uuids.BATTERY_SERVICE, uuids.GLUCOSE_SERVICE})), True),
    (AdvertMatcher(service_uuid=uuids.GLUCOSE_SERVICE), Advertisement(service_data_uuids=frozenset(
        {uuids.GLUCOSE_SERVICE})), False),
    (AdvertMatcher(service_data_uuid=uuids.BTHOME_SERVICE_DATA),
     Advertisement(service_data_uuids=frozenset({uuids.BTHOME_SERVICE_DATA})), True),
    (AdvertMatcher(local_name="BLESmart_*"), Advertisement(local_name="BLESmart_00000116AB12"), True),
    (AdvertMatcher(local_name="BLESmart_*"), Advertisement(local_name="blesmart_0000"), False),
    (AdvertMatcher(local_name="BLESmart_*"), Advertisement(), False),
    (AdvertMatcher(manufacturer_id=OMRON_COMPANY_ID, manufacturer_data_start=b"\x01"),
     Advertisement(manufacturer_data={OMRON_COMPANY_ID: b"\x01\x02"}), True),
    (AdvertMatcher(manufacturer_id=OMRON_COMPANY_ID, manufacturer_data_start=b"\x01"),
     Advertisement(manufacturer_data={OMRON_COMPANY_ID: b"\x02\x01"}), False),
    (AdvertMatcher(manufacturer_id=OMRON_COMPANY_ID), Advertisement(manufacturer_data={0x0001: b""}), False),
    # A service UUID that carries the device's own address (iChoice) is matched by its start.
    (AdvertMatcher(service_uuid_prefix="ba11f08c-5f14-0b0d-1080-"),
     Advertisement(service_uuids=frozenset({"ba11f08c-5f14-0b0d-1080-007cbe238851"})), True),
    (AdvertMatcher(service_uuid_prefix="ba11f08c-5f14-0b0d-1080-"),
     Advertisement(service_uuids=frozenset({"ba11f08c-5f14-0b0d-10a0-007cbe238851"})), False),
    # Every field given must match:
    (AdvertMatcher(service_uuid=uuids.BLOOD_PRESSURE_SERVICE, local_name="BLESmart_*"),
     Advertisement(local_name="BLESmart_0000", service_uuids=frozenset({uuids.BLOOD_PRESSURE_SERVICE})), True),
    (AdvertMatcher(service_uuid=uuids.BLOOD_PRESSURE_SERVICE, local_name="BLESmart_*"),
     Advertisement(local_name="UA-651", service_uuids=frozenset({uuids.BLOOD_PRESSURE_SERVICE})), False),
])
def test_a_matcher_needs_every_field_it_gives(matcher: AdvertMatcher, advert: Advertisement, matches: bool) -> None:
    assert matcher.matches(advert) is matches


@pytest.mark.parametrize(("fields", "refusal"), [
    ({}, "at least one field"),
    ({"service_uuid": uuids.GLUCOSE_SERVICE.upper()}, "lower case"),
    ({"service_uuid_prefix": "BA11F08C-"}, "lower case"),
    ({"manufacturer_data_start": b"\x01"}, "needs the manufacturer_id"),
])
def test_a_matcher_that_could_never_work_is_refused(fields: dict[str, object], refusal: str) -> None:
    with pytest.raises(CatalogueError, match=refusal):
        AdvertMatcher(**fields)  # type: ignore[arg-type]


def test_an_advert_names_every_driver_it_matches_in_catalogue_order() -> None:
    advert = Advertisement(service_uuids=frozenset({uuids.HEALTH_THERMOMETER_SERVICE, uuids.BLOOD_PRESSURE_SERVICE}),
                           service_data_uuids=frozenset({uuids.BTHOME_SERVICE_DATA}))
    assert advertised_drivers(advert) == ("ble-bps", "ble-hts", "bthome-button")
    assert advertised_drivers(Advertisement(local_name="TV")) == ()


def test_a_factory_table_must_match_the_rows_it_serves() -> None:
    serial = lambda spec: spec.transport is Transport.SERIAL  # noqa: E731
    check_served("serial", ["onetouch-ultra2", "mr60fda1", "suntech-nibp", "gsm-modem"], serial)
    with pytest.raises(CatalogueError, match=r"serial: no factory for \['gsm-modem'\]; .*: \[\]"):
        check_served("serial", ["onetouch-ultra2", "mr60fda1", "suntech-nibp"], serial)
    with pytest.raises(CatalogueError, match=r"no factory for \[\]; .*: \['ble-bps'\]"):
        check_served("serial", ["onetouch-ultra2", "mr60fda1", "suntech-nibp", "gsm-modem", "ble-bps"], serial)


def test_two_rows_of_one_name_are_refused() -> None:
    from drivers.catalogue import _index  # noqa: PLC0415 (the catalogue's own indexing)

    with pytest.raises(CatalogueError, match="two rows"):
        _index([row(), row(advertisements_only=True)])
