"""Run the real daemon (``python -m gateway run``) as a subprocess against real parts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

GATEWAY_ID = "gw-test"
RESIDENT_ID = "r-0001"


def write_config(path: Path, *, data_dir: Path, platform_url: str, secret_file: Path, broker_port: int,
                 meter_link: Path | None, extra: str = "", detect: str = "") -> Path:
    device = "" if meter_link is None else f"""
[[devices]]
id = "glucose-kitchen"
driver = "onetouch-ultra2"
port = "{meter_link}"
resident = "{RESIDENT_ID}"
poll_interval_s = 0.5
"""
    path.write_text(f"""
[gateway]
id = "{GATEWAY_ID}"
data_dir = "{data_dir}"
clock_sync = "assume_synced"

[platform]
url = "{platform_url}"
secret_file = "{secret_file}"
timeout_s = 2.0
backoff_initial_s = 0.1
backoff_max_s = 1.0
mark_delivered_after_s = 0

[mqtt]
port = {broker_port}

[detect]
{detect}

[[residents]]
id = "{RESIDENT_ID}"
{device}
{extra}
""", encoding="utf-8")
    return path


@dataclass
class GatewayProcess:
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment (e.g. the fake BlueZ's system bus address)."""

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
                                         stdout=log, stderr=log, env=dict(os.environ, **self.env))

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        if code != 0:  # pytest shows this with the failure: the daemon's own account of it
            print(f"daemon exited with {code}; last log lines:\n" + "\n".join(self.log_text().splitlines()[-40:]))
        return code

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def platform_records(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT record_id, body FROM records").fetchall()
    return [dict(json.loads(body), record_id=rid) for rid, body in rows]


def set_fault(platform_url: str, mode: str, **params: float) -> None:
    body = json.dumps({"mode": mode, **params}).encode()
    req = urllib.request.Request(f"{platform_url}/admin/faults", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:  # our own server on loopback
        resp.read()


def outbox_rows(data_dir: Path) -> list[tuple[str, str, str, str | None]]:
    """(record_id, type, state, dedupe_key) of every outbox row."""
    with sqlite3.connect(data_dir / "outbox.sqlite", timeout=10) as conn:
        return conn.execute("SELECT record_id, type, state, dedupe_key FROM records").fetchall()


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def status_of(data_dir: Path) -> dict[str, Any]:
    """The daemon's status as `yiyang status` reads it (the data directory's file, or the runtime fallback)."""
    from gateway.status import read_status, runtime_status_path  # noqa: PLC0415 (the gateway under test)

    return read_status([data_dir / "status.json", runtime_status_path(GATEWAY_ID, data_dir)]) or {}


def started_since(data_dir: Path, since: datetime) -> bool:
    """Whether the status on disk is that of a daemon started at or after ``since`` (not a killed one's)."""
    started_at = status_of(data_dir).get("started_at")
    return started_at is not None and datetime.fromisoformat(started_at) >= since


def meter_connected(data_dir: Path, device_id: str = "glucose-kitchen") -> bool | None:
    connected = status_of(data_dir).get("devices", {}).get(device_id, {}).get("connected")
    return None if connected is None else bool(connected)


def take_meter_off_and_on(meter: Any, data_dir: Path, *, mg_dl: int, device_id: str = "glucose-kitchen") -> float:
    """The resident measures with the meter off its cable, then plugs it back in (a new download);
    returns the monotonic time it went back on."""
    meter.command("mute")
    wait_until(lambda: meter_connected(data_dir, device_id) is False, 15,
               "the gateway to see the meter leave its cable")
    meter.command(f"add {mg_dl}")
    plugged_in = time.monotonic()
    meter.command("unmute")
    return plugged_in
