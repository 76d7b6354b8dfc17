"""Synthetic waist accelerometer signals at any rate, with KNOWN impact times.

Each scenario is drawn at 1 kHz from a few physical ingredients (the direction gravity reads in the
sensor frame, its magnitude -- near 0 g in free fall --, walking oscillation, impact pulses, sensor
noise), then low-passed and resampled to the requested rate like a real sensor's own filter would.
Sensor frame as in SisFall: y is vertical (reads -1 g upright), z points forward, x to the side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gateway.detect.features import filter_same, lowpass_taps

FINE_HZ = 1000.0
NOISE_G = 0.01

UPRIGHT = (0.0, -1.0, 0.0)
FACE_DOWN = (0.0, 0.0, -1.0)     # fell forward: gravity now reads along the front axis
FACE_UP = (0.0, 0.0, 1.0)        # fell backward
ON_SIDE = (1.0, 0.0, 0.0)        # fell sideways
SEATED = (0.0, -0.94, 0.34)      # trunk leaning back ~20 degrees in a chair
ARMCHAIR = (0.0, -0.57, 0.82)    # sunk deep into an armchair: ~55 degrees back, like SisFall's SE08
BENT = (0.0, -0.26, -0.97)       # bent forward ~75 degrees to pick something up
SLUMPED_FORWARD = (0.0, -0.87, -0.5)     # sagging 30 degrees forward as the muscles give way
PAST_FACE_DOWN = (0.0, 0.42, -0.91)      # 25 degrees past lying face down: the landing's rebound
SLUMPED_SIDEWAYS = (0.5, -0.87, 0.0)
PAST_ON_SIDE = (0.91, 0.42, 0.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    samples: np.ndarray          # (n, 3) in g
    sample_rate_hz: float
    impact_s: float | None       # time of the fall's impact; None for daily activities
    is_fall: bool

    @property
    def impact_index(self) -> int:
        assert self.impact_s is not None
        return round(self.impact_s * self.sample_rate_hz)


@dataclass
class _Timeline:
    """Key frames of the body's state; ``render`` turns them into samples."""

    seed: int
    keys: list[tuple[float, tuple[float, float, float], float]] = field(default_factory=list)
    walking: list[tuple[float, float, float]] = field(default_factory=list)   # start, end, amplitude g
    pulses: list[tuple[float, float, tuple[float, float, float], float]] = field(default_factory=list)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.keys.append((0.0, UPRIGHT, 1.0))

    @property
    def gravity(self) -> tuple[float, float, float]:
        return self.keys[-1][1]

    def hold(self, seconds: float) -> _Timeline:
        self.now += seconds
        self.keys.append((self.now, self.gravity, 1.0))
        return self

    def walk(self, seconds: float, amplitude_g: float = 0.3) -> _Timeline:
        self.walking.append((self.now, self.now + seconds, amplitude_g))
        return self.hold(seconds)

    def turn(self, seconds: float, to: tuple[float, float, float], scale: float = 1.0) -> _Timeline:
        """Rotate the trunk to a new posture; ``scale`` is |a| at the end (0.2 = falling)."""
        self.now += seconds
        self.keys.append((self.now, to, scale))
        return self

    def pulse(self, peak_g: float, width_s: float = 0.1, direction: tuple[float, float, float] | None = None) -> float:
        """An impact (floor, chair, landing) now, along the posture's 'up' unless told; returns its time."""
        self.pulses.append((self.now, peak_g, direction or self.gravity, width_s))
        return self.now

    def render(self, sample_rate_hz: float) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        t = np.arange(0.0, self.now, 1.0 / FINE_HZ)
        times = np.array([k[0] for k in self.keys])
        direction = np.stack([np.interp(t, times, [k[1][axis] for k in self.keys]) for axis in range(3)], axis=1)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        scale = np.interp(t, times, [k[2] for k in self.keys])
        acc = direction * scale[:, None]
        for start, end, amplitude in self.walking:
            inside = (t >= start) & (t < end)
            phase = 2 * np.pi * 1.8 * t[inside] + rng.uniform(0, 2 * np.pi)
            acc[inside] += direction[inside] * (amplitude * np.sin(phase))[:, None]
            acc[inside, 0] += 0.4 * amplitude * np.sin(phase / 2)
        for at, peak, pulse_dir, width in self.pulses:
            shape = np.exp(-0.5 * ((t - at) / (width / 2)) ** 2)
            acc += np.outer(shape * peak, np.asarray(pulse_dir))
        acc += rng.normal(0.0, NOISE_G, acc.shape)
        # The sensor's own anti-alias filter, then sampling at the requested rate.
        smooth = filter_same(acc, lowpass_taps(0.4 * sample_rate_hz, FINE_HZ, 8.0 / sample_rate_hz))
        out_t = np.arange(0.0, self.now, 1.0 / sample_rate_hz)
        return np.stack([np.interp(out_t, t, smooth[:, axis]) for axis in range(3)], axis=1)


def _fall(tl: _Timeline, lying: tuple[float, float, float], peak_g: float = 4.0) -> float:
    tl.walk(3.0)
    tl.turn(0.4, lying, scale=0.1)              # losing balance: free fall while rotating
    impact = tl.pulse(peak_g)
    tl.turn(0.1, lying)                         # the floor stops the fall
    return impact


def forward_fall(tl: _Timeline) -> float | None:
    impact = _fall(tl, FACE_DOWN)
    tl.hold(6.0)
    return impact


def backward_fall(tl: _Timeline) -> float | None:
    impact = _fall(tl, FACE_UP, peak_g=3.5)
    tl.hold(6.0)
    return impact


def lateral_fall(tl: _Timeline) -> float | None:
    impact = _fall(tl, ON_SIDE, peak_g=3.0)
    tl.hold(6.0)
    return impact


def fall_then_get_up(tl: _Timeline) -> float | None:
    impact = _fall(tl, FACE_DOWN)
    tl.hold(3.0).turn(2.0, SEATED).turn(1.5, UPRIGHT).walk(6.0)
    return impact


def standing(tl: _Timeline) -> float | None:
    tl.hold(12.0)
    return None


def walking(tl: _Timeline) -> float | None:
    tl.walk(15.0)
    return None


def sitting_down(tl: _Timeline) -> float | None:
    tl.walk(3.0).turn(1.0, SEATED, scale=0.8)
    tl.pulse(0.7, width_s=0.12)                 # bottom meets the chair
    tl.turn(0.2, SEATED).hold(6.0)
    return None


def lying_down(tl: _Timeline) -> float | None:
    tl.walk(3.0).turn(1.0, SEATED).hold(2.0).turn(2.5, FACE_UP)
    tl.pulse(0.3, width_s=0.2)                  # back meets the bed
    tl.hold(6.0)
    return None


def rolling_over_in_bed(tl: _Timeline) -> float | None:
    tl.turn(0.01, FACE_UP).hold(4.0).turn(0.8, ON_SIDE, scale=0.9)
    tl.pulse(1.2, width_s=0.15)                 # settling onto the side: a bump but no fall before it
    tl.turn(0.1, ON_SIDE).hold(6.0)
    return None


def stumbling(tl: _Timeline) -> float | None:
    tl.walk(3.0).turn(0.25, (0.0, -0.95, -0.3), scale=0.5)
    tl.pulse(1.8, width_s=0.06)                 # the catching step
    tl.turn(0.5, UPRIGHT).walk(6.0)
    return None


def jumping(tl: _Timeline) -> float | None:
    tl.hold(3.0).turn(0.3, UPRIGHT, scale=1.8).turn(0.05, UPRIGHT, scale=0.05).hold(0.3)
    tl.pulse(3.5, width_s=0.08)                 # landing on the feet, still upright
    tl.turn(0.1, UPRIGHT).hold(6.0)
    return None


LEARNING_WALK_S = 16.0
"""The detector trusts an upright after 10 s of walking; an event's "before" reaches 5 s back."""


def _walk_to_chair(tl: _Timeline) -> _Timeline:
    """Long enough a walk for the detector to learn the wearer's upright, then sitting down."""
    tl.walk(LEARNING_WALK_S).turn(1.0, SEATED, scale=0.8)
    tl.pulse(0.5, width_s=0.12)
    return tl.turn(0.2, SEATED).hold(3.0)


def _faint(tl: _Timeline, slumped: tuple[float, float, float], past: tuple[float, float, float],
           lying: tuple[float, float, float]) -> float:
    """Fainting from a chair as SisFall's actors did it (F13-F15): the trunk sags for most of a second,
    then the hip slides off the seat and it topples under gravity, support gone, in 0.2 s; it lands,
    rebounding 25 degrees past lying, and settles. The toppling is what a lie-down does not have."""
    _walk_to_chair(tl).turn(0.8, slumped)
    tl.turn(0.2, past, scale=0.4)
    impact = tl.pulse(2.0, width_s=0.15)          # hip and shoulder meet the floor: ~2.4 g once smoothed
    tl.turn(0.3, lying).hold(6.0)
    return impact


def slump_from_chair(tl: _Timeline) -> float | None:
    """Fainting forward from a chair onto the floor."""
    return _faint(tl, SLUMPED_FORWARD, PAST_FACE_DOWN, FACE_DOWN)


def slide_off_chair_sideways(tl: _Timeline) -> float | None:
    return _faint(tl, SLUMPED_SIDEWAYS, PAST_ON_SIDE, ON_SIDE)


def slow_slide_to_the_floor(tl: _Timeline) -> float | None:
    """The same faint without the topple: the trunk turns to lying at a steady pace, as a lie-down does,
    but the hips still drop from the seat to the floor."""
    _walk_to_chair(tl).turn(0.8, SLUMPED_FORWARD).turn(0.6, FACE_DOWN, scale=0.4)
    impact = tl.pulse(2.0, width_s=0.15)
    tl.turn(0.15, FACE_DOWN).hold(6.0)
    return impact


def sitting_down_hard(tl: _Timeline) -> float | None:
    tl.walk(LEARNING_WALK_S).turn(0.5, SEATED, scale=0.4)
    tl.pulse(2.0, width_s=0.1)                  # dropping onto the seat
    tl.turn(0.1, SEATED).hold(6.0)
    return None


def sinking_into_armchair(tl: _Timeline) -> float | None:
    tl.walk(LEARNING_WALK_S).turn(0.8, ARMCHAIR, scale=0.5)
    tl.pulse(1.5, width_s=0.12)
    tl.turn(0.2, ARMCHAIR).hold(6.0)
    return None


def lying_down_on_bed_quickly(tl: _Timeline) -> float | None:
    """Sitting on the bed's edge, then lying back in one go: the trunk turns 70 degrees, the hip stays."""
    _walk_to_chair(tl).turn(0.8, FACE_UP, scale=0.8)
    tl.pulse(0.8, width_s=0.2)                  # back and head meet the mattress
    tl.turn(0.2, FACE_UP).hold(6.0)
    return None


def picking_something_up(tl: _Timeline) -> float | None:
    tl.walk(LEARNING_WALK_S).turn(1.0, BENT, scale=0.9)
    tl.pulse(0.6, width_s=0.15)                 # a hand on the knee to steady the trunk
    tl.turn(0.2, BENT).hold(1.5).turn(1.0, UPRIGHT, scale=1.1).walk(6.0)
    return None


def turning_over_in_bed_after_a_walk(tl: _Timeline) -> float | None:
    """As ``rolling_over_in_bed``, by a wearer whose upright the detector has learnt."""
    _walk_to_chair(tl).turn(2.5, FACE_UP).hold(4.0).turn(0.8, ON_SIDE, scale=0.9)
    tl.pulse(1.2, width_s=0.15)
    tl.turn(0.1, ON_SIDE).hold(6.0)
    return None


Generator = Callable[[_Timeline], "float | None"]

FALLS: dict[str, Generator] = {
    "forward_fall": forward_fall,
    "backward_fall": backward_fall,
    "lateral_fall": lateral_fall,
    "fall_then_get_up": fall_then_get_up,
}
DAILY_ACTIVITIES: dict[str, Generator] = {
    "standing": standing,
    "walking": walking,
    "sitting_down": sitting_down,
    "lying_down": lying_down,
    "rolling_over_in_bed": rolling_over_in_bed,
    "stumbling": stumbling,
    "jumping": jumping,
    "sitting_down_hard": sitting_down_hard,
    "sinking_into_armchair": sinking_into_armchair,
    "lying_down_on_bed_quickly": lying_down_on_bed_quickly,
    "picking_something_up": picking_something_up,
    "turning_over_in_bed_after_a_walk": turning_over_in_bed_after_a_walk,
}
LOW_ENERGY_FALLS: dict[str, Generator] = {
    "slump_from_chair": slump_from_chair,
    "slide_off_chair_sideways": slide_off_chair_sideways,
}
SLOW_FALLS: dict[str, Generator] = {"slow_slide_to_the_floor": slow_slide_to_the_floor}
"""Falls too soft for the impact path, after a walk long enough to learn the wearer's upright."""


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """The matrix turning vectors by ``degrees`` about ``axis`` (Rodrigues): a sensor clipped on askew
    reads ``samples @ rotation(...).T``."""
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    theta = np.radians(degrees)
    return np.asarray(np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * cross @ cross)


def scenario(name: str, sample_rate_hz: float, seed: int = 1) -> Scenario:
    """Render the named scenario at ``sample_rate_hz``."""
    generator = FALLS.get(name) or LOW_ENERGY_FALLS.get(name) or SLOW_FALLS.get(name) or DAILY_ACTIVITIES[name]
    tl = _Timeline(seed)
    impact = generator(tl)
    return Scenario(name, tl.render(sample_rate_hz), sample_rate_hz, impact, impact is not None)
