"""The UUID table."""

from __future__ import annotations

import pytest

from drivers.ble import uuids


def test_sig_uuid() -> None:
    assert uuids.sig_uuid(0x2A35) == "00002a35-0000-1000-8000-00805f9b34fb"
    with pytest.raises(ValueError, match="not a 16-bit UUID"):
        uuids.sig_uuid(0x10000)


def test_vendor_uuids_match_the_reference_sheet() -> None:
    assert uuids.MICROBIT_ACCELEROMETER_DATA.uuid == "e95dca4b-251d-470a-a062-fa1922dfa9a8"
    assert uuids.MICROBIT_ACCELEROMETER_SERVICE == "e95d0753-251d-470a-a062-fa1922dfa9a8"
    assert uuids.THINGY_RAW_DATA.uuid == "ef680406-9b35-4933-9b10-52ffa9740042"
    assert uuids.THINGY_MOTION_SERVICE == "ef680400-9b35-4933-9b10-52ffa9740042"


def test_table_is_complete_and_lower_case() -> None:
    table = uuids.CHARACTERISTICS
    assert table[uuids.sig_uuid(0x2A52)].name == "Record Access Control Point"
    assert all(uuid == uuid.lower() for uuid in table)
    assert len({c.name for c in table.values()}) == len(table)
