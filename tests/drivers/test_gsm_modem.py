"""GSM modem session end to end: the simulator behind a real pty, the real pyserial path."""

from __future__ import annotations

import asyncio

import pytest
from loopcheck import eventually, running
from simulators import SimulatedModem, modem_simulator_fixture  # noqa: F401

from drivers.serial.at_codec import AtCommandError, Registration, SimState, SmsEncoding
from drivers.serial.gsm_modem import GsmModem, ModemNotReadyError, ModemTiming, SmsResult

NUMBER = "+8613800138000"
FAST = ModemTiming(command_timeout_s=0.5, sms_timeout_s=2.0, reset_settle_s=0.6, health_interval_s=0.3)


def make_modem(sim: SimulatedModem) -> GsmModem:
    return GsmModem(device_id="modem-1", port=str(sim.link), timing=FAST)


async def test_initialises_and_reports_signal_and_registration(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        status = modem.status
    assert status.port_open
    assert status.sim is SimState.READY
    assert status.registration is Registration.HOME
    assert status.signal_dbm == -113 + 2 * 18
    assert status.last_error is None
    assert status.resets == 0


async def test_short_english_sms_goes_in_text_mode(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        result = await modem.send_sms(NUMBER, "Fall detected: resident r-1, 14:32. Check now.")
    assert result == SmsResult(SmsEncoding.GSM7_TEXT, parts=1, references=(1,), attempts=1, reset=False)
    assert sim.sent() == [{"number": NUMBER, "text": "Fall detected: resident r-1, 14:32. Check now.",
                           "parts": 1, "encoding": "gsm7", "mode": "text"}]
    assert modem.status.sms_sent == 1


async def test_short_chinese_sms_goes_as_ucs2_text(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        result = await modem.send_sms(NUMBER, "【颐养】危急：老人按下了求助按钮")
    assert result.encoding is SmsEncoding.UCS2_TEXT
    assert sim.sent() == [{"number": NUMBER, "text": "【颐养】危急：老人按下了求助按钮", "parts": 1,
                           "encoding": "ucs2", "mode": "text"}]


async def test_long_chinese_sms_arrives_as_one_message_of_several_parts(sim):
    text = "【颐养】危急：跌倒后长时间未动，情况危急。" * 6  # 126 characters: 2 parts of 67
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        await sim.command('urc +CMTI: "SM",3')  # a text arriving meanwhile must not confuse the reply
        result = await modem.send_sms(NUMBER, text)
    assert (result.encoding, result.parts, len(result.references)) == (SmsEncoding.UCS2_PDU, 2, 2)
    assert sim.sent() == [{"number": NUMBER, "text": text, "parts": 2, "encoding": "ucs2", "mode": "pdu"}]


async def test_long_english_sms_is_concatenated_gsm7(sim):
    text = "Blood pressure 182/121 mmHg [crisis range]; measure again and call the doctor. " * 3
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        result = await modem.send_sms(NUMBER, text)
    assert (result.encoding, result.parts) == (SmsEncoding.GSM7_PDU, 2)
    assert sim.sent() == [{"number": NUMBER, "text": text, "parts": 2, "encoding": "gsm7", "mode": "pdu"}]


async def test_wedged_modem_is_reset_and_the_sms_retried_once(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        await sim.command("wedge")
        result = await modem.send_sms(NUMBER, "All clear: resident r-1 is fine")
        assert modem.status.ready
    assert (result.attempts, result.reset) == (2, True)
    assert modem.status.resets == 1
    assert [entry["text"] for entry in sim.sent()] == ["All clear: resident r-1 is fine"]


async def test_network_refusal_is_a_clear_error_without_a_reset(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        await sim.command("cms-error 500")
        with pytest.raises(AtCommandError, match=r"AT\+CMGS=\.\.\. failed: \+CMS ERROR: 500 \(unknown error\)") as info:
            await modem.send_sms(NUMBER, "Help button pressed")
        assert NUMBER not in str(info.value)
        assert modem.status.resets == 0
        await modem.send_sms(NUMBER, "Help button pressed")
    assert len(sim.sent()) == 1


async def test_no_sim_is_reported_and_refuses_to_send(sim):
    await sim.command("nosim")
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.last_error is not None)
        status = modem.status
        with pytest.raises(ModemNotReadyError, match="SIM missing or locked"):
            await modem.send_sms(NUMBER, "test")
        # The SIM is pushed back in: the next check picks it up without a restart.
        await sim.command("sim")
        await eventually(lambda: modem.status.ready)
    assert not status.ready
    assert status.sim is SimState.NOT_INSERTED
    assert status.last_error is not None and "insert the SIM card" in status.last_error


async def test_unplugged_modem_is_reopened(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        await sim.command("unplug")
        await eventually(lambda: not modem.status.port_open)
        with pytest.raises(ModemNotReadyError):
            await modem.send_sms(NUMBER, "test")
        await sim.command("plug")
        await eventually(lambda: modem.status.ready)
        await modem.send_sms(NUMBER, "back")
    assert [entry["text"] for entry in sim.sent()] == ["back"]


async def test_sends_are_serialised(sim):
    async with running(make_modem(sim)) as modem:
        await eventually(lambda: modem.status.ready)
        texts = ["one", "两个", "three " * 40, "四" * 80]
        results = await asyncio.gather(*(modem.send_sms(NUMBER, text) for text in texts))
    assert [r.parts for r in results] == [1, 1, 2, 2]
    assert [entry["text"] for entry in sim.sent()] == texts
