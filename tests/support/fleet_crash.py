"""A process for the parent test to SIGKILL while it writes the fleet state (tests/fleet/test_fleet_kill.py).

    fleet_crash.py save STATE NEW_JSON INSTANT   save the state in NEW_JSON over STATE, killing itself
                                                 at INSTANT of the write path (-1: never; prints the
                                                 number of instants)
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.fleet.state import state_from_json
from gateway.fleet.statefile import FleetStateFile

WRITE_PATH = ("write", "fsync", "replace")
"""The calls of FleetStateFile.save that touch the disk (the directory's fsync is the last fsync)."""


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


if __name__ == "__main__":
    save(sys.argv[2], sys.argv[3], int(sys.argv[4]))
