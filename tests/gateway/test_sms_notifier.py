"""SMS notifier against the modem simulator: which alert changes reach which phone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from simulators import SimulatedModem, modem_simulator_fixture  # noqa: F401

from drivers.serial.gsm_modem import GsmModem, ModemTiming
from gateway.alerts.model import Alert, AlertChange, AlertState, Message
from gateway.alerts.sms import (
    Outcome,
    SmsNotifier,
    retry_delay_s,
    sms_text,
    sms_wanted,
)
from gateway.respond.contacts import Contact
from gateway.vocabulary import AlertKind, Language, Severity

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 1, 5, 6, 32, tzinfo=UTC)  # 14:32 in Shanghai
DAUGHTER = Contact("daughter", phone="+8613800138000", min_severity=Severity.URGENT, language=Language.ZH)
NEIGHBOUR = Contact("neighbour", phone="+8613900139000", min_severity=Severity.EMERGENCY, language=Language.EN)
HIS_SON = Contact("son", frozenset({"r-2"}), phone="+8613700137000")  # linked to the other resident only
APP_ONLY = Contact("grandson", app=True, min_severity=Severity.WARNING)
FAST = ModemTiming(command_timeout_s=0.5, sms_timeout_s=2.0, reset_settle_s=0.5, health_interval_s=0.3)


def alert(kind: AlertKind = AlertKind.HYPOGLYCAEMIA, severity: Severity = Severity.URGENT,
          state: AlertState = AlertState.RAISED, alert_id: str = "a-1") -> Alert:  # fmt: skip
    return Alert(alert_id=alert_id, kind=kind, severity=severity, state=state, resident_id="r-1", raised_at=T0,
                 message=Message("血糖偏低，请尽快处理", "Glucose low: act soon"),
                 evidence={"reading_type": "blood_glucose", "value": 3.2, "threshold": "glucose_level1_hypo_mmol_l"})


def change(of: Alert, notify: tuple[str, ...] = ("daughter", "neighbour", "son")) -> AlertChange:
    """The alert change, for ``notify`` (by default everyone: which of them gets an SMS is the notifier's rule)."""
    return AlertChange(of, notify)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def modem_running(sim: SimulatedModem) -> AsyncIterator[GsmModem]:
    modem = GsmModem(device_id="modem-1", port=str(sim.link), timing=FAST)
    task = asyncio.create_task(modem.run())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not modem.status.ready:
            assert asyncio.get_running_loop().time() < deadline, "modem never got ready"
            await asyncio.sleep(0.02)
        yield modem
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def phones(sim: SimulatedModem) -> list[tuple[str, str]]:
    return [(str(entry["number"]), str(entry["text"])) for entry in sim.sent()]


# -- pure rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "contact", "delivered", "wanted"),
    [
        (alert(), DAUGHTER, None, True),
        (alert(), NEIGHBOUR, None, False),  # urgent is below the neighbour's minimum
        (alert(severity=Severity.EMERGENCY), NEIGHBOUR, None, True),
        (alert(severity=Severity.EMERGENCY, state=AlertState.ESCALATED), NEIGHBOUR, True, True),
        (alert(severity=Severity.WARNING), DAUGHTER, None, False),
        (alert(severity=Severity.WARNING), APP_ONLY, None, False),  # no phone
        (alert(state=AlertState.REPEATED), DAUGHTER, True, False),
        (alert(state=AlertState.ACKNOWLEDGED), DAUGHTER, True, False),
        (alert(state=AlertState.RESOLVED), DAUGHTER, True, True),
        (alert(state=AlertState.RESOLVED), DAUGHTER, None, True),  # told before the hub restarted
        (alert(state=AlertState.RESOLVED), DAUGHTER, False, False),  # her SMS never got through
        (alert(severity=Severity.WARNING, state=AlertState.RESOLVED), DAUGHTER, None, False),
        (alert(severity=Severity.EMERGENCY), HIS_SON, None, False),  # r-1's alert is not his to read
        (replace(alert(severity=Severity.EMERGENCY), resident_id="r-2"), HIS_SON, None, True),
    ],
)
def test_which_changes_go_by_sms(change, contact, delivered, wanted):
    assert sms_wanted(change, contact, delivered=delivered) is wanted


def test_sms_text_in_each_language():
    low = alert()
    assert sms_text(low, Language.ZH, TZ) == (
        "【颐养】紧急·低血糖：血糖偏低，请尽快处理。血糖 3.2 mmol/L。住户 r-1，01-05 14:32"
    )
    assert sms_text(low, Language.EN, TZ) == (
        "[Yiyang] URGENT - Low glucose: Glucose low: act soon. glucose 3.2 mmol/L. Resident r-1, 01-05 14:32"
    )
    assert sms_text(low, Language.ZH_EN, TZ).startswith("【颐养】紧急·低血糖")
    clear = replace(low, state=AlertState.RESOLVED, message=Message("血糖已恢复正常", "Glucose back to normal"))
    assert sms_text(clear, Language.ZH, TZ) == "【颐养】已解除·低血糖：血糖已恢复正常。住户 r-1，01-05 14:32 的警报"


def test_contacts_are_validated():
    with pytest.raises(ValueError, match=r"E\.164"):
        Contact("x", phone="13800138000")
    with pytest.raises(ValueError, match="tier"):
        Contact("x", phone="+8613800138000", tier=4)


def test_backoff_repeats_its_last_step():
    assert [retry_delay_s(n, (1.0, 5.0)) for n in (1, 2, 3, 9)] == [1.0, 5.0, 5.0, 5.0]


# -- against the simulator -------------------------------------------------------------------------


async def test_urgent_goes_to_the_daughter_only_and_all_clear_follows(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER, NEIGHBOUR], Clock(), tz=TZ)
        raised = alert()
        notifier.on_change(change(raised))
        await notifier.wait_idle()
        notifier.on_change(change(raised.with_state(AlertState.ACKNOWLEDGED, acked_by="daughter")))
        notifier.on_change(change(replace(raised, state=AlertState.RESOLVED)))
        await notifier.wait_idle()
    assert phones(sim) == [
        (DAUGHTER.phone, sms_text(raised, Language.ZH, TZ)),
        (DAUGHTER.phone, sms_text(replace(raised, state=AlertState.RESOLVED), Language.ZH, TZ)),
    ]
    assert [(a.contact_id, a.state, a.outcome) for a in notifier.attempts] == [
        ("daughter", AlertState.RAISED, Outcome.SENT),
        ("daughter", AlertState.RESOLVED, Outcome.SENT),
    ]


async def test_escalation_reaches_the_emergency_contact_and_a_long_chinese_text_is_one_message(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER, NEIGHBOUR], Clock(), tz=TZ)
        fall = alert(AlertKind.FALL, Severity.URGENT)
        notifier.on_change(change(fall))
        await notifier.wait_idle()
        long_lie = replace(fall, state=AlertState.ESCALATED, severity=Severity.EMERGENCY,
                           message=Message("跌倒后长时间未动，情况危急，请立即上门查看或拨打120急救电话。" * 2,
                                           "Long lie after a fall: no movement, urgent"))
        notifier.on_change(change(long_lie))
        await notifier.wait_idle()
    sent = sim.sent()
    assert [(entry["number"], entry["parts"]) for entry in sent] == [
        (DAUGHTER.phone, 1), (DAUGHTER.phone, 2), (NEIGHBOUR.phone, 1),
    ]
    assert sent[1]["text"] == sms_text(long_lie, Language.ZH, TZ)
    assert sent[2]["text"] == sms_text(long_lie, Language.EN, TZ)


async def test_warnings_never_and_all_clear_only_after_an_sms(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER], Clock(), tz=TZ)
        warning = alert(AlertKind.MEASUREMENT_MISSED, Severity.WARNING, alert_id="w-1")
        notifier.on_change(change(warning))
        notifier.on_change(change(replace(warning, state=AlertState.RESOLVED)))
        await notifier.wait_idle()
    assert sim.sent() == []
    assert notifier.attempts == ()


async def test_rate_limit_spares_emergencies(sim):
    clock = Clock()
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER], clock, tz=TZ, max_per_contact_per_hour=2)
        for n in range(3):
            notifier.on_change(change(alert(alert_id=f"u-{n}")))
            await notifier.wait_idle()
        notifier.on_change(change(alert(AlertKind.HELP_REQUEST, Severity.EMERGENCY, alert_id="e-1")))
        await notifier.wait_idle()
        clock.now = T0 + timedelta(hours=1)
        notifier.on_change(change(alert(alert_id="u-3")))
        await notifier.wait_idle()
    assert [(a.alert_id, a.outcome) for a in notifier.attempts] == [
        ("u-0", Outcome.SENT), ("u-1", Outcome.SENT), ("u-2", Outcome.RATE_LIMITED),
        ("e-1", Outcome.SENT), ("u-3", Outcome.SENT),
    ]
    assert len(sim.sent()) == 4


async def test_failed_send_is_retried_with_backoff_and_the_attempts_recorded(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER], Clock(), tz=TZ, retry_delays_s=(0.05,))
        await sim.command("cms-error 500 2")
        notifier.on_change(change(alert()))
        await notifier.wait_idle()
    assert [(a.attempt, a.outcome) for a in notifier.attempts] == [
        (1, Outcome.FAILED), (2, Outcome.FAILED), (3, Outcome.SENT),
    ]
    assert notifier.attempts[0].error == "AtCommandError: AT+CMGS=... failed: +CMS ERROR: 500 (unknown error)"
    assert len(sim.sent()) == 1


async def test_gives_up_after_max_attempts_and_then_no_all_clear(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER], Clock(), tz=TZ, retry_delays_s=(0.02,), max_attempts=2)
        await sim.command("noreg")
        notifier.on_change(change(alert()))
        await notifier.wait_idle()
        notifier.on_change(change(alert(state=AlertState.RESOLVED)))
        await notifier.wait_idle()
    assert [(a.attempt, a.outcome) for a in notifier.attempts] == [(1, Outcome.FAILED), (2, Outcome.GAVE_UP)]
    assert sim.sent() == []


async def test_resolved_while_retrying_cancels_the_pending_sms(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER], Clock(), tz=TZ, retry_delays_s=(0.3,))
        await sim.command("cms-error 500")
        notifier.on_change(change(alert()))
        while not notifier.attempts:
            await asyncio.sleep(0.02)
        notifier.on_change(change(alert(state=AlertState.RESOLVED)))
        await notifier.wait_idle()
    assert [(a.attempt, a.outcome) for a in notifier.attempts] == [(1, Outcome.FAILED)]
    assert sim.sent() == []


async def test_only_the_contacts_a_change_is_for_get_it_and_a_repeat_does_not_stop_a_retry(sim):
    async with modem_running(sim) as modem:
        notifier = SmsNotifier(modem, [DAUGHTER, NEIGHBOUR], Clock(), tz=TZ, retry_delays_s=(0.3,))
        help_call = alert(AlertKind.HELP_REQUEST, Severity.EMERGENCY)
        await sim.command("cms-error 500 1")
        notifier.on_change(change(help_call, ("daughter",)))  # tier 1
        while not notifier.attempts:
            await asyncio.sleep(0.02)
        # While her SMS waits to be retried: a repeat (never by SMS) and tier 2's call, for the neighbour.
        notifier.on_change(change(help_call.with_state(AlertState.REPEATED), ("daughter",)))
        notifier.on_change(change(help_call.with_state(AlertState.ESCALATED), ("neighbour",)))
        await notifier.wait_idle()
        notifier.on_change(change(help_call.with_state(AlertState.RESOLVED), ("daughter", "neighbour")))
        await notifier.wait_idle()
    assert sorted((a.contact_id, a.state.value, a.outcome.value) for a in notifier.attempts) == [
        ("daughter", "raised", "failed"), ("daughter", "raised", "sent"), ("daughter", "resolved", "sent"),
        ("neighbour", "escalated", "sent"), ("neighbour", "resolved", "sent"),
    ]
