"""SMS to family contacts: emergency and urgent alerts, and the all clear, when the internet may be down.

Which changes go by SMS (``sms_wanted``): to the contacts with a phone that a change is for (its
``notify``, :mod:`gateway.respond.escalation`'s choice: the first tier when raised, the next tier when nobody
acknowledged, everyone told when the severity rises), an alert raised or escalated at or above the
contact's minimum severity; the all clear (resolved) to every one of them, except those whose SMS
about the alert this hub knows did not get through.
Warnings, repeats and acknowledgements never do (the MQTT app carries those). Each contact gets at
most ``max_per_contact_per_hour`` SMS except emergencies, so a flapping sensor cannot run up the
family's phone bill or bury the one message that matters. A failed send is retried with backoff.

Phone numbers never reach a log; contacts are named by id. Message text carries what the MQTT
alert carries (the value the family needs to judge it), nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Protocol

from drivers.errors import DriverError
from gateway.alerts.model import Alert, AlertChange, AlertState, Evidence
from gateway.vocabulary import AlertKind, Language, Severity

log = logging.getLogger(__name__)

SMS_STATES = frozenset({AlertState.RAISED, AlertState.ESCALATED})
SETTLED_STATES = frozenset({AlertState.ACKNOWLEDGED, AlertState.RESOLVED})

RETRY_DELAYS_S = (10.0, 30.0, 60.0, 120.0, 300.0)
"""Waits between attempts: a modem that just lost the cell usually has it back within a minute; a
SIM out of credit or a dead modem does not, and then five tries (about 9 minutes) is enough to
show the failure on the status page without hammering the network."""
RATE_WINDOW = timedelta(hours=1)
RESOLVED_MEMORY = 256
"""Resolved alerts remembered so an SMS still in flight when its alert cleared gets its all clear."""


class Recipient(Protocol):
    """A contact as SMS needs it (:class:`gateway.respond.contacts.Contact` is one); phone numbers never
    reach a log."""

    @property
    def id(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def min_severity(self) -> Severity: ...
    @property
    def language(self) -> Language: ...
    def follows(self, resident_id: str) -> bool: ...


class SmsSender(Protocol):
    """What the notifier needs of the modem (``drivers.serial.gsm_modem.GsmModem``)."""

    async def send_sms(self, number: str, text: str) -> object: ...


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    """This attempt failed; another follows unless it was the last."""
    GAVE_UP = "gave_up"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class SmsAttempt:
    alert_id: str
    contact_id: str
    state: AlertState
    at: datetime
    attempt: int
    outcome: Outcome
    error: str | None = None


def sms_wanted(alert: Alert, contact: Recipient, *, delivered: bool | None) -> bool:
    """Whether this alert change, which is for ``contact``, goes to it by SMS.

    ``delivered``: whether the SMS about this alert reached the contact; False when it did not (or is
    still on its way), None when this process never sent it (the hub restarted since).
    """
    if not contact.phone or not contact.follows(alert.resident_id):
        return False  # another resident's health is not this contact's to read
    if alert.severity is Severity.WARNING or not alert.severity.at_least(contact.min_severity):
        return False  # warnings, and so their all clear, are for the app
    if alert.state is AlertState.RESOLVED:
        return delivered is not False
    return alert.state in SMS_STATES


def retry_delay_s(attempt: int, delays: Sequence[float] = RETRY_DELAYS_S) -> float:
    """Wait after failed attempt ``attempt`` (1, 2, ...); the last delay repeats."""
    return delays[min(attempt, len(delays)) - 1]


# -- the text -------------------------------------------------------------------------------------

SEVERITY_WORDS: dict[Severity, tuple[str, str]] = {
    Severity.EMERGENCY: ("危急", "EMERGENCY"),
    Severity.URGENT: ("紧急", "URGENT"),
    Severity.WARNING: ("提醒", "Warning"),
}
KIND_WORDS: dict[AlertKind, tuple[str, str]] = {
    AlertKind.HYPOGLYCAEMIA: ("低血糖", "Low glucose"),
    AlertKind.HYPERGLYCAEMIA: ("高血糖", "High glucose"),
    AlertKind.HYPERTENSIVE_CRISIS: ("高血压危象", "Hypertensive crisis"),
    AlertKind.HYPERTENSION_GRADE3: ("3级高血压", "Grade 3 hypertension"),
    AlertKind.HYPOTENSION: ("低血压", "Low blood pressure"),
    AlertKind.PULSE_OUT_OF_RANGE: ("脉搏异常", "Pulse out of range"),
    AlertKind.SPO2_LOW: ("血氧偏低", "Low SpO2"),
    AlertKind.FEVER: ("发热", "Fever"),
    AlertKind.HYPOTHERMIA: ("体温过低", "Low body temperature"),
    AlertKind.REMEASURE: ("需重新测量", "Measure again"),
    AlertKind.FALL: ("跌倒", "Fall"),
    AlertKind.HELP_REQUEST: ("求助", "Help call"),
    AlertKind.DEVICE_SILENT: ("设备无信号", "Device silent"),
    AlertKind.MEASUREMENT_MISSED: ("漏测", "Measurement missed"),
    AlertKind.TEST: ("测试", "Test"),
}


@dataclass(frozen=True, slots=True)
class ValueWords:
    keys: tuple[str, ...]
    zh: str
    en: str


VALUE_WORDS: dict[str, ValueWords] = {
    "blood_pressure": ValueWords(("systolic", "diastolic"), "血压 {0}/{1} mmHg", "BP {0}/{1} mmHg"),
    "blood_glucose": ValueWords(("value",), "血糖 {0} mmol/L", "glucose {0} mmol/L"),
    "spo2": ValueWords(("spo2",), "血氧 {0}%", "SpO2 {0}%"),
    "body_temperature": ValueWords(("value",), "体温 {0}°C", "temperature {0} °C"),
}
"""The measured value as the alert's evidence carries it (``reading_type`` plus the wire values)."""


def _value(evidence: Evidence) -> tuple[str, str] | None:
    words = VALUE_WORDS.get(str(evidence.get("reading_type")))
    if words is None:
        return None
    values = [evidence.get(key) for key in words.keys]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return words.zh.format(*values), words.en.format(*values)


def sms_text(alert: Alert, language: Language, tz: tzinfo) -> str:
    """A short alert text: what, how serious, the value, who, when. Chinese first when both."""
    when = alert.raised_at.astimezone(tz).strftime("%m-%d %H:%M")
    kind_zh, kind_en = KIND_WORDS[alert.kind]
    value = _value(alert.evidence)
    if alert.state is AlertState.RESOLVED:
        zh = f"【颐养】已解除·{kind_zh}：{alert.message.zh}。住户 {alert.resident_id}，{when} 的警报"
        en = f"[Yiyang] ALL CLEAR - {kind_en}: {alert.message.en}. Resident {alert.resident_id}, alert of {when}"
    else:
        severity_zh, severity_en = SEVERITY_WORDS[alert.severity]
        zh = f"【颐养】{severity_zh}·{kind_zh}：{alert.message.zh}。" + (f"{value[0]}。" if value else "")
        zh += f"住户 {alert.resident_id}，{when}"
        en = f"[Yiyang] {severity_en} - {kind_en}: {alert.message.en}. " + (f"{value[1]}. " if value else "")
        en += f"Resident {alert.resident_id}, {when}"
    return {Language.ZH: zh, Language.EN: en, Language.ZH_EN: f"{zh} / {en}"}[language]


# -- the notifier ---------------------------------------------------------------------------------


class SmsNotifier:
    """Listens to alert changes (``on_change``) and gets them to contacts' phones by SMS."""

    def __init__(
        self,
        modem: SmsSender,
        contacts: Sequence[Recipient],
        now: Callable[[], datetime],
        *,
        tz: tzinfo,
        max_per_contact_per_hour: int = 6,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        max_attempts: int = len(RETRY_DELAYS_S) + 1,
        on_attempt: Callable[[SmsAttempt], None] = lambda attempt: None,
    ) -> None:
        if len({c.id for c in contacts}) != len(contacts):
            raise ValueError("contact ids must be unique")
        if max_per_contact_per_hour < 1 or max_attempts < 1 or not retry_delays_s:
            raise ValueError("max_per_contact_per_hour and max_attempts must be >= 1, retry_delays_s non-empty")
        self._modem = modem
        self._contacts = {c.id: c for c in contacts if c.phone}
        self._now = now
        self._tz = tz
        self._limit = max_per_contact_per_hour
        self._delays = tuple(retry_delays_s)
        self._max_attempts = max_attempts
        self._on_attempt = on_attempt
        self._attempts: deque[SmsAttempt] = deque(maxlen=1000)
        self._sent_to: dict[str, set[str]] = {}
        """Alert id -> the contacts its SMS reached."""
        self._attempted: dict[str, set[str]] = {}
        """Alert id -> the contacts an SMS about it was started for, in this process."""
        self._recent: dict[str, deque[datetime]] = {c: deque() for c in self._contacts}
        self._generation: dict[tuple[str, str], int] = {}
        self._resolved: OrderedDict[str, Alert] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def attempts(self) -> tuple[SmsAttempt, ...]:
        """The most recent attempts, oldest first (for the status page and tests)."""
        return tuple(self._attempts)

    def on_change(self, change: AlertChange) -> None:
        """An alert was recorded in a new state (an ``AlertService`` listener); never blocks."""
        alert = change.alert
        if alert.state is AlertState.RESOLVED:
            self._resolved[alert.alert_id] = alert
            while len(self._resolved) > RESOLVED_MEMORY:
                self._resolved.popitem(last=False)
        sent_to = self._sent_to.get(alert.alert_id, set())
        attempted = self._attempted.setdefault(alert.alert_id, set())
        for contact in self._contacts.values():
            key = (alert.alert_id, contact.id)
            delivered = True if contact.id in sent_to else (False if contact.id in attempted else None)
            wanted = contact.id in change.notify and sms_wanted(alert, contact, delivered=delivered)
            if wanted or alert.state in SETTLED_STATES:
                # A newer message for this contact, or an alert someone took on or that cleared,
                # supersedes a delivery still waiting to retry; a repeat or another tier's call does not.
                self._generation[key] = self._generation.get(key, 0) + 1
            if wanted:
                attempted.add(contact.id)
                self._spawn(alert, contact, self._generation[key])
        if alert.state is AlertState.RESOLVED:
            self._sent_to.pop(alert.alert_id, None)
            self._attempted.pop(alert.alert_id, None)

    async def wait_idle(self) -> None:
        """Until every delivery has been sent or given up (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, alert: Alert, contact: Recipient, generation: int) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(alert, contact, generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(self, alert: Alert, contact: Recipient, attempt: int, outcome: Outcome,
                error: str | None = None) -> None:  # fmt: skip
        entry = SmsAttempt(alert.alert_id, contact.id, alert.state, self._now(), attempt, outcome, error)
        self._attempts.append(entry)
        level = logging.INFO if outcome is Outcome.SENT else logging.WARNING
        log.log(level, "sms %s alert_id=%s contact=%s state=%s attempt=%d%s", outcome.value, alert.alert_id,
                contact.id, alert.state.value, attempt, f" error={error}" if error else "")  # fmt: skip
        self._on_attempt(entry)

    def _rate_limited(self, alert: Alert, contact: Recipient) -> bool:
        if alert.severity is Severity.EMERGENCY:
            return False  # an emergency (and its all clear) always goes
        recent = self._recent[contact.id]
        while recent and self._now() - recent[0] >= RATE_WINDOW:
            recent.popleft()
        return len(recent) >= self._limit

    async def _deliver(self, alert: Alert, contact: Recipient, generation: int) -> None:
        key = (alert.alert_id, contact.id)
        if self._rate_limited(alert, contact):
            self._record(alert, contact, 1, Outcome.RATE_LIMITED)
            return
        text = sms_text(alert, contact.language, self._tz)
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._modem.send_sms(contact.phone, text)
            except (DriverError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ValueError) or attempt == self._max_attempts:
                    self._record(alert, contact, attempt, Outcome.GAVE_UP, error)  # another try cannot help
                    return
                self._record(alert, contact, attempt, Outcome.FAILED, error)
                await asyncio.sleep(retry_delay_s(attempt, self._delays))
                if self._generation.get(key) != generation:
                    return  # the alert moved on; its newer state has its own delivery
                continue
            self._record(alert, contact, attempt, Outcome.SENT)
            self._recent[contact.id].append(self._now())
            break
        else:
            return
        if alert.state is AlertState.RESOLVED:
            return
        resolved = self._resolved.get(alert.alert_id)
        if resolved is None:
            self._sent_to.setdefault(alert.alert_id, set()).add(contact.id)
        else:
            # It cleared while this SMS was on its way: the contact must not be left worrying.
            self._spawn(resolved, contact, self._generation.get(key, 0))
