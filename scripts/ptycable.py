"""The cable a device simulator hangs on: a raw pty pair whose slave is linked where the gateway looks.

The simulators (``sim_onetouch.py``, ``sim_mr60fda1.py``, ``sim_gsm_modem.py``) play the device on the
master side; the gateway opens the symlink at ``link`` like a ``/dev/serial/by-id/...`` path. ``unplug``
makes the link vanish and the pty close, as pulling a USB-serial adapter does; ``plug`` brings both back.
``serve`` runs the simulated ``Device``: bytes from the gateway, command lines from the operator on
stdin (the cable itself answers ``unplug``, ``plug`` and ``quit``), and a tick for the device's own
timers. ``with cable:`` plugs it in for the block and unplugs after, so the link never outlives the
simulator. Stdlib only, so a simulator stays a plain script.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import sys
import tty
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol


def reply(text: str) -> None:
    """Answer the operator (the test driving the simulator reads these lines from stdout)."""
    print(text, flush=True)


def add_cable_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", required=True, help="symlink to create, pointing at the pty the gateway opens")
    parser.add_argument("--no-stdin", action="store_true", help="ignore stdin (run in the background)")


@dataclass(frozen=True)
class OperatorCommand:
    """One stdin line: its first word, the words after it, and the line as typed."""

    verb: str
    args: tuple[str, ...]
    line: str


class Device(Protocol):
    """The simulated device on the master side of the cable."""

    def on_received(self, data: bytes) -> None:
        """Bytes the gateway wrote."""

    def on_operator(self, command: OperatorCommand) -> None:
        """An operator command other than the cable's own (``unplug``, ``plug``, ``quit``)."""

    def forget_input(self) -> None:
        """The cable was pulled: drop anything half-received, as the device's UART would."""

    def tick(self) -> None:
        """After each poll (at most ``poll_s`` apart): the device's own timers."""


class PtyCable:
    """A pty pair behind ``link`` and the bytes waiting to go out to the gateway."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.selector = selectors.DefaultSelector()
        self.master: int | None = None
        self.slave: int | None = None
        self.outgoing = bytearray()

    def __enter__(self) -> PtyCable:
        self.plug()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.unplug()

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def plug(self) -> None:
        if self.master is not None:
            return
        self.master, self.slave = os.openpty()
        # Raw, so CR is not turned into LF, binary frames pass untouched and nothing is echoed before
        # the gateway opens the port.
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        # Linked under a temporary name first, so the gateway never sees a half-made link.
        tmp = f"{self.link}.tmp{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.link)
        self.selector.register(self.master, selectors.EVENT_READ)

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link)
        if self.master is not None:
            self.selector.unregister(self.master)
            os.close(self.master)
        if self.slave is not None:
            os.close(self.slave)
        self.master = self.slave = None
        self.outgoing.clear()

    def receive(self) -> bytes | None:
        """What the gateway wrote, or None when there was nothing to read."""
        assert self.master is not None
        try:
            return os.read(self.master, 4096)
        except OSError:  # EAGAIN, or EIO while no process has the slave open
            return None

    def flush(self) -> None:
        if self.master is None or not self.outgoing:
            return
        try:
            written = os.write(self.master, self.outgoing)
        except OSError:  # nobody has the port open yet, or its buffer is full: try again later
            return
        del self.outgoing[:written]

    def serve(self, device: Device, *, stdin_open: bool = True, poll_s: float = 0.05) -> None:
        """Run ``device`` until ``quit`` or stdin closes."""
        stdin = sys.stdin.fileno()
        if stdin_open:
            os.set_blocking(stdin, False)
            self.selector.register(stdin, selectors.EVENT_READ)
        stdin_buffer = ""
        while True:
            if self.master is not None:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outgoing else 0)
                self.selector.modify(self.master, events)
            for key, mask in self.selector.select(timeout=poll_s):
                if key.fd == self.master:
                    if mask & selectors.EVENT_READ and (data := self.receive()) is not None:
                        device.on_received(data)
                    if mask & selectors.EVENT_WRITE:
                        self.flush()
                elif stdin_open:
                    try:
                        chunk = os.read(stdin, 4096)
                    except BlockingIOError:
                        continue
                    if not chunk:  # our operator went away: so do we
                        return
                    stdin_buffer += chunk.decode("utf-8", "replace")
                    while "\n" in stdin_buffer:
                        line, stdin_buffer = stdin_buffer.split("\n", 1)
                        if not self.obey(line, device):
                            return
            device.tick()
            self.flush()

    def obey(self, line: str, device: Device) -> bool:
        """Carry out one operator line; False for ``quit``."""
        words = line.split()
        if not words:
            return True
        verb, args = words[0], words[1:]
        if verb == "quit":
            return False
        if verb == "unplug":
            self.unplug()
            device.forget_input()
            reply("ok unplug")
        elif verb == "plug":
            self.plug()
            reply("ok plug")
        else:
            device.on_operator(OperatorCommand(verb, tuple(args), line))
        return True
