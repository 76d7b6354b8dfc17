"""Device health as the hub sees it: last heard from, last reading, last error.

Feeds the retained ``status`` topic, ``yiyang status`` (through the status file
the daemon writes) and, later, the silence rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DeviceHealth:
    device_id: str
    driver: str
    last_seen: datetime | None = None
    last_reading: datetime | None = None
    readings_accepted: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    battery_percent: int | None = None
    connected: bool | None = None
    """Whether the device is there now (on its cable, in range), when its driver says; None: not known."""


@dataclass
class DeviceStatusBoard:
    """Mutable board owned by the hub (one event loop, no locking needed)."""

    devices: dict[str, DeviceHealth] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    """The hub's own problems by component (a service restarting, storage failing), for the technician."""
    version: int = 0
    """Bumped on every change, so the status publisher knows when there is news."""

    def problem(self, component: str, text: str | None) -> None:
        """Put up (or, with None, take down) the problem of one component."""
        if text is None:
            if self.problems.pop(component, None) is None:
                return
        elif self.problems.get(component) == text:
            return
        else:
            self.problems[component] = text
        self.version += 1

    def register(self, device_id: str, driver: str) -> None:
        self.devices.setdefault(device_id, DeviceHealth(device_id, driver))

    def forget(self, device_id: str) -> None:
        """A device removed from the configuration: no longer shown (nor reported silent)."""
        if self.devices.pop(device_id, None) is not None:
            self.version += 1

    def seen(self, device_id: str, at: datetime) -> None:
        """The device was heard from. News (a status published within seconds) only the first time:
        a wearable heard every second would otherwise republish the status every 2 s all day."""
        first = self.devices.get(device_id) is None or self.devices[device_id].last_seen is None
        self._update(device_id, news=first, last_seen=at)

    def readings(self, device_id: str, at: datetime, count: int) -> None:
        health = self.devices.get(device_id)
        total = (health.readings_accepted if health else 0) + count
        self._update(device_id, last_seen=at, last_reading=at, readings_accepted=total)

    def error(self, device_id: str, at: datetime, message: str) -> None:
        self._update(device_id, last_error=message, last_error_at=at)

    def connected(self, device_id: str, present: bool) -> None:
        self._update(device_id, connected=present)

    def battery(self, device_id: str, percent: int) -> None:
        self._update(device_id, battery_percent=percent)

    def _update(self, device_id: str, *, news: bool = True, **changes: Any) -> None:
        current = self.devices.get(device_id) or DeviceHealth(device_id, "unknown")
        self.devices[device_id] = replace(current, **changes)
        if news:
            self.version += 1

    def as_json(self) -> dict[str, dict[str, Any]]:
        return {d.device_id: _jsonable(asdict(d)) for d in self.devices.values()}


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def runtime_status_path(gateway_id: str, data_dir: Path) -> Path:
    """Where the status file is kept fresh: systemd's runtime directory for the unit
    (``RuntimeDirectory=yiyang``, a tmpfs), else /run/yiyang. A status every few seconds written to
    an SD card would wear it for nothing; RAM costs nothing and ``yiyang status`` reads it. Named
    after the hub and its data directory, so two hubs on one machine never read each other's."""
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]
    return Path(os.environ.get("RUNTIME_DIRECTORY", "/run/yiyang")) / f"status-{gateway_id}-{digest}.json"


def read_status(paths: list[Path]) -> dict[str, Any] | None:
    """The freshest readable status among ``paths`` (the data directory's, then the fallback)."""
    found: list[dict[str, Any]] = []
    for path in paths:
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return max(found, key=lambda status: str(status.get("updated_at", "")), default=None)


def write_status_file(path: Path, payload: dict[str, Any]) -> None:
    """Atomically replace the status file the CLI reads (blocking: call from a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
