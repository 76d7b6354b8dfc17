#!/usr/bin/env python3
"""Simulate a Seeed MR60FDA1 60 GHz mmWave fall radar on its USB-serial adapter, behind a pty.

    python scripts/sim_mr60fda1.py --link /tmp/radar [--interval 1.0] [--garbage-rate 0.1 --seed 3]

The gateway opens ``--link`` like a ``/dev/serial/by-id/...`` path. The radar sends the body-movement
parameter every ``--interval`` seconds (about 1 s on the real radar), presence/motion/fall/residency
frames when the operator changes them, and answers the product model and firmware version queries.

Commands on stdin, one per line (each is acknowledged on stdout with ``ok ...``):

    presence 0|1          nobody / somebody
    motion 0|1|2          none / stationary / active
    fall 1|0              fall / no fall
    residency 1|0         someone stayed still in one place / not
    garbage N             send N bytes of line noise now
    silent / resume       stop / restart sending anything at all (answers included)
    unplug / plug         remove / recreate the adapter (the link vanishes, the pty closes)
    quit

A command sends its frame even when the value did not change, so tests can check that the gateway
reports changes only. ``--garbage-rate`` sends a burst of noise (sometimes holding a false ``53 59``
header or a cut frame) before a frame with that probability; ``--seed`` pins it.
Imports only stdlib and the codec from ``drivers``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import selectors
import sys
import time
import tty
from dataclasses import dataclass

from drivers.model import DeviceEventKind
from drivers.serial import mr60fda1_codec as codec

PRODUCT_MODEL = b"MR60FDA1"
FIRMWARE_VERSION = b"G60FD1SYv010104"  # the sheet's example answer; it holds "SY" (53 59) on purpose

_COMMANDS: dict[str, tuple[DeviceEventKind, int]] = {
    # stdin verb: (what it sets, highest value)
    "presence": (DeviceEventKind.PRESENCE, 1),
    "motion": (DeviceEventKind.MOTION, 2),
    "fall": (DeviceEventKind.FALL, 1),
    "residency": (DeviceEventKind.RESIDENCY, 1),
}
_ADDRESS = {spec.kind: key for key, spec in codec.REPORTS.items() if isinstance(spec, codec.StateSpec)}
_ANSWERS = {
    (0x02, 0xA1): PRODUCT_MODEL,
    (0x02, 0xA4): FIRMWARE_VERSION,
}


@dataclass
class Radar:
    presence: int = 0
    motion: int = 0

    def body_movement(self, rng: random.Random) -> int:
        # Roughly what the parameter looks like: 0 for an empty room, low for someone still, high when moving.
        if not self.presence or self.motion == 0:
            return 0
        return rng.randrange(1, 16) if self.motion == 1 else rng.randrange(30, 91)


class Simulator:
    def __init__(self, link: str, args: argparse.Namespace) -> None:
        self.radar = Radar()
        self.link = link
        self.args = args
        self.rng = random.Random(args.seed)
        self.selector = selectors.DefaultSelector()
        self.master: int | None = None
        self.slave: int | None = None
        self.decoder = codec.FrameDecoder()
        self.outbox = bytearray()
        self.silent = False
        self.next_body_movement = time.monotonic() + args.interval

    # -- the adapter -----------------------------------------------------------------------------

    def plug(self) -> None:
        if self.master is not None:
            return
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # binary frames: no CR/LF translation, no echo
        os.set_blocking(self.master, False)
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
        self.decoder = codec.FrameDecoder()
        self.outbox.clear()

    # -- the radar's serial side -----------------------------------------------------------------

    def on_master_readable(self) -> None:
        assert self.master is not None
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):  # EIO while no process has the slave open
            return
        for item in self.decoder.feed(data):
            if isinstance(item, codec.Frame):
                answer = _ANSWERS.get((item.control, item.command))
                if answer is not None:
                    self.send(item.control, item.command, answer)

    def send(self, control: int, command: int, data: bytes) -> None:
        if self.silent or self.master is None:
            return
        if self.rng.random() < self.args.garbage_rate:
            self.outbox += self.noise(self.rng.randrange(1, 24))
        self.outbox += codec.encode_frame(control, command, data)

    def send_state(self, kind: DeviceEventKind, value: int) -> None:
        control, command = _ADDRESS[kind]
        self.send(control, command, bytes((value,)))

    def noise(self, size: int) -> bytes:
        """Random bytes, sometimes holding what a decoder might take for the start of a frame."""
        noise = bytearray(self.rng.randrange(256) for _ in range(size))
        trap = self.rng.randrange(3)
        if trap == 1:
            noise[self.rng.randrange(size) :] = codec.HEADER + bytes((0x80, 0x01, 0x00))
        elif trap == 2:
            cut = codec.encode_frame(0x83, 0x01, b"\x01")[: self.rng.randrange(2, 9)]
            noise += cut
        return bytes(noise)

    def flush(self) -> None:
        if self.master is None or not self.outbox:
            return
        try:
            written = os.write(self.master, self.outbox)
        except OSError:  # nobody has the port open yet, or its buffer is full: try again later
            return
        del self.outbox[:written]

    # -- the operator ----------------------------------------------------------------------------

    def on_stdin_line(self, line: str) -> bool:
        words = line.split()
        if not words:
            return True
        verb, rest = words[0], words[1:]
        if verb == "quit":
            return False
        if verb in _COMMANDS and len(rest) == 1 and rest[0].isdigit() and int(rest[0]) <= _COMMANDS[verb][1]:
            kind, value = _COMMANDS[verb][0], int(rest[0])
            if kind is DeviceEventKind.PRESENCE:
                self.radar.presence = value
            elif kind is DeviceEventKind.MOTION:
                self.radar.motion = value
            self.send_state(kind, value)
            self.reply(f"ok {verb} {value}")
        elif verb == "garbage" and len(rest) == 1 and rest[0].isdigit():
            if not self.silent:
                self.outbox += self.noise(max(1, int(rest[0])))[: int(rest[0])]
            self.reply(f"ok garbage {rest[0]}")
        elif verb in ("silent", "resume"):
            self.silent = verb == "silent"
            if self.silent:
                self.outbox.clear()
            self.reply(f"ok {verb}")
        elif verb == "unplug":
            self.unplug()
            self.reply("ok unplug")
        elif verb == "plug":
            self.plug()
            self.reply("ok plug")
        else:
            self.reply(f"error unknown command: {line.strip()}")
        return True

    @staticmethod
    def reply(text: str) -> None:
        print(text, flush=True)

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_body_movement:
            self.send_state(DeviceEventKind.BODY_MOVEMENT, self.radar.body_movement(self.rng))
            self.next_body_movement = max(self.next_body_movement + self.args.interval, now)

    def run(self) -> None:
        self.plug()
        stdin_open = not self.args.no_stdin
        if stdin_open:
            os.set_blocking(sys.stdin.fileno(), False)
            self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
        self.reply(f"ready {self.link}")
        stdin_buffer = ""
        while True:
            if self.master is not None:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
                self.selector.modify(self.master, events)
            for key, mask in self.selector.select(timeout=0.02):
                if key.fd == self.master:
                    if mask & selectors.EVENT_READ:
                        self.on_master_readable()
                    if mask & selectors.EVENT_WRITE:
                        self.flush()
                elif stdin_open:
                    try:
                        chunk = os.read(sys.stdin.fileno(), 4096)
                    except BlockingIOError:
                        continue
                    if not chunk:  # our operator went away: so do we
                        return
                    stdin_buffer += chunk.decode("utf-8", "replace")
                    while "\n" in stdin_buffer:
                        line, stdin_buffer = stdin_buffer.split("\n", 1)
                        if not self.on_stdin_line(line):
                            return
            self.tick()
            self.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--link", required=True, help="symlink to create, pointing at the pty the gateway opens")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between body-movement frames")
    parser.add_argument("--garbage-rate", type=float, default=0.0, help="probability of noise before a frame")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the noise and body movement")
    parser.add_argument("--no-stdin", action="store_true", help="ignore stdin (run in the background)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive (the real radar sends about once a second)")
    if not 0.0 <= args.garbage_rate <= 1.0:
        parser.error("--garbage-rate is a probability: 0..1")
    simulator = Simulator(args.link, args)
    try:
        simulator.run()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.unplug()
    return 0


if __name__ == "__main__":
    sys.exit(main())
