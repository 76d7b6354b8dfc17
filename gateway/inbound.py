"""Bounded parsing of what other people send us (MQTT payloads, fleet commands): pure, no I/O.

Anything a client can publish is hostile. ``json.loads`` recurses once per nesting level, so a
5,000-deep ``[[[...]]]`` of 10 KB raises ``RecursionError`` (not ``ValueError``) and takes down
whoever called it; a 1 MB string ends up in a log line. Here the payload is checked in the order
that costs least: its size, then that it is UTF-8, then its nesting depth by a linear scan that
skips JSON strings (so a bracket inside a string does not count and ``json.loads`` never goes
deeper than the bound), then ``json.loads``. Every refusal is one :class:`InboundError` whose
message says what is wrong, and never quotes the payload beyond :func:`excerpt`.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import NoReturn

from gateway.errors import InboundError

DEPTH_CEILING = 200
"""No caller may ask for more: ``json.loads`` recurses per level and Python's default limit is 1,000
frames, some of them already used by whoever called us."""

# A JSON string, escapes included; one left open runs to the end of the text, as it does for
# json.loads. It never fails to match at a quote, so re.sub never rescans: linear, and no
# backtracking ("unrolled loop", its alternatives start with different characters).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*\\?(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# \uD800-\uDFFF escapes: json.loads turns a lone one into a str that cannot be encoded again.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json_bounded(payload: bytes, *, max_bytes: int, max_depth: int) -> object:
    """The JSON value in ``payload``, or :class:`InboundError` saying why not.

    ``max_depth`` counts containers: ``1`` is ``1``, ``[1]`` is depth 1, ``{"a": [1]}`` depth 2.
    Strict JSON: ``NaN``/``Infinity`` and lone UTF-16 surrogates are refused.
    """
    if not 0 <= max_depth <= DEPTH_CEILING:
        raise ValueError(f"max_depth must be 0..{DEPTH_CEILING}, not {max_depth}")
    if len(payload) > max_bytes:
        raise InboundError(f"too large: {len(payload)} bytes > {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InboundError(f"not UTF-8 at byte {exc.start}") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise InboundError(f"nested deeper than {max_depth}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise InboundError(f"not JSON: {_reason(exc)}") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise InboundError("not JSON: a \\u escape is half a UTF-16 surrogate pair")
    return value


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting outside JSON strings, in linear time.

    Text that is not JSON gets a number too (``json.loads`` refuses it afterwards). The running
    count is what ``json.loads`` would recurse through before it found any error, so it never goes
    deeper than this.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(0, max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0))


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (byte {len(exc.doc[: exc.pos].encode())})"
    return excerpt(str(exc), 80)


def _has_lone_surrogate(value: object) -> bool:
    # Depth is bounded already, but an explicit stack keeps this off Python's own.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def excerpt(data: bytes | str, limit: int = 60) -> str:
    """A short, printable, single-line piece of ``data`` for a log line or an error answer.

    At most ``limit`` characters of the start, non-printable characters (newlines, controls, invalid
    UTF-8) escaped so a payload cannot forge log lines, and the full size when it was cut:
    ``{"by":"a…(1048576 bytes)``.
    """
    # Never look at more than could be shown (a character is at most 4 UTF-8 bytes): a 200 MB
    # payload costs what a short one does.
    head = data[: limit * 4]
    text = head.decode("utf-8", errors="backslashreplace") if isinstance(head, bytes) else head
    shown = "".join(c if c.isprintable() else _escape(c) for c in text)
    if len(head) == len(data) and len(shown) <= limit:
        return shown
    unit = "bytes" if isinstance(data, bytes) else "chars"
    return f"{shown[:limit]}…({len(data)} {unit})"


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
