"""The daemon as its status document shows it: alive, what it reports of itself, its outbox.

The status document is what the daemon publishes (gateway.status_publisher). ``yiyang status`` and
``yiyang doctor`` read it from the status file (the data directory's, or the runtime directory's
fallback, gateway.status.read_status); the fleet's ``doctor`` gets it from the running publisher.
The doctor never opens the outbox itself: a root process opening the SQLite file of a stopped
daemon could leave root-owned journal files behind that stop the service at its next write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.doctor.report import Check, ok, problem, skipped, warning

STALE_AFTER_S = 90.0
"""Three status periods without an update: the daemon is stopped or its loop is stuck."""
OLDEST_PENDING_PROBLEM_S = 3600.0
"""A connected hub uploads within seconds, and backs off to at most 5 minutes between tries: a record
still waiting after an hour means uploads are not getting through (no internet, a refused signature)."""

DAEMON, REPORTED, OUTBOX, PENDING = "daemon", "daemon reports", "outbox", "oldest pending"
STATUS_FIX = "yiyang status"


def status_problems(status: Mapping[str, Any], now: datetime) -> list[str]:
    """What ``yiyang status`` lists as ``PROBLEM:`` lines."""
    problems: list[str] = []
    updated = datetime.fromisoformat(str(status["updated_at"]))
    if (now - updated).total_seconds() > STALE_AFTER_S:
        problems.append(f"status not updated since {updated.isoformat()}: the daemon is stopped or stuck "
                        "(`systemctl status yiyang`)")
    if not status.get("clock_synced"):
        problems.append("hub clock not synchronised: records are marked hub_unsynced; check network time "
                        "(`timedatectl`)")
    if not status.get("mqtt_connected"):
        problems.append("not connected to the MQTT broker: family alerts cannot be delivered "
                        "(`systemctl status mosquitto`)")
    problems.extend(reported_problems(status))
    budget = _queue(status).get("budget_state")
    if budget not in (None, "ok"):
        problems.append(f"storage {budget}: the hub has been offline too long or the disk is small")
    return problems


def reported_problems(status: Mapping[str, Any]) -> list[str]:
    """What the daemon says is wrong with itself: services restarting, storage, dead letters, uploads, devices."""
    problems = [str(problem) for problem in _as_list(status.get("problems"))]
    queue = _queue(status)
    if queue.get("unavailable"):
        problems.append(f"outbox unavailable: {queue['unavailable']}")
    if queue.get("dead"):
        problems.append(f"{queue['dead']} record(s) rejected by the platform: `yiyang queue --dead 20`")
    uplink = _mapping(status.get("uplink"))
    if uplink.get("consecutive_failures", 0) and uplink.get("last_error"):
        problems.append(f"uploads failing ({uplink['consecutive_failures']} in a row): {uplink['last_error']}")
    for device_id, health in _mapping(status.get("devices")).items():
        if isinstance(health, Mapping) and health.get("last_error"):
            problems.append(f"device {device_id}: {health['last_error']}")
    return problems


def daemon_check(status: Mapping[str, Any] | None, now: datetime, status_file: Path) -> Check:
    """Running, and its event loop alive: the status file is written from the loop every 30 s."""
    if status is None:
        return problem(DAEMON, f"not running: no status file at {status_file}",
                       "systemctl start yiyang (journalctl -u yiyang -n 50 says why it stopped)")
    try:
        updated = datetime.fromisoformat(str(status["updated_at"]))
        age_s = (now - updated).total_seconds()
    except (KeyError, TypeError, ValueError):
        return problem(DAEMON, f"the status file at {status_file} is not the daemon's (no updated_at)",
                       f"rm {status_file} && systemctl restart yiyang")
    if age_s > STALE_AFTER_S:
        return problem(DAEMON, f"status last written {_age(age_s)} ago ({updated.isoformat()}): the daemon is "
                               "stopped or its event loop is stuck",
                       "systemctl restart yiyang (journalctl -u yiyang -n 50 says why)")
    return ok(DAEMON, f"running (version {status.get('version')}, since {status.get('started_at')}); "
                      f"status written {_age(max(0.0, age_s))} ago")


def reported_check(status: Mapping[str, Any] | None) -> Check:
    if status is None:
        return skipped(REPORTED, "the daemon is not running")
    problems = reported_problems(status)
    if not problems:
        return ok(REPORTED, "nothing")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problem(REPORTED, f"{problems[0]}{more}", STATUS_FIX)


def outbox_checks(status: Mapping[str, Any] | None, now: datetime, *, upload_enabled: bool) -> list[Check]:
    """The outbox's budget, and how long the oldest record has waited for the platform."""
    if status is None:
        reason = "the daemon is not running: the outbox is not read while it is stopped"
        return [skipped(OUTBOX, reason), skipped(PENDING, reason)]
    queue = _queue(status)
    if queue.get("unavailable"):
        return [problem(OUTBOX, f"unavailable: {queue['unavailable']}", STATUS_FIX),
                skipped(PENDING, "the outbox is unavailable")]
    return [_budget_check(queue), _pending_check(queue, now, upload_enabled=upload_enabled)]


def _budget_check(queue: Mapping[str, Any]) -> Check:
    state = str(queue.get("budget_state"))
    used = f"{_mib(queue.get('db_bytes'))} of {_mib(queue.get('budget_bytes'))} MiB used"
    if state == "ok":
        return ok(OUTBOX, f"{used} (storage.budget_mb)")
    fix = "get uploads through first (yiyang status shows why they wait), or raise [storage] budget_mb"
    meaning = {
        "warning": "past the warning level",
        "pruning": "at its budget: delivered records and fall snippets are being pruned",
        "full": "full: only undelivered records are left and new records are refused",
    }.get(state, f"in state {state!r}")
    return problem(OUTBOX, f"{used}: {meaning}", fix)


def _pending_check(queue: Mapping[str, Any], now: datetime, *, upload_enabled: bool) -> Check:
    pending = queue.get("pending") or 0
    oldest_text = queue.get("oldest_pending_at")
    if not pending or not oldest_text:
        return ok(PENDING, "nothing waiting for the platform")
    try:
        age_s = max(0.0, (now - datetime.fromisoformat(str(oldest_text))).total_seconds())
    except (TypeError, ValueError):
        return warning(PENDING, f"{pending} record(s) waiting since {oldest_text!r}, a time the doctor cannot read",
                       STATUS_FIX)
    waiting = f"{pending} record(s) waiting, the oldest for {_age(age_s)}"
    if not upload_enabled:
        return warning(PENDING, f"{waiting}: upload is off ([platform] enabled = false)",
                       "set [platform] enabled = true when the platform is ready")
    if age_s > OLDEST_PENDING_PROBLEM_S:
        return problem(PENDING, f"{waiting}: uploads are not getting through", STATUS_FIX)
    return ok(PENDING, waiting)


def _age(seconds: float) -> str:
    whole = int(seconds)
    if whole < 120:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m{rest % 60:02d}s"


def _mib(value: object) -> str:
    return f"{value / 2**20:.1f}" if isinstance(value, int | float) else "?"


def _queue(status: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(status.get("queue"))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
