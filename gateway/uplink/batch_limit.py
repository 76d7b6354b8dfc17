"""The batch size the platform is learned to take: halved on 413, grown back slowly; pure (the
caller passes the monotonic time).

The configured limits are what the contract promises (500 records, 1 MiB); a real platform may sit
behind a proxy with a smaller body limit (nginx's ``client_max_body_size`` defaults to 1 MiB of
*compressed* body, WAFs often cap lower), and answers 413. Without memory, every batch would be
refused and split again, round after round. The learned limit lives in memory only: a restart
starts from the configuration again, which costs one 413.
"""

from __future__ import annotations

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
"""Doubling finds its way back from one record to 500 in nine steps; the halving on a refused
probe takes it straight back to the size that went through."""


@dataclass(frozen=True, slots=True)
class BatchLimit:
    records: int
    record_bytes: int
    """The records' JSON bytes in one request (as the outbox counts them), before gzip."""

    def __post_init__(self) -> None:
        if self.records < 1 or self.record_bytes < 1:
            raise ValueError(f"a batch limit is at least one record and one byte, got {self}")


@dataclass(frozen=True, slots=True)
class LearnedLimit:
    """The limit in use (``current``), never above ``configured``."""

    configured: BatchLimit
    current: BatchLimit
    clean_rounds: int = 0
    changed_at: float = 0.0
    """Monotonic time the limit was last lowered or grown."""

    @classmethod
    def start(cls, configured: BatchLimit) -> LearnedLimit:
        return cls(configured=configured, current=configured)

    @property
    def lowered(self) -> bool:
        return self.current != self.configured

    def refused(self, records: int, record_bytes: int, now: float) -> LearnedLimit:
        """A request of ``records`` records (``record_bytes`` bytes) got 413: use half of that from now on.

        A single record refused is not about the batch size (it is too large by itself): the
        limit stays.
        """
        if records < 2:
            return replace(self, clean_rounds=0)
        current = BatchLimit(records=min(self.current.records, records // 2),
                             record_bytes=max(1, min(self.current.record_bytes, record_bytes // 2)))
        if current == self.current:
            return replace(self, clean_rounds=0)
        return replace(self, current=current, clean_rounds=0, changed_at=now)

    def round_done(self, *, clean: bool, now: float) -> LearnedLimit:
        """A round ended; after enough clean ones in a row, and long enough, try a larger batch again."""
        if not clean:
            return replace(self, clean_rounds=0)
        if not self.lowered:
            return self
        clean_rounds = self.clean_rounds + 1
        if clean_rounds < GROWTH_AFTER_CLEAN_ROUNDS or now - self.changed_at < GROWTH_AFTER_S:
            return replace(self, clean_rounds=clean_rounds)
        grown = BatchLimit(records=min(self.configured.records, self.current.records * GROWTH_FACTOR),
                           record_bytes=min(self.configured.record_bytes, self.current.record_bytes * GROWTH_FACTOR))
        return replace(self, current=grown, clean_rounds=0, changed_at=now)
