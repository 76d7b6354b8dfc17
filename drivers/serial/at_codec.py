"""AT commands of a GSM/4G modem (SIM800, Quectel EC20) and the SMS encodings they carry, pure.

Two halves, no I/O and no clock in either:

* the conversation: command encoding, a byte framer (lines and the ``> `` prompt of ``AT+CMGS``) and
  a per-command response state machine that keeps the command's own lines, drops echo and
  unsolicited result codes (RING, +CMTI, boot banners) and ends on a final result code; parsers for
  ``+CSQ``, ``+CREG?``, ``+CPIN?`` and ``+CMGS``;
* the message: GSM 03.38 7-bit alphabet detection, UCS2 (UTF-16BE hex) text, and the 3GPP TS 23.040
  SMS-SUBMIT PDU encoder with a concatenation header, so a long Chinese alert arrives as one message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

from drivers.errors import CodecError, DriverError

CTRL_Z = b"\x1a"
"""Ends the message body after the ``> `` prompt (ESC, 0x1B, would abort it)."""

# -- errors ---------------------------------------------------------------------------------------


class ModemError(DriverError):
    """The modem answered, but not with what the gateway needs."""


class AtCommandError(ModemError):
    """A command ended in ERROR, ``+CMS ERROR`` or ``+CME ERROR``."""

    def __init__(self, command: str, result: FinalResult) -> None:
        self.command = command
        self.result = result
        meaning = result.meaning
        super().__init__(f"{_command_name(command)} failed: {result.line}" + (f" ({meaning})" if meaning else ""))


class SimNotReadyError(ModemError):
    """``AT+CPIN?`` did not say READY."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        super().__init__(
            f"SIM missing or locked (AT+CPIN? says {state.value}): insert the SIM card firmly and remove its "
            "PIN lock in a phone; the modem is retried automatically"
        )


class NotRegisteredError(ModemError):
    """The modem is not on a mobile network, so no SMS can leave."""


def _command_name(command: str) -> str:
    # The number after AT+CMGS= is a phone number: never let it into an error text or a log.
    return command.split("=", 1)[0] + ("=..." if "=" in command else "")


# -- the conversation -----------------------------------------------------------------------------


def encode_command(command: str) -> bytes:
    """``AT...`` as the modem wants it: ASCII, ended by CR (S3)."""
    if not command.isascii() or any(ch in command for ch in "\r\n\x1a\x1b"):
        raise ValueError(f"AT command must be printable ASCII without CR/LF/Ctrl-Z: {_command_name(command)!r}")
    return command.encode("ascii") + b"\r"


class ResultKind(StrEnum):
    OK = "OK"
    ERROR = "ERROR"
    CMS_ERROR = "+CMS ERROR"
    CME_ERROR = "+CME ERROR"
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"


CMS_ERRORS: dict[int, str] = {
    38: "network out of order",
    41: "temporary network failure",
    42: "network congestion",
    50: "SMS barred by the operator",
    69: "SMS not supported by the network",
    301: "SMS service reserved",
    302: "operation not allowed",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    330: "SMS centre address unknown: set it with AT+CSCA",
    331: "no network service",
    332: "network timeout",
    500: "unknown error",
}
"""3GPP TS 27.005 3.2.5, the codes a modem sending SMS actually returns."""

CME_ERRORS: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    30: "no network service",
    100: "unknown error",
}
"""3GPP TS 27.007 9.2.1."""


@dataclass(frozen=True, slots=True)
class FinalResult:
    kind: ResultKind
    line: str
    code: int | None = None
    """The number of a +CMS/+CME ERROR (``AT+CMEE=1``); None for verbose text or other results."""

    @property
    def ok(self) -> bool:
        return self.kind is ResultKind.OK

    @property
    def meaning(self) -> str | None:
        table = {ResultKind.CMS_ERROR: CMS_ERRORS, ResultKind.CME_ERROR: CME_ERRORS}.get(self.kind, {})
        return table.get(self.code) if self.code is not None else None


_SIMPLE_FINALS = {kind.value: kind for kind in ResultKind if not kind.value.startswith("+")}
_NUMBERED_FINALS = {"+CMS ERROR:": ResultKind.CMS_ERROR, "+CME ERROR:": ResultKind.CME_ERROR}


def parse_final(line: str) -> FinalResult | None:
    """The final result code on ``line``, or None when it is not one."""
    text = line.strip()
    kind = _SIMPLE_FINALS.get(text.upper())
    if kind is not None:
        return FinalResult(kind, text)
    for prefix, numbered in _NUMBERED_FINALS.items():
        if text.upper().startswith(prefix):
            detail = text[len(prefix) :].strip()
            return FinalResult(numbered, text, int(detail) if detail.isdigit() else None)
    return None


URC_PREFIXES = (
    "RING", "+CRING:", "+CLIP:", "+CMTI:", "+CMT:", "+CDS:", "+CDSI:", "+CBM:", "+CUSD:",
    "RDY", "CALL READY", "SMS READY", "+CFUN:", "+PACSP", "+QIND:", "+CPIN:", "+CREG:", "+CGREG:", "+CEREG:",
    "NORMAL POWER DOWN", "UNDER-VOLTAGE", "OVER-VOLTAGE", "+CTZV:", "*PSUTTZ:", "DST:",
)  # fmt: skip
"""Unsolicited result codes (calls, new SMS, boot banners of SIM800 and EC20, registration changes):
never part of a reply, except to the command that asks for that prefix (see ``RESPONSE_PREFIXES``)."""

RESPONSE_PREFIXES: dict[str, str] = {
    "AT+CSQ": "+CSQ:",
    "AT+CREG?": "+CREG:",
    "AT+CPIN?": "+CPIN:",
    "AT+CMGS": "+CMGS:",
    "AT+CSCA?": "+CSCA:",
    "AT+COPS?": "+COPS:",
}
"""Commands whose information lines carry a prefix: any other line during them is unsolicited."""


class Prompt(Enum):
    """The ``> `` after ``AT+CMGS``: the modem waits for the message body."""

    PROMPT = "> "


PROMPT = Prompt.PROMPT

MAX_LINE_CHARS = 1024
"""A line longer than this is noise (wrong baud rate): cut it so the framer's memory stays bounded."""


class AtFramer:
    """Bytes from the modem -> lines (CR and/or LF terminated, blank lines dropped) and prompts."""

    def __init__(self) -> None:
        self._partial = bytearray()

    def feed(self, data: bytes) -> list[str | Prompt]:
        out: list[str | Prompt] = []
        self._partial += data
        while True:
            ends = [i for i in (self._partial.find(b"\r"), self._partial.find(b"\n")) if i >= 0]
            if not ends:
                break
            end = min(ends)
            raw = bytes(self._partial[:end])
            del self._partial[: end + 1]
            if raw.strip():
                out.append(raw.decode("latin-1").strip())
        # The prompt is the one reply the modem does not terminate: it waits for us.
        if bytes(self._partial) in (b">", b"> "):
            self._partial.clear()
            out.append(PROMPT)
        elif len(self._partial) > MAX_LINE_CHARS:
            out.append(bytes(self._partial).decode("latin-1"))
            self._partial.clear()
        return out


@dataclass(frozen=True, slots=True)
class AtResponse:
    command: str
    lines: tuple[str, ...]
    """The command's information lines (echo and unsolicited result codes removed)."""
    result: FinalResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    def expect_ok(self) -> AtResponse:
        if not self.result.ok:
            raise AtCommandError(self.command, self.result)
        return self


class ResponseParser:
    """One command's reply, fed line by line; ends on a final result code (or the prompt)."""

    def __init__(self, command: str, *, expect_prompt: bool = False) -> None:
        self.command = command
        self._expect_prompt = expect_prompt
        self._prefix = next((p for c, p in RESPONSE_PREFIXES.items() if command.upper().startswith(c)), None)
        self._lines: list[str] = []
        self.ignored: list[str] = []
        """Echo and unsolicited lines seen meanwhile (for debugging; may hold a caller id, never log)."""

    def feed(self, item: str | Prompt) -> AtResponse | Prompt | None:
        """The finished response, the prompt when one was expected, or None while more is to come."""
        if isinstance(item, Prompt):
            return PROMPT if self._expect_prompt else None
        line = item.strip()
        final = parse_final(line)
        if final is not None:
            return AtResponse(self.command, tuple(self._lines), final)
        if self._is_ours(line):
            self._lines.append(line)
        else:
            self.ignored.append(line)
        return None

    def _is_ours(self, line: str) -> bool:
        upper = line.upper()
        if upper == self.command.upper():
            return False  # echo, before ATE0 took effect
        if self._prefix is not None:
            return upper.startswith(self._prefix)
        return not upper.startswith(URC_PREFIXES) and not upper.startswith("AT")


# -- information responses ------------------------------------------------------------------------


def _fields(response: AtResponse, prefix: str) -> list[list[str]]:
    rows = []
    for line in response.lines:
        if line.upper().startswith(prefix):
            rows.append([f.strip().strip('"') for f in line[len(prefix) :].split(",")])
    return rows


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise CodecError(f"{what}: expected a number, got {text!r} (is this an AT modem at the right baud rate?)")
    return int(text)


@dataclass(frozen=True, slots=True)
class SignalQuality:
    rssi: int
    """0-31, or 99 when the modem does not know (no network yet)."""
    ber: int

    @property
    def dbm(self) -> int | None:
        """-113 dBm at 0 in 2 dB steps to -51 dBm or more at 31 (27.007 8.5); None when unknown."""
        return -113 + 2 * self.rssi if 0 <= self.rssi <= 31 else None


def parse_csq(response: AtResponse) -> SignalQuality:
    rows = _fields(response, "+CSQ:")
    if not rows or len(rows[-1]) != 2:
        raise CodecError(f"AT+CSQ reply without '+CSQ: <rssi>,<ber>': {response.lines!r}")
    rssi, ber = (_int(f, "+CSQ") for f in rows[-1])
    if not (0 <= rssi <= 31 or rssi == 99):
        raise CodecError(f"+CSQ rssi {rssi} outside 0-31/99")
    return SignalQuality(rssi, ber)


class Registration(StrEnum):
    NOT_SEARCHING = "not_searching"
    HOME = "home"
    SEARCHING = "searching"
    DENIED = "denied"
    UNKNOWN = "unknown"
    ROAMING = "roaming"

    @property
    def registered(self) -> bool:
        return self in (Registration.HOME, Registration.ROAMING)


REGISTRATION_STATES: dict[int, Registration] = {
    0: Registration.NOT_SEARCHING,
    1: Registration.HOME,
    2: Registration.SEARCHING,
    3: Registration.DENIED,
    4: Registration.UNKNOWN,
    5: Registration.ROAMING,
    6: Registration.HOME,  # registered for "SMS only", home: all we need
    7: Registration.ROAMING,  # "SMS only", roaming
}
"""27.007 7.2 <stat>."""


def parse_creg(response: AtResponse) -> Registration:
    """``+CREG: <n>,<stat>[,<lac>,<ci>]``; an unsolicited ``+CREG: <stat>`` in between is skipped."""
    rows = [row for row in _fields(response, "+CREG:") if len(row) >= 2]
    if not rows:
        raise CodecError(f"AT+CREG? reply without '+CREG: <n>,<stat>': {response.lines!r}")
    stat = _int(rows[-1][1], "+CREG stat")
    return REGISTRATION_STATES.get(stat, Registration.UNKNOWN)


class SimState(StrEnum):
    READY = "READY"
    SIM_PIN = "SIM PIN"
    SIM_PUK = "SIM PUK"
    PHONE_LOCK = "PH-SIM PIN"
    NOT_INSERTED = "NOT INSERTED"
    OTHER = "OTHER"


_SIM_ERRORS = {10: SimState.NOT_INSERTED, 11: SimState.SIM_PIN, 12: SimState.SIM_PUK, 13: SimState.NOT_INSERTED}


def parse_cpin(response: AtResponse) -> SimState:
    """``+CPIN: READY``; with no SIM the modem answers ``+CME ERROR: 10`` instead."""
    if response.result.kind is ResultKind.CME_ERROR:
        return _SIM_ERRORS.get(response.result.code or -1, SimState.OTHER)
    rows = _fields(response, "+CPIN:")
    if not rows:
        return SimState.OTHER
    code = rows[-1][0].upper()
    return next((state for state in SimState if state.value == code), SimState.OTHER)


def parse_cmgs(response: AtResponse) -> int:
    """The message reference of ``+CMGS: <mr>``."""
    rows = _fields(response, "+CMGS:")
    if not rows or not rows[-1]:
        raise CodecError(f"AT+CMGS reply without '+CMGS: <mr>': {response.lines!r}")
    return _int(rows[-1][0], "+CMGS mr")


# -- the message: alphabets -----------------------------------------------------------------------

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""3GPP TS 23.038 6.2.1: the default alphabet, index = septet value (0x1B is the escape)."""
assert len(GSM7_BASIC) == 128

GSM7_EXTENSION: dict[str, int] = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C,
                                  "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}  # fmt: skip
"""23.038 6.2.1.1: sent as ESC + this septet, so each counts twice."""

_GSM7_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC) if ch != "\x1b"}
_ESCAPE = 0x1B

_TEXT_MODE_SAFE = frozenset(ch for ch in _GSM7_INDEX if " " <= ch <= "~")
"""What text mode carries unchanged under ``AT+CSCS="IRA"``: printable ASCII that is also GSM-7 basic
(no control characters: a CR in the body would make the modem prompt again)."""

SINGLE_GSM7_SEPTETS = 160
SINGLE_UCS2_UNITS = 70
PART_GSM7_SEPTETS = 153
"""140 octets minus a 6-octet concatenation header is 134 octets = 153 septets (one fill bit)."""
PART_UCS2_UNITS = 67
"""(140 - 6) / 2 UTF-16 code units."""
MAX_PARTS = 8
"""An alert that needs more is a bug in its wording, not something to cost the family 9 SMS."""


def gsm7_septets(text: str) -> list[int] | None:
    """The GSM 7-bit septets of ``text``, or None when a character is outside the default alphabet."""
    septets: list[int] = []
    for ch in text:
        if ch in _GSM7_INDEX:
            septets.append(_GSM7_INDEX[ch])
        elif ch in GSM7_EXTENSION:
            septets += [_ESCAPE, GSM7_EXTENSION[ch]]
        else:
            return None
    return septets


def is_text_mode_gsm7(text: str) -> bool:
    """Can ``text`` go as GSM 7-bit in text mode, charset IRA, without any character changing?"""
    return all(ch in _TEXT_MODE_SAFE for ch in text)


def ucs2_hex(text: str) -> str:
    """UTF-16BE as upper-case hex: the text and number format after ``AT+CSCS="UCS2"``."""
    return text.encode("utf-16-be").hex().upper()


# -- the message: SMS-SUBMIT PDU (3GPP TS 23.040 9.2.2.2) -----------------------------------------

DCS_GSM7 = 0x00
DCS_UCS2 = 0x08
VALIDITY_24H = 167
"""Relative validity period 167 = 24 hours (23.040 9.2.3.12.1), as in ``AT+CSMP=17,167,0,8``."""

_SUBMIT = 0x01
_VPF_RELATIVE = 0x10
_UDHI = 0x40
_IEI_CONCAT_8BIT = 0x00

_NUMBER = re.compile(r"\+?[0-9]{1,20}")


def encode_address(number: str) -> bytes:
    """TP-DA: digit count, type (0x91 international for +..., else 0x81 unknown/ISDN), BCD semi-octets."""
    if not _NUMBER.fullmatch(number):
        raise ValueError("phone number must be digits with an optional leading +, e.g. +8613800138000")
    digits = number.lstrip("+")
    toa = 0x91 if number.startswith("+") else 0x81
    padded = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    return bytes([len(digits), toa]) + bytes.fromhex(swapped)


def pack_septets(septets: Sequence[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit values LSB first (23.038 6.1.2.1.1), after ``fill_bits`` zero bits (the header pad)."""
    out = bytearray()
    acc, bits = 0, fill_bits
    for septet in septets:
        acc |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Concatenation:
    reference: int
    """Same for every part of one message, 0-255 (8-bit reference IE)."""
    total: int
    sequence: int
    """1-based."""

    def header(self) -> bytes:
        """UDHL, then IE 0x00 (concatenated SMS, 8-bit reference), length 3, ref, total, sequence."""
        return bytes([5, _IEI_CONCAT_8BIT, 3, self.reference & 0xFF, self.total, self.sequence])


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    """One SMS-SUBMIT as ``AT+CMGS=<tpdu_length>`` then ``pdu_hex`` and Ctrl-Z want it."""

    pdu_hex: str
    """SMSC length octet 00 (use the SIM's SMS centre), then the TPDU."""
    tpdu_length: int
    """Octets after the SMSC part: the number ``AT+CMGS=`` takes in PDU mode."""


def encode_submit(
    number: str,
    *,
    dcs: int,
    septets: Sequence[int] = (),
    ucs2: str = "",
    concatenation: Concatenation | None = None,
    validity: int = VALIDITY_24H,
    message_reference: int = 0,
) -> SubmitPdu:
    """One SMS-SUBMIT TPDU: GSM-7 ``septets`` when ``dcs`` is 0x00, UTF-16BE ``ucs2`` when 0x08."""
    header = concatenation.header() if concatenation else b""
    if dcs == DCS_GSM7:
        header_septets = (len(header) * 8 + 6) // 7
        fill = header_septets * 7 - len(header) * 8
        user_data = header + pack_septets(septets, fill)
        length = header_septets + len(septets)
        if length > SINGLE_GSM7_SEPTETS:
            raise ValueError(f"{len(septets)} septets do not fit one SMS (split the text first)")
    elif dcs == DCS_UCS2:
        user_data = header + ucs2.encode("utf-16-be")
        length = len(user_data)
        if length > 140:
            raise ValueError(f"{len(ucs2)} UCS2 characters do not fit one SMS (split the text first)")
    else:
        raise ValueError(f"DCS {dcs:#04x} not supported: use DCS_GSM7 (0x00) or DCS_UCS2 (0x08)")
    first = _SUBMIT | _VPF_RELATIVE | (_UDHI if concatenation else 0)
    tpdu = (
        bytes([first, message_reference & 0xFF])
        + encode_address(number)
        + bytes([0x00, dcs, validity & 0xFF, length])  # PID 0: plain SMS to a phone
        + user_data
    )
    return SubmitPdu(pdu_hex="00" + tpdu.hex().upper(), tpdu_length=len(tpdu))


# -- the message: the plan for one text -----------------------------------------------------------


class SmsEncoding(StrEnum):
    GSM7_TEXT = "gsm7_text"
    UCS2_TEXT = "ucs2_text"
    GSM7_PDU = "gsm7_pdu"
    UCS2_PDU = "ucs2_pdu"


@dataclass(frozen=True, slots=True)
class TextModeSms:
    """One SMS in text mode (``AT+CMGF=1``): the commands to set it up, then CMGS and the body."""

    encoding: SmsEncoding
    setup: tuple[str, ...]
    cmgs_argument: str
    """The quoted number, in the charset just selected."""
    body: str


@dataclass(frozen=True, slots=True)
class PduModeSms:
    """A concatenated SMS in PDU mode (``AT+CMGF=0``): one ``AT+CMGS=<len>`` per part."""

    encoding: SmsEncoding
    parts: tuple[SubmitPdu, ...]


SmsPlan = TextModeSms | PduModeSms

_IRA_SETUP = ('AT+CSCS="IRA"', "AT+CSMP=17,167,0,0")
_UCS2_SETUP = ('AT+CSCS="UCS2"', "AT+CSMP=17,167,0,8")


def _split_septets(septets: list[int], size: int) -> list[list[int]]:
    parts: list[list[int]] = []
    start = 0
    while start < len(septets):
        end = min(start + size, len(septets))
        if end < len(septets) and septets[end - 1] == _ESCAPE:
            end -= 1  # an escape and its character stay in one part
        parts.append(septets[start:end])
        start = end
    return parts


def _split_ucs2(text: str, size: int) -> list[str]:
    parts: list[str] = []
    current, units = "", 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1  # a surrogate pair is never split
        if units + width > size:
            parts.append(current)
            current, units = "", 0
        current += ch
        units += width
    if current:
        parts.append(current)
    return parts


def plan_sms(number: str, text: str, *, reference: int) -> SmsPlan:
    """How to send ``text``: text mode when it fits one SMS, else concatenated parts in PDU mode.

    ``reference`` (0-255) ties the parts of a concatenated message together; use a new one per message.
    """
    encode_address(number)  # refuse a bad number before touching the modem
    if not text:
        raise ValueError("SMS text is empty")
    septets = gsm7_septets(text)
    if is_text_mode_gsm7(text) and len(text) <= SINGLE_GSM7_SEPTETS:
        return TextModeSms(SmsEncoding.GSM7_TEXT, _IRA_SETUP, f'"{number}"', text)
    units = len(text.encode("utf-16-be")) // 2
    if septets is None and units <= SINGLE_UCS2_UNITS:
        return TextModeSms(SmsEncoding.UCS2_TEXT, _UCS2_SETUP, f'"{ucs2_hex(number)}"', ucs2_hex(text))
    if septets is not None:
        chunks7 = _split_septets(septets, SINGLE_GSM7_SEPTETS if len(septets) <= SINGLE_GSM7_SEPTETS else
                                 PART_GSM7_SEPTETS)  # fmt: skip
        _check_parts(len(chunks7))
        single = len(chunks7) == 1
        return PduModeSms(SmsEncoding.GSM7_PDU, tuple(
            encode_submit(number, dcs=DCS_GSM7, septets=chunk,
                          concatenation=None if single else Concatenation(reference, len(chunks7), i + 1))
            for i, chunk in enumerate(chunks7)
        ))  # fmt: skip
    chunks = _split_ucs2(text, PART_UCS2_UNITS)
    _check_parts(len(chunks))
    return PduModeSms(SmsEncoding.UCS2_PDU, tuple(
        encode_submit(number, dcs=DCS_UCS2, ucs2=chunk, concatenation=Concatenation(reference, len(chunks), i + 1))
        for i, chunk in enumerate(chunks)
    ))  # fmt: skip


def _check_parts(count: int) -> None:
    if count > MAX_PARTS:
        raise ValueError(f"SMS text needs {count} parts (more than {MAX_PARTS}): shorten the alert text")
