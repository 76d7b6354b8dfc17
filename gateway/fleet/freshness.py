"""Whether a signed command is fresh enough to run: its ``issued_at`` against the hub's clock.

Pure: the hub's time and whether its clock can be trusted come in as arguments.

The fleet signs ``issued_at`` with the command, so a captured command cannot be given a new time.
A command older than :data:`MAX_AGE` is refused: the fleet's console has long stopped waiting, and
refusing it by age is what lets the hub forget request ids after a while (gateway.fleet.answered).
One issued more than :data:`MAX_AHEAD` in the future is refused too: a little clock skew between
the fleet and the hub is normal, more means one of the clocks is wrong and the age check means
nothing.

A hub whose clock is not synchronised (no NTP since boot: a Raspberry Pi has no real-time clock and
comes up with the time of its last shutdown) cannot tell a command's age. Then the age is not
checked, and only commands that are harmless to run twice are accepted, replays being refused by
request id alone (gateway.fleet.commands says which commands those are).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.fleet.errors import CommandError

MAX_AGE = timedelta(minutes=10)
MAX_AHEAD = timedelta(minutes=2)
ISSUED_AT_MAX_CHARS = 40
"""``2026-11-22T09:00:00.123456+08:00`` is 32; anything much longer is not a time."""


@dataclass(frozen=True, slots=True)
class Freshness:
    age_checked: bool
    """False when the hub's clock is not synchronised: only the request id guards against replay."""


def parse_issued_at(value: object) -> datetime:
    """The command's ``issued_at``: ISO 8601 with a UTC offset, as the fleet signed it."""
    if value is None:
        raise CommandError("command refused: no issued_at; the fleet signs the time it issued each command "
                           "(ISO 8601 with offset): update the fleet tool")
    if not isinstance(value, str) or len(value) > ISSUED_AT_MAX_CHARS:
        raise CommandError("command refused: issued_at must be an ISO 8601 time with offset, "
                           "e.g. 2026-11-22T09:00:00+08:00")
    try:
        issued_at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"command refused: issued_at {value!r} is not an ISO 8601 time") from exc
    if issued_at.tzinfo is None or issued_at.utcoffset() is None:
        raise CommandError(f"command refused: issued_at {value!r} has no UTC offset; "
                           "the hub cannot place it in time")
    return issued_at


def check_freshness(issued_at: datetime, *, now: datetime, clock_synced: bool) -> Freshness:
    """Refuse (CommandError) a command too old or too far in the future for a hub that knows the time."""
    if not clock_synced:
        return Freshness(age_checked=False)
    age = now - issued_at
    if age > MAX_AGE:
        raise CommandError(f"command refused: issued {_minutes(age)} ago, older than {_minutes(MAX_AGE)} "
                           f"(hub time {now.isoformat(timespec='seconds')}); send it again")
    if -age > MAX_AHEAD:
        raise CommandError(f"command refused: issued {_minutes(-age)} in the future, more than "
                           f"{_minutes(MAX_AHEAD)} ahead (hub time {now.isoformat(timespec='seconds')}): "
                           "check the fleet console's clock")
    return Freshness(age_checked=True)


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.1f} min"
