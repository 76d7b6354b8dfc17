"""The ``motion_snippets`` table: raw IMU samples kept as the evidence of a fall alert.

Prunable: at the budget they go after the delivered records (:mod:`gateway.store.budget`).
A repository: each function builds the :class:`~gateway.store.work.Work` a database runs.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from gateway.store.sqlite import from_us, to_us
from gateway.store.work import Tx, Work, grow, read


@dataclass(frozen=True, slots=True)
class MotionSnippet:
    alert_id: str
    device_id: str
    first_sample_at: datetime
    sample_rate_hz: float
    samples: bytes


def add(snippet: MotionSnippet) -> Work[None]:
    """Keep raw motion as the evidence of a fall alert; ValueError for a snippet without samples or rate."""
    first_us = to_us(snippet.first_sample_at, "first_sample_at")
    if not (math.isfinite(snippet.sample_rate_hz) and snippet.sample_rate_hz > 0):
        raise ValueError(f"sample_rate_hz must be a positive number, got {snippet.sample_rate_hz}")
    if not snippet.samples:
        raise ValueError(f"motion snippet for alert {snippet.alert_id} has no samples")
    params = (snippet.alert_id, snippet.device_id, first_us, snippet.sample_rate_hz, bytes(snippet.samples))

    def run(tx: Tx) -> None:
        tx.conn.execute(
            "INSERT INTO motion_snippets (alert_id, device_id, first_sample_at, sample_rate_hz,"
            " samples, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (*params, to_us(tx.now, "clock()")),
        )

    return grow("storing a motion snippet", run)


def for_alert(alert_id: str) -> Work[list[MotionSnippet]]:
    def run(tx: Tx) -> list[MotionSnippet]:
        rows = tx.conn.execute(
            "SELECT alert_id, device_id, first_sample_at, sample_rate_hz, samples"
            " FROM motion_snippets WHERE alert_id = ? ORDER BY snippet_id",
            (alert_id,),
        ).fetchall()
        return [MotionSnippet(a, d, from_us(f), r, bytes(s)) for a, d, f, r, s in rows]

    return read("reading motion snippets", run)


# -- for the budget (inside its transactions) -------------------------------------------------------


def any_kept(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM motion_snippets)").fetchone()[0])


def delete_oldest(conn: sqlite3.Connection, count: int) -> int:
    return conn.execute(
        "DELETE FROM motion_snippets WHERE snippet_id IN (SELECT snippet_id FROM motion_snippets"
        " ORDER BY snippet_id LIMIT ?)", (count,)
    ).rowcount
