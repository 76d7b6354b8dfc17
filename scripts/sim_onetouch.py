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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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
        self.link = link
        self.args = args
        self.rng = random.Random(args.seed)
        self.selector = selectors.DefaultSelector()
        self.master: int | None = None
        self.slave: int | None = None
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.mute_after: int | None = None
        self.next_add = time.monotonic() + args.add_every if args.add_every else None

    # -- the cable -------------------------------------------------------------------------------

    def plug(self) -> None:
        if self.master is not None:
            return
        self.master, self.slave = os.openpty()
        # Raw, so CR is not turned into LF and nothing is echoed before the gateway opens the port.
        tty.setraw(self.slave)
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
        self.inbox.clear()
        self.outbox.clear()

    # -- the meter's serial side -----------------------------------------------------------------

    @property
    def muted(self) -> bool:
        return self.mute_after is not None and self.mute_after <= 0

    def on_master_readable(self) -> None:
        assert self.master is not None
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO while no process has the slave open
            return
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
            self.outbox += noise + b"\r\n"
        line = bytearray(codec.encode_line(payload, dump=dump))
        if self.rng.random() < self.args.bitflip_rate:
            position = self.rng.randrange(len(payload) + 5)  # payload, space and checksum
            line[position] ^= 1 << self.rng.randrange(7)
        self.outbox += line
        if self.mute_after is not None:
            self.mute_after -= 1

    def flush(self) -> None:
        if self.master is None or not self.outbox:
            return
        try:
            written = os.write(self.master, self.outbox)
        except (BlockingIOError, OSError):
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
        if verb == "add" and rest:
            record = self.meter.add(
                int(rest[0]),
                control="control" in rest,
                meal=next((MEALS_BY_LETTER[w] for w in rest[1:] if w in MEALS_BY_LETTER), MealContext.UNKNOWN),
            )
            self.reply(f"ok add {record.mg_dl} {record.meter_time:%Y-%m-%dT%H:%M:%S}")
        elif verb == "unplug":
            self.unplug()
            self.reply("ok unplug")
        elif verb == "plug":
            self.plug()
            self.reply("ok plug")
        elif verb == "mute":
            self.mute_after = int(rest[0]) if rest else 0
            if self.muted:
                self.outbox.clear()
            self.reply(f"ok mute {self.mute_after}")
        elif verb == "unmute":
            self.mute_after = None
            self.reply("ok unmute")
        elif verb == "clock-offset" and rest:
            self.meter.clock_offset = timedelta(seconds=float(rest[0]))
            self.reply(f"ok clock-offset {rest[0]}")
        else:
            self.reply(f"error unknown command: {line.strip()}")
        return True

    @staticmethod
    def reply(text: str) -> None:
        print(text, flush=True)

    def run(self) -> None:
        self.plug()
        stdin_open = not self.args.no_stdin
        if stdin_open:
            os.set_blocking(sys.stdin.fileno(), False)
            self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
        self.reply(f"ready {self.link} serial={self.meter.serial} records={len(self.meter.records)}")
        stdin_buffer = ""
        while True:
            if self.master is not None:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
                self.selector.modify(self.master, events)
            for key, mask in self.selector.select(timeout=0.05):
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
            self.flush()
            if self.next_add is not None and time.monotonic() >= self.next_add:
                value = INITIAL_VALUES[len(self.meter.records) % len(INITIAL_VALUES)]
                record = self.meter.add(value)
                self.reply(f"ok add {record.mg_dl} {record.meter_time:%Y-%m-%dT%H:%M:%S}")
                self.next_add += self.args.add_every


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
    parser.add_argument("--link", required=True, help="symlink to create, pointing at the pty the gateway opens")
    parser.add_argument("--records", type=int, default=3, help="results in memory at start (default 3)")
    parser.add_argument("--serial", default="SIM00001Y", help="9-character serial number (Ultra 2 ends in Y)")
    parser.add_argument("--tz", default="Asia/Shanghai", help="time zone of the meter's wall clock")
    parser.add_argument("--clock-offset", type=float, default=0.0, help="meter clock minus real time, seconds")
    parser.add_argument("--add-every", type=float, default=0.0, help="add a result every N seconds (0: never)")
    parser.add_argument("--garbage-rate", type=float, default=0.0, help="probability of noise before a line")
    parser.add_argument("--bitflip-rate", type=float, default=0.0, help="probability of one flipped bit per line")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the fault injection")
    parser.add_argument("--no-stdin", action="store_true", help="ignore stdin (run in the background)")
    args = parser.parse_args(argv)
    if len(args.serial) != 9 or not args.serial.isalnum() or args.serial.upper() != args.serial:
        parser.error("--serial must be 9 uppercase letters or digits, e.g. SIM00001Y")
    if not 0 <= args.records <= 999:
        parser.error("--records must be 0..999 (the meter's header has 3 digits)")
    simulator = Simulator(initial_meter(args), args.link, args)
    try:
        simulator.run()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.unplug()
    return 0


if __name__ == "__main__":
    sys.exit(main())
