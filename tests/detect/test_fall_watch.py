"""The cancel window / long lie lifecycle, driven with plain monotonic times."""

from __future__ import annotations

import pytest
from synthetic import scenario

from drivers.model import DeviceEventKind
from gateway.detect.fall_watch import (
    Activity,
    FallWatch,
    FallWatchEvent,
    FallWatchEventKind,
    activity_from_level,
    activity_from_radar,
)
from gateway.detect.falls import FallDetector

FALL_AT = 1000.0


def watching() -> FallWatch:
    watch = FallWatch(cancel_window_s=30.0, long_lie_s=120.0)
    assert watch.on_detection(FALL_AT) == []
    return watch


def test_nothing_happens_without_a_fall() -> None:
    watch = FallWatch()
    assert watch.tick(5000.0) == []
    assert watch.on_button(5000.0) == []
    assert watch.on_activity(5000.0, Activity.UPRIGHT) == []
    assert not watch.active


def test_cancel_window_passing_confirms_the_fall_once() -> None:
    watch = watching()

    assert watch.tick(FALL_AT + 29.9) == []
    assert watch.tick(FALL_AT + 30.0) == [
        FallWatchEvent(FallWatchEventKind.CONFIRMED, FALL_AT + 30.0, FALL_AT, "cancel window passed")
    ]
    assert watch.tick(FALL_AT + 31.0) == []


def test_button_in_the_cancel_window_cancels() -> None:
    watch = watching()

    assert watch.on_button(FALL_AT + 12.0) == [
        FallWatchEvent(FallWatchEventKind.CANCELLED, FALL_AT + 12.0, FALL_AT, "button pressed")
    ]
    assert not watch.active
    assert watch.tick(FALL_AT + 500.0) == []


def test_getting_up_in_the_cancel_window_cancels() -> None:
    watch = watching()

    assert watch.on_activity(FALL_AT + 5.0, Activity.MOVING) == []
    assert watch.on_activity(FALL_AT + 20.0, Activity.UPRIGHT) == [
        FallWatchEvent(FallWatchEventKind.CANCELLED, FALL_AT + 20.0, FALL_AT, "upright again")
    ]


def test_lying_still_escalates_to_long_lie() -> None:
    watch = watching()

    assert [e.kind for e in watch.tick(FALL_AT + 60.0)] == [FallWatchEventKind.CONFIRMED]
    assert watch.tick(FALL_AT + 119.0) == []
    assert watch.tick(FALL_AT + 120.0) == [
        FallWatchEvent(FallWatchEventKind.LONG_LIE, FALL_AT + 120.0, FALL_AT, "no motion since the fall")
    ]
    assert watch.tick(FALL_AT + 500.0) == []
    assert watch.active


def test_moving_on_the_floor_postpones_the_long_lie_but_does_not_cancel() -> None:
    watch = watching()

    assert watch.on_activity(FALL_AT + 20.0, Activity.MOVING) == []
    assert [e.kind for e in watch.on_activity(FALL_AT + 50.0, Activity.MOVING)] == [FallWatchEventKind.CONFIRMED]

    assert watch.tick(FALL_AT + 169.0) == []
    assert [e.kind for e in watch.tick(FALL_AT + 170.0)] == [FallWatchEventKind.LONG_LIE]


def test_late_tick_reports_confirmation_and_long_lie_together() -> None:
    watch = watching()

    assert [e.kind for e in watch.tick(FALL_AT + 300.0)] == [
        FallWatchEventKind.CONFIRMED,
        FallWatchEventKind.LONG_LIE,
    ]


def test_getting_up_after_confirmation_is_a_recovery_and_button_is_left_to_the_alert() -> None:
    watch = watching()
    watch.tick(FALL_AT + 31.0)

    assert watch.on_button(FALL_AT + 40.0) == []
    assert watch.on_activity(FALL_AT + 90.0, Activity.UPRIGHT) == [
        FallWatchEvent(FallWatchEventKind.RECOVERED, FALL_AT + 90.0, FALL_AT, "upright again")
    ]
    assert watch.tick(FALL_AT + 1000.0) == []


def test_a_second_detection_during_a_watch_is_the_same_fall() -> None:
    watch = watching()

    assert watch.on_detection(FALL_AT + 8.0) == []
    assert [(e.kind, e.fall_at) for e in watch.tick(FALL_AT + 30.0)] == [(FallWatchEventKind.CONFIRMED, FALL_AT)]


def test_a_new_fall_after_a_cancel_starts_a_new_watch() -> None:
    watch = watching()
    watch.on_button(FALL_AT + 3.0)

    watch.on_detection(FALL_AT + 100.0)

    assert [(e.kind, e.fall_at) for e in watch.tick(FALL_AT + 130.0)] == [
        (FallWatchEventKind.CONFIRMED, FALL_AT + 100.0)
    ]


def test_zero_cancel_window_confirms_at_detection() -> None:
    watch = FallWatch(cancel_window_s=0.0, long_lie_s=60.0)

    assert [e.kind for e in watch.on_detection(FALL_AT)] == [FallWatchEventKind.CONFIRMED]


def test_radar_fall_uses_the_same_logic() -> None:
    watch = FallWatch(cancel_window_s=30.0, long_lie_s=120.0)
    watch.on_detection(FALL_AT)  # a radar FALL event carries no wearable evidence

    for t, kind, value in [
        (FALL_AT + 10.0, DeviceEventKind.MOTION, 2),
        (FALL_AT + 20.0, DeviceEventKind.MOTION, 1),
        (FALL_AT + 25.0, DeviceEventKind.PRESENCE, 0),
    ]:
        activity = activity_from_radar(kind, value)
        assert activity is not None
        assert watch.on_activity(t, activity) == []

    assert [e.kind for e in watch.tick(FALL_AT + 130.0)] == [
        FallWatchEventKind.CONFIRMED,
        FallWatchEventKind.LONG_LIE,
    ]


def test_radar_activity_mapping() -> None:
    assert activity_from_radar(DeviceEventKind.MOTION, 0) is Activity.STILL
    assert activity_from_radar(DeviceEventKind.MOTION, 1) is Activity.STILL
    assert activity_from_radar(DeviceEventKind.MOTION, 2) is Activity.MOVING
    assert activity_from_radar(DeviceEventKind.PRESENCE, 1) is Activity.STILL
    assert activity_from_radar(DeviceEventKind.BATTERY, 80) is None


@pytest.mark.parametrize(
    ("level_g", "activity"),
    [(0.0, Activity.STILL), (0.02, Activity.STILL), (0.05, Activity.MOVING), (0.3, Activity.UPRIGHT)],
)
def test_wearable_activity_levels(level_g: float, activity: Activity) -> None:
    assert activity_from_level(level_g) is activity


def test_wearable_detection_then_lying_still_escalates() -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate)
    [detection] = FallDetector(rate).process(fall.samples)
    watch = FallWatch(cancel_window_s=30.0, long_lie_s=120.0)
    detected_at = detection.decided_index / rate

    watch.on_detection(detected_at, detection)
    watch.on_activity(detected_at + 1.0, activity_from_level(detection.stillness_g))

    assert watch.detection == detection
    assert [e.kind for e in watch.tick(detected_at + 121.0)] == [
        FallWatchEventKind.CONFIRMED,
        FallWatchEventKind.LONG_LIE,
    ]


@pytest.mark.parametrize(("cancel", "long_lie"), [(-1.0, 120.0), (30.0, 30.0), (30.0, 10.0), (float("nan"), 120.0)])
def test_bad_windows_are_refused(cancel: float, long_lie: float) -> None:
    with pytest.raises(ValueError, match=r"cancel_window_s|long_lie_s"):
        FallWatch(cancel_window_s=cancel, long_lie_s=long_lie)
