#!/usr/bin/env python3
"""Simulate a GSM/4G modem (SIM800 / Quectel EC20 style AT commands) for SMS, behind a pty.

    python scripts/sim_gsm_modem.py --link /tmp/modem --outbox /tmp/sms.jsonl

The gateway opens ``--link`` like a ``/dev/serial/by-id/...`` path. The simulator answers AT, ATE0/1,
AT+CMEE, AT+CPIN?, AT+CREG?, AT+CSQ, AT+CMGF, AT+CSCS, AT+CSMP, AT+CMGS (text mode with the ``> ``
prompt and Ctrl-Z; PDU mode ``AT+CMGS=<length>``) and AT+CFUN=1,1 (reboot, with the boot URCs).
Echo is on until ATE0, as on a real modem after power-up.

Every SMS the network accepted is appended to ``--outbox`` as one JSON line, as the phone would
show it: ``{"number", "text", "parts", "encoding", "mode"}``; concatenated parts are reassembled
and written once the last part arrived.

Commands on stdin, one per line (each is acknowledged on stdout with ``ok ...``):

    wedge            stop answering anything until AT+CFUN=1,1
    nosim / sim      take the SIM out (AT+CPIN? -> +CME ERROR: 10) / put it back
    noreg / reg      lose / regain the network (+CREG: 0,0 / 0,1; CSQ 99,99 / 18,99)
    cms-error 500 [N]  fail the next N (default 1) AT+CMGS with +CMS ERROR: 500
    urc RING         send an unsolicited line now (RING, +CMTI: "SM",3, ...)
    unplug / plug    remove / recreate the port (the link vanishes, the pty closes)
    quit

The PDU decoder here is written apart from ``drivers.serial.at_codec``'s encoder on purpose: it is
what the tests hold the encoder to. Imports only stdlib, the pty plumbing beside it (``ptycable.py``)
and the alphabet tables from ``drivers``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Beside this script: python puts scripts/ on sys.path.
from ptycable import OperatorCommand, PtyCable, add_cable_arguments, reply

from drivers.serial.at_codec import GSM7_BASIC, GSM7_EXTENSION

CTRL_Z = 0x1A
ESC = 0x1B
BOOT_URCS = ("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready")
_EXTENSION_BY_SEPTET = {septet: ch for ch, septet in GSM7_EXTENSION.items()}


# -- what a phone does with a received PDU ---------------------------------------------------------


@dataclass
class DecodedPart:
    number: str
    text: str
    encoding: str
    reference: int | None = None
    total: int = 1
    sequence: int = 1


def _semi_octets(data: bytes, digits: int) -> str:
    text = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in data)
    return text[:digits]


def _unpack_septets(data: bytes, count: int, skip_bits: int) -> list[int]:
    value = int.from_bytes(data, "little")
    return [(value >> (skip_bits + 7 * i)) & 0x7F for i in range(count)]


def _gsm7_text(septets: list[int]) -> str:
    out, escaped = [], False
    for septet in septets:
        if escaped:
            out.append(_EXTENSION_BY_SEPTET.get(septet, " "))
            escaped = False
        elif septet == ESC:
            escaped = True
        else:
            out.append(GSM7_BASIC[septet])
    return "".join(out)


def decode_submit(pdu: bytes) -> DecodedPart:
    """An SMS-SUBMIT (with its SMSC prefix) as the receiving phone renders it (3GPP TS 23.040)."""
    i = 1 + pdu[0]
    first = pdu[i]
    if first & 0x03 != 0x01:
        raise ValueError(f"not an SMS-SUBMIT (first octet {first:#04x})")
    digits, toa = pdu[i + 2], pdu[i + 3]
    i += 4
    number = ("+" if toa == 0x91 else "") + _semi_octets(pdu[i : i + (digits + 1) // 2], digits)
    i += (digits + 1) // 2
    dcs = pdu[i + 1]
    i += 2
    i += {0: 0, 2: 1}.get((first >> 3) & 0x03, 7)  # validity period: none, relative, or 7 octets
    udl, user_data = pdu[i], pdu[i + 1 :]
    header_octets = 1 + user_data[0] if first & 0x40 else 0
    part = DecodedPart(number=number, text="", encoding="ucs2" if dcs & 0x0C == 0x08 else "gsm7")
    j = 1
    while j < header_octets:
        iei, length = user_data[j], user_data[j + 1]
        if iei == 0x00:
            part.reference, part.total, part.sequence = user_data[j + 2 : j + 5]
        j += 2 + length
    if part.encoding == "ucs2":
        part.text = user_data[header_octets:udl].decode("utf-16-be")
    else:
        header_septets = (header_octets * 8 + 6) // 7
        septets = _unpack_septets(user_data, udl, 0)[header_septets:]
        part.text = _gsm7_text(septets)
    return part


# -- the modem ---------------------------------------------------------------------------------------


@dataclass
class Modem:
    outbox: Path
    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    cscs: str = "IRA"
    sim: bool = True
    registered: bool = True
    wedged: bool = False
    cms_errors: list[int] = field(default_factory=list)
    next_reference: int = 1
    partial: dict[tuple[str, int], dict[int, DecodedPart]] = field(default_factory=dict)

    def error(self, code: int, *, cms: bool = False) -> list[str]:
        if cms:
            return [f"+CMS ERROR: {code}"]
        return [f"+CME ERROR: {code}"] if self.cmee else ["ERROR"]

    def command(self, line: str) -> tuple[list[str], bool]:
        """(reply lines, whether to prompt for a message body after them)."""
        upper = line.upper()
        simple = {"AT": [], "ATE0": [], "ATE1": [], "ATI": ["SIM800 R14.18"], "AT+CSMP=17,167,0,8": [],
                  "AT+CSMP=17,167,0,0": []}  # fmt: skip
        if upper in simple:
            if upper in ("ATE0", "ATE1"):
                self.echo = upper == "ATE1"
            return [*simple[upper], "OK"], False
        if match := re.fullmatch(r"AT\+CMEE=([012])", upper):
            self.cmee = int(match[1])
            return ["OK"], False
        if upper == "AT+CPIN?":
            return (["+CPIN: READY", "OK"] if self.sim else self.error(10)), False
        if not self.sim and upper.startswith(("AT+CMGS", "AT+CMGF", "AT+CSCS")):
            return self.error(310, cms=True), False
        if upper == "AT+CREG?":
            return [f"+CREG: 0,{1 if self.registered else 0}", "OK"], False
        if upper == "AT+CSQ":
            return [f"+CSQ: {18 if self.registered else 99},99", "OK"], False
        if match := re.fullmatch(r"AT\+CMGF=([01])", upper):
            self.cmgf = int(match[1])
            return ["OK"], False
        if match := re.fullmatch(r'AT\+CSCS="(IRA|GSM|UCS2)"', upper):
            self.cscs = match[1]
            return ["OK"], False
        if upper.startswith("AT+CMGS="):
            return [], True
        return ["ERROR"], False

    def submit(self, cmgs: str, body: bytes) -> list[str]:
        """The reply to a message body ended by Ctrl-Z."""
        if self.cms_errors:
            return self.error(self.cms_errors.pop(0), cms=True)
        if not self.registered:
            return self.error(331, cms=True)
        argument = cmgs.split("=", 1)[1]
        try:
            if self.cmgf == 1:
                self.deliver(*self._text_mode(argument, body.decode("latin-1")))
            else:
                self._pdu_mode(int(argument), bytes.fromhex(body.decode("ascii")))
        except (ValueError, IndexError, UnicodeDecodeError):
            return self.error(304 if self.cmgf == 0 else 305, cms=True)
        reference = self.next_reference
        self.next_reference = (self.next_reference + 1) % 256
        return [f"+CMGS: {reference}", "OK"]

    def _text_mode(self, argument: str, body: str) -> tuple[str, str, str]:
        number = argument.split(",", maxsplit=1)[0].strip('"')
        if self.cscs == "UCS2":
            return bytes.fromhex(number).decode("utf-16-be"), bytes.fromhex(body).decode("utf-16-be"), "ucs2"
        return number, body, "gsm7"

    def _pdu_mode(self, tpdu_length: int, pdu: bytes) -> None:
        if len(pdu) - 1 - pdu[0] != tpdu_length:
            raise ValueError("AT+CMGS length does not match the PDU")
        part = decode_submit(pdu)
        if part.reference is None:
            self.deliver(part.number, part.text, part.encoding, mode="pdu")
            return
        key = (part.number, part.reference)
        parts = self.partial.setdefault(key, {})
        parts[part.sequence] = part
        if len(parts) == part.total:
            del self.partial[key]
            text = "".join(parts[n].text for n in sorted(parts))
            self.deliver(part.number, text, part.encoding, mode="pdu", parts=part.total)

    def deliver(self, number: str, text: str, encoding: str, *, mode: str = "text", parts: int = 1) -> None:
        entry = {"number": number, "text": text, "parts": parts, "encoding": encoding, "mode": mode}
        with self.outbox.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry, ensure_ascii=False) + "\n")


class Simulator:
    def __init__(self, modem: Modem, link: str, boot_s: float) -> None:
        self.modem = modem
        self.cable = PtyCable(link)
        self.boot_s = boot_s
        self.inbox = bytearray()
        self.pending_cmgs: str | None = None
        self.booting_until: float | None = None

    # -- the port --------------------------------------------------------------------------------

    def forget_input(self) -> None:
        self.inbox.clear()
        self.pending_cmgs = None

    # -- the modem's serial side -----------------------------------------------------------------

    def send_lines(self, lines: list[str]) -> None:
        for line in lines:
            self.cable.outgoing += b"\r\n" + line.encode("latin-1") + b"\r\n"

    def on_received(self, data: bytes) -> None:
        if self.booting_until is not None:
            return  # a rebooting modem hears nothing
        self.inbox += data
        self.process_inbox()

    def process_inbox(self) -> None:
        while self.inbox:
            if self.pending_cmgs is not None:
                if not self.take_body():
                    return
                continue
            end = self.inbox.find(b"\r")
            if end < 0:
                return
            raw = bytes(self.inbox[:end])
            del self.inbox[: end + 1]
            line = raw.decode("latin-1").strip()
            if line:
                self.on_command(line, raw)

    def on_command(self, line: str, raw: bytes) -> None:
        if line.upper() == "AT+CFUN=1,1":
            if not self.modem.wedged:
                self.send_lines(["OK"])
            self.reboot()
            return
        if self.modem.wedged:
            return
        if self.modem.echo:
            self.cable.outgoing += raw + b"\r"
        lines, prompt = self.modem.command(line)
        self.send_lines(lines)
        if prompt:
            self.pending_cmgs = line
            self.cable.outgoing += b"\r\n> "

    def take_body(self) -> bool:
        """Consume a message body up to Ctrl-Z (send) or ESC (abort); False while incomplete."""
        ends = [i for i in (self.inbox.find(bytes([CTRL_Z])), self.inbox.find(bytes([ESC]))) if i >= 0]
        if not ends:
            return False
        end = min(ends)
        body, terminator = bytes(self.inbox[:end]), self.inbox[end]
        del self.inbox[: end + 1]
        cmgs, self.pending_cmgs = self.pending_cmgs, None
        assert cmgs is not None
        if self.modem.wedged:
            return True
        if terminator == CTRL_Z:
            self.send_lines(self.modem.submit(cmgs, body))
        else:
            self.send_lines(["OK"])
        return True

    def reboot(self) -> None:
        self.modem.wedged = False
        self.modem.echo = True
        self.modem.cmee = 0
        self.modem.cmgf = 0
        self.modem.cscs = "IRA"
        self.pending_cmgs = None
        self.inbox.clear()
        self.booting_until = time.monotonic() + self.boot_s

    # -- the operator ----------------------------------------------------------------------------

    def on_operator(self, command: OperatorCommand) -> None:
        verb, rest = command.verb, command.args
        modem = self.modem
        if verb == "wedge":
            modem.wedged = True
            self.cable.outgoing.clear()
        elif verb in ("nosim", "sim"):
            modem.sim = verb == "sim"
        elif verb in ("noreg", "reg"):
            modem.registered = verb == "reg"
        elif verb == "cms-error" and rest:
            modem.cms_errors += [int(rest[0])] * (int(rest[1]) if len(rest) > 1 else 1)
        elif verb == "urc" and rest:
            self.send_lines([command.line.split(None, 1)[1]])
        else:
            reply(f"error unknown command: {command.line.strip()}")
            return
        reply(f"ok {command.line.strip()}")

    def tick(self) -> None:
        if self.booting_until is not None and time.monotonic() >= self.booting_until:
            self.booting_until = None
            self.send_lines(list(BOOT_URCS))

    def run(self, stdin_open: bool) -> None:
        reply(f"ready {self.cable.link}")
        self.cable.serve(self, stdin_open=stdin_open, poll_s=0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cable_arguments(parser)
    parser.add_argument("--outbox", required=True, type=Path, help="JSON-lines file of every SMS sent")
    parser.add_argument("--boot-s", type=float, default=0.5, help="seconds deaf after AT+CFUN=1,1 (default 0.5)")
    args = parser.parse_args(argv)
    simulator = Simulator(Modem(outbox=args.outbox), args.link, args.boot_s)
    with simulator.cable, contextlib.suppress(KeyboardInterrupt):
        simulator.run(stdin_open=not args.no_stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
