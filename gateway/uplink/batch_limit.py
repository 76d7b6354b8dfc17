"""The batch size the platform is learned to take: halved on 413, grown back slowly; pure.

The configured limits are what the contract promises (500 records, 1 MiB); a real platform may sit
behind a proxy with a smaller body limit (nginx's ``client_max_body_size`` defaults to 1 MiB of
*compressed* body, WAFs often cap lower), and answers 413. Without memory, every batch would be
refused and split again, round after round. The learned limit lives in memory only: a restart
starts from the configuration again, which costs one 413.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GROWTH_AFTER_CLEAN_ROUNDS = 16
"""Clean rounds in a row before the limit is doubled again. A 413 may have been a passing proxy
quirk (a reconfigured front end, a maintenance page) and a limit stuck at one record would drain
a backlog one request per record for ever; but each probe that is refused again costs a 413, a
split and a backoff, so probe rarely: at most one in 17 rounds."""
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

    @classmethod
    def start(cls, configured: BatchLimit) -> LearnedLimit:
        return cls(configured=configured, current=configured)

    @property
    def lowered(self) -> bool:
        return self.current != self.configured

    def refused(self, records: int, record_bytes: int) -> LearnedLimit:
        """A request of ``records`` records (``record_bytes`` bytes) got 413: use half of that from now on.

        A single record refused is not about the batch size (it is too large by itself): the
        limit stays.
        """
        if records < 2:
            return replace(self, clean_rounds=0)
        current = BatchLimit(records=min(self.current.records, records // 2),
                             record_bytes=max(1, min(self.current.record_bytes, record_bytes // 2)))
        return replace(self, current=current, clean_rounds=0)

    def round_done(self, *, clean: bool) -> LearnedLimit:
        """A round ended; after enough clean ones in a row, try a larger batch again."""
        if not clean:
            return replace(self, clean_rounds=0)
        if not self.lowered:
            return self
        clean_rounds = self.clean_rounds + 1
        if clean_rounds < GROWTH_AFTER_CLEAN_ROUNDS:
            return replace(self, clean_rounds=clean_rounds)
        grown = BatchLimit(records=min(self.configured.records, self.current.records * GROWTH_FACTOR),
                           record_bytes=min(self.configured.record_bytes, self.current.record_bytes * GROWTH_FACTOR))
        return replace(self, current=grown, clean_rounds=0)
