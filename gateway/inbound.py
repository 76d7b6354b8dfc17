"""Bounded parsing of what clients send: the size and the nesting are checked before JSON is parsed.

Minimal version for the family-access work; the inbound-hardening work owns this module.
"""

from __future__ import annotations

import json

from gateway.errors import InboundError


def parse_json_bounded(payload: bytes, *, max_bytes: int, max_depth: int) -> object:
    """The JSON value in ``payload``, or :class:`InboundError` when it is larger, deeper or not JSON."""
    if len(payload) > max_bytes:
        raise InboundError(f"payload of {len(payload)} bytes is larger than {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InboundError("payload is not UTF-8") from exc
    # Measured on the text, before json.loads: a deep document must not reach the recursive parser.
    if _depth(text) > max_depth:
        raise InboundError(f"payload nests deeper than {max_depth}")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and numbers too long to convert
        raise InboundError("payload is not JSON") from exc


def _depth(text: str) -> int:
    """Deepest nesting of arrays and objects, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
