"""Pure RACP download bookkeeping: what may be committed, and the cursor it leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.ble.gls import decode_glucose_context, decode_glucose_measurement
from drivers.ble.gls_session import _memory_was_reset
from drivers.ble.gls_transfer import (
    Cursor,
    Direction,
    GlucoseRecord,
    GlucoseTransfer,
    RecordMark,
    cursor_name,
    parse_cursor,
)
from drivers.model import HubTime

AT = HubTime(wall=datetime(2024, 5, 1, tzinfo=UTC), monotonic=1.0, synced=True)
# Sequence 1 (07:30) and 2 (08:30) on 2024-05-01, 5.6 mmol/L capillary blood from a finger (mol/L, exponent -5).
# Record 1 announces a context (flag 0x10); record 2 does not.
MEASUREMENT_1 = bytes.fromhex("160100e8070501071e0030b211")
MEASUREMENT_2 = bytes.fromhex("060200e8070501081e0030b211")
CONTEXT_1_FASTING = bytes.fromhex("02010003")


def test_a_record_waiting_for_its_context_holds_back_everything_after_it() -> None:
    transfer = GlucoseTransfer(after=None)
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
    transfer = GlucoseTransfer(after=Cursor(RecordMark(1, "2024-05-01T07:30:00"), Direction.UP))
    transfer.add_measurement(decode_glucose_measurement(MEASUREMENT_1), AT)
    transfer.add_measurement(decode_glucose_measurement(MEASUREMENT_2), AT)
    assert transfer.ignored == 1
    assert [r.measurement.sequence_number for r in transfer.take_all()] == [2]


def test_cursor_values() -> None:
    assert cursor_name("glucose-kitchen") == "ble-gls:glucose-kitchen:last-sequence"
    # A bare number is a cursor from before directions were learnt: an upward-counting meter's.
    assert [parse_cursor(v) for v in (None, "42", "x", "70000", "{}", "[1]")] == [
        None, Cursor(RecordMark(42, ""), Direction.UP), None, None, None, None]
    cursor = Cursor(RecordMark(57, "2024-05-01T08:30:00"), Direction.DOWN, RecordMark(60, "2024-04-30T07:00:00"))
    assert parse_cursor(cursor.encode()) == cursor


def _measurement(sequence: int, hour: int = 7) -> bytes:
    """MEASUREMENT_2's layout with another sequence number and hour."""
    return bytes([0x06]) + sequence.to_bytes(2, "little") + bytes.fromhex(f"e8070501{hour:02x}1e0030b211")


def test_the_first_full_download_learns_that_a_meter_counts_backwards() -> None:
    transfer = GlucoseTransfer(after=None)
    for sequence in (1000, 999, 998):  # oldest first, as meters report them
        transfer.add_measurement(decode_glucose_measurement(_measurement(sequence)), AT)
    assert (transfer.direction, transfer.learned) == (Direction.DOWN, True)
    assert transfer.newest(transfer.take_all()).measurement.sequence_number == 998


def test_a_backwards_meter_keeps_only_the_records_below_the_cursor() -> None:
    transfer = GlucoseTransfer(after=Cursor(RecordMark(998, "2024-05-01T07:30:00"), Direction.DOWN))
    for sequence in (1000, 999, 998, 997, 996):  # a meter that sends everything
        transfer.add_measurement(decode_glucose_measurement(_measurement(sequence)), AT)
    assert transfer.ignored == 3
    assert [r.measurement.sequence_number for r in transfer.take_all()] == [997, 996]


def test_a_cursor_of_one_record_knows_no_direction_and_keeps_everything_for_the_outbox_to_sort() -> None:
    transfer = GlucoseTransfer(after=Cursor(RecordMark(1000, "2024-05-01T07:30:00"), None))
    for sequence in (1000, 999):
        transfer.add_measurement(decode_glucose_measurement(_measurement(sequence)), AT)
    assert (transfer.ignored, transfer.direction) == (0, Direction.DOWN)
    assert len(transfer.take_all()) == 2


HELD = Cursor(RecordMark(120, "2024-05-01T08:30:00"), Direction.UP, RecordMark(1, "2024-01-02T07:00:00"))


@pytest.mark.parametrize(("oldest", "reset"), [
    (RecordMark(1, "2024-01-02T07:00:00"), False),   # the same memory
    (RecordMark(5, "2024-01-04T07:00:00"), False),   # a full memory dropped its oldest four
    (RecordMark(121, "2024-05-02T07:00:00"), False),  # records lost past the cursor, not a new numbering
    (RecordMark(1, "2024-05-02T07:00:00"), True),    # numbered again, measured after the cursor
    (RecordMark(1, "2000-01-01T00:01:00"), True),    # numbered again, its clock reset with the memory
    (RecordMark(0, "0000-00-00T00:00:00"), True),    # numbered again from 0, no clock
])
def test_a_meter_whose_oldest_record_is_a_new_one_had_its_memory_reset(oldest: RecordMark, reset: bool) -> None:
    assert _memory_was_reset(HELD, oldest) is reset


def test_without_the_oldest_record_of_last_time_a_reset_shows_by_its_time_only() -> None:
    legacy = Cursor(RecordMark(120, "2024-05-01T08:30:00"), Direction.UP)
    assert _memory_was_reset(legacy, RecordMark(1, "2024-05-02T07:00:00"))
    assert not _memory_was_reset(legacy, RecordMark(1, "2000-01-01T00:01:00"))
