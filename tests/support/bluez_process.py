"""The fake BlueZ as its own process (``python -m fake_bluez``), for running the daemon against it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_bluez.bus import write_fake_bluetoothctl

SUPPORT = Path(__file__).resolve().parent


@dataclass
class BluezProcess:
    proc: subprocess.Popen[str]
    devices: dict[str, str]
    """Emulated device name -> Bluetooth address."""
    env: dict[str, str]
    """Environment for a process that should see this BlueZ (system bus address, fake bluetoothctl)."""

    def command(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("fake BlueZ exited")
            answer: dict[str, Any] = json.loads(line)
            if "ok" in answer:
                if not answer["ok"]:
                    raise RuntimeError(f"fake BlueZ refused {cmd}: {answer.get('error')}")
                return answer


@contextlib.contextmanager
def fake_bluez_process(workdir: Path, scenario: str = "home") -> Iterator[BluezProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]))
    with open(workdir / "fake_bluez.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fake_bluez", "--own-bus", "--scenario", scenario],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline() or "{}")
        if ready.get("event") != "ready":
            raise RuntimeError(f"fake BlueZ did not start: see {workdir / 'fake_bluez.log'}")
        bin_dir = workdir / "bin"
        write_fake_bluetoothctl(bin_dir)
        daemon_env = {"DBUS_SYSTEM_BUS_ADDRESS": ready["bus_address"],
                      "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        yield BluezProcess(proc, ready["devices"], daemon_env)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(Exception):
                BluezProcess(proc, {}, {}).command(cmd="quit")
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
