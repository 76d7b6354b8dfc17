"""Pure decisions of the BLE manager: when to connect, how long to back off, when the adapter is wedged.

No I/O and no clock: every function takes ``now`` (monotonic seconds) and returns a value, so the
manager's behaviour over hours of radio trouble can be tested in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class ConnectionStyle(StrEnum):
    """How the hub keeps in touch with a kind of device."""

    ON_ADVERT = "on_advert"
    """Cuffs, meters, thermometers: they advertise for a few seconds after a measurement; connect
    at once, take what they send, and let the session end (usually the device hangs up)."""
    PERSISTENT = "persistent"
    """Wearables streaming motion: stay connected, reconnect whenever the link drops."""
    ADVERT_ONLY = "advert_only"
    """BTHome buttons: everything is in the advertisement; never connect."""


class SessionOutcome(StrEnum):
    COMPLETED = "completed"
    """Connected and the session ended normally (device hung up, idle timeout, transfer done)."""
    LOST = "lost"
    """A persistent link that had been up dropped (out of range, battery, wearer walked off)."""
    CONNECT_FAILED = "connect_failed"
    """Could not connect at all (all of bleak-retry-connector's attempts failed)."""
    FAILED = "failed"
    """Connected, but the session broke (GATT error, missing characteristic, codec trouble)."""


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial_s: float = 2.0
    """First retry delay. A cuff advertises ~20 s after a measurement: 2, 4, 8 s still fit
    three more tries (each itself up to four connect attempts) into that window."""
    factor: float = 2.0
    max_s: float = 300.0
    """A wearable out of range for hours is retried every 5 minutes, not hammered."""
    after_completed_s: float = 30.0
    """Cuffs keep advertising for a while after they hang up: without this pause the hub would
    reconnect at once and download the same stored readings again."""
    after_lost_s: float = 1.0
    """A wearable that dropped is usually back within a second (a brief fade): retry soon."""

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.factor < 1 or self.max_s < self.initial_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s and factor >= 1, got {self}")


def retry_delay(failures: int, policy: BackoffPolicy) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 -> initial, doubling, capped)."""
    if failures <= 0:
        return 0.0
    # Capping the exponent keeps the arithmetic finite after days of failures.
    return float(min(policy.max_s, policy.initial_s * policy.factor ** min(failures - 1, 64)))


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the manager remembers about one configured device between adverts."""

    running: bool = False
    failures: int = 0
    not_before: float = 0.0
    """Monotonic time before which an advert does not start a session."""


def should_connect(style: ConnectionStyle, state: LinkState, now: float) -> bool:
    """Whether an advert of this device, seen at ``now``, should start a session."""
    if style is ConnectionStyle.ADVERT_ONLY or state.running:
        return False
    return now >= state.not_before


def session_started(state: LinkState) -> LinkState:
    return replace(state, running=True)


def session_ended(state: LinkState, outcome: SessionOutcome, now: float, policy: BackoffPolicy) -> LinkState:
    """The state after a session ended with ``outcome`` at ``now``."""
    if outcome is SessionOutcome.COMPLETED:
        return LinkState(running=False, failures=0, not_before=now + policy.after_completed_s)
    if outcome is SessionOutcome.LOST:
        return LinkState(running=False, failures=0, not_before=now + policy.after_lost_s)
    failures = state.failures + 1
    return LinkState(running=False, failures=failures, not_before=now + retry_delay(failures, policy))


# --- Wedged adapter ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WedgePolicy:
    silence_s: float = 600.0
    """A Pi's adapter can stay "discovering" while reporting nothing until it is reset. Homes
    always have some BLE chatter (phones, TVs), so ten silent minutes means the adapter, not the
    room. Also the shortest time between two power cycles for silence."""
    max_scan_start_failures: int = 3
    """StartDiscovery answering InProgress/NotReady this many times in a row: BlueZ is stuck."""
    min_cycle_interval_s: float = 60.0
    """Never power-cycle more often than this, whatever the reason: a cycle takes seconds and
    drops every connection."""

    def __post_init__(self) -> None:
        if self.silence_s <= 0 or self.max_scan_start_failures < 1 or self.min_cycle_interval_s < 0:
            raise ValueError(f"wedge policy needs silence_s > 0 and max_scan_start_failures >= 1, got {self}")


@dataclass(frozen=True, slots=True)
class ScanHealth:
    """What the manager observed of its scanner (monotonic seconds; None = never)."""

    scanning_since: float | None = None
    last_advert_at: float | None = None
    consecutive_start_failures: int = 0
    last_power_cycle_at: float | None = None


def advert_seen(health: ScanHealth, now: float) -> ScanHealth:
    return replace(health, last_advert_at=now)


def scan_started(health: ScanHealth, now: float) -> ScanHealth:
    return replace(health, scanning_since=now, consecutive_start_failures=0)


def scan_start_failed(health: ScanHealth) -> ScanHealth:
    return replace(health, scanning_since=None, consecutive_start_failures=health.consecutive_start_failures + 1)


def power_cycled(health: ScanHealth, now: float) -> ScanHealth:
    return ScanHealth(last_advert_at=health.last_advert_at, last_power_cycle_at=now)


def power_cycle_reason(health: ScanHealth, *, expecting_adverts: bool, now: float, policy: WedgePolicy) -> str | None:
    """Why the adapter should be power-cycled now, or None when it should be left alone.

    ``expecting_adverts`` is False when no device is configured or every configured device is
    already connected (connected wearables stop advertising, so silence proves nothing then).
    """
    if health.last_power_cycle_at is not None and now - health.last_power_cycle_at < policy.min_cycle_interval_s:
        return None
    if health.consecutive_start_failures >= policy.max_scan_start_failures:
        return f"scanning failed to start {health.consecutive_start_failures} times in a row"
    if not expecting_adverts or health.scanning_since is None:
        return None
    # Silence counts from the latest sign of life: scan start, last advert, or the last cycle.
    since = max(t for t in (health.scanning_since, health.last_advert_at, health.last_power_cycle_at) if t is not None)
    silent_for = now - since
    if silent_for >= policy.silence_s:
        return f"no advertisement for {silent_for:.0f} s while scanning"
    return None


def scan_retry_delay(health: ScanHealth, policy: BackoffPolicy) -> float:
    """Seconds to wait before trying to start scanning again after a failure."""
    return retry_delay(health.consecutive_start_failures, policy)


def normalize_address(address: str) -> str:
    """Addresses as BlueZ and bleak report them: upper case, colon separated."""
    cleaned = address.strip().upper().replace("-", ":")
    parts = cleaned.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789ABCDEF" for c in p) for p in parts):
        raise ValueError(f"{address!r} is not a Bluetooth address; write it as AA:BB:CC:DD:EE:FF")
    return cleaned
