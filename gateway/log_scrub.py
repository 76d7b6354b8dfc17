"""Scrub what looks like a health value out of a log line: the second line of defence.

The first is the rule every log call in ``gateway`` and ``drivers`` keeps (ids, counts and states,
never measured values; tests/e2e check the journal for it). This catches a line that breaks it by
mistake before it leaves the hub in a ``logs`` answer: a value next to a health key
(``systolic=187``, ``"mmol_l": 2.7``), a number with a clinical unit (``187 mmHg``, ``2.7 mmol/L``,
``37.1 °C``), a percentage on a line about oxygen saturation, and raw radio or serial bytes
(``bytearray(b'...')``, a OneTouch dump line), which carry readings before any codec has seen them.

Pure: str in, str out. It over-scrubs rather than under-scrubs: a disk figure next to the word
``pulse`` is lost, a reading never gets through.
"""

from __future__ import annotations

import re

WITHHELD = "<withheld>"

HEALTH_KEYS = (
    "systolic", "diastolic", "mean_arterial", "map", "pulse", "pulse_rate", "heart_rate", "hr",
    "spo2", "sp_o2", "glucose", "mmol_l", "mg_dl", "celsius", "temperature", "temp", "breath_rate",
    "breathing", "respiration", "weight", "values", "measurement", "reading",
)
"""Keys a measured value is written under, in key=value logs and in the JSON of a record."""

_VALUE = r"""(?:"[^"]*"|'[^']*'|\{[^{}]*\}|\[[^\[\]]*\]|[^\s,;)}\]]+)"""
_KEYED = re.compile(
    r"""(?P<key>["']?\b(?:""" + "|".join(HEALTH_KEYS) + r""")\b["']?)(?P<sep>\s*[=:]\s*)""" + _VALUE,
    re.IGNORECASE,
)
_KEY_THEN_NUMBER = re.compile(r"(?P<key>\b(?:" + "|".join(HEALTH_KEYS) + r"))\s+[-+]?\d+(?:[.,]\d+)?(?![\w.])",
                              re.IGNORECASE)
_UNIT = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)?(?:/\d+)?\s?(?:mmHg|mmol/L|mg/dL|bpm|°C|℃|°F)(?!\w)", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?%")
_OXYGEN = re.compile(r"spo2|sp_o2|oxygen|saturation|血氧", re.IGNORECASE)
_BYTES = re.compile(r"""(?:bytearray\()?b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)?""")
_ONETOUCH_DUMP_LINE = re.compile(r'P\s+"[A-Z]{3}","\d\d/\d\d/\d\d"[^\n]*')


def scrub(line: str) -> str:
    """``line`` with anything that looks like a health value or raw device data replaced by ``<withheld>``."""
    line = _BYTES.sub(WITHHELD, line)
    line = _ONETOUCH_DUMP_LINE.sub(WITHHELD, line)
    line = _UNIT.sub(WITHHELD, line)
    if _OXYGEN.search(line):
        line = _PERCENT.sub(WITHHELD, line)
    line = _KEYED.sub(lambda m: f"{m.group('key')}{m.group('sep')}{WITHHELD}", line)
    return _KEY_THEN_NUMBER.sub(lambda m: f"{m.group('key')} {WITHHELD}", line)
