"""The fleet state on disk, ``{data_dir}/fleet/state.json``: written so that a SIGKILL or a power cut
at any instant leaves the old file or the new one, never a mix and never none. Blocking: the
service calls it through ``asyncio.to_thread``.

A write goes to a temporary file in the same directory, is fsynced, renamed over the state
(``os.replace``, atomic on POSIX) and the directory fsynced so the rename itself survives a power cut.

A file that cannot be read as a fleet state (a damaged SD card sector, a hand edit) must not brick
the hub. Like the outbox, it is moved aside as ``state.json.corrupt-<time>`` with a loud log line and
the hub starts from its local file alone, which is always a valid configuration. What is lost is
the fleet's memory: the retained document is evaluated afresh and applied if it is valid (a
document that had been rolled back gets one more trial, which a crash again rolls back), and
versions below it are no longer known to be replays until the fleet's next document.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from gateway.errors import GatewayError, InboundError
from gateway.fleet.document import MAX_DEPTH
from gateway.fleet.state import FleetState, state_from_json, state_to_json
from gateway.inbound import parse_json_bounded

log = logging.getLogger(__name__)

STATE_FILE = Path("fleet") / "state.json"
"""Below ``[gateway] data_dir``, which only the local file sets."""
CORRUPT_SUFFIX = ".corrupt-"
MAX_STATE_BYTES = 4 * 1024 * 1024
"""Two overlays (the applied one and a trial's) of at most a 256 KiB document each, and the last
report: far below this. A bigger file is not ours."""
STATE_DEPTH = MAX_DEPTH + 3
"""A document's sections sit three levels down in the state (``trial`` -> ``overlay`` -> section)."""


class FleetStateError(GatewayError):
    """The fleet state file cannot be read or written (permissions, a full or read-only disk).

    Nothing from the fleet is applied while the state cannot be written: a configuration whose trial
    is not on disk could not be rolled back after a crash. Check the data directory and free space.
    """


class FleetStateCorrupt(FleetStateError):
    """The file is there but is not a fleet state; the daemon moves it aside and starts from the local file."""


class StateStore(Protocol):
    """Where the service keeps its state (blocking calls, run in a thread)."""

    def load(self) -> FleetState: ...

    def save(self, state: FleetState) -> None: ...


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


class FleetStateFile:
    """The state file of one hub. ``wall`` stamps the name of a file moved aside."""

    def __init__(self, path: Path, *, wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = path
        self._wall = wall
        self.moved_aside: Path | None = None
        """Where :meth:`load` put an unreadable file, for the daemon's status."""

    def read(self) -> FleetState | None:
        """The state, or None when there is none yet; changes nothing on disk (``yiyang config check``).

        Raises :class:`FleetStateCorrupt` for a file that is not a fleet state, :class:`FleetStateError`
        for one that cannot be read.
        """
        try:
            with open(self.path, "rb") as file:
                data = file.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FleetStateError(f"{self.path}: cannot read the fleet state ({exc.strerror}); check its "
                                  "permissions (run this as the service user)") from exc
        try:
            return state_from_json(parse_json_bounded(data, max_bytes=MAX_STATE_BYTES, max_depth=STATE_DEPTH))
        except (InboundError, ValueError) as exc:
            raise FleetStateCorrupt(f"{self.path}: not a fleet state ({exc})") from exc

    def load(self) -> FleetState:
        """The state at start; never raises. An unreadable file is moved aside and logged loudly, and
        the hub starts as if the fleet had set nothing (its local file)."""
        self._remove_temporary_files()
        try:
            state = self.read()
        except FleetStateCorrupt as exc:
            self._move_aside(str(exc))
            return FleetState()
        except FleetStateError as exc:
            log.error("fleet state unreadable, starting from the local configuration path=%s reason=%s",
                      self.path, exc)
            return FleetState()
        return FleetState() if state is None else state

    def save(self, state: FleetState) -> None:
        """Replace the file atomically and durably; :class:`FleetStateError` when the disk refuses."""
        data = json.dumps(state_to_json(state), ensure_ascii=False, sort_keys=True, indent=1).encode()
        directory = self.path.parent
        temporary: str | None = None
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # 0600 (mkstemp's mode): the overlay may hold a BTHome key and family phone numbers.
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                _write_all(fd, data)  # straight to the descriptor: no user-space buffer left to flush
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            temporary = None
        except OSError as exc:
            raise FleetStateError(f"{self.path}: cannot write the fleet state ({exc.strerror or exc}); check that "
                                  f"{directory} is writable and the disk has space") from exc
        finally:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
        try:
            _fsync_directory(directory)
        except OSError as exc:
            # The new state is in place and is what every reader sees; only whether the rename survives
            # a power cut is unconfirmed. Raising would make the caller act as if the old state were
            # still there, which it no longer is.
            log.warning("fleet state directory not synced path=%s error=%s", directory, exc.strerror)

    def _move_aside(self, reason: str) -> None:
        stem = f"{self.path.name}{CORRUPT_SUFFIX}{self._wall().strftime('%Y%m%dT%H%M%SZ')}"
        aside = self.path.with_name(stem)
        counter = 1
        while aside.exists():
            counter += 1
            aside = self.path.with_name(f"{stem}-{counter}")
        try:
            self.path.rename(aside)
        except OSError as exc:
            # The next save replaces it anyway; until then every start says so again.
            log.error("fleet state corrupt and cannot be moved aside, starting from the local configuration "
                      "path=%s reason=%s error=%s", self.path, reason, exc.strerror)
            return
        self.moved_aside = aside
        log.error("fleet state corrupt, moved aside; starting from the local configuration path=%s moved_to=%s "
                  "reason=%s", self.path, aside, reason)

    def _remove_temporary_files(self) -> None:
        # Left by a write that was killed before its rename: never the state, only a copy in the making.
        try:
            leftovers = list(self.path.parent.glob(f".{self.path.name}.*.tmp"))
        except OSError:
            return
        for leftover in leftovers:
            try:
                leftover.unlink()
            except OSError as exc:
                log.warning("fleet state temporary file not removed path=%s error=%s", leftover, exc.strerror)


def corrupt_state_files(data_dir: Path) -> list[Path]:
    """Fleet state files moved aside as unreadable that are still on disk (worth a status problem)."""
    path = state_path(data_dir)
    try:
        return sorted(path.parent.glob(f"{path.name}{CORRUPT_SUFFIX}*"))
    except OSError:
        return []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
