"""The device simulators in scripts/ as child processes behind real ptys, and the pytest fixtures that start them.

Each simulator prints ``ready ...`` once its link exists and acknowledges every stdin command with
``ok ...``; the classes here wait for both, so a test never races the simulator. Import the fixtures
into a test module (they are named ``*_fixture`` so the import does not shadow the test arguments)::

    from simulators import start_meter_fixture  # noqa: F401

    def test_meter(start_meter): ...
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from drivers.model import HubTime

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


class SimulatorProcess:
    """A simulator script as a child process, driven through its stdin commands."""

    def __init__(self, script: str, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPTS / script), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._line()
        assert ready.startswith("ready"), ready

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def command_blocking(self, text: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        answer = self._line()
        assert answer.startswith("ok"), answer
        return answer

    async def command(self, *texts: str) -> str:
        """Each command in turn, off the event loop; the last acknowledgement."""
        answer = ""
        for text in texts:
            answer = await asyncio.to_thread(self.command_blocking, text)
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class SimulatedMeter(SimulatorProcess):
    """scripts/sim_onetouch.py: a OneTouch Ultra 2 on its cable, linked at ``link``."""

    def __init__(self, link: Path, *options: str) -> None:
        self.link = link
        super().__init__("sim_onetouch.py", "--link", str(link), *options)


class SimulatedRadar(SimulatorProcess):
    """scripts/sim_mr60fda1.py: the fall radar, its body-movement parameter sped up to every 0.1 s."""

    def __init__(self, link: Path, *options: str) -> None:
        self.link = link
        super().__init__("sim_mr60fda1.py", "--link", str(link), "--interval", "0.1", *options)


class SimulatedNibp(SimulatorProcess):
    """scripts/sim_suntech.py: the NIBP module, a measurement sped up to half a second."""

    def __init__(self, link: Path, *options: str) -> None:
        self.link = link
        super().__init__("sim_suntech.py", "--link", str(link), "--measure-s", "0.5", *options)


class SimulatedModem(SimulatorProcess):
    """scripts/sim_gsm_modem.py in ``directory``: the port at ``modem``, what the phones got in ``sms.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.link = directory / "modem"
        self.outbox = directory / "sms.jsonl"
        super().__init__(
            "sim_gsm_modem.py", "--link", str(self.link), "--outbox", str(self.outbox), "--boot-s", "0.3"
        )

    def sent(self) -> list[dict[str, object]]:
        """What the phones received, one entry per (reassembled) message."""
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text(encoding="utf-8").splitlines()]


class SystemClock:
    """The hub clock a session is given: real time, NTP-synced."""

    def now(self) -> HubTime:
        return HubTime(wall=datetime.now(UTC), monotonic=time.monotonic(), synced=True)


S = TypeVar("S", bound=SimulatorProcess)


def _starter(kind: Callable[..., S], link: Path) -> Iterator[Callable[..., S]]:
    started: list[S] = []

    def start(*options: str) -> S:
        simulator = kind(link, *options)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.close()


@pytest.fixture(name="start_meter")
def start_meter_fixture(tmp_path: Path) -> Iterator[Callable[..., SimulatedMeter]]:
    """``start_meter(*options)`` starts the meter simulator at ``tmp_path/meter``; stopped after the test."""
    yield from _starter(SimulatedMeter, tmp_path / "meter")


@pytest.fixture(name="start_radar")
def start_radar_fixture(tmp_path: Path) -> Iterator[Callable[..., SimulatedRadar]]:
    """``start_radar(*options)`` starts the radar simulator at ``tmp_path/radar``; stopped after the test."""
    yield from _starter(SimulatedRadar, tmp_path / "radar")


@pytest.fixture(name="start_nibp")
def start_nibp_fixture(tmp_path: Path) -> Iterator[Callable[..., SimulatedNibp]]:
    """``start_nibp(*options)`` starts the NIBP module simulator at ``tmp_path/nibp``; stopped after the test."""
    yield from _starter(SimulatedNibp, tmp_path / "nibp")


@pytest.fixture(name="sim")
def modem_simulator_fixture(tmp_path: Path) -> Iterator[SimulatedModem]:
    """The GSM modem simulator in ``tmp_path``, running for the test."""
    modem = SimulatedModem(tmp_path)
    yield modem
    modem.close()
