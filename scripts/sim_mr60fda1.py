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
Imports only stdlib, the pty plumbing beside it (``ptycable.py``) and the codec from ``drivers``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from dataclasses import dataclass

# Beside this script: python puts scripts/ on sys.path.
from ptycable import OperatorCommand, PtyCable, add_cable_arguments, reply

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
        self.cable = PtyCable(link)
        self.args = args
        self.rng = random.Random(args.seed)
        self.decoder = codec.FrameDecoder()
        self.silent = False
        self.next_body_movement = time.monotonic() + args.interval

    # -- the adapter -----------------------------------------------------------------------------

    def forget_input(self) -> None:
        self.decoder = codec.FrameDecoder()

    # -- the radar's serial side -----------------------------------------------------------------

    def on_received(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            if isinstance(item, codec.Frame):
                answer = _ANSWERS.get((item.control, item.command))
                if answer is not None:
                    self.send(item.control, item.command, answer)

    def send(self, control: int, command: int, data: bytes) -> None:
        if self.silent or not self.cable.plugged:
            return
        if self.rng.random() < self.args.garbage_rate:
            self.cable.outgoing += self.noise(self.rng.randrange(1, 24))
        self.cable.outgoing += codec.encode_frame(control, command, data)

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

    # -- the operator ----------------------------------------------------------------------------

    def on_operator(self, command: OperatorCommand) -> None:
        verb, rest = command.verb, command.args
        if verb in _COMMANDS and len(rest) == 1 and rest[0].isdigit() and int(rest[0]) <= _COMMANDS[verb][1]:
            kind, value = _COMMANDS[verb][0], int(rest[0])
            if kind is DeviceEventKind.PRESENCE:
                self.radar.presence = value
            elif kind is DeviceEventKind.MOTION:
                self.radar.motion = value
            self.send_state(kind, value)
            reply(f"ok {verb} {value}")
        elif verb == "garbage" and len(rest) == 1 and rest[0].isdigit():
            if not self.silent:
                self.cable.outgoing += self.noise(max(1, int(rest[0])))[: int(rest[0])]
            reply(f"ok garbage {rest[0]}")
        elif verb in ("silent", "resume"):
            self.silent = verb == "silent"
            if self.silent:
                self.cable.outgoing.clear()
            reply(f"ok {verb}")
        else:
            reply(f"error unknown command: {command.line.strip()}")

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_body_movement:
            self.send_state(DeviceEventKind.BODY_MOVEMENT, self.radar.body_movement(self.rng))
            self.next_body_movement = max(self.next_body_movement + self.args.interval, now)

    def run(self) -> None:
        reply(f"ready {self.cable.link}")
        self.cable.serve(self, stdin_open=not self.args.no_stdin, poll_s=0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cable_arguments(parser)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between body-movement frames")
    parser.add_argument("--garbage-rate", type=float, default=0.0, help="probability of noise before a frame")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the noise and body movement")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive (the real radar sends about once a second)")
    if not 0.0 <= args.garbage_rate <= 1.0:
        parser.error("--garbage-rate is a probability: 0..1")
    simulator = Simulator(args.link, args)
    with simulator.cable, contextlib.suppress(KeyboardInterrupt):
        simulator.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
