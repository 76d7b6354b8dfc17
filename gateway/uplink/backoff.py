"""When to try the platform again, pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

BACKOFF_INITIAL_S = 1.0
"""A platform restart or a dropped 4G link usually clears within seconds: start small."""
BACKOFF_CAP_S = 300.0
"""A provincial platform down for maintenance can be down for hours; 5 min between tries keeps
thousands of hubs from hammering it, and a hub still delivers within minutes of its return."""
FULL_JITTER = True
"""Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): after an outage every
hub of a province retries; random spreading keeps them from returning in lockstep."""
RETRY_AFTER_MAX_S = 3600.0
"""A misconfigured proxy can send ``Retry-After: 86400``; an hour is the most we let it silence alerts."""
_DATE_RESOLUTION_S = 1.0
_MAX_EXPONENT = 30
"""2**30 s is beyond any cap; stops the float overflowing for a hub that has failed for weeks."""


def backoff_delay(
    attempt: int,
    *,
    initial: float = BACKOFF_INITIAL_S,
    cap: float = BACKOFF_CAP_S,
    rng: random.Random,
) -> float:
    """Seconds to wait after the ``attempt``-th consecutive failure (1 = the first one).

    Exponential with full jitter: uniform in ``[0, min(cap, initial * 2**(attempt-1))]``.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    if initial <= 0 or cap < initial:
        raise ValueError(f"need 0 < initial <= cap, got initial={initial}, cap={cap}")
    ceiling = min(cap, initial * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling) if FULL_JITTER else ceiling


def parse_http_date(value: str) -> datetime | None:
    """An HTTP-date (``Date``, ``Retry-After``) as an aware UTC datetime; None if it is not one."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        # RFC 9110: HTTP-dates are always GMT; "-0000" parses naive.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` (delta-seconds or an HTTP-date) as seconds from ``now``, capped.

    None when absent or unreadable, so the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(int(text))
    else:
        when = parse_http_date(text)
        if when is None:
            return None
        seconds = max(0.0, (when - now).total_seconds())
    return min(seconds, RETRY_AFTER_MAX_S)


def server_clock_offset(date_header: str | None, local_now: datetime) -> float | None:
    """Seconds the platform's clock is ahead of ours, from its ``Date`` header (±0.5 s)."""
    if date_header is None:
        return None
    server_now = parse_http_date(date_header)
    if server_now is None:
        return None
    # Date truncates to the whole second: the platform's clock was somewhere in the second
    # after it, so the middle of that second is the unbiased estimate.
    return (server_now - local_now).total_seconds() + _DATE_RESOLUTION_S / 2
