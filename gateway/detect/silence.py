"""Silence is a signal (clinical-thresholds.md): a missed measurement, a wearable or radar gone quiet.

Pure and clock-injected: every method takes the hub's monotonic time in seconds (the wall clock
jumps when a hub without RTC first syncs, which would make every device look silent at once).
Each silence is reported once when it starts and once when it ends, so one alert is raised and
resolved (:mod:`gateway.respond.silence`, which also writes what the family reads); the alert
lifecycle does the repeating.

Patterned on Nightscout's stale-data alarm and xDrip+'s missed-reading alert. The clocks start
when the watch starts: after a hub restart a device gets its full allowance again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gateway.config.schema import DeviceSettings
from gateway.vocabulary import AlertKind, Severity

log = logging.getLogger(__name__)


class SilenceChange(StrEnum):
    STARTED = "started"   # raise the alert
    ENDED = "ended"       # resolve it: the device is back, or the reading came


@dataclass(frozen=True, slots=True)
class WatchedDevice:
    """What is expected of one device; None switches a rule off."""

    device_id: str
    resident_id: str
    expect_reading_every_h: float | None = None
    silent_after_min: float | None = None
    fall_protection: bool = False
    """A wearable or radar: while it is silent, falls go unseen (the family is told so)."""

    def __post_init__(self) -> None:
        for name in ("expect_reading_every_h", "silent_after_min"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{self.device_id}: {name} must be > 0 or None (off), got {value!r}")


def watched_device(settings: DeviceSettings) -> WatchedDevice | None:
    """What the configuration expects of a device, its driver's defaults (the catalogue's) applied; None when
    nothing."""
    spec = settings.spec
    silent_after = settings.silent_after_min or spec.silent_after_min
    expect_every = settings.expect_reading_every_h or None
    if silent_after is None and expect_every is None:
        return None
    return WatchedDevice(settings.id, settings.resident, expect_every, silent_after, spec.fall_protection)


@dataclass(frozen=True, slots=True)
class SilenceFinding:
    """A silence starting or ending; the layer above raises (STARTED) or resolves (ENDED) one alert per key."""

    device: WatchedDevice
    """The device and what was expected of it (the allowance its silence overran, its fall protection)."""
    kind: AlertKind
    severity: Severity
    change: SilenceChange
    last_heard: float
    """Monotonic time (s) of the last sign of life (DEVICE_SILENT) or reading (MEASUREMENT_MISSED):
    before the silence when it STARTED, the one that ENDED it otherwise."""

    @property
    def device_id(self) -> str:
        return self.device.device_id

    @property
    def resident_id(self) -> str:
        return self.device.resident_id

    @property
    def key(self) -> tuple[str, AlertKind]:
        """The same for the start and end of one silence: what the hub keys its alert id on."""
        return self.device_id, self.kind


@dataclass
class _DeviceState:
    device: WatchedDevice
    last_seen: float
    last_reading: float
    silent: bool = False
    missed: bool = False


class SilenceWatch:
    """Follows when each watched device was last heard from and last sent a reading."""

    def __init__(self, devices: Iterable[WatchedDevice], started_at: float) -> None:
        self._states: dict[str, _DeviceState] = {}
        for device in devices:
            if device.device_id in self._states:
                raise ValueError(f"device {device.device_id!r} is watched twice: give each device its own id")
            self._states[device.device_id] = _DeviceState(device, started_at, started_at)

    def note_seen(self, device_id: str, t: float) -> list[SilenceFinding]:
        """Any sign of life from the device at ``t``: an advertisement, event, motion block or reading."""
        state = self._states.get(device_id)
        if state is None:
            return []  # a device nothing is expected of
        state.last_seen = max(state.last_seen, t)
        if not state.silent:
            return []
        state.silent = False
        log.info("device heard from again device=%s", device_id)
        return [_back(state.device, state.last_seen)]

    def note_reading(self, device_id: str, t: float) -> list[SilenceFinding]:
        """A fresh reading from the device, received at ``t``; also a sign of life."""
        findings = self.note_seen(device_id, t)
        state = self._states.get(device_id)
        if state is None:
            return findings
        state.last_reading = max(state.last_reading, t)
        if state.missed:
            state.missed = False
            findings.append(_reading_came(state.device, state.last_reading))
        return findings

    def check(self, t: float) -> list[SilenceFinding]:
        """The silences that have started by ``t`` (each once; call it every minute or so)."""
        findings: list[SilenceFinding] = []
        for state in self._states.values():
            device = state.device
            if (
                device.silent_after_min is not None
                and not state.silent
                and t - state.last_seen >= device.silent_after_min * 60.0
            ):
                state.silent = True
                log.warning("device silent device=%s silent_for_min=%.0f", device.device_id,
                            (t - state.last_seen) / 60.0)
                findings.append(_silent(device, state.last_seen))
            if (
                device.expect_reading_every_h is not None
                and not state.missed
                and t - state.last_reading >= device.expect_reading_every_h * 3600.0
            ):
                state.missed = True
                log.info("measurement missed device=%s", device.device_id)
                findings.append(_missed(device, state.last_reading))
        return findings


def _silent(device: WatchedDevice, last_heard: float) -> SilenceFinding:
    return SilenceFinding(device, AlertKind.DEVICE_SILENT, Severity.URGENT, SilenceChange.STARTED, last_heard)


def _back(device: WatchedDevice, last_heard: float) -> SilenceFinding:
    return SilenceFinding(device, AlertKind.DEVICE_SILENT, Severity.URGENT, SilenceChange.ENDED, last_heard)


def _missed(device: WatchedDevice, last_heard: float) -> SilenceFinding:
    return SilenceFinding(device, AlertKind.MEASUREMENT_MISSED, Severity.WARNING, SilenceChange.STARTED, last_heard)


def _reading_came(device: WatchedDevice, last_heard: float) -> SilenceFinding:
    return SilenceFinding(device, AlertKind.MEASUREMENT_MISSED, Severity.WARNING, SilenceChange.ENDED, last_heard)
