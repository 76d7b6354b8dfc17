"""OneTouch Ultra 2 glucose meter: the pure codec (ASCII lines in, frozen dataclasses out).

No I/O, no clock, no logging. Sources: the fact sheet ``reference/serial-devices.md`` and the two
public implementations, glucometerutils ``drivers/otultra2.py`` and Tidepool's
``lib/drivers/onetouch/oneTouchUltra2.js``.

A reply line is ``<payload> <CCCC>\\r`` (dump lines ``\\r\\n``) where ``CCCC`` is the 16-bit sum of the
payload's ASCII bytes in 4 uppercase hex digits. Payloads are comma-separated and no field contains a
comma, so each payload splits into a fixed number of fields, each checked by name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from drivers.errors import ChecksumError, CodecError
from drivers.model import (
    DeviceInfo,
    Glucose,
    GlucoseSample,
    HubTime,
    MealContext,
    Reading,
    ReadingFlag,
    TimeSource,
    mg_dl_to_mmol_l,
)

MODEL = "OneTouch Ultra 2"

COMMAND_PREFIX = "\x11\r"
"""DC1 + CR wakes the meter's serial interface before every command."""

CMD_FIRMWARE = "DM?"
CMD_SERIAL = "DM@"
CMD_READ_CLOCK = "DMF"
CMD_SET_CLOCK = "DMT"
CMD_UNITS = "DMSU?"
CMD_DUMP = "DMP"

LOWEST_MG_DL = 20
"""Below this the meter displays "LO"; Tidepool annotates such stored values as out of range (low)."""
HIGHEST_MG_DL = 600
"""Above this the meter displays "HI"; Tidepool annotates such stored values as out of range (high)."""

_CHECKSUM_LINE = re.compile(rb"(?P<payload>[\x20-\x7e]+) (?P<checksum>[0-9A-F]{4})")
_SERIAL_NUMBER = re.compile(r"[0-9A-Z]{9}")
_DATE = re.compile(r"(\d\d)/(\d\d)/(\d\d)")
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)   ")
_RESULT = re.compile(r"(?P<control>[C ]) (?P<value>\d{3})(?P<parity>[? ])")
_COUNT = re.compile(r"\d{3}")

_DAYS_OF_WEEK = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

_MEAL_CODES: dict[str, MealContext] = {
    # LifeScan's codes as glucometerutils names them: N no meal mark, B before meal, A after meal.
    "N": MealContext.UNKNOWN,
    "B": MealContext.PREPRANDIAL,
    "A": MealContext.POSTPRANDIAL,
}
_MEAL_LETTERS = {meal: letter for letter, meal in _MEAL_CODES.items()}

COMMENT_CODES: dict[int, str] = {
    # LifeScan's comment codes (via glucometerutils); 0 means no comment was entered.
    0: "",
    1: "not enough food",
    2: "too much food",
    3: "mild exercise",
    4: "hard exercise",
    5: "medication",
    6: "stress",
    7: "illness",
    8: "feel hypo",
    9: "menses",
    10: "vacation",
    11: "other",
}


class GlucoseUnit(StrEnum):
    """The unit the meter displays. Dumps are always in mg/dL regardless."""

    MG_DL = "MG/DL "
    MMOL_L = "MMOL/L"


@dataclass(frozen=True, slots=True)
class DumpHeader:
    count: int
    serial: str
    unit: GlucoseUnit


@dataclass(frozen=True, slots=True)
class MeterRecord:
    """One stored result exactly as the meter keeps it."""

    meter_time: datetime
    """Naive meter wall-clock time (the meter has no time zone and may be set wrong)."""
    mg_dl: int
    control_solution: bool = False
    parity_error: bool = False
    meal: MealContext = MealContext.UNKNOWN
    comment: int = 0


class DumpErrorKind(StrEnum):
    CHECKSUM = "checksum"
    MALFORMED = "malformed"
    COUNT_MISMATCH = "count_mismatch"


@dataclass(frozen=True, slots=True)
class DumpLineError:
    line_number: int
    """1-based position in the dump, the header being line 0."""
    kind: DumpErrorKind
    reason: str
    """For a technician; it quotes the line, so it holds glucose values: keep it out of logs."""


@dataclass(frozen=True, slots=True)
class DumpResult:
    header: DumpHeader
    records: tuple[MeterRecord, ...]
    errors: tuple[DumpLineError, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.errors


# -- framing ---------------------------------------------------------------------------------------


def checksum(payload: bytes) -> int:
    return sum(payload) & 0xFFFF


def encode_command(command: str) -> bytes:
    """Frame a host command, e.g. ``encode_command("DM@") == b"\\x11\\rDM@\\r"``."""
    if not command.isascii() or not command.isprintable() or not command:
        raise ValueError(f"OneTouch command must be non-empty printable ASCII, got {command!r}")
    return f"{COMMAND_PREFIX}{command}\r".encode("ascii")


def encode_line(payload: str, *, dump: bool = False) -> bytes:
    """Frame a meter reply line (the simulator and tests speak as the meter)."""
    raw = payload.encode("ascii")
    return raw + b" %04X\r" % checksum(raw) + (b"\n" if dump else b"")


def parse_line(line: bytes) -> str:
    """Verify a reply line's checksum and return its payload.

    Accepts the line with its ``\\r`` or ``\\r\\n`` ending, and tolerates a leading ``\\n`` left over
    from the previous dump line when lines are read up to ``\\r``.
    """
    if line.startswith(b"\n"):
        line = line[1:]
    if line.endswith(b"\r\n"):
        body = line[:-2]
    elif line.endswith(b"\r"):
        body = line[:-1]
    else:
        raise CodecError(f"reply line is truncated (no CR line ending): {_show(line)}")
    match = _CHECKSUM_LINE.fullmatch(body)
    if match is None:
        raise CodecError(f"reply line is not '<payload> <4 hex digit checksum>' in printable ASCII: {_show(line)}")
    payload = match["payload"]
    given = int(match["checksum"], 16)
    computed = checksum(payload)
    if given != computed:
        raise ChecksumError(
            f"reply line checksum is {given:04X} but the payload sums to {computed:04X} "
            f"(line noise or a bad cable): {_show(line)}"
        )
    return payload.decode("ascii")


def _show(line: bytes) -> str:
    # Bounded so a runaway line cannot flood a log; the caller decides whether to log at all.
    return repr(line[:80]) + ("..." if len(line) > 80 else "")


# -- payload fields --------------------------------------------------------------------------------


def _fields(payload: str, prefix: str, count: int, what: str) -> list[str]:
    if not payload.startswith(prefix):
        raise CodecError(f"{what}: expected a payload starting with {prefix!r}, got {payload[:20]!r}")
    parts = payload[len(prefix) :].split(",")
    if len(parts) != count:
        raise CodecError(f"{what}: expected {count} comma-separated fields, got {len(parts)}")
    return parts


def _unquote(text: str, name: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise CodecError(f"{name} field must be in double quotes, got {text!r}")
    return text[1:-1]


def expand_year(two_digits: int) -> int:
    """Two-digit meter year to a full year.

    The meter stores ``YY`` only. 00-69 is read as 2000-2069 and 70-99 as 1970-1999: the Ultra 2
    came out in the 2000s, so a 19xx date can only be a clock that was never set, and keeping it
    in the past makes that visible instead of pushing it 70+ years into the future. The clock
    offset measured at download corrects such a meter anyway, as long as records and clock read
    alike.
    """
    if not 0 <= two_digits <= 99:
        raise ValueError(f"two-digit year out of range: {two_digits}")
    return 2000 + two_digits if two_digits < 70 else 1900 + two_digits


def _meter_datetime(date_field: str, time_field: str) -> datetime:
    date_text = _unquote(date_field, "date")
    date_match = _DATE.fullmatch(date_text)
    if date_match is None:
        raise CodecError(f"date field must be MM/DD/YY, got {date_text!r}")
    time_text = _unquote(time_field, "time")
    time_match = _TIME.fullmatch(time_text)
    if time_match is None:
        raise CodecError(f"time field must be 'HH:MM:SS' and three spaces, got {time_text!r}")
    month, day, year = (int(group) for group in date_match.groups())
    hour, minute, second = (int(group) for group in time_match.groups())
    if not 1 <= month <= 12:
        raise CodecError(f"date field month must be 01-12, got {month:02d}")
    if not 0 <= hour <= 23 or not 0 <= minute <= 59 or not 0 <= second <= 59:
        raise CodecError(f"time field out of range: {time_text.strip()!r}")
    try:
        return datetime(expand_year(year), month, day, hour, minute, second)  # naive: meter wall time
    except ValueError as exc:
        raise CodecError(f"date field day {day:02d} does not exist in month {month:02d}/{year:02d}") from exc


def _day_of_week(text: str) -> str:
    day = _unquote(text, "day of week")
    if day not in _DAYS_OF_WEEK:
        raise CodecError(f"day of week field must be one of {', '.join(_DAYS_OF_WEEK)}, got {day!r}")
    return day


# -- replies ---------------------------------------------------------------------------------------


def parse_serial(payload: str) -> str:
    """``@ "XXXXXXXXY"`` -> the 9-character serial number (a trailing Y marks an Ultra 2)."""
    (serial_field,) = _fields(payload, "@ ", 1, "DM@ serial number reply")
    serial = _unquote(serial_field, "serial number")
    if _SERIAL_NUMBER.fullmatch(serial) is None:
        raise CodecError(f"serial number must be 9 uppercase letters or digits, got {serial!r}")
    return serial


def parse_clock(payload: str) -> datetime:
    """``F "SAT","08/03/13","22:12:00   "`` (``T`` after setting it) -> naive meter time."""
    prefix = payload[:2] if payload[:2] in ("F ", "T ") else "F "
    day_field, date_field, time_field = _fields(payload, prefix, 3, "DMF clock reply")
    _day_of_week(day_field)
    return _meter_datetime(date_field, time_field)


def parse_units(payload: str) -> GlucoseUnit:
    """``SU?,"MG/DL "`` or ``SU?,"MMOL/L"`` -> the unit the meter displays."""
    (unit_field,) = _fields(payload, "SU?,", 1, "DMSU? units reply")
    return _unit(unit_field)


def _unit(text: str) -> GlucoseUnit:
    unit = _unquote(text, "unit")
    try:
        return GlucoseUnit(unit)
    except ValueError:
        raise CodecError(f"unit field must be 'MG/DL ' or 'MMOL/L', got {unit!r}") from None


def parse_dump_header(payload: str) -> DumpHeader:
    """``P 003,"GMF600DCY","MG/DL "`` -> record count, serial number, display unit."""
    count_field, serial_field, unit_field = _fields(payload, "P ", 3, "DMP dump header")
    if _COUNT.fullmatch(count_field) is None:
        raise CodecError(f"record count field must be 3 digits, got {count_field!r}")
    serial = _unquote(serial_field, "serial number")
    if _SERIAL_NUMBER.fullmatch(serial) is None:
        raise CodecError(f"serial number must be 9 uppercase letters or digits, got {serial!r}")
    return DumpHeader(count=int(count_field), serial=serial, unit=_unit(unit_field))


def parse_record(payload: str) -> MeterRecord:
    """``P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00`` -> one stored result."""
    day, date, time, result, meal, comment, tail = _fields(payload, "P ", 7, "DMP record line")
    _day_of_week(day)
    meter_time = _meter_datetime(date, time)
    result_text = _unquote(result, "result")
    result_match = _RESULT.fullmatch(result_text)
    if result_match is None:
        raise CodecError(
            f"result field must be control mark (C or space), space, 3 digits, parity mark (? or space); "
            f"got {result_text!r}"
        )
    meal_letter = _unquote(meal, "meal")
    if meal_letter not in _MEAL_CODES:
        raise CodecError(f"meal field must be N, B or A, got {meal_letter!r}")
    comment_text = _unquote(comment, "comment")
    if not (len(comment_text) == 2 and comment_text.isdigit() and int(comment_text) in COMMENT_CODES):
        raise CodecError(f"comment field must be 00-11, got {comment_text!r}")
    if tail != " 00":
        raise CodecError(f"last field must be ' 00', got {tail!r}")
    return MeterRecord(
        meter_time=meter_time,
        mg_dl=int(result_match["value"]),
        control_solution=result_match["control"] == "C",
        parity_error=result_match["parity"] == "?",
        meal=_MEAL_CODES[meal_letter],
        comment=int(comment_text),
    )


# -- encoding (for the simulator and round-trip tests) ---------------------------------------------


def format_meter_time(meter_time: datetime) -> str:
    """``"SAT","03/21/15","16:45:24   "``: the three date/time fields as the meter sends them."""
    day = _DAYS_OF_WEEK[meter_time.weekday()]
    return f'"{day}","{meter_time:%m/%d/%y}","{meter_time:%H:%M:%S}   "'


def format_clock(meter_time: datetime, *, command_letter: str = "F") -> str:
    return f"{command_letter} {format_meter_time(meter_time)}"


def format_serial(serial: str) -> str:
    return f'@ "{serial}"'


def format_dump_header(header: DumpHeader) -> str:
    return f'P {header.count:03d},"{header.serial}","{header.unit.value}"'


def format_record(record: MeterRecord) -> str:
    if not 0 <= record.mg_dl <= 999:
        raise ValueError(f"mg/dL value does not fit the meter's 3 digits: {record.mg_dl}")
    control = "C" if record.control_solution else " "
    parity = "?" if record.parity_error else " "
    return (
        f"P {format_meter_time(record.meter_time)},"
        f'"{control} {record.mg_dl:03d}{parity}","{_MEAL_LETTERS[record.meal]}","{record.comment:02d}", 00'
    )


# -- whole dumps -----------------------------------------------------------------------------------


@dataclass(slots=True)
class DumpParser:
    """Turns dump lines, fed one at a time, into a header, records and per-line errors.

    A bad record line is recorded and skipped (the other records are real); a bad header raises,
    because without it nothing says the lines are a dump at all.
    """

    header: DumpHeader | None = None
    records: list[MeterRecord] = field(default_factory=list)
    errors: list[DumpLineError] = field(default_factory=list)
    lines_seen: int = 0

    @property
    def complete(self) -> bool:
        return self.header is not None and self.lines_seen >= self.header.count

    def feed(self, line: bytes) -> MeterRecord | None:
        if self.header is None:
            self.header = parse_dump_header(parse_line(line))
            return None
        self.lines_seen += 1
        try:
            record = parse_record(parse_line(line))
        except CodecError as exc:
            kind = DumpErrorKind.CHECKSUM if isinstance(exc, ChecksumError) else DumpErrorKind.MALFORMED
            self.errors.append(DumpLineError(self.lines_seen, kind, str(exc)))
            return None
        self.records.append(record)
        return record

    def result(self) -> DumpResult:
        if self.header is None:
            raise CodecError("DMP dump has no header line")
        errors = list(self.errors)
        if self.lines_seen != self.header.count:
            errors.append(
                DumpLineError(
                    0,
                    DumpErrorKind.COUNT_MISMATCH,
                    f"header announces {self.header.count} records but {self.lines_seen} lines followed",
                )
            )
        return DumpResult(self.header, tuple(self.records), tuple(errors))


def parse_dump(lines: Iterable[bytes]) -> DumpResult:
    parser = DumpParser()
    for line in lines:
        parser.feed(line)
    return parser.result()


# -- to the hub's records --------------------------------------------------------------------------


def meter_clock_offset(meter_clock: datetime, hub_wall: datetime, tz: tzinfo) -> timedelta:
    """Hub local wall time minus meter clock, in whole seconds.

    The meter shows whole seconds, truncated: a meter reading ``22:12:00`` is somewhere in
    ``[22:12:00, 22:12:01)``, so the difference is floored; rounding would report two agreeing
    clocks as one second apart half of the time.
    """
    hub_local = hub_wall.astimezone(tz).replace(tzinfo=None)
    return timedelta(seconds=math.floor((hub_local - meter_clock).total_seconds()))


def source_key(serial: str, record: MeterRecord) -> str:
    # The meter has no sequence numbers: serial + meter time + value is the record's identity.
    return f"{serial}|{record.meter_time:%Y-%m-%dT%H:%M:%S}|{record.mg_dl}"


def record_to_reading(
    record: MeterRecord,
    *,
    serial: str,
    clock_offset: timedelta,
    hub_time: HubTime,
    tz: tzinfo,
    device_id: str,
    resident_id: str,
) -> Reading:
    """A stored meter result as a hub ``Reading`` (mmol/L, UTC time corrected by the clock offset).

    In a DST gap or fold the local time is resolved with ``fold=0`` (the earlier instant).
    """
    local = (record.meter_time + clock_offset).replace(tzinfo=tz)
    flags: set[ReadingFlag] = set()
    if record.control_solution:
        flags.add(ReadingFlag.CONTROL_SOLUTION)
    if record.parity_error:
        flags.add(ReadingFlag.PARITY_ERROR)
    if record.mg_dl < LOWEST_MG_DL:
        flags.add(ReadingFlag.BELOW_RANGE)
    elif record.mg_dl > HIGHEST_MG_DL:
        flags.add(ReadingFlag.ABOVE_RANGE)
    return Reading(
        device=DeviceInfo(id=device_id, transport="serial", model=MODEL, serial_number=serial),
        resident_id=resident_id,
        measurement=Glucose(
            mmol_l=mg_dl_to_mmol_l(record.mg_dl),
            meal=record.meal,
            sample=(GlucoseSample.CONTROL_SOLUTION if record.control_solution else GlucoseSample.CAPILLARY_WHOLE_BLOOD),
        ),
        measured_at=local.astimezone(UTC),
        time_source=TimeSource.DEVICE if hub_time.synced else TimeSource.HUB_UNSYNCED,
        received=hub_time,
        device_time=record.meter_time,
        flags=frozenset(flags),
        source_key=source_key(serial, record),
    )
