"""The AT codec: response state machine on modem transcripts, alphabets, the SMS-SUBMIT PDU encoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_gsm_modem import decode_submit  # scripts/ is on sys.path (tests/conftest.py)

from drivers.errors import CodecError
from drivers.serial.at_codec import (
    DCS_GSM7,
    DCS_UCS2,
    PROMPT,
    AtCommandError,
    AtFramer,
    AtResponse,
    Concatenation,
    FinalResult,
    PduModeSms,
    Registration,
    ResponseParser,
    ResultKind,
    SignalQuality,
    SimState,
    SmsEncoding,
    SubmitPdu,
    TextModeSms,
    encode_address,
    encode_command,
    encode_submit,
    gsm7_septets,
    is_text_mode_gsm7,
    parse_cmgs,
    parse_cpin,
    parse_creg,
    parse_csq,
    plan_sms,
    ucs2_hex,
)


def replay(command: str, transcript: bytes, *, expect_prompt: bool = False) -> AtResponse | object:
    """Feed a byte transcript through the framer and a parser; the first thing the parser finishes."""
    parser = ResponseParser(command, expect_prompt=expect_prompt)
    for item in AtFramer().feed(transcript):
        done = parser.feed(item)
        if done is not None:
            return done
    return None


# -- the conversation -----------------------------------------------------------------------------


def test_command_encoding_ends_in_cr_and_refuses_injection():
    assert encode_command("AT+CSQ") == b"AT+CSQ\r"
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_command('AT+CMGS="+861"\x1a')


def test_csq_with_echo_on_as_after_power_up():
    # SIM800 before ATE0: the command comes back first.
    response = replay("AT+CSQ", b"AT+CSQ\r\r\n+CSQ: 18,99\r\n\r\nOK\r\n")
    assert response == AtResponse("AT+CSQ", ("+CSQ: 18,99",), FinalResult(ResultKind.OK, "OK"))
    assert parse_csq(response) == SignalQuality(rssi=18, ber=99)
    assert parse_csq(response).dbm == -77


def test_urcs_interleaved_with_a_reply_are_ignored():
    # A call and a new SMS arrive while AT+CREG? is answered (EC20 transcript shape).
    transcript = b'\r\nRING\r\n\r\n+CMTI: "SM",3\r\n\r\n+CREG: 1\r\n\r\n+CREG: 0,5\r\n\r\nOK\r\n'
    response = replay("AT+CREG?", transcript)
    assert isinstance(response, AtResponse)
    assert response.lines == ("+CREG: 1", "+CREG: 0,5")
    assert parse_creg(response) is Registration.ROAMING


def test_boot_urcs_do_not_answer_a_plain_at():
    transcript = b"AT\r\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n\r\nOK\r\n"
    assert replay("AT", transcript) == AtResponse("AT", (), FinalResult(ResultKind.OK, "OK"))


@pytest.mark.parametrize(
    ("line", "final", "meaning"),
    [
        ("+CMS ERROR: 500", FinalResult(ResultKind.CMS_ERROR, "+CMS ERROR: 500", 500), "unknown error"),
        ("+CMS ERROR: 330", FinalResult(ResultKind.CMS_ERROR, "+CMS ERROR: 330", 330),
         "SMS centre address unknown: set it with AT+CSCA"),
        ("+CME ERROR: 10", FinalResult(ResultKind.CME_ERROR, "+CME ERROR: 10", 10), "SIM not inserted"),
        ("+CME ERROR: SIM not inserted", FinalResult(ResultKind.CME_ERROR, "+CME ERROR: SIM not inserted"), None),
        ("ERROR", FinalResult(ResultKind.ERROR, "ERROR"), None),
    ],
)
def test_final_error_codes(line, final, meaning):
    response = replay("AT+CMGF=1", f"\r\n{line}\r\n".encode())
    assert response == AtResponse("AT+CMGF=1", (), final)
    assert final.meaning == meaning


def test_failed_command_error_names_the_command_but_not_the_number():
    response = replay('AT+CMGS="+8613800138000"', b"\r\n+CMS ERROR: 500\r\n")
    assert isinstance(response, AtResponse)
    with pytest.raises(AtCommandError, match=r"^AT\+CMGS=\.\.\. failed: \+CMS ERROR: 500 \(unknown error\)$"):
        response.expect_ok()


def test_cmgs_prompt_then_reference():
    assert replay('AT+CMGS="+8613800138000"', b"\r\n> ", expect_prompt=True) is PROMPT
    # The prompt is unterminated: the framer must emit it without waiting for a line end.
    framer = AtFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"> ") == [PROMPT]
    response = replay("AT+CMGS", b"\r\n+CMGS: 47\r\n\r\nOK\r\n")
    assert isinstance(response, AtResponse)
    assert parse_cmgs(response) == 47


def test_lines_split_across_reads():
    framer = AtFramer()
    assert framer.feed(b"\r\n+CS") == []
    assert framer.feed(b"Q: 99,99\r") == ["+CSQ: 99,99"]
    assert framer.feed(b"\n\r\nOK\r\n") == ["OK"]


@pytest.mark.parametrize(
    ("transcript", "state"),
    [
        (b"\r\n+CPIN: READY\r\n\r\nOK\r\n", SimState.READY),
        (b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n", SimState.SIM_PIN),
        (b"\r\n+CME ERROR: 10\r\n", SimState.NOT_INSERTED),
        (b"\r\nERROR\r\n", SimState.OTHER),
    ],
)
def test_cpin(transcript, state):
    response = replay("AT+CPIN?", transcript)
    assert isinstance(response, AtResponse)
    assert parse_cpin(response) is state


@pytest.mark.parametrize(("stat", "registration"), [(0, Registration.NOT_SEARCHING), (1, Registration.HOME),
                                                    (2, Registration.SEARCHING), (3, Registration.DENIED),
                                                    (5, Registration.ROAMING)])  # fmt: skip
def test_creg_states(stat, registration):
    response = replay("AT+CREG?", f"\r\n+CREG: 0,{stat}\r\n\r\nOK\r\n".encode())
    assert isinstance(response, AtResponse)
    assert parse_creg(response) is registration


def test_csq_unknown_signal_and_garbage():
    unknown = replay("AT+CSQ", b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n")
    assert isinstance(unknown, AtResponse)
    assert parse_csq(unknown).dbm is None
    garbage = replay("AT+CSQ", b"\r\n+CSQ: x\x8f,99\r\n\r\nOK\r\n")
    assert isinstance(garbage, AtResponse)
    with pytest.raises(CodecError, match=r"\+CSQ: expected a number"):
        parse_csq(garbage)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=12), st.sampled_from(["AT", "AT+CSQ", "AT+CREG?", "AT+CMGS=23"]))
def test_framer_and_parser_never_raise_on_arbitrary_bytes(chunks, command):
    framer, parser = AtFramer(), ResponseParser(command, expect_prompt=True)
    for chunk in chunks:
        for item in framer.feed(chunk):
            parser.feed(item)


# -- alphabets ------------------------------------------------------------------------------------


def test_gsm7_detection():
    assert is_text_mode_gsm7("Fall detected: resident r-1, 14:32. Check now!")
    assert not is_text_mode_gsm7("Temperature 39.2 °C")  # ° is not GSM-7
    assert not is_text_mode_gsm7("price €5")  # GSM-7 only through the escape table: not in text mode
    assert gsm7_septets("€[") == [0x1B, 0x65, 0x1B, 0x3C]
    assert gsm7_septets("Ça va? @£") == [0x09, 0x61, 0x20, 0x76, 0x61, 0x3F, 0x20, 0x00, 0x01]
    assert gsm7_septets("低血糖") is None


def test_ucs2_hex_of_chinese_text():
    assert ucs2_hex("低血糖") == "4F4E88407CD6"
    assert ucs2_hex("+86") == "002B00380036"


# -- the SMS-SUBMIT PDU ---------------------------------------------------------------------------


def test_pdu_matches_the_published_hellohello_example():
    # "hellohello" to +46708251358, VP 4 days: the SMS-SUBMIT example of dreamfabric.com/sms
    # ("SMS and the PDU format", Lars Pettersson), widely reproduced in modem application notes.
    pdu = encode_submit("+46708251358", dcs=DCS_GSM7, septets=gsm7_septets("hellohello") or [], validity=0xAA)
    assert pdu == SubmitPdu("0011000B916407281553F80000AA0AE8329BFD4697D9EC37", tpdu_length=23)


def test_address_semi_octets():
    assert encode_address("+8613800138000").hex().upper() == "0D91683108108300F0"
    assert encode_address("10086").hex().upper() == "05810180F6"
    with pytest.raises(ValueError, match="phone number must be digits"):
        encode_address("138 0013 8000")


def test_ucs2_concatenated_part_header():
    pdu = encode_submit("+8613800138000", dcs=DCS_UCS2, ucs2="低血糖", concatenation=Concatenation(7, 2, 1))
    # 51: SMS-SUBMIT, relative VP, UDHI; 08: UCS2; A7: 24 h; 0C: 6 header + 6 text octets;
    # 05 00 03 07 02 01: concatenated SMS, 8-bit reference 7, part 1 of 2.
    assert pdu == SubmitPdu("0051000D91683108108300F00008A70C0500030702014F4E88407CD6", tpdu_length=27)


def test_gsm7_concatenated_part_has_one_fill_bit():
    pdu = encode_submit("+8613800138000", dcs=DCS_GSM7, septets=gsm7_septets("hi") or [],
                        concatenation=Concatenation(1, 2, 2))
    # UDL 9 septets: 7 for the 6-octet header (48 bits + 1 fill bit); 'h' (0x68) shifted up by the
    # fill bit is D0, which leaves 'i' (0x69) exactly one octet.
    assert pdu.pdu_hex == "0051000D91683108108300F00000A709050003010202D069"
    assert decode_submit(bytes.fromhex(pdu.pdu_hex)).text == "hi"


def test_plan_picks_text_mode_when_one_sms_is_enough():
    assert plan_sms("+8613800138000", "Help button pressed", reference=1) == TextModeSms(
        SmsEncoding.GSM7_TEXT, ('AT+CSCS="IRA"', "AT+CSMP=17,167,0,0"), '"+8613800138000"', "Help button pressed"
    )
    assert plan_sms("+8613800138000", "老人按下了求助按钮", reference=1) == TextModeSms(
        SmsEncoding.UCS2_TEXT,
        ('AT+CSCS="UCS2"', "AT+CSMP=17,167,0,8"),
        '"002B0038003600310033003800300030003100330038003000300030"',
        ucs2_hex("老人按下了求助按钮"),
    )


def test_plan_splits_a_long_chinese_alert_into_67_character_parts():
    text = "跌" * 70 + "倒" * 64  # 134 characters: exactly two parts of 67
    plan = plan_sms("+8613800138000", text, reference=9)
    assert isinstance(plan, PduModeSms)
    assert plan.encoding is SmsEncoding.UCS2_PDU
    decoded = [decode_submit(bytes.fromhex(part.pdu_hex)) for part in plan.parts]
    assert [(d.reference, d.total, d.sequence, len(d.text)) for d in decoded] == [(9, 2, 1, 67), (9, 2, 2, 67)]
    assert "".join(d.text for d in decoded) == text


def test_plan_never_splits_a_surrogate_pair_or_an_escape():
    emoji_text = "警" * 66 + "😀" + "报" * 3  # 71 UTF-16 units: two parts
    plan = plan_sms("+8613800138000", emoji_text, reference=1)
    assert isinstance(plan, PduModeSms)
    assert [decode_submit(bytes.fromhex(p.pdu_hex)).text for p in plan.parts] == ["警" * 66, "😀报报报"]
    gsm_text = "a" * 152 + "€" + "b" * 10
    plan7 = plan_sms("+8613800138000", gsm_text, reference=1)
    assert isinstance(plan7, PduModeSms)
    assert [decode_submit(bytes.fromhex(p.pdu_hex)).text for p in plan7.parts] == ["a" * 152, "€" + "b" * 10]


def test_plan_refuses_an_empty_or_endless_text():
    with pytest.raises(ValueError, match="empty"):
        plan_sms("+8613800138000", "", reference=1)
    with pytest.raises(ValueError, match="shorten the alert text"):
        plan_sms("+8613800138000", "长" * 67 * 9, reference=1)


@settings(deadline=None, max_examples=150)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=400),
       st.integers(0, 255))
def test_any_text_reassembles_to_itself_on_the_phone(text, reference):
    try:
        plan = plan_sms("+8613800138000", text, reference=reference)
    except ValueError:
        return  # too many parts: refused with a message, never sent truncated
    if isinstance(plan, TextModeSms):
        return
    decoded = [decode_submit(bytes.fromhex(part.pdu_hex)) for part in plan.parts]
    assert "".join(d.text for d in decoded) == text
    for part in plan.parts:
        assert part.tpdu_length == len(bytes.fromhex(part.pdu_hex)) - 1
