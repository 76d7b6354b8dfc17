"""IEEE 11073-20601 (MDER) number formats and the flag-driven field layout of GATT health values.

SFLOAT is 16 bits: a 4-bit two's-complement exponent over a 12-bit two's-complement
mantissa. FLOAT is 32 bits: an 8-bit exponent over a 24-bit mantissa. Both reserve a
handful of mantissas (with exponent 0) for NaN, NRes, +INF, -INF and "reserved".

The SIG health characteristics (blood pressure, glucose, oximetry, thermometer) all share
one shape: a flags byte, mandatory fields, then optional fields in a fixed order, each
present when its flag bit is set. :func:`read_fields` walks such a layout from a table of
:class:`FieldSpec`, so each codec only declares its table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from drivers.errors import CodecError

T = TypeVar("T")


class SpecialValue(StrEnum):
    """The reserved MDER values that are not numbers."""

    NAN = "NaN"
    """Not a number: the device has no value (e.g. finger out of an oximeter)."""
    NRES = "NRes"
    """Not at this resolution: a value exists but cannot be represented."""
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "reserved"
    """Reserved for future use by IEEE 11073: a device must not send it."""


# Keyed by the raw mantissa with exponent 0, which is how both formats encode them.
_SFLOAT_SPECIALS: dict[int, SpecialValue] = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
_FLOAT_SPECIALS: dict[int, SpecialValue] = {
    0x007FFFFF: SpecialValue.NAN,
    0x00800000: SpecialValue.NRES,
    0x007FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x00800002: SpecialValue.NEGATIVE_INFINITY,
    0x00800001: SpecialValue.RESERVED,
}


class SpecialValueError(CodecError):
    """A field that must carry a number carried an MDER special value instead.

    Usually the device's way of saying the measurement failed (NaN) or was out of its
    range (+INF/-INF): ask the resident to measure again.
    """

    def __init__(self, field: str, special: SpecialValue) -> None:
        super().__init__(
            f"{field} is {special.value} instead of a number: the device reported no usable "
            "value; re-measure, and check the device if it keeps happening"
        )
        self.field = field
        self.special = special


class NoMeasurementError(SpecialValueError):
    """Every value of a measurement is NaN: the device saying it could not measure, not a reading.

    Seen from cuffs that put NaN in every field on an error without setting any status bit (public
    trackers). Not garbage either: the session reports it as a device error, so someone knows the
    measurement failed and asks for another, and no NaN ever becomes a reading.
    """

    def __init__(self, characteristic: str, fields: Sequence[str]) -> None:
        CodecError.__init__(
            self,
            f"{characteristic}: NaN in every value ({', '.join(fields)}): the device could not measure; "
            "measure again, and check the device (cuff fit, finger, probe) if it keeps happening",
        )
        self.characteristic = characteristic
        self.field = ", ".join(fields)
        self.special = SpecialValue.NAN


def require_some_number(characteristic: str, values: dict[str, MderFloat | None]) -> None:
    """Raise :class:`NoMeasurementError` when every value present (not None) is NaN."""
    present = {name: value for name, value in values.items() if value is not None}
    if present and all(value.special is SpecialValue.NAN for value in present.values()):
        raise NoMeasurementError(characteristic, list(present))


@dataclass(frozen=True, slots=True)
class MderFloat:
    """One decoded SFLOAT or FLOAT: mantissa x 10^exponent, or a special value."""

    mantissa: int
    exponent: int
    special: SpecialValue | None = None

    @property
    def is_number(self) -> bool:
        return self.special is None

    def require(self, field: str, power_of_ten: int = 0) -> float:
        """The number times 10^power_of_ten, or :class:`SpecialValueError` naming ``field``.

        Scaling happens on the integers, so 120 x 10^-5 kg/L times 10^5 is exactly 120.0 mg/dL.
        """
        if self.special is not None:
            raise SpecialValueError(field, self.special)
        exponent = self.exponent + power_of_ten
        if exponent >= 0:
            return float(self.mantissa * pow(10, exponent))
        # One correctly rounded division, so 189 x 10^-1 is 18.9, not 18.900000000000002.
        divisor: int = pow(10, -exponent)
        return self.mantissa / divisor

    def optional(self, field: str, power_of_ten: int = 0) -> float | None:
        """The number, None for NaN (the device has no value), an error for any other special."""
        if self.special is SpecialValue.NAN:
            return None
        return self.require(field, power_of_ten)


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def decode_sfloat(raw: int) -> MderFloat:
    """Decode a 16-bit SFLOAT from its unsigned integer (little-endian already applied)."""
    if not 0 <= raw <= 0xFFFF:
        raise CodecError(f"SFLOAT raw value {raw:#x} does not fit 16 bits")
    special = _SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return MderFloat(0, 0, special)
    return MderFloat(mantissa=_signed(raw & 0x0FFF, 12), exponent=_signed(raw >> 12, 4))


def decode_float(raw: int) -> MderFloat:
    """Decode a 32-bit FLOAT from its unsigned integer (little-endian already applied)."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise CodecError(f"FLOAT raw value {raw:#x} does not fit 32 bits")
    special = _FLOAT_SPECIALS.get(raw)
    if special is not None:
        return MderFloat(0, 0, special)
    return MderFloat(mantissa=_signed(raw & 0x00FFFFFF, 24), exponent=_signed(raw >> 24, 8))


def _raw_special(specials: dict[int, SpecialValue], special: SpecialValue) -> int:
    return next(raw for raw, value in specials.items() if value is special)


def encode_sfloat(mantissa: int, exponent: int = 0) -> bytes:
    """Encode mantissa x 10^exponent as a little-endian SFLOAT (for simulators and tests)."""
    if not (-2048 <= mantissa <= 2047 and -8 <= exponent <= 7):
        raise ValueError(f"SFLOAT cannot hold mantissa {mantissa} with exponent {exponent}")
    raw = ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
    if raw in _SFLOAT_SPECIALS:
        raise ValueError(f"mantissa {mantissa} with exponent {exponent} collides with a special value")
    return raw.to_bytes(2, "little")


def encode_sfloat_special(special: SpecialValue) -> bytes:
    return _raw_special(_SFLOAT_SPECIALS, special).to_bytes(2, "little")


def encode_float(mantissa: int, exponent: int = 0) -> bytes:
    """Encode mantissa x 10^exponent as a little-endian FLOAT (for simulators and tests)."""
    if not (-(1 << 23) <= mantissa < (1 << 23) and -128 <= exponent <= 127):
        raise ValueError(f"FLOAT cannot hold mantissa {mantissa} with exponent {exponent}")
    raw = ((exponent & 0xFF) << 24) | (mantissa & 0x00FFFFFF)
    if raw in _FLOAT_SPECIALS:
        raise ValueError(f"mantissa {mantissa} with exponent {exponent} collides with a special value")
    return raw.to_bytes(4, "little")


def encode_float_special(special: SpecialValue) -> bytes:
    return _raw_special(_FLOAT_SPECIALS, special).to_bytes(4, "little")


# --- field layouts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldType(Generic[T]):
    """A fixed-size wire type: how many bytes it takes and how to decode exactly those bytes."""

    name: str
    size: int
    decode: Callable[[bytes], T]


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "little")


def _sint(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


UINT8: FieldType[int] = FieldType("uint8", 1, _uint)
UINT16: FieldType[int] = FieldType("uint16", 2, _uint)
SINT16: FieldType[int] = FieldType("sint16", 2, _sint)
UINT24: FieldType[int] = FieldType("uint24", 3, _uint)
SFLOAT: FieldType[MderFloat] = FieldType("SFLOAT", 2, lambda raw: decode_sfloat(_uint(raw)))
FLOAT: FieldType[MderFloat] = FieldType("FLOAT", 4, lambda raw: decode_float(_uint(raw)))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a characteristic value, present when ``flag`` is set (0: always present)."""

    name: str
    type: FieldType[Any]
    flag: int = 0


class Fields:
    """The decoded fields of one value by name; a missing optional field reads as None."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def get(self, name: str, kind: type[T]) -> T | None:
        value = self._values.get(name)
        if value is None:
            return None
        if not isinstance(value, kind):
            raise TypeError(f"field {name} is {type(value).__name__}, not {kind.__name__}")
        return value

    def require(self, name: str, kind: type[T]) -> T:
        value = self.get(name, kind)
        if value is None:
            raise KeyError(f"mandatory field {name} was not decoded")
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._values


def read_fields(
    data: bytes, offset: int, flags: int, layout: Sequence[FieldSpec], characteristic: str
) -> tuple[Fields, int]:
    """Decode the fields of ``layout`` that ``flags`` declares, in order, starting at ``offset``.

    Returns the fields and the offset after the last one. Bytes after the layout are left to
    the caller: the SIG appends future fields at the end, so readers ignore what they do not know.
    """
    values: dict[str, object] = {}
    for spec in layout:
        if spec.flag and not flags & spec.flag:
            continue
        end = offset + spec.type.size
        if end > len(data):
            raise CodecError(
                f"{characteristic}: truncated: flags 0x{flags:02x} declare {spec.name} "
                f"({spec.type.name}) at byte {offset}, but the value is only {len(data)} bytes; "
                "the device sent a short packet (check its firmware, or the negotiated MTU)"
            )
        values[spec.name] = spec.type.decode(data[offset:end])
        offset = end
    return Fields(values), offset


def read_flags(data: bytes, characteristic: str) -> int:
    """The leading flags byte, or a clear error for an empty value."""
    if not data:
        raise CodecError(f"{characteristic}: empty value; expected at least the flags byte")
    return data[0]
