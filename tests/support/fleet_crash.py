"""A process for a test to SIGKILL while it writes the fleet state (tests/fleet/: test_fleet_state, test_fleet_kill).

    fleet_crash.py save STATE NEW_JSON INSTANT   save the state in NEW_JSON over STATE, killing itself
                                                 at INSTANT of the write path (-1: never; prints the
                                                 number of instants)
    fleet_crash.py loop CONFIG KEY SEED          start like `yiyang run` (load_effective), then apply
                                                 document after document until killed

Documents of the loop, by version v: ``[detect] max_reading_age_s = 1000 + v`` (so a configuration
tells which version it came from), ``[thresholds]`` too when v % 3 == 0; v % 5 == 0 is invalid
(rejected); v % 4 == 0 fails its health check (rolled back).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fleetdocs import Fleet

from gateway.config import GatewayConfig
from gateway.fleet.effective import read_local, start_from
from gateway.fleet.service import ConfigDocumentService, HealthResult
from gateway.fleet.state import state_from_json
from gateway.fleet.statefile import FleetStateFile, state_path

WRITE_PATH = ("write", "fsync", "replace")
"""The calls of FleetStateFile.save that touch the disk (the directory's fsync is the last fsync)."""


def marker_version(config: GatewayConfig) -> int:
    return config.detect.max_reading_age_s - 1000


def sections_for(version: int) -> dict[str, Any]:
    if version % 5 == 0:
        return {"storage": {"budget_mb": 8}}
    sections: dict[str, Any] = {"detect": {"max_reading_age_s": 1000 + version}}
    if version % 3 == 0:
        sections["thresholds"] = {"pulse_high_bpm": 100 + version % 50}
    return sections


def _kill_at(instant: int) -> list[str]:
    """Wrap the write path's calls; SIGKILL this process at ``instant`` (before call i is 2i, after is 2i+1)."""
    seen: list[str] = []

    def wrap(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(seen) * 2 == instant:
                os.kill(os.getpid(), signal.SIGKILL)
            seen.append(name)
            result = call(*args, **kwargs)
            if len(seen) * 2 - 1 == instant:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapper

    for name in WRITE_PATH:
        setattr(os, name, wrap(name, getattr(os, name)))
    return seen


def save(state_file: str, new_json: str, instant: int) -> None:
    new = state_from_json(json.loads(Path(new_json).read_text(encoding="utf-8")))
    store = FleetStateFile(Path(state_file))
    seen = _kill_at(instant)
    store.save(new)
    print(len(seen) * 2)


async def loop(config: str, key_file: str, seed: int) -> None:
    rng = random.Random(seed)
    fleet = Fleet(load_pem_private_key(Path(key_file).read_bytes(), password=None))  # type: ignore[arg-type]
    local, _text = read_local(config)
    start_from(local)

    async def reload(_config: GatewayConfig) -> None:
        await asyncio.sleep(rng.uniform(0, 0.002))

    async def health_check(_old: GatewayConfig, new: GatewayConfig) -> HealthResult:
        await asyncio.sleep(rng.uniform(0, 0.003))
        version = marker_version(new)
        return HealthResult(version % 4 != 0, f"version {version} fails on purpose")

    service = ConfigDocumentService(
        local=local, store=FleetStateFile(state_path(local.config.gateway.data_dir)), reload=reload,
        health_check=health_check, publish_report=lambda _report: None, installed_key=lambda: fleet.public)
    await service.resume()
    print("ready", flush=True)
    while True:
        version = service.state.highest_seen + 1
        await service.handle(fleet.payload(version, sections_for(version)))


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        asyncio.run(loop(sys.argv[2], sys.argv[3], int(sys.argv[4])))
