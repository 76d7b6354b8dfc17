"""Splitting a refused batch (400, 413) to find the records at fault, with a request budget; pure.

Depth-first bisection: a refused part is halved and its first half is tried before anything
else, so the path down to one bad record is walked first. Finding one bad record among ``n``
takes ``1 + 2 * ceil(log2 n)`` requests (each level sends both halves) and
:func:`split_budget` allows one more, so one bad record per round is always isolated and the
rest of its batch delivered. A platform that refuses everything gets the same handful of
requests a round, never one request per record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


def split_budget(records: int) -> int:
    """Requests one round may spend on a batch of ``records``: ``2 * ceil(log2 n) + 2``."""
    if records < 1:
        raise ValueError(f"a batch has at least one record, got {records}")
    depth = (records - 1).bit_length()   # ceil(log2 n), exact for integers
    return 2 * depth + 2


class Bisection(Generic[Item]):
    """The parts of one batch still to send, in order, and the requests left to send them.

    It starts from ``parts`` (usually the whole batch as one part). ``next_part`` hands out the
    next part (spending one request of the budget); the caller reports a refused part with
    ``split``. A refused single item cannot be split: the caller holds it as the suspect.
    """

    def __init__(self, parts: Sequence[Sequence[Item]], budget: int) -> None:
        if budget < 1:
            raise ValueError(f"budget must be 1 or more, got {budget}")
        self._stack: list[Sequence[Item]] = [part for part in reversed(parts) if part]
        self._budget = budget

    def __repr__(self) -> str:
        return f"Bisection(parts={len(self._stack)}, budget={self._budget})"

    @property
    def budget(self) -> int:
        """Requests left."""
        return self._budget

    def next_part(self) -> Sequence[Item] | None:
        """The next part to send, or None when all is sent or the budget is spent."""
        if not self._stack or self._budget <= 0:
            return None
        self._budget -= 1
        return self._stack.pop()

    def split(self, part: Sequence[Item]) -> None:
        """``part`` was refused as a whole: its halves come next, the first half first."""
        if len(part) < 2:
            raise ValueError("a single item cannot be split")
        half = len(part) // 2
        self._stack.append(part[half:])
        self._stack.append(part[:half])

    def unsent(self) -> list[Item]:
        """Items of the parts not handed out (left for the next round once the budget is spent)."""
        return [item for part in reversed(self._stack) for item in part]
