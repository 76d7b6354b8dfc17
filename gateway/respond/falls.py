"""From a fall (wearable or radar) or a help button to the family, through the cancel window.

A detection raises the fall alert at once (urgent: "possible fall, help is called unless cancelled
within 30 s", naming the configured ``fall_cancel_window_s``), so the family hears within
milliseconds; the cancel window then either resolves it (the resident pressed cancel or got up) or
escalates it to an emergency, and a long lie escalates again. An SOS press is an emergency with no
cancel window (clinical-thresholds.md).

Button semantics: a *long* press while a fall is pending cancels it (what pendants do); any other
press is a call for help.

Each wearable's learnt upright (where gravity points when its wearer stands) is kept in a small store
the hub provides (the outbox's cursor table), so a restarted hub judges low-energy falls at once
instead of after the wearer's next ~10 s of walking. It is read before the device's first block and
written when the detector reports it changed; the detector treats a restored one as provisional.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from drivers.model import DeviceEvent, DeviceEventKind, MotionBlock
from gateway.alerts.model import Alert, Evidence
from gateway.detect.fall_watch import FallWatch, FallWatchEvent, FallWatchEventKind, activity_from_radar
from gateway.detect.falls import FallDetection
from gateway.detect.motion import ACTIVITY_WINDOW_S, MotionTracker
from gateway.detect.posture import LearntUpright
from gateway.errors import StoreError
from gateway.record import RecordType
from gateway.respond import messages
from gateway.respond.service import AlertService
from gateway.store import snippets
from gateway.store.api import Accepted, NewRecord, Priority
from gateway.store.work import Runner
from gateway.vocabulary import AlertKind, Severity
from gateway.wire import iso, platform_event

log = logging.getLogger(__name__)

TICK_S = 1.0
CANCEL_PRESS = "long"
UPRIGHT_KEY_PREFIX = "fall-upright:"

UprightGet = Callable[[str], Awaitable[str | None]]
UprightSet = Callable[[str, str], Awaitable[None]]


def upright_key(device_id: str) -> str:
    """The store key under which one wearable's learnt upright is kept."""
    return f"{UPRIGHT_KEY_PREFIX}{device_id}"


class FallOutbox(Protocol):
    """Where fall and help events are stored (:class:`gateway.store.intake.Intake`)."""

    async def accept(self, records: Sequence[NewRecord]) -> list[Accepted]: ...


@dataclass
class _Pending:
    watch: FallWatch
    alert_id: str
    device_id: str
    source: str
    activity_from: float
    """Monotonic time from which the wearer's activity level says something about recovery: its
    window must not contain the impact itself."""


async def escalate_interrupted_falls(alerts: AlertService, restored: Sequence[Alert]) -> None:
    """After a restart: a fall still in its cancel window when the hub went down is an emergency.

    Nobody can now tell whether the resident got up, and a missed fall is the worst failure there is.
    """
    for alert in restored:
        if alert.kind is AlertKind.FALL and alert.severity is not Severity.EMERGENCY:
            await alerts.escalate(alert.alert_id, severity=Severity.EMERGENCY, message=messages.RESTARTED_DURING_FALL,
                                  evidence={"outcome": "hub_restarted"})


class FallResponder:
    """``outbox`` stores the fall and help events, ``store`` (the outbox database) the motion evidence."""

    def __init__(self, *, alerts: AlertService, outbox: FallOutbox, store: Runner, tz: tzinfo,
                 now_wall: Callable[[], datetime], now_monotonic: Callable[[], float],
                 cancel_window_s: float = 30.0, long_lie_s: float = 120.0,
                 on_stored: Callable[[], None] = lambda: None, clock_synced: Callable[[], bool] = lambda: True,
                 on_confirmed: Callable[[str, datetime], Awaitable[None]] | None = None,
                 upright_get: UprightGet | None = None, upright_set: UprightSet | None = None) -> None:
        self._alerts = alerts
        self._outbox = outbox
        self._store = store
        self._tz = tz
        self._now_wall = now_wall
        self._now_mono = now_monotonic
        self._cancel_window_s = cancel_window_s
        self._long_lie_s = long_lie_s
        self._on_stored = on_stored
        self._clock_synced = clock_synced
        self._on_confirmed = on_confirmed
        self._motion = MotionTracker()
        self._pending: dict[str, _Pending] = {}   # by resident
        self._upright_get = upright_get
        self._upright_set = upright_set
        self._upright_asked: set[str] = set()     # devices whose stored upright has been looked up

    def reconfigure(self, *, cancel_window_s: float, long_lie_s: float, tz: tzinfo) -> None:
        """New windows from a reloaded configuration; a fall already being watched keeps its own."""
        self._cancel_window_s = cancel_window_s
        self._long_lie_s = long_lie_s
        self._tz = tz

    async def on_motion(self, block: MotionBlock) -> None:
        if block.device_id not in self._upright_asked:
            self._upright_asked.add(block.device_id)
            await self._restore_upright(block.device_id)
        outcome = self._motion.feed(block)
        for detection, impact_mono, decided_mono in zip(outcome.detections, outcome.impact_monotonic,
                                                        outcome.decided_monotonic, strict=True):
            await self._detected(block.resident_id, block.device_id, "wearable", _wearable_evidence(detection),
                                 impact_monotonic=impact_mono, decided_monotonic=decided_mono)
        pending = self._pending.get(block.resident_id)
        now = self._now_mono()
        if (pending is not None and outcome.flushed and pending.device_id == block.device_id
                and now >= pending.activity_from):
            await self._handle(block.resident_id, pending.watch.on_activity(self._now_mono(), outcome.activity))
        if outcome.upright_changed:   # last: an alert never waits for this write
            await self._save_upright(block.device_id, outcome.upright)

    async def on_event(self, event: DeviceEvent) -> None:
        now = self._now_mono()
        pending = self._pending.get(event.resident_id)
        if event.kind is DeviceEventKind.BUTTON_PRESS:
            if pending is not None and event.value == CANCEL_PRESS:
                await self._handle(event.resident_id, pending.watch.on_button(now))
            else:
                await self._help_request(event)
        elif event.kind is DeviceEventKind.FALL and event.value == 1:
            await self._detected(event.resident_id, event.device_id, "radar", {"source": "radar"},
                                 impact_monotonic=now, decided_monotonic=event.received.monotonic)
        elif pending is not None and isinstance(event.value, int):
            activity = activity_from_radar(event.kind, event.value)
            if activity is not None:
                await self._handle(event.resident_id, pending.watch.on_activity(now, activity))

    async def tick(self) -> None:
        now = self._now_mono()
        for resident_id, pending in list(self._pending.items()):
            await self._handle(resident_id, pending.watch.tick(now))

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(TICK_S)

    async def _detected(self, resident_id: str, device_id: str, source: str, evidence: Evidence, *,
                        impact_monotonic: float, decided_monotonic: float) -> None:
        if resident_id in self._pending:
            log.info("fall detected while one is pending resident=%s device=%s: same episode", resident_id,
                     device_id)
            return
        impact_at = self._now_wall() - timedelta(seconds=max(0.0, self._now_mono() - impact_monotonic))
        full: Evidence = {**evidence, "source": source, "device_id": device_id,
                          "impact_at": iso(impact_at, self._tz),
                          "cancel_window_s": self._cancel_window_s}
        alert = await self._alerts.raise_alert(kind=AlertKind.FALL, severity=Severity.URGENT,
                                               resident_id=resident_id,
                                               message=messages.fall_detected(self._cancel_window_s), evidence=full)
        published = self._now_mono()
        # From the arrival of the sample that completed the evidence to the alert handed to MQTT (after
        # its outbox commit): the hub's own share of the alert latency. bench/fall_latency.py reads it.
        log.info("fall alert published alert_id=%s device=%s source=%s decision_latency_ms=%.2f "
                 "published_monotonic=%.6f", alert.alert_id, device_id, source,
                 (published - decided_monotonic) * 1000, published)
        watch = FallWatch(self._cancel_window_s, self._long_lie_s)
        watch.on_detection(self._now_mono())
        self._pending[resident_id] = _Pending(watch, alert.alert_id, device_id, source,
                                              activity_from=self._now_mono() + ACTIVITY_WINDOW_S)
        await self._store_event("fall", resident_id, device_id, {**full, "alert_id": alert.alert_id})
        await self._save_snippet(alert.alert_id, device_id)

    async def _handle(self, resident_id: str, events: list[FallWatchEvent]) -> None:
        pending = self._pending.get(resident_id)
        if pending is None:
            return
        for event in events:
            evidence: Evidence = {"outcome": event.kind.value, "reason": event.reason}
            if event.kind is FallWatchEventKind.CANCELLED:
                await self._alerts.resolve(pending.alert_id, message=messages.FALL_OUTCOMES[event.kind],
                                          evidence=evidence)
            elif event.kind in (FallWatchEventKind.CONFIRMED, FallWatchEventKind.LONG_LIE):
                await self._alerts.escalate(pending.alert_id, severity=Severity.EMERGENCY,
                                            message=messages.FALL_OUTCOMES[event.kind], evidence=evidence)
                if event.kind is FallWatchEventKind.CONFIRMED and self._on_confirmed is not None:
                    await self._on_confirmed(resident_id, self._now_wall())
            else:  # RECOVERED: good news, but the family still checks and acknowledges
                log.info("resident got up after the fall alert resident=%s alert_id=%s", resident_id,
                         pending.alert_id)
        if not pending.watch.active:
            del self._pending[resident_id]

    async def _help_request(self, event: DeviceEvent) -> None:
        evidence: Evidence = {"source": "button", "device_id": event.device_id, "press": str(event.value)}
        await self._alerts.raise_alert(kind=AlertKind.HELP_REQUEST, severity=Severity.EMERGENCY,
                                       resident_id=event.resident_id, message=messages.HELP_REQUESTED,
                                       evidence=evidence)
        await self._store_event("help_request", event.resident_id, event.device_id, evidence)

    async def _store_event(self, record_type: str, resident_id: str, device_id: str, values: Evidence) -> None:
        now = self._now_wall()
        record = platform_event(RecordType(record_type), resident_id=resident_id, device_id=device_id, at=now,
                                synced=self._clock_synced(), values=values, tz=self._tz)
        try:
            await self._outbox.accept([NewRecord(record_type, Priority.EVENT, record.to_json(), now)])
        except StoreError:
            return  # held in memory by the outbox; the alert itself has gone out already
        self._on_stored()

    async def _restore_upright(self, device_id: str) -> None:
        if self._upright_get is None:
            return
        try:
            stored = await self._upright_get(upright_key(device_id))
        except StoreError as exc:
            log.warning("wearer's upright not read, learnt again from walking device=%s error=%s", device_id, exc)
            return
        upright = LearntUpright.decode(stored)
        if upright is None:
            if stored:
                log.warning("stored upright unusable, learnt again from walking device=%s value=%.80r", device_id,
                            stored)
            return
        self._motion.restore(device_id, upright)
        log.info("wearer's upright restored device=%s windows=%d (confirmed or dropped by the next walk)",
                 device_id, upright.windows)

    async def _save_upright(self, device_id: str, upright: LearntUpright | None) -> None:
        if self._upright_set is None:
            return
        if upright is None:
            log.info("restored upright dropped: the first walk disagreed (clipped on differently?) device=%s",
                     device_id)
        try:
            await self._upright_set(upright_key(device_id), "" if upright is None else upright.encode())
        except StoreError as exc:
            # Kept in memory and written again at its next change; a restart meanwhile relearns it from walking.
            log.error("wearer's upright not stored device=%s error=%s", device_id, exc)

    async def _save_snippet(self, alert_id: str, device_id: str) -> None:
        snippet = self._motion.snippet(device_id)
        if snippet is None:
            return
        first_at = self._now_wall() - timedelta(seconds=self._now_mono() - snippet.first_sample_monotonic)
        try:
            await self._store.run(snippets.add(snippets.MotionSnippet(
                alert_id, device_id, first_at, snippet.sample_rate_hz, snippet.samples.astype("<f4").tobytes())))
        except StoreError as exc:
            # Evidence only, and the largest thing the hub writes: not worth holding in memory.
            log.error("fall evidence not stored alert_id=%s device=%s error=%s", alert_id, device_id, exc)


def _upright_state(d: FallDetection) -> str:
    """What the tilts were measured against: the wearer's upright learnt from walking since the hub
    started, one restored from before a restart and not yet confirmed, or none yet (hard falls only)."""
    if d.evidence.upright_confirmed:
        return "learnt"
    return "restored" if d.evidence.upright_learnt else "none"


def _wearable_evidence(d: FallDetection) -> Evidence:
    evidence: Evidence = {"kind": d.kind.value, "confidence": round(d.confidence, 3), "peak_g": round(d.peak_g, 2),
                          "posture_change_deg": round(d.posture_change_deg, 1),
                          "tilt_after_deg": round(d.evidence.tilt_after_deg, 1),
                          "turn_rate_dps": round(d.evidence.turn_rate_dps),
                          "upright": _upright_state(d),
                          "stillness_g": round(d.stillness_g, 3), "detection_delay_s": round(d.delay_s, 2)}
    if d.free_fall_min_g is not None:
        evidence["free_fall_min_g"] = round(d.free_fall_min_g, 2)
    return evidence
