"""The ``active_alerts`` table: the alerts still open, as JSON, so they survive a restart.

The daemon restores them, so acks are still understood, repeats go on and "all clear" is still sent.
What is written while the disk fails is held by :class:`gateway.store.intake.Intake`.
A repository: each function builds the :class:`~gateway.store.work.Work` a database runs.
"""

from __future__ import annotations

from gateway.store.sqlite import to_us
from gateway.store.work import Tx, Work, read, write


def save(alert_id: str, alert_json: str) -> Work[None]:
    def run(tx: Tx) -> None:
        tx.conn.execute(
            "INSERT INTO active_alerts (alert_id, alert_json, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (alert_id) DO UPDATE SET alert_json = excluded.alert_json,"
            " updated_at = excluded.updated_at",
            (alert_id, alert_json, to_us(tx.now, "clock()")),
        )

    return write("saving an active alert", run)


def drop(alert_id: str) -> Work[None]:
    def run(tx: Tx) -> None:
        tx.conn.execute("DELETE FROM active_alerts WHERE alert_id = ?", (alert_id,))

    return write("closing an active alert", run)


def all_open() -> Work[list[str]]:
    """The JSON of every alert still open, oldest change first."""

    def run(tx: Tx) -> list[str]:
        return [str(r[0]) for r in tx.conn.execute("SELECT alert_json FROM active_alerts ORDER BY updated_at")]

    return read("reading active alerts", run)
