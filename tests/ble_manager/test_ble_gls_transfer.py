"""Pure RACP download bookkeeping: what may be committed, and the cursor it leaves."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.ble.gls import decode_glucose_context, decode_glucose_measurement
from drivers.ble.gls_transfer import GlucoseRecord, GlucoseTransfer, cursor_name, parse_cursor
from drivers.model import HubTime

AT = HubTime(wall=datetime(2024, 5, 1, tzinfo=UTC), monotonic=1.0, synced=True)
# Sequence 1 (07:30) and 2 (08:30) on 2024-05-01, 5.6 mmol/L capillary blood from a finger (mol/L, exponent -5).
# Record 1 announces a context (flag 0x10); record 2 does not.
MEASUREMENT_1 = bytes.fromhex("160100e8070501071e0030b211")
MEASUREMENT_2 = bytes.fromhex("060200e8070501081e0030b211")
CONTEXT_1_FASTING = bytes.fromhex("02010003")


def test_a_record_waiting_for_its_context_holds_back_everything_after_it() -> None:
    transfer = GlucoseTransfer(after_sequence=None)
    transfer.add_measurement(decode_glucose_measurement(MEASUREMENT_1), AT)
    transfer.add_measurement(decode_glucose_measurement(MEASUREMENT_2), AT)
    assert transfer.complete_count() == 0
    transfer.add_context(decode_glucose_context(CONTEXT_1_FASTING))
    assert transfer.take_complete() == [
        GlucoseRecord(decode_glucose_measurement(MEASUREMENT_1), decode_glucose_context(CONTEXT_1_FASTING), AT),
        GlucoseRecord(decode_glucose_measurement(MEASUREMENT_2), None, AT),
    ]
    assert transfer.take_complete() == []


def test_records_at_or_below_the_cursor_are_ignored() -> None:
    transfer = GlucoseTransfer(after_sequence=1)
    transfer.add_measurement(decode_glucose_measurement(MEASUREMENT_1), AT)
    transfer.add_measurement(decode_glucose_measurement(MEASUREMENT_2), AT)
    assert transfer.ignored == 1
    assert [r.measurement.sequence_number for r in transfer.take_all()] == [2]


def test_cursor_values() -> None:
    assert cursor_name("glucose-kitchen") == "ble-gls:glucose-kitchen:last-sequence"
    assert [parse_cursor(v) for v in (None, "42", "x", "70000")] == [None, 42, None, None]
