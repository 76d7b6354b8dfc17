"""Record Access Control Point (0x2A52): the requests that download a meter's stored records,
and its answers. Pure: bytes in, frozen dataclasses out (GLS spec, section 3.4; RACP is shared
with CGM and other profiles that store records).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from drivers.errors import CodecError

RACP = "Record Access Control Point"

_E = TypeVar("_E", bound=IntEnum)


class RacpOpcode(IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class RacpOperator(IntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL = 2
    GREATER_THAN_OR_EQUAL = 3
    WITHIN_RANGE = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class RacpResponseCode(IntEnum):
    SUCCESS = 1
    OPCODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


FILTER_SEQUENCE_NUMBER = 0x01


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """A request written to the RACP: opcode, operator and operand bytes."""

    opcode: RacpOpcode
    operator: RacpOperator
    operand: bytes = b""

    def encode(self) -> bytes:
        return bytes([self.opcode, self.operator]) + self.operand


def _sequence_filter(sequence_number: int) -> bytes:
    if not 0 <= sequence_number <= 0xFFFF:
        raise ValueError(f"sequence number {sequence_number} does not fit 16 bits")
    return bytes([FILTER_SEQUENCE_NUMBER]) + sequence_number.to_bytes(2, "little")


def report_all_records() -> RacpRequest:
    return RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)


def report_records_from(sequence_number: int) -> RacpRequest:
    """Records with sequence number >= ``sequence_number`` (ask last stored + 1 for new ones)."""
    return RacpRequest(
        RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL, _sequence_filter(sequence_number)
    )


def report_records_up_to(sequence_number: int) -> RacpRequest:
    """Records with sequence number <= ``sequence_number`` (new ones of a meter that counts down)."""
    return RacpRequest(
        RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.LESS_THAN_OR_EQUAL, _sequence_filter(sequence_number)
    )


def report_first_record() -> RacpRequest:
    """The oldest stored record: ``01 05``."""
    return RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.FIRST_RECORD)


def report_number_of_records() -> RacpRequest:
    return RacpRequest(RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS)


def report_number_of_records_from(sequence_number: int) -> RacpRequest:
    return RacpRequest(
        RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
        RacpOperator.GREATER_THAN_OR_EQUAL,
        _sequence_filter(sequence_number),
    )


def abort_operation() -> RacpRequest:
    return RacpRequest(RacpOpcode.ABORT_OPERATION, RacpOperator.NULL)


def _enum(kind: type[_E], value: int, what: str) -> _E:
    try:
        return kind(value)
    except ValueError as exc:
        raise CodecError(f"{RACP}: {what} {value} is not defined by the Glucose Profile") from exc


def decode_racp_request(data: bytes) -> RacpRequest:
    """Decode a request as written to the RACP (for simulators and round-trip checks)."""
    if len(data) < 2:
        raise CodecError(f"{RACP}: a request needs an opcode and an operator, got {len(data)} bytes")
    return RacpRequest(
        opcode=_enum(RacpOpcode, data[0], "opcode"),
        operator=_enum(RacpOperator, data[1], "operator"),
        operand=bytes(data[2:]),
    )


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    """Response to "report number of stored records": ``05 00 <u16 count>``."""

    count: int

    def encode(self) -> bytes:
        return bytes([RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOperator.NULL]) + self.count.to_bytes(
            2, "little"
        )


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """The general response ``06 00 <request opcode> <response code>`` that ends a procedure."""

    request_opcode: RacpOpcode
    code: RacpResponseCode

    @property
    def succeeded(self) -> bool:
        """Success, or "no records found", which for a download means nothing new: also done."""
        return self.code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)

    def encode(self) -> bytes:
        return bytes([RacpOpcode.RESPONSE_CODE, RacpOperator.NULL, self.request_opcode, self.code])


def decode_racp_response(data: bytes) -> RacpNumberOfRecords | RacpResponse:
    """Decode an indication from the RACP."""
    if len(data) < 2:
        raise CodecError(f"{RACP}: response too short ({len(data)} bytes)")
    opcode = _enum(RacpOpcode, data[0], "opcode")
    if data[1] != RacpOperator.NULL:
        raise CodecError(f"{RACP}: responses carry the Null operator, got {data[1]}")
    if opcode is RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        if len(data) != 4:
            raise CodecError(f"{RACP}: number-of-records response must be 4 bytes, got {len(data)}")
        return RacpNumberOfRecords(int.from_bytes(data[2:4], "little"))
    if opcode is RacpOpcode.RESPONSE_CODE:
        if len(data) != 4:
            raise CodecError(f"{RACP}: response-code response must be 4 bytes, got {len(data)}")
        return RacpResponse(
            request_opcode=_enum(RacpOpcode, data[2], "request opcode"),
            code=_enum(RacpResponseCode, data[3], "response code"),
        )
    raise CodecError(f"{RACP}: opcode {opcode.name} is a request, not a response")
