#!/usr/bin/env python3
"""Simulate a SunTech Advantage OEM blood-pressure (NIBP) module on its USB-serial adapter, behind a pty.

    python scripts/sim_suntech.py --link /tmp/nibp [--measure-s 1.0] [--seed 3]

The gateway opens ``--link`` like a ``/dev/serial/by-id/...`` path. The module answers the host
commands as the fact sheet describes: start adult (``O``, or ``B`` while a measurement runs), cuff
pressure polls during a measurement (inflate, then deflate), ``K`` when a measurement it was asked
for is done, the 0x18 BP data on request, abort (``A``), the return string, reset.

Commands on stdin, one per line (each is acknowledged on stdout with ``ok ...``):

    result SYS DIA HR [error CODE]   the next measurement's outcome (CODE in hex, e.g. 57); one-shot
    press-button                     a measurement started at the device (no K is sent to the host)
    busy                             answer the next start command with B
    stall                            the next measurement never ends (until aborted)
    garbage N                        send N bytes of line noise (and a false start byte) now
    unplug / plug                    remove / recreate the adapter (the link vanishes, the pty closes)
    quit

Without ``result`` a measurement gives the sheet's verified example, 115/74, MAP 88, HR 85.
Imports only stdlib, the pty plumbing beside it (``ptycable.py``) and the codec from ``drivers``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from dataclasses import replace

# Beside this script: python puts scripts/ on sys.path.
from ptycable import OperatorCommand, PtyCable, add_cable_arguments, reply

from drivers.serial import suntech_codec as codec
from drivers.serial.suntech_codec import AckCode, BpResult

SHEET_RESULT = BpResult(
    systolic=115, diastolic=74, map=88, heart_rate=85, beats=0x1E, status=0x01, error_code=None,
    test_codes=bytes.fromhex("00 00 00 00 00 00 31 07"),
)
EMPTY_RESULT = BpResult(systolic=0, diastolic=0, map=0, heart_rate=0, beats=0, status=0, error_code=None)
RETURN_STRING = "LX SIM 1.00"
PEAK_CUFF_MMHG = 160

_COMMAND_SIZES: dict[int, int] = {
    # Host command byte: bytes after it, before the checksum (from the sheet's command list).
    0x20: 0,  # start adult
    0x56: 0,  # start adult with cuff-pressure reporting
    0x87: 0,  # paediatric
    0x28: 0,  # neonate
    0x8A: 0,  # reset
    0x17: 2,  # set initial inflate pressure
    0x79: 2,  # abort, get last BP data, get cuff pressure, return string, status
}
_STARTS = tuple(codec.encode_command(bytes((command,))) for command in (0x20, 0x56, 0x87, 0x28))


class HostDecoder:
    """Host packets (``3A`` command data checksum) from the byte stream; noise and bad checksums skipped."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        packets: list[bytes] = []
        while True:
            start = self.buffer.find(codec.HOST_START)
            if start < 0:
                self.buffer.clear()
                return packets
            del self.buffer[:start]
            if len(self.buffer) < 2:
                return packets
            extra = _COMMAND_SIZES.get(self.buffer[1])
            if extra is None:
                del self.buffer[:1]
                continue
            size = 3 + extra
            if len(self.buffer) < size:
                return packets
            packet = bytes(self.buffer[:size])
            if sum(packet) % 256 == 0:
                packets.append(packet)
                del self.buffer[:size]
            else:
                del self.buffer[:1]


class Module:
    def __init__(self, link: str, args: argparse.Namespace) -> None:
        self.cable = PtyCable(link)
        self.args = args
        self.rng = random.Random(args.seed)
        self.decoder = HostDecoder()
        self.last_result = EMPTY_RESULT
        self.next_outcome: BpResult | None = None
        self.busy_once = False
        self.stall_next = False
        self.measuring_since: float | None = None
        self.stalled = False
        self.host_started = False

    # -- the adapter -----------------------------------------------------------------------------

    def forget_input(self) -> None:
        self.decoder = HostDecoder()

    def send(self, packet: bytes) -> None:
        if self.cable.plugged:
            self.cable.outgoing += packet

    # -- the module's serial side ----------------------------------------------------------------

    def on_received(self, data: bytes) -> None:
        for packet in self.decoder.feed(data):
            self.on_command(packet)

    def on_command(self, packet: bytes) -> None:
        if packet in _STARTS:
            if self.measuring_since is not None or self.busy_once:
                self.busy_once = False
                self.send(codec.encode_ack(AckCode.BUSY))
            else:
                self.send(codec.encode_ack(AckCode.RECEIVED))
                self.start(host_started=True)
        elif packet == codec.GET_CUFF_PRESSURE:
            self.send(codec.encode_cuff_pressure(self.cuff_pressure()))
        elif packet == codec.GET_LAST_BP_DATA:
            self.send(codec.encode_bp_result(self.last_result))
        elif packet == codec.ABORT:
            if self.measuring_since is not None:
                self.measuring_since = None
                self.last_result = replace(EMPTY_RESULT, error_code=codec.ErrorCode.TERMINATED_BY_USER)
            self.send(codec.encode_ack(AckCode.ABORTED))
        elif packet == codec.GET_RETURN_STRING:
            self.send(codec.encode_return_string(RETURN_STRING))
        elif packet == codec.RESET:
            self.measuring_since = None
            self.send(codec.encode_ack(AckCode.RECEIVED))
        else:
            self.send(codec.encode_ack(AckCode.UNRECOGNISED))

    def start(self, *, host_started: bool) -> None:
        self.measuring_since = time.monotonic()
        self.host_started = host_started
        self.stalled, self.stall_next = self.stall_next, False

    def cuff_pressure(self) -> int | None:
        """Inflate over the first third of the measurement, deflate over the rest; -1 when idle."""
        if self.measuring_since is None:
            return None
        progress = min(1.0, (time.monotonic() - self.measuring_since) / self.args.measure_s)
        if progress < 1 / 3:
            return round(PEAK_CUFF_MMHG * progress * 3)
        return round(PEAK_CUFF_MMHG * (1 - progress) * 1.5)

    def tick(self) -> None:
        if self.measuring_since is None or self.stalled:
            return
        if time.monotonic() - self.measuring_since >= self.args.measure_s:
            self.measuring_since = None
            self.last_result = self.next_outcome or SHEET_RESULT
            self.next_outcome = None
            if self.host_started:
                self.send(codec.encode_ack(AckCode.DONE))

    # -- the operator ----------------------------------------------------------------------------

    def on_operator(self, command: OperatorCommand) -> None:
        verb, rest = command.verb, command.args
        if verb == "result" and self.parse_result(rest):
            reply(f"ok result {' '.join(rest)}")
        elif verb == "press-button" and not rest:
            if self.measuring_since is None:
                self.start(host_started=False)
            reply("ok press-button")
        elif verb in ("busy", "stall") and not rest:
            if verb == "busy":
                self.busy_once = True
            else:
                self.stall_next = True
            reply(f"ok {verb}")
        elif verb == "garbage" and len(rest) == 1 and rest[0].isdigit():
            self.send(self.noise(int(rest[0])))
            reply(f"ok garbage {rest[0]}")
        else:
            reply(f"error unknown command: {command.line.strip()}")

    def parse_result(self, words: tuple[str, ...]) -> bool:
        numbers = words[:3]
        if len(numbers) != 3 or not all(word.isdigit() for word in numbers) or len(words) not in (3, 5):
            return False
        error: int | None = None
        if len(words) == 5:
            if words[3] != "error":
                return False
            try:
                error = int(words[4], 16)
            except ValueError:
                return False
        systolic, diastolic, heart_rate = (int(word) for word in numbers)
        self.next_outcome = BpResult(
            systolic=systolic,
            diastolic=diastolic,
            map=round(diastolic + (systolic - diastolic) / 3),
            heart_rate=heart_rate,
            beats=30,
            status=0x01,
            error_code=error,
            test_codes=SHEET_RESULT.test_codes,
        )
        return True

    def noise(self, size: int) -> bytes:
        """Random bytes without a start byte, then one false start with an impossible length.

        Random bytes holding 0x3E would now and then pass for a packet (a 1-byte checksum matches
        once in 256 tries); the codec's own tests cover that, the session tests need to be repeatable.
        """
        noise = bytes(self.rng.randrange(256) for _ in range(size)).replace(b"\x3e", b"\x3f")
        return noise + b"\x3e\x00" if size >= 2 else noise

    def run(self) -> None:
        reply(f"ready {self.cable.link}")
        self.cable.serve(self, stdin_open=not self.args.no_stdin, poll_s=0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cable_arguments(parser)
    parser.add_argument("--measure-s", type=float, default=30.0, help="seconds a measurement takes (about 30 real)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for line noise")
    args = parser.parse_args(argv)
    if args.measure_s <= 0:
        parser.error("--measure-s must be positive")
    module = Module(args.link, args)
    with module.cable, contextlib.suppress(KeyboardInterrupt):
        module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
