"""What a technician (or the fleet's ``doctor`` command) should look at, from the hub's status."""

from __future__ import annotations

from datetime import datetime

STALE_AFTER_S = 90.0
"""Three status periods without an update: the daemon is stopped or its loop is stuck."""


def status_problems(status: dict[str, object], now: datetime) -> list[str]:
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
    problems.extend(str(problem) for problem in _as_list(status.get("problems")))
    queue = status.get("queue", {})
    assert isinstance(queue, dict)
    if queue.get("unavailable"):
        problems.append(f"outbox unavailable: {queue['unavailable']}")
    if queue.get("dead"):
        problems.append(f"{queue['dead']} record(s) rejected by the platform: `yiyang queue --dead 20`")
    if queue.get("budget_state") not in (None, "ok"):
        problems.append(f"storage {queue['budget_state']}: the hub has been offline too long or the disk is small")
    uplink = status.get("uplink", {})
    assert isinstance(uplink, dict)
    if uplink.get("consecutive_failures", 0) and uplink.get("last_error"):
        problems.append(f"uploads failing ({uplink['consecutive_failures']} in a row): {uplink['last_error']}")
    devices = status.get("devices", {})
    assert isinstance(devices, dict)
    for device_id, health in devices.items():
        if health.get("last_error"):
            problems.append(f"device {device_id}: {health['last_error']}")
    return problems


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
