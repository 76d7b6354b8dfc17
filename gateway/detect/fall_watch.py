"""What happens after a fall is detected: the cancel window and the long lie.

Pure and clock-injected: every method takes the hub's monotonic time in seconds and returns the
events it caused, so a test drives it with plain numbers. It does not care where the fall or the
activity came from: a wearable (``activity_from_level``) and a radar (``activity_from_radar``)
feed the same states.

Lifecycle of one watch::

    detection ──► cancel window ──(button, or upright again)──► CANCELLED
                       │
                       └─(window over)──► CONFIRMED ──(still for long_lie_s)──► LONG_LIE
                                               └──(upright again)──► RECOVERED
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.model import DeviceEventKind
from gateway.detect.falls import FallDetection

WALKING_LEVEL_G = 0.15
"""Std of |a| over a couple of seconds above which the wearer is walking: nobody does that lying down."""
MOVING_LEVEL_G = 0.03
"""Above sensor noise (~0.01 g) but below walking: moving limbs, rolling over, trying to get up."""
RADAR_MOTION_ACTIVE = 2
"""Radar MOTION event value for 'active' (0 none, 1 stationary, 2 active; serial-devices.md)."""


class Activity(StrEnum):
    STILL = "still"
    MOVING = "moving"      # moving but not (yet) up: does not cancel, does postpone the long lie
    UPRIGHT = "upright"    # walking or standing again: the person got up


class FallWatchEventKind(StrEnum):
    CONFIRMED = "confirmed"   # cancel window passed without recovery: raise the emergency
    CANCELLED = "cancelled"   # button pressed or got up within the cancel window: no alert
    LONG_LIE = "long_lie"     # no motion for long_lie_s after the fall: escalate
    RECOVERED = "recovered"   # got up after the alert was raised: tell the family it may be resolved


@dataclass(frozen=True, slots=True)
class FallWatchEvent:
    kind: FallWatchEventKind
    at: float
    """Monotonic time (s) at which the event happened."""
    fall_at: float
    """Monotonic time (s) of the fall detection this event belongs to."""
    reason: str


def activity_from_level(level_g: float) -> Activity:
    """Map a wearable's activity level (std of |a| in g, e.g. ``FallDetection.stillness_g``)."""
    if level_g >= WALKING_LEVEL_G:
        return Activity.UPRIGHT
    if level_g >= MOVING_LEVEL_G:
        return Activity.MOVING
    return Activity.STILL


def activity_from_radar(kind: DeviceEventKind, value: int) -> Activity | None:
    """Map a radar PRESENCE or MOTION event; None for events that say nothing about activity.

    A radar cannot tell standing from lying, so it never reports UPRIGHT: only the button or the
    wearable can cancel a radar fall. Losing presence is not taken as "walked away" because radars
    also lose a person lying still on the floor.
    """
    if kind is DeviceEventKind.MOTION:
        return Activity.MOVING if value >= RADAR_MOTION_ACTIVE else Activity.STILL
    if kind is DeviceEventKind.PRESENCE:
        return Activity.STILL
    return None


class FallWatch:
    """Follows one resident's fall from detection to confirmation, cancellation or long lie."""

    def __init__(self, cancel_window_s: float = 30.0, long_lie_s: float = 120.0) -> None:
        if not cancel_window_s >= 0.0:
            raise ValueError(f"cancel_window_s must be >= 0 s, got {cancel_window_s!r}")
        if not long_lie_s > cancel_window_s:
            raise ValueError(
                f"long_lie_s ({long_lie_s!r}) must be longer than cancel_window_s ({cancel_window_s!r}): "
                "a long lie is only escalated after the fall has been confirmed"
            )
        self.cancel_window_s = cancel_window_s
        self.long_lie_s = long_lie_s
        self._fall_at: float | None = None
        self.detection: FallDetection | None = None
        """The wearable evidence of the fall being watched, for the alert."""
        self._last_motion_at = 0.0
        self._confirmed = False
        self._long_lie_sent = False

    @property
    def active(self) -> bool:
        """True while a fall is being watched."""
        return self._fall_at is not None

    def on_detection(self, t: float, detection: FallDetection | None = None) -> list[FallWatchEvent]:
        """A fall was detected at ``t`` (radar falls have no ``detection``); a second one is the same fall."""
        if self._fall_at is None:
            self.detection = detection
            self._fall_at = t
            self._last_motion_at = t
            self._confirmed = False
            self._long_lie_sent = False
        return self.tick(t)

    def on_button(self, t: float) -> list[FallWatchEvent]:
        """The resident pressed the button: "I am fine" within the cancel window.

        After confirmation the alert belongs to the alert lifecycle (acknowledgement), not to us.
        """
        events = self.tick(t)
        if self._fall_at is not None and not self._confirmed:
            events.append(self._end(FallWatchEventKind.CANCELLED, t, "button pressed"))
        return events

    def on_activity(self, t: float, activity: Activity) -> list[FallWatchEvent]:
        events = self.tick(t)
        if self._fall_at is None:
            return events
        if activity is Activity.UPRIGHT:
            kind = FallWatchEventKind.RECOVERED if self._confirmed else FallWatchEventKind.CANCELLED
            events.append(self._end(kind, t, "upright again"))
        elif activity is Activity.MOVING:
            self._last_motion_at = t
        return events

    def tick(self, t: float) -> list[FallWatchEvent]:
        """Advance to ``t``: confirm when the cancel window is over, escalate a long lie."""
        fall_at = self._fall_at
        if fall_at is None:
            return []
        events: list[FallWatchEvent] = []
        if not self._confirmed and t >= fall_at + self.cancel_window_s:
            self._confirmed = True
            events.append(FallWatchEvent(FallWatchEventKind.CONFIRMED, t, fall_at, "cancel window passed"))
        if self._confirmed and not self._long_lie_sent and t >= self._last_motion_at + self.long_lie_s:
            self._long_lie_sent = True
            events.append(FallWatchEvent(FallWatchEventKind.LONG_LIE, t, fall_at, "no motion since the fall"))
        return events

    def _end(self, kind: FallWatchEventKind, t: float, reason: str) -> FallWatchEvent:
        assert self._fall_at is not None
        event = FallWatchEvent(kind, t, self._fall_at, reason)
        self._fall_at = None
        return event
