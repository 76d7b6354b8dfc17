"""The request ids the hub has answered, kept on disk so a restart does not forget them.

A command is retained on the broker by mistake, or captured and sent again: without this file
every restart of the daemon would run it once more. The file is
``{data_dir}/fleet/commands.json``: ``{"format": 1, "answered": {request_id: issued_at}}``.

Bounded by time, not by trust in the sender: a command older than
:data:`gateway.fleet.freshness.MAX_AGE` is refused by its age before its id is looked at, so an id
is needed only while its command could still pass the age check, i.e. until ``issued_at + MAX_AGE``
(``issued_at`` is the fleet's signed time, so the sender cannot stretch it). :data:`KEEP_MARGIN`
more covers NTP stepping the hub's clock back a little. Ids are forgotten by age only while the
hub's clock is synchronised; with an unsynchronised clock "ten minutes ago" means nothing, and the
ids are kept up to :data:`MAX_REMEMBERED` (oldest ``issued_at`` dropped first).

Written atomically (temporary file, fsync, rename, fsync of the directory): a power cut leaves the
old file or the new one, never half of one. File I/O runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from gateway.fleet.errors import AnsweredFileError
from gateway.fleet.freshness import MAX_AGE

log = logging.getLogger(__name__)

FORMAT = 1
KEEP_MARGIN = timedelta(minutes=5)
KEEP_FOR = MAX_AGE + KEEP_MARGIN
MAX_REMEMBERED = 5000
"""Fleet traffic to one hub is a few commands an hour; this bound only matters to a hub whose clock
stays unsynchronised for weeks, or to a flood from someone holding the fleet key."""
MAX_FILE_BYTES = 2 * 1024 * 1024
"""5000 ids of up to 128 characters with their times, and room to spare: a bigger file is not ours."""


class AnsweredRequests:
    def __init__(self, path: Path | None, answered: dict[str, datetime] | None = None) -> None:
        """``path`` None keeps the ids in memory only (a hub without a data directory, some tests)."""
        self._path = path
        self._answered: dict[str, datetime] = dict(answered or {})
        self._writing = asyncio.Lock()

    @classmethod
    async def load(cls, path: Path, *, now: datetime, clock_synced: bool) -> AnsweredRequests:
        """What the file holds; an unreadable or damaged file is logged and an empty memory returned,
        since refusing every command would lock the technician out of a hub that needs them."""
        try:
            answered = await asyncio.to_thread(_read, path)
        except AnsweredFileError as exc:
            log.error("answered fleet commands not read back path=%s reason=%s: a command answered before "
                      "the restart and still within its age could run again", path, exc)
            answered = {}
        memory = cls(path, answered)
        memory._forget_old(now, clock_synced)
        return memory

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._answered

    def __len__(self) -> int:
        return len(self._answered)

    def remember(self, request_id: str, issued_at: datetime, *, now: datetime, clock_synced: bool) -> None:
        """Note ``request_id`` as answered (in memory; :meth:`save` writes it)."""
        self._answered[request_id] = issued_at
        self._forget_old(now, clock_synced)

    async def save(self) -> None:
        """Write the ids to the file; raises AnsweredFileError when the disk refuses."""
        if self._path is None:
            return
        async with self._writing:  # commands run concurrently: one writer, each writing the latest ids
            document = {"format": FORMAT, "answered": {rid: at.isoformat() for rid, at in self._answered.items()}}
            await asyncio.to_thread(_write_atomically, self._path, json.dumps(document, ensure_ascii=False))

    def _forget_old(self, now: datetime, clock_synced: bool) -> None:
        if clock_synced:
            horizon = now - KEEP_FOR
            self._answered = {rid: at for rid, at in self._answered.items() if at >= horizon}
        if len(self._answered) > MAX_REMEMBERED:
            newest = sorted(self._answered.items(), key=lambda item: item[1])[-MAX_REMEMBERED:]
            self._answered = dict(newest)


def _read(path: Path) -> dict[str, datetime]:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AnsweredFileError(f"cannot read it ({exc.strerror})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise AnsweredFileError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(raw)
        if document.get("format") != FORMAT or not isinstance(document.get("answered"), dict):
            raise AnsweredFileError(f"not format {FORMAT}")
        answered = {str(rid): datetime.fromisoformat(at) for rid, at in document["answered"].items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise AnsweredFileError(f"damaged ({type(exc).__name__})") from exc
    if any(at.tzinfo is None for at in answered.values()):
        raise AnsweredFileError("damaged (a time without offset)")
    return answered


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        # The rename is durable only once the directory entry is on disk.
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise AnsweredFileError(f"{path}: cannot write the answered fleet commands ({exc.strerror})") from exc
