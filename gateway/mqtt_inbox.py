"""The bounded hand-over of received messages from paho's network thread to the event loop.

``loop.call_soon_threadsafe(queue.put_nowait, msg)`` per message, as the link did, has no bound at
all: every call lands in the loop's own ready queue, holding its payload, however slow the loop is.
Here the network thread puts into a bounded FIFO (by count and by bytes) and wakes the loop only
when the inbox goes from empty to not empty; what does not fit is dropped and counted there, on the
network thread, before the loop ever sees it.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Put(Enum):
    QUEUED = "queued"
    QUEUED_WAKE = "queued_wake"
    """Queued into an empty inbox: the consumer may be asleep and must be woken."""
    DROPPED = "dropped"


class BoundedInbox(Generic[T]):
    """A FIFO of at most ``max_items`` items and ``max_bytes`` bytes; any thread may put or take."""

    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("an inbox holds at least one item and one byte")
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.dropped = 0
        self.peak_items = 0
        self.peak_bytes = 0

    def put(self, item: T, size: int) -> Put:
        with self._lock:
            if len(self._items) >= self._max_items or self._bytes + size > self._max_bytes:
                self.dropped += 1
                return Put.DROPPED
            was_empty = not self._items
            self._items.append((item, size))
            self._bytes += size
            self.peak_items = max(self.peak_items, len(self._items))
            self.peak_bytes = max(self.peak_bytes, self._bytes)
        return Put.QUEUED_WAKE if was_empty else Put.QUEUED

    def take(self) -> T | None:
        with self._lock:
            if not self._items:
                return None
            item, size = self._items.popleft()
            self._bytes -= size
            return item

    def __len__(self) -> int:
        return len(self._items)
