"""The outbox as the daemon wires it, for tests: the database and its intake, opened and closed together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gateway.store import Database, Intake, cursors


@dataclass(frozen=True)
class DaemonOutbox:
    db: Database
    """What the uplink, the cursors' users and the statistics reach (``await db.run(records....)``)."""
    intake: Intake
    """What records and alert changes go in through (group commit, held in memory while the disk fails)."""

    @classmethod
    async def open(cls, path: Path, **options: Any) -> DaemonOutbox:
        db = await Database.open(path, **options)
        return cls(db, Intake(db))

    async def get_cursor(self, name: str) -> str | None:
        """A driver's cursor, as the daemon hands drivers their ``cursor_get``."""
        return await self.db.run(cursors.get(name))

    async def set_cursor(self, name: str, value: str) -> None:
        await self.db.run(cursors.put(name, value))

    async def close(self) -> None:
        await self.intake.close()
        await self.db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
