#!/usr/bin/env python3
"""Simulate a OneTouch Ultra 2 glucose meter on its PL2303 cable, behind a pty.

    python scripts/sim_onetouch.py --link /tmp/meter [--records 3] [--clock-offset -120]

The gateway opens ``--link`` like a ``/dev/serial/by-id/...`` path. The simulator answers DM?, DM@,
DMF, DMT, DMSU? and DMP as the meter does (checksummed lines; dump lines end in CR LF).

Commands on stdin, one per line (each is acknowledged on stdout with ``ok ...``):

    add 63 [control] [B|A|N]   store a new result (mg/dL) at the meter's current time
    unplug / plug              remove / recreate the cable (the link vanishes, the pty closes)
    mute [N]                   stop answering after N more reply lines (default 0: now)
    unmute                     answer again
    clock-offset -120          set the meter clock to hub time + seconds
    quit

Faults: ``--garbage-rate`` sends a line of noise before a reply line with that probability;
``--bitflip-rate`` flips one bit in a reply line with that probability (``--seed`` pins both).
Imports only stdlib, the pty plumbing beside it (``ptycable.py``) and the codec from ``drivers``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Beside this script: python puts scripts/ on sys.path.
from ptycable import OperatorCommand, PtyCable, add_cable_arguments, reply

from drivers.model import MealContext
from drivers.serial import onetouch_codec as codec

FIRMWARE = "?P02.00.00 30/08/06"
INITIAL_VALUES = (81, 105, 176, 63, 142, 98, 250, 45)
INITIAL_MEALS = (MealContext.UNKNOWN, MealContext.PREPRANDIAL, MealContext.POSTPRANDIAL)
MEALS_BY_LETTER = {"N": MealContext.UNKNOWN, "B": MealContext.PREPRANDIAL, "A": MealContext.POSTPRANDIAL}


@dataclass
class Meter:
    """The meter's memory and clock; replies as payload strings."""

    serial: str
    tz: ZoneInfo
    clock_offset: timedelta = timedelta()
    records: list[codec.MeterRecord] = field(default_factory=list)  # oldest first

    def now(self) -> datetime:
        local = datetime.now(self.tz).replace(tzinfo=None, microsecond=0)
        return local + self.clock_offset

    def add(self, mg_dl: int, *, control: bool = False, meal: MealContext = MealContext.UNKNOWN) -> codec.MeterRecord:
        when = self.now()
        if self.records and when <= self.records[-1].meter_time:
            # The meter cannot take two results in one second; keep record identities distinct.
            when = self.records[-1].meter_time + timedelta(seconds=1)
        record = codec.MeterRecord(meter_time=when, mg_dl=mg_dl, control_solution=control, meal=meal)
        self.records.append(record)
        return record

    def answer(self, command: str) -> list[tuple[str, bool]]:
        """(payload, is_dump_line) for each reply line; empty when the meter ignores the command."""
        if command == codec.CMD_FIRMWARE:
            return [(FIRMWARE, False)]
        if command == codec.CMD_SERIAL:
            return [(codec.format_serial(self.serial), False)]
        if command == codec.CMD_READ_CLOCK:
            return [(codec.format_clock(self.now()), False)]
        if command.startswith(codec.CMD_SET_CLOCK):
            try:
                wanted = datetime.strptime(command[3:], "%m/%d/%y %H:%M:%S")  # naive: meter wall time
            except ValueError:
                return []
            local = datetime.now(self.tz).replace(tzinfo=None, microsecond=0)
            self.clock_offset = wanted - local
            return [(codec.format_clock(self.now(), command_letter="T"), False)]
        if command == codec.CMD_UNITS:
            return [('SU?,"MG/DL "', False)]
        if command == codec.CMD_DUMP:
            header = codec.DumpHeader(len(self.records), self.serial, codec.GlucoseUnit.MG_DL)
            lines = [(codec.format_dump_header(header), True)]
            # Newest first, as the real meter dumps.
            lines += [(codec.format_record(record), True) for record in reversed(self.records)]
            return lines
        return []


class Simulator:
    def __init__(self, meter: Meter, link: str, args: argparse.Namespace) -> None:
        self.meter = meter
        self.cable = PtyCable(link)
        self.args = args
        self.rng = random.Random(args.seed)
        self.inbox = bytearray()
        self.mute_after: int | None = None
        self.next_add = time.monotonic() + args.add_every if args.add_every else None

    # -- the cable -------------------------------------------------------------------------------

    def forget_input(self) -> None:
        self.inbox.clear()

    # -- the meter's serial side -----------------------------------------------------------------

    @property
    def muted(self) -> bool:
        return self.mute_after is not None and self.mute_after <= 0

    def on_received(self, data: bytes) -> None:
        self.inbox += data
        while b"\r" in self.inbox:
            raw, _, rest = self.inbox.partition(b"\r")
            self.inbox = bytearray(rest)
            command = raw.replace(b"\x11", b"").replace(b"\n", b"").decode("ascii", "replace").strip()
            if command and not self.muted:
                for payload, dump in self.meter.answer(command):
                    self.send(payload, dump=dump)

    def send(self, payload: str, *, dump: bool) -> None:
        if self.muted:
            return
        if self.rng.random() < self.args.garbage_rate:
            noise = bytes(self.rng.randrange(0x20, 0x7F) for _ in range(self.rng.randrange(1, 40)))
            self.cable.outgoing += noise + b"\r\n"
        line = bytearray(codec.encode_line(payload, dump=dump))
        if self.rng.random() < self.args.bitflip_rate:
            position = self.rng.randrange(len(payload) + 5)  # payload, space and checksum
            line[position] ^= 1 << self.rng.randrange(7)
        self.cable.outgoing += line
        if self.mute_after is not None:
            self.mute_after -= 1

    # -- the operator ----------------------------------------------------------------------------

    def on_operator(self, command: OperatorCommand) -> None:
        verb, rest = command.verb, command.args
        if verb == "add" and rest:
            record = self.meter.add(
                int(rest[0]),
                control="control" in rest,
                meal=next((MEALS_BY_LETTER[w] for w in rest[1:] if w in MEALS_BY_LETTER), MealContext.UNKNOWN),
            )
            reply(f"ok add {record.mg_dl} {record.meter_time:%Y-%m-%dT%H:%M:%S}")
        elif verb == "mute":
            self.mute_after = int(rest[0]) if rest else 0
            if self.muted:
                self.cable.outgoing.clear()
            reply(f"ok mute {self.mute_after}")
        elif verb == "unmute":
            self.mute_after = None
            reply("ok unmute")
        elif verb == "clock-offset" and rest:
            self.meter.clock_offset = timedelta(seconds=float(rest[0]))
            reply(f"ok clock-offset {rest[0]}")
        else:
            reply(f"error unknown command: {command.line.strip()}")

    def tick(self) -> None:
        if self.next_add is not None and time.monotonic() >= self.next_add:
            value = INITIAL_VALUES[len(self.meter.records) % len(INITIAL_VALUES)]
            record = self.meter.add(value)
            reply(f"ok add {record.mg_dl} {record.meter_time:%Y-%m-%dT%H:%M:%S}")
            self.next_add += self.args.add_every

    def run(self) -> None:
        reply(f"ready {self.cable.link} serial={self.meter.serial} records={len(self.meter.records)}")
        self.cable.serve(self, stdin_open=not self.args.no_stdin, poll_s=0.05)


def initial_meter(args: argparse.Namespace) -> Meter:
    meter = Meter(serial=args.serial, tz=ZoneInfo(args.tz), clock_offset=timedelta(seconds=args.clock_offset))
    start = meter.now() - timedelta(hours=args.records)
    for index in range(args.records):
        meter.records.append(
            codec.MeterRecord(
                meter_time=start + timedelta(hours=index),
                mg_dl=INITIAL_VALUES[index % len(INITIAL_VALUES)],
                meal=INITIAL_MEALS[index % len(INITIAL_MEALS)],
            )
        )
    return meter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cable_arguments(parser)
    parser.add_argument("--records", type=int, default=3, help="results in memory at start (default 3)")
    parser.add_argument("--serial", default="SIM00001Y", help="9-character serial number (Ultra 2 ends in Y)")
    parser.add_argument("--tz", default="Asia/Shanghai", help="time zone of the meter's wall clock")
    parser.add_argument("--clock-offset", type=float, default=0.0, help="meter clock minus real time, seconds")
    parser.add_argument("--add-every", type=float, default=0.0, help="add a result every N seconds (0: never)")
    parser.add_argument("--garbage-rate", type=float, default=0.0, help="probability of noise before a line")
    parser.add_argument("--bitflip-rate", type=float, default=0.0, help="probability of one flipped bit per line")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the fault injection")
    args = parser.parse_args(argv)
    if len(args.serial) != 9 or not args.serial.isalnum() or args.serial.upper() != args.serial:
        parser.error("--serial must be 9 uppercase letters or digits, e.g. SIM00001Y")
    if not 0 <= args.records <= 999:
        parser.error("--records must be 0..999 (the meter's header has 3 digits)")
    simulator = Simulator(initial_meter(args), args.link, args)
    with simulator.cable, contextlib.suppress(KeyboardInterrupt):
        simulator.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
