"""The words every layer shares: what an alert is about, how serious it is, which language it is read in.

A leaf: it imports nothing of the gateway, so the detectors can name what they found
(:mod:`gateway.detect`), the alert lifecycle can carry it (:mod:`gateway.alerts`) and the layer
above both can act on it (:mod:`gateway.respond`) without any of them importing another to do so.
Values only: no texts, no behaviour beyond ordering the severities.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    EMERGENCY = "emergency"   # act now: call, escalate until someone acknowledges
    URGENT = "urgent"         # tell family promptly, repeat until acknowledged
    WARNING = "warning"       # tell family; no repeat; daily summary

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_RANK = {Severity.WARNING: 0, Severity.URGENT: 1, Severity.EMERGENCY: 2}


class AlertKind(StrEnum):
    HYPOGLYCAEMIA = "hypoglycaemia"
    HYPERGLYCAEMIA = "hyperglycaemia"
    HYPERTENSIVE_CRISIS = "hypertensive_crisis"
    HYPERTENSION_GRADE3 = "hypertension_grade3"
    HYPOTENSION = "hypotension"
    PULSE_OUT_OF_RANGE = "pulse_out_of_range"
    SPO2_LOW = "spo2_low"
    FEVER = "fever"
    HYPOTHERMIA = "hypothermia"
    REMEASURE = "remeasure"
    FALL = "fall"
    HELP_REQUEST = "help_request"
    DEVICE_SILENT = "device_silent"
    MEASUREMENT_MISSED = "measurement_missed"
    TEST = "test"


class Language(StrEnum):
    """Which of a message's texts a contact reads (an SMS carries only those)."""

    ZH = "zh"
    EN = "en"
    ZH_EN = "zh+en"
    """Both, Chinese first: the default, since a carer may read only one of them."""
