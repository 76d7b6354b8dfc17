"""A file of disk space kept in reserve, given back when the disk fills so that alerts can still be stored.

Why: SQLite needs room to append to its WAL even to store one small alert. On a hub whose SD card
or data partition is full (logs, a runaway file, a small partition), the first thing to fail is
exactly the write that must not fail. Holding a few MiB in a plain file and deleting it at the
first SQLITE_FULL gives the outbox room for thousands of alerts while someone frees space; the
reserve is taken again once the disk has room for it twice over.

Blocking file I/O: call from the outbox's thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

RESERVE_FILE_NAME = "disk-reserve"
_HEADROOM_FACTOR = 2
"""Take the reserve back only when the disk has twice its size free: taking it at the last byte
would fill the disk again and fail the next write."""


class DiskReserve:
    def __init__(self, directory: Path, size_bytes: int) -> None:
        if size_bytes < 0:
            raise ValueError(f"reserve size must be >= 0 bytes, got {size_bytes}")
        self.path = directory / RESERVE_FILE_NAME
        self.size_bytes = size_bytes

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size_bytes
        except OSError:
            return False

    def ensure(self) -> bool:
        """Hold the reserve if the disk has room for it; True when it is held afterwards."""
        if self.size_bytes == 0:
            return True
        if self.held:
            return True
        try:
            stats = os.statvfs(self.path.parent)
        except OSError:
            return False
        if stats.f_bavail * stats.f_frsize < self.size_bytes * _HEADROOM_FACTOR:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                # Allocated blocks, not a sparse file: a sparse reserve frees nothing when deleted.
                os.posix_fallocate(fd, 0, self.size_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("disk reserve not taken path=%s reason=%s", self.path, exc.strerror)
            self.path.unlink(missing_ok=True)
            return False
        log.info("disk reserve held path=%s bytes=%d", self.path, self.size_bytes)
        return True

    def release_quietly(self) -> None:
        """Give the reserve back because the configuration changed its size (not an emergency)."""
        self.path.unlink(missing_ok=True)

    def release(self) -> bool:
        """Give the reserve back to the filesystem; True if there was one to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("disk reserve could not be released path=%s reason=%s", self.path, exc.strerror)
            return False
        log.error("disk full: the disk reserve was released so alerts can still be stored path=%s bytes=%d",
                  self.path, self.size_bytes)
        return True
