"""The batch size the platform is learned to take: lowered after a round with 413, grown back slowly;
pure (the caller passes the monotonic time).

The configured limits are what the contract promises (500 records, 1 MiB); a real platform may sit
behind a proxy with a smaller body limit (nginx's ``client_max_body_size`` defaults to 1 MiB of
*compressed* body, WAFs often cap lower), and answers 413. Without memory, every batch would be
refused and split again, round after round. The learned limit lives in memory only: a restart
starts from the configuration again, which costs one 413.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

GROWTH_AFTER_CLEAN_ROUNDS = 16
"""Clean rounds in a row before the limit is doubled again: growth needs evidence that the
platform is well, not only time passing on an idle hub."""
GROWTH_AFTER_S = 600.0
"""And at least this long since the limit last changed. A 413 may have been a passing proxy
quirk (a reconfigured front end, a maintenance page) and a limit stuck at one record would drain
a backlog one request per record for ever; but a probe the platform refuses again costs a 413, a
split, a backoff and requests paced by the error throttle. Probing every 17 rounds cut a backlog
drain behind a 64 KiB proxy limit from ~15,000 to ~900 records/s (bench/uplink_faults.py);
once in ten minutes costs a few seconds an hour."""
GROWTH_FACTOR = 2
"""Doubling finds its way back from one record to 500 in nine steps; a refused probe brings it
straight back to the size that went through."""


@dataclass(frozen=True, slots=True)
class BatchSize:
    records: int
    record_bytes: int
    """The records' JSON bytes (as the outbox counts them), before gzip."""

    def __post_init__(self) -> None:
        if self.records < 1 or self.record_bytes < 1:
            raise ValueError(f"a batch is at least one record and one byte, got {self}")

    def at_most(self, other: BatchSize) -> BatchSize:
        return BatchSize(min(self.records, other.records), min(self.record_bytes, other.record_bytes))


@dataclass(frozen=True, slots=True)
class LearnedLimit:
    """The limit in use (``current``), never above ``configured``."""

    configured: BatchSize
    current: BatchSize
    clean_rounds: int = 0
    changed_at: float = 0.0
    """Monotonic time the limit was last lowered or grown."""

    @classmethod
    def start(cls, configured: BatchSize) -> LearnedLimit:
        return cls(configured=configured, current=configured)

    @property
    def lowered(self) -> bool:
        return self.current != self.configured

    def after_round(self, *, too_large: Sequence[BatchSize], went_through: Sequence[BatchSize], clean: bool,
                    now: float) -> LearnedLimit:
        """The limit after a round whose requests of ``too_large`` sizes got 413 and of ``went_through`` sizes 200.

        After a 413, the limit becomes the largest request that went through in the round (the
        split's halves show what fits), or, if none did, half the smallest one refused. A single
        record refused is about that record, not the batch size: it teaches nothing. Judging the
        round as a whole keeps one oversized record, refused again at each step of the split that
        isolates it, from driving the limit down to one record.
        """
        refused = [size for size in too_large if size.records > 1]
        if not refused:
            return self._grown_after(clean=clean, now=now)
        if went_through:
            fits = BatchSize(max(size.records for size in went_through),
                             max(size.record_bytes for size in went_through))
        else:
            smallest = min(refused, key=lambda size: (size.records, size.record_bytes))
            fits = BatchSize(smallest.records // 2, max(1, smallest.record_bytes // 2))
        current = self.current.at_most(fits)
        if current == self.current:
            return replace(self, clean_rounds=0)
        return replace(self, current=current, clean_rounds=0, changed_at=now)

    def _grown_after(self, *, clean: bool, now: float) -> LearnedLimit:
        """After enough clean rounds in a row, and long enough, try a larger batch again."""
        if not clean:
            return replace(self, clean_rounds=0)
        if not self.lowered:
            return self
        clean_rounds = self.clean_rounds + 1
        if clean_rounds < GROWTH_AFTER_CLEAN_ROUNDS or now - self.changed_at < GROWTH_AFTER_S:
            return replace(self, clean_rounds=clean_rounds)
        grown = BatchSize(self.current.records * GROWTH_FACTOR,
                          self.current.record_bytes * GROWTH_FACTOR).at_most(self.configured)
        return replace(self, current=grown, clean_rounds=0, changed_at=now)
