"""Keeps the daemon's outbox file usable: opens it, notices when it is lost, and recovers.

Home Assistant's recorder is the model: a database that cannot be used is moved aside and a fresh
one opened, and the user is told, rather than the service refusing to start. Here that matters
more, because a hub that stops is a hub that stops alerting. The keeper handles, on the outbox's
own thread (every method blocks):

* **a file that cannot be opened or written** (read-only filesystem, missing directory): the error
  goes to the caller and the next call tries again, at most every ``REOPEN_EVERY_S``;
* **a corrupt file**: moved aside as ``outbox.sqlite.corrupt-<time>`` (with its WAL), a fresh outbox
  opened, and the pending records that still read cleanly copied over (:mod:`gateway.store.salvage`);
* **a file deleted or replaced while the daemon runs**: SQLite keeps writing to the orphaned inode
  and nobody would notice until a restart lost everything. The keeper compares the file's identity
  with the one it opened, at most every ``IDENTITY_CHECK_S``, and writes the orphan's whole content
  back to the path (SQLite's backup API reads it through the still-open descriptors);
* **a full disk**: the disk reserve (:mod:`gateway.store.reserve`) is released and the call tried once more.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gateway.errors import DiskFullError, OutboxCorruptError, StoreError
from gateway.store.dbfile import DatabaseFile
from gateway.store.reserve import DiskReserve

log = logging.getLogger(__name__)

_T = TypeVar("_T")

REOPEN_EVERY_S = 2.0
"""A read-only or missing data directory is retried this often: soon enough that a technician who
remounts it sees the hub recover at once, rarely enough not to spin."""
IDENTITY_CHECK_S = 1.0
"""How often the file's identity is compared: one stat() a second costs nothing."""
CORRUPT_SUFFIX = ".corrupt-"
_SIDE_FILES = ("-wal", "-shm")

Opener = Callable[[Path], DatabaseFile]


class OutboxKeeper:
    """Owns the :class:`DatabaseFile` of one path for the daemon; use from one thread only."""

    def __init__(self, path: Path, opener: Opener, *, reserve: DiskReserve | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = path
        self._opener = opener
        self._reserve = reserve
        self._monotonic = monotonic
        self._wall = wall
        self._file: DatabaseFile | None = None
        self._identity: tuple[int, int] | None = None
        self._last_open_failure: tuple[float, StoreError] | None = None
        self._identity_checked_at = -IDENTITY_CHECK_S
        self._moved_aside = path
        self._reserve_released = False
        self.incidents: list[str] = []
        """What happened to the file since the daemon started, for the technician (status, doctor)."""

    # -- the one entry point -----------------------------------------------------------------------

    def call(self, action: Callable[[DatabaseFile], _T]) -> _T:
        """Run ``action`` on a usable outbox file; StoreError when there is none or the action failed."""
        file = self._usable()
        try:
            return action(file)
        except OutboxCorruptError as exc:
            self._replace_corrupt(str(exc))
            raise
        except DiskFullError:
            if self._reserve is None or not self._reserve.release():
                raise
            self._reserve_released = True
            self.incidents.append(f"disk full at {self._wall().isoformat(timespec='seconds')}: the disk "
                                  "reserve was released so alerts can still be stored")
            return action(file)

    def maintain(self) -> None:
        """Periodic care: open if closed, check the file is still ours, take the reserve back."""
        self._usable()
        if self._reserve is not None and self._reserve.ensure():
            self._reserve_released = False

    def reconfigure(self, opener: Opener, reserve: DiskReserve | None, apply: Callable[[DatabaseFile], None]) -> None:
        """New storage settings: ``apply`` them to the open outbox; ``opener`` for the next (re)open."""
        self._opener = opener
        if self._reserve is not None and (reserve is None or reserve.size_bytes != self._reserve.size_bytes):
            self._reserve.release_quietly()
        self._reserve = reserve
        if self._file is not None:
            apply(self._file)

    @property
    def is_open(self) -> bool:
        return self._file is not None

    @property
    def reserve_released(self) -> bool:
        """The disk filled up, the reserve was given back, and there has not been room to take it again."""
        return self._reserve_released

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- opening -----------------------------------------------------------------------------------

    def _usable(self) -> DatabaseFile:
        if self._file is not None:
            self._check_identity()
        if self._file is None:
            self._file = self._open()
        return self._file

    def _open(self) -> DatabaseFile:
        now = self._monotonic()
        if self._last_open_failure is not None:
            failed_at, error = self._last_open_failure
            if now - failed_at < REOPEN_EVERY_S:
                raise error
        try:
            try:
                file = self._opener(self.path)
            except OutboxCorruptError as exc:
                self._move_aside(str(exc))
                file = self._fresh_after_corruption()
        except StoreError as exc:
            self._last_open_failure = (now, exc)
            raise
        if self._last_open_failure is not None:
            log.warning("outbox usable again path=%s", self.path)
        self._last_open_failure = None
        self._identity = _identity(self.path)
        self._identity_checked_at = now
        return file

    # -- a lost or replaced file -------------------------------------------------------------------

    def _check_identity(self) -> None:
        now = self._monotonic()
        if now - self._identity_checked_at < IDENTITY_CHECK_S:
            return
        self._identity_checked_at = now
        current = _identity(self.path)
        if current == self._identity:
            return
        assert self._file is not None
        what = "deleted" if current is None else "replaced by another file"
        log.error("outbox file %s while the gateway ran path=%s; writing its content back", what, self.path)
        if current is not None:
            self._rename_with_side_files(self.path, self._aside_path(".replaced-"))
        self._restore_from_orphan(self._file)
        self.incidents.append(f"the outbox file was {what} while the gateway ran "
                              f"({self._wall().isoformat(timespec='seconds')}); it was recreated with "
                              "everything it held")

    def _restore_from_orphan(self, orphan: DatabaseFile) -> None:
        staging = self.path.with_name(self.path.name + ".restoring")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # the whole data directory may be gone
            _remove_with_side_files(staging)
            orphan.copy_to(staging)
        except (OSError, StoreError) as exc:
            # The orphan stays open: its content is still reachable, and the next check tries again.
            self._identity_checked_at = self._monotonic()
            raise StoreError(f"{self.path}: the outbox file is gone and its content could not be written "
                             f"back yet ({exc}); make the data directory writable") from exc
        # Closing checkpoints the orphan's WAL into the orphan; its -wal/-shm names may now belong to
        # nobody, and a stale WAL beside the new file would be replayed into it.
        orphan.close()
        self._file = None
        for suffix in _SIDE_FILES:
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        staging.rename(self.path)
        self._file = self._open()

    # -- a corrupt file ----------------------------------------------------------------------------

    def _replace_corrupt(self, reason: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._move_aside(reason)
        self._file = self._fresh_after_corruption()
        self._identity = _identity(self.path)

    def _move_aside(self, reason: str) -> None:
        aside = self._aside_path(CORRUPT_SUFFIX)
        self._rename_with_side_files(self.path, aside)
        self._moved_aside = aside
        log.error("outbox corrupt, moved aside path=%s moved_to=%s reason=%s", self.path, aside, reason)
        self.incidents.append(f"the outbox was corrupt ({self._wall().isoformat(timespec='seconds')}); it was "
                              f"moved aside to {aside.name} and a fresh outbox opened")

    def _fresh_after_corruption(self) -> DatabaseFile:
        file = self._opener(self.path)
        report = file.salvage_from(self._moved_aside)
        if report.records or report.active_alerts:
            self.incidents.append(f"{report.records} pending record(s) and {report.active_alerts} open alert(s) "
                                  f"were copied from {self._moved_aside.name}")
        return file

    def _aside_path(self, infix: str) -> Path:
        stamp = self._wall().strftime("%Y%m%dT%H%M%SZ")
        candidate = self.path.with_name(f"{self.path.name}{infix}{stamp}")
        counter = 1
        while candidate.exists():
            counter += 1
            candidate = self.path.with_name(f"{self.path.name}{infix}{stamp}-{counter}")
        return candidate

    @staticmethod
    def _rename_with_side_files(source: Path, target: Path) -> None:
        # The WAL goes with its database: SQLite finds it by name, "<database>-wal".
        for suffix in ("", *_SIDE_FILES):
            side = Path(str(source) + suffix)
            if side.exists():
                side.rename(Path(str(target) + suffix))


def corrupt_files(path: Path) -> list[Path]:
    """Outbox files moved aside as corrupt that are still on disk (a problem until someone looks)."""
    try:
        return sorted(p for p in path.parent.glob(f"{path.name}{CORRUPT_SUFFIX}*")
                      if not p.name.endswith(_SIDE_FILES))
    except OSError:
        return []


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _remove_with_side_files(path: Path) -> None:
    for suffix in ("", *_SIDE_FILES, "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
