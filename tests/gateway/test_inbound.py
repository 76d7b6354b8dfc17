"""Bounded JSON parsing of hostile payloads, excerpts for logs (gateway/inbound.py)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError, InboundError
from gateway.inbound import excerpt, nesting_depth, parse_json_bounded

LIMITS = {"max_bytes": 64 * 1024, "max_depth": 16}


def refused(payload: bytes, **limits: int) -> str:
    with pytest.raises(InboundError) as caught:
        parse_json_bounded(payload, **(limits or LIMITS))
    return str(caught.value)


# -- the payloads the hostile test sent ------------------------------------------------------------


def test_a_5000_deep_array_is_refused_without_recursing():
    deep = b"[" * 5000 + b"]" * 5000
    assert refused(deep) == "nested deeper than 16"


def test_a_1_mb_field_is_refused_by_size_before_anything_else():
    huge = b'{"by": "' + b"x" * 2**20 + b'"}'
    assert refused(huge) == f"too large: {len(huge)} bytes > 65536"


def test_bytes_that_are_not_utf8_are_named_by_offset():
    assert refused(b'{"by": "\xff\xfe"}') == "not UTF-8 at byte 8"


def test_text_that_is_not_json_says_where():
    assert refused(b'{"by": }') == "not JSON: Expecting value (byte 7)"
    # the offset is in bytes of the payload, not characters: 好 is three bytes
    assert refused("{\"note\": \"好\", }".encode()) == "not JSON: Expecting property name enclosed in double quotes " \
                                                     "(byte 16)"


def test_json_extensions_and_broken_unicode_are_refused():
    assert refused(b'{"x": NaN}') == "not JSON: NaN is not JSON"
    assert refused(b"[Infinity]") == "not JSON: Infinity is not JSON"
    assert refused(b'{"by": "\\ud800"}') == "not JSON: a \\u escape is half a UTF-16 surrogate pair"
    assert refused(b'{"\\udfff": 1}') == "not JSON: a \\u escape is half a UTF-16 surrogate pair"
    assert refused(b"1" * 5000).startswith("not JSON: Exceeds the limit (4300 digits)")


def test_an_ack_as_the_contract_writes_it():
    ack = '{"by": "c-daughter", "at": "2026-11-22T09:00:00+08:00", "note": "我马上过去"}'.encode()
    assert parse_json_bounded(ack, max_bytes=4096, max_depth=2) == {
        "by": "c-daughter", "at": "2026-11-22T09:00:00+08:00", "note": "我马上过去"}


def test_brackets_inside_strings_and_escaped_quotes_do_not_count():
    assert nesting_depth(r'{"a": "[[[[\"{{{{", "b": ["\\", "]]]"]}') == 2
    assert parse_json_bounded(b'["' + b"[" * 40 + b'"]', max_bytes=100, max_depth=1) == ["[" * 40]
    assert parse_json_bounded(b'"\\ud83d\\ude00"', max_bytes=100, max_depth=0) == "\U0001f600"


def test_depth_is_counted_in_containers_and_the_limit_is_inclusive():
    assert [nesting_depth(t) for t in ("1", "[]", '{"a": [1]}', "[[],[[]]]")] == [0, 1, 2, 3]
    assert parse_json_bounded(b"[[[]]]", max_bytes=10, max_depth=3) == [[[]]]
    assert refused(b"[[[]]]", max_bytes=10, max_depth=2) == "nested deeper than 2"


def test_an_unterminated_string_full_of_escaped_quotes_is_linear():
    # '"\"\"\"...' without an end: a naive string regex retries at every quote (quadratic).
    payload = b'["' + b'\\"' * 30_000
    assert refused(payload, max_bytes=len(payload), max_depth=4).startswith("not JSON: Unterminated string")


def test_a_caller_cannot_ask_for_a_depth_json_loads_cannot_survive():
    with pytest.raises(ValueError, match="max_depth"):
        parse_json_bounded(b"[]", max_bytes=10, max_depth=5000)


def test_inbound_error_is_a_gateway_error():
    assert issubclass(InboundError, GatewayError)


# -- properties ------------------------------------------------------------------------------------
# derandomize=True: the examples come from a fixed seed, so a failure reproduces on every run and
# on CI; hypothesis prints the failing example and its @reproduce_failure blob to pin it.

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(deadline=None, max_examples=400, derandomize=True)
@given(value=_json_values, ensure_ascii=st.booleans(), max_depth=st.integers(0, 8), max_bytes=st.integers(0, 600))
def test_valid_json_within_limits_parses_as_json_loads_and_beyond_them_is_refused(
        value: Any, ensure_ascii: bool, max_depth: int, max_bytes: int) -> None:
    payload = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    assert nesting_depth(payload.decode()) == _depth(value)
    if len(payload) <= max_bytes and _depth(value) <= max_depth:
        assert parse_json_bounded(payload, max_bytes=max_bytes, max_depth=max_depth) == json.loads(payload)
    else:
        with pytest.raises(InboundError, match=r"^(too large|nested deeper)"):
            parse_json_bounded(payload, max_bytes=max_bytes, max_depth=max_depth)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(depth=st.integers(17, 20_000), opener=st.sampled_from(["[", '{"a":']))
def test_anything_deeper_than_the_bound_is_refused_however_deep(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    payload = (opener * depth + "1" + closer * depth).encode()
    with pytest.raises(InboundError, match="nested deeper than 16"):
        parse_json_bounded(payload, max_bytes=len(payload), max_depth=16)


_json_alphabet = st.sampled_from(list(b'[]{}",:\\u0123456789abdefnlrstuDE-+. \n\xff\xc3\xa9'))


@settings(deadline=None, max_examples=1000, derandomize=True)
@given(noise=st.binary(max_size=200) | st.lists(_json_alphabet, max_size=300).map(bytes),
       valid=_json_values, cut=st.integers(0, 400), insert=st.binary(max_size=4))
def test_nothing_raises_but_inbound_error(noise: bytes, valid: Any, cut: int, insert: bytes) -> None:
    spliced = json.dumps(valid).encode()
    spliced = spliced[:cut] + insert + spliced[cut:]
    for payload in (noise, spliced, b"[" * 3000 + noise):
        with contextlib.suppress(InboundError):  # anything else fails the test
            parse_json_bounded(payload, max_bytes=4096, max_depth=8)


# -- excerpts ---------------------------------------------------------------------------------------


def test_an_excerpt_is_short_single_line_and_says_how_big_the_whole_was():
    payload = b'{"by": "a\n2026 ERROR forged line\x1b[31m' + b"x" * 2**20
    shown = excerpt(payload, 40)
    assert shown == '{"by": "a\\x0a2026 ERROR forged line\\x1b[…' + f"({len(payload)} bytes)"
    assert "\n" not in shown


def test_short_text_is_shown_whole_and_bad_bytes_escaped():
    assert excerpt("短信\t") == "短信\\x09"
    assert excerpt(b"ok \xff\xfe") == "ok \\xff\\xfe"
    assert excerpt("x" * 100, 10) == "xxxxxxxxxx…(100 chars)"


@settings(deadline=None, max_examples=300, derandomize=True)
@given(data=st.binary(max_size=2000) | st.text(max_size=500), limit=st.integers(1, 120))
def test_excerpts_are_always_printable_and_bounded(data: bytes | str, limit: int) -> None:
    shown = excerpt(data, limit)
    assert shown.isprintable()
    assert len(shown) <= limit + len(f"…({len(data)} bytes)")
