"""SFLOAT / FLOAT: every special value, sign handling, and the field-layout walker."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.ieee11073 import (
    SFLOAT,
    UINT8,
    UINT16,
    FieldSpec,
    MderFloat,
    SpecialValue,
    SpecialValueError,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_float_special,
    encode_sfloat,
    encode_sfloat_special,
    read_fields,
    read_flags,
)
from drivers.errors import CodecError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x07FF, SpecialValue.NAN),
        (0x0800, SpecialValue.NRES),
        (0x07FE, SpecialValue.POSITIVE_INFINITY),
        (0x0802, SpecialValue.NEGATIVE_INFINITY),
        (0x0801, SpecialValue.RESERVED),
    ],
)
def test_sfloat_special_values(raw: int, expected: SpecialValue) -> None:
    assert decode_sfloat(raw) == MderFloat(0, 0, expected)
    assert encode_sfloat_special(expected) == raw.to_bytes(2, "little")


@pytest.mark.parametrize(
    ("raw", "mantissa", "exponent", "value"),
    [
        (0x0078, 120, 0, 120.0),  # `78 00` = 120 (reference sheet example)
        (0x0FFF, -1, 0, -1.0),  # 0x0FFF is -1, not NaN
        (0xF0BD, 189, -1, 18.9),  # exponent sign-extended: 0xF = -1
        (0xB06F, 111, -5, 0.00111),  # Accu-Chek Guide glucose, kg/L
        (0x8001, 1, -8, 1e-8),  # most negative exponent
        (0x7001, 1, 7, 1e7),  # most positive exponent
        (0x0801 | 0x1000, -2047, 1, -20470.0),  # reserved pattern only with exponent 0
        (0xF800, -2048, -1, -204.8),  # NRes pattern with a non-zero exponent is a number
    ],
)
def test_sfloat_numbers_and_signs(raw: int, mantissa: int, exponent: int, value: float) -> None:
    decoded = decode_sfloat(raw)
    assert decoded == MderFloat(mantissa, exponent)
    assert decoded.require("x") == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x007FFFFF, SpecialValue.NAN),
        (0x00800000, SpecialValue.NRES),
        (0x007FFFFE, SpecialValue.POSITIVE_INFINITY),
        (0x00800002, SpecialValue.NEGATIVE_INFINITY),
        (0x00800001, SpecialValue.RESERVED),
    ],
)
def test_float_special_values(raw: int, expected: SpecialValue) -> None:
    assert decode_float(raw) == MderFloat(0, 0, expected)
    assert encode_float_special(expected) == raw.to_bytes(4, "little")


@pytest.mark.parametrize(
    ("raw", "mantissa", "exponent", "value"),
    [
        (0xFE000EB0, 3760, -2, 37.6),  # Nordic HTS test vector, 37.60 °C
        (0xFFFFFF9C, -100, -1, -10.0),  # negative mantissa
        (0x01000001, 1, 1, 10.0),
        (0x80000001, 1, -128, 1e-128),
    ],
)
def test_float_numbers_and_signs(raw: int, mantissa: int, exponent: int, value: float) -> None:
    decoded = decode_float(raw)
    assert decoded == MderFloat(mantissa, exponent)
    assert decoded.require("x") == pytest.approx(value, rel=1e-12)


def test_exact_scaling_on_integers() -> None:
    # 120 x 10^-5 kg/L -> x 10^5 -> exactly 120 mg/dL, with no binary float noise.
    assert MderFloat(120, -5).require("glucose", 5) == 120.0
    assert MderFloat(189, -1).require("systolic") == 18.9


@pytest.mark.parametrize("special", list(SpecialValue))
def test_require_refuses_every_special(special: SpecialValue) -> None:
    with pytest.raises(SpecialValueError, match=re.escape(f"systolic is {special.value}")) as info:
        MderFloat(0, 0, special).require("systolic")
    assert info.value.special is special
    assert isinstance(info.value, CodecError)


@pytest.mark.parametrize("special", [s for s in SpecialValue if s is not SpecialValue.NAN])
def test_optional_is_none_only_for_nan(special: SpecialValue) -> None:
    assert MderFloat(0, 0, SpecialValue.NAN).optional("pulse") is None
    with pytest.raises(SpecialValueError):
        MderFloat(0, 0, special).optional("pulse")


@settings(deadline=None, max_examples=300)
@given(st.integers(-2048, 2047), st.integers(-8, 7))
def test_sfloat_round_trip(mantissa: int, exponent: int) -> None:
    try:
        encoded = encode_sfloat(mantissa, exponent)
    except ValueError:
        assert exponent == 0
        assert mantissa in {2047, -2048, 2046, -2046, -2047}
        return
    assert decode_sfloat(int.from_bytes(encoded, "little")) == MderFloat(mantissa, exponent)


@settings(deadline=None, max_examples=300)
@given(st.integers(-(1 << 23), (1 << 23) - 1), st.integers(-128, 127))
def test_float_round_trip(mantissa: int, exponent: int) -> None:
    try:
        encoded = encode_float(mantissa, exponent)
    except ValueError:
        assert exponent == 0
        return
    assert decode_float(int.from_bytes(encoded, "little")) == MderFloat(mantissa, exponent)


def test_encoders_refuse_out_of_range() -> None:
    with pytest.raises(ValueError, match="SFLOAT cannot hold"):
        encode_sfloat(2048, 0)
    with pytest.raises(ValueError, match="FLOAT cannot hold"):
        encode_float(1, 128)


_LAYOUT = (
    FieldSpec("a", UINT8),
    FieldSpec("b", UINT16, 0x01),
    FieldSpec("c", SFLOAT, 0x02),
)


def test_read_fields_follows_flags() -> None:
    fields, end = read_fields(b"\x00\x07\x78\x00", 1, 0x02, _LAYOUT, "Test")
    assert end == 4
    assert fields.require("a", int) == 7
    assert fields.get("b", int) is None
    assert fields.require("c", MderFloat) == MderFloat(120, 0)


def test_read_fields_names_the_missing_field() -> None:
    with pytest.raises(CodecError, match=r"Test: truncated: flags 0x03 declare c \(SFLOAT\) at byte 4"):
        read_fields(b"\x03\x07\x01\x00\x78", 1, 0x03, _LAYOUT, "Test")


def test_read_flags_refuses_empty() -> None:
    with pytest.raises(CodecError, match="empty value"):
        read_flags(b"", "Test")
