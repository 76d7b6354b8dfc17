"""How fast the uplink may ask the platform while it keeps refusing: a token bucket, pure over an
injected monotonic clock (the caller does the waiting, so tests move time by hand).

Backoff spaces the *rounds* (one outbox batch each); a round can still spend many requests when a
batch is split to find a bad record. The bucket bounds the *requests*, whatever spends them, as
long as errors last. A healthy uplink is never held back: it only spends tokens while engaged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ERROR_REQUESTS_PER_MINUTE = 30.0
"""Sustained requests a minute while the platform keeps refusing. Backoff alone let a hostile
platform (400 or 413 to everything) draw 999 requests a round and peaks of 999 requests/s; and
``platform.backoff_max_s`` may be as low as 1 s. One request every 2 s per hub keeps a province
of hubs from flooding a platform that is already in trouble, and still gets a fix through within
seconds of the platform's recovery."""
ERROR_BURST_REQUESTS = 20
"""Requests allowed at once before the rate applies: one full bisection of a 500-record batch
(``split_budget(500)``), so a single bad record in a full batch is isolated in one go, and the
first requests after a healthy spell are not slowed at all."""


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    requests_per_minute: float = ERROR_REQUESTS_PER_MINUTE
    burst: int = ERROR_BURST_REQUESTS

    def __post_init__(self) -> None:
        if self.requests_per_minute <= 0 or self.burst < 1:
            raise ValueError(f"need requests_per_minute > 0 and burst >= 1, got {self}")


class ErrorThrottle:
    """A token bucket that only counts while engaged (from the first failed request until a clean round).

    Tokens refill at ``requests_per_minute`` whether engaged or not, up to ``burst``: a platform
    that flaps between one good round and one bad one does not get a fresh burst every time.
    """

    def __init__(self, clock: Callable[[], float], settings: ThrottleSettings | None = None) -> None:
        self._clock = clock
        self._settings = settings if settings is not None else ThrottleSettings()
        self._tokens = float(self._settings.burst)
        self._updated_at = clock()
        self._engaged = False

    def __repr__(self) -> str:
        return f"ErrorThrottle(engaged={self._engaged}, tokens={self._tokens:.2f}, settings={self._settings})"

    @property
    def engaged(self) -> bool:
        return self._engaged

    @property
    def settings(self) -> ThrottleSettings:
        return self._settings

    def engage(self) -> None:
        """A request failed: count requests from now on."""
        self._engaged = True

    def release(self) -> None:
        """A round went through cleanly: stop counting (the bucket keeps refilling)."""
        self._engaged = False

    def wait_s(self) -> float:
        """Seconds until the next request may go; 0 when it may go now."""
        if not self._engaged:
            return 0.0
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) * 60.0 / self._settings.requests_per_minute

    def spend(self) -> None:
        """A request is going out now (after ``wait_s`` said 0)."""
        if self._engaged:
            self._refill()
            self._tokens -= 1.0

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated_at)   # a monotonic clock; max() only guards a careless fake
        self._updated_at = now
        rate_per_s = self._settings.requests_per_minute / 60.0
        self._tokens = min(float(self._settings.burst), self._tokens + elapsed * rate_per_s)
