"""The ``cursors`` table: small named values the hub keeps with its records.

Drivers keep where a meter's download stands (an RACP sequence number) and a cuff's unlock key, the
clock watch its reference, Home Assistant's publisher the topics it published: committed with the
same durability as the records, so a value is never one the hub has lost.
A repository: each function builds the :class:`~gateway.store.work.Work` a database runs.
"""

from __future__ import annotations

from gateway.store.sqlite import to_us
from gateway.store.work import Tx, Work, read, write


def get(name: str) -> Work[str | None]:
    def run(tx: Tx) -> str | None:
        row = tx.conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    return read("reading a cursor", run)


def put(name: str, value: str) -> Work[None]:
    def run(tx: Tx) -> None:
        tx.conn.execute(
            "INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (name, value, to_us(tx.now, "clock()")),
        )

    return write("saving a cursor", run)
