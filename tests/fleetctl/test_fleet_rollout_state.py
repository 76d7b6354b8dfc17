"""The rollout state machine (scripts/fleetctl/rollout.py): waves, halts and timeouts, on times the test gives."""

from __future__ import annotations

from fleetctl.documents import DocumentSpec
from fleetctl.plan import plan_waves
from fleetctl.reports import Report, ReportError, ReportStatus
from fleetctl.rollout import (
    Finished,
    Halted,
    HubRecord,
    Phase,
    Policy,
    RolloutState,
    SendWave,
    Wait,
    confirm_sent,
    counts,
    expire,
    halting,
    new_rollout,
    next_step,
    record_reports,
    send_wave,
    unconfirmed_hubs,
)

T0 = 1_800_000_000.0
HUBS = [f"gw-{n:04d}" for n in range(1, 11)]
BAD = (ReportError("config.mqtt.keepalive_s", "must be at most 600"),)


def rollout(halt_after: int = 2, timeout_s: float = 150.0) -> RolloutState:
    document = DocumentSpec(version=7, issued_at="2027-01-15T08:00:00+08:00", config={"alerts": {}})
    plan = plan_waves(HUBS, canary=2, wave_percent=50)  # 2, 4, 4
    return new_rollout(document, "sha256:test", "yiyang/v1", plan, Policy(halt_after, timeout_s))


def applied(version: int = 7) -> Report:
    return Report(version=version, status=ReportStatus.APPLIED, applied_version=version)


def rejected(version: int = 7) -> Report:
    return Report(version=version, status=ReportStatus.REJECTED, errors=BAD, applied_version=6)


def test_a_wave_is_sent_only_when_every_hub_before_it_answered() -> None:
    state = rollout()
    assert next_step(state) == SendWave(0, ("gw-0001", "gw-0002"))
    state = confirm_sent(send_wave(state, T0))
    assert next_step(state) == Wait(until=T0 + 150)
    state, changed = record_reports(state, [("gw-0001", applied())], T0 + 3)
    assert changed == ("gw-0001",)
    assert isinstance(next_step(state), Wait)  # gw-0002 still out
    state, _ = record_reports(state, [("gw-0002", applied())], T0 + 4)
    assert next_step(state) == SendWave(1, ("gw-0003", "gw-0004", "gw-0005", "gw-0006"))
    assert state.hubs["gw-0001"] == HubRecord(Phase.APPLIED, sent_at=T0, answered_at=T0 + 3)


def test_reports_that_are_not_about_this_document_change_nothing() -> None:
    state = confirm_sent(send_wave(rollout(), T0))
    ignored = [
        ("gw-0001", applied(version=6)),  # the hub's previous report, still retained
        ("gw-0003", applied()),  # not sent yet (cannot be ours)
        ("gw-9999", applied()),  # not in this rollout
        ("gw-0002", Report(version=None, status=ReportStatus.REJECTED)),
    ]
    after, changed = record_reports(state, ignored, T0 + 1)
    assert after is state
    assert changed == ()


def test_a_hub_that_answered_keeps_its_first_answer() -> None:
    state = confirm_sent(send_wave(rollout(), T0))
    state, _ = record_reports(state, [("gw-0001", rejected()), ("gw-0001", applied())], T0 + 1)
    assert state.hubs["gw-0001"].phase is Phase.REJECTED
    assert state.hubs["gw-0001"].errors == BAD


def test_silence_past_the_timeout_is_no_answer_and_a_late_report_still_counts() -> None:
    state = confirm_sent(send_wave(rollout(timeout_s=150), T0))
    state, _ = record_reports(state, [("gw-0001", applied())], T0 + 1)
    assert expire(state, T0 + 149.9) == (state, ())
    state, late = expire(state, T0 + 150)
    assert late == ("gw-0002",)
    assert state.hubs["gw-0002"].phase is Phase.NO_ANSWER
    assert isinstance(next_step(state), SendWave)  # silence does not halt
    state, changed = record_reports(state, [("gw-0002", applied())], T0 + 400)
    assert changed == ("gw-0002",)
    assert counts(state).applied == 2


def test_halt_after_k_failures_sends_no_further_wave_once_the_wave_out_has_answered() -> None:
    state = confirm_sent(send_wave(rollout(halt_after=2), T0))
    state, _ = record_reports(state, [("gw-0001", rejected()), ("gw-0002", applied())], T0 + 1)
    state = confirm_sent(send_wave(state, T0 + 1))
    state, _ = record_reports(state, [("gw-0003", rejected())], T0 + 2)
    assert halting(state)  # decided: no third wave
    assert isinstance(next_step(state), Wait)  # but the second wave's hubs are still awaited
    reports = [(hub, applied()) for hub in ("gw-0004", "gw-0005", "gw-0006")]
    state, _ = record_reports(state, reports, T0 + 3)
    assert next_step(state) == Halted(failed=2)
    assert counts(state).not_sent == 4


def test_halt_after_zero_never_halts_and_a_raised_limit_goes_on() -> None:
    state = confirm_sent(send_wave(rollout(halt_after=1), T0))
    state, _ = record_reports(state, [("gw-0001", rejected()), ("gw-0002", applied())], T0 + 1)
    assert next_step(state) == Halted(failed=1)
    for limit in (0, 2):
        resumed = RolloutState(**{**_fields(state), "policy": Policy(halt_after=limit)})
        assert isinstance(next_step(resumed), SendWave)


def test_finished_when_every_wave_is_sent_and_answered() -> None:
    state = rollout()
    now = T0
    while isinstance(step := next_step(state), SendWave):
        state = confirm_sent(send_wave(state, now))
        state, _ = record_reports(state, [(hub, applied()) for hub in step.hubs], now + 1)
        now += 2
    assert step == Finished()
    assert counts(state).applied == 10


def test_a_wave_marked_sent_but_not_confirmed_is_to_be_published_again() -> None:
    state = send_wave(rollout(), T0)
    assert unconfirmed_hubs(state) == ("gw-0001", "gw-0002")
    state, _ = record_reports(state, [("gw-0001", applied())], T0 + 1)
    assert unconfirmed_hubs(state) == ("gw-0002",)  # an answer proves it arrived
    assert unconfirmed_hubs(confirm_sent(state)) == ()


def _fields(state: RolloutState) -> dict[str, object]:
    return {name: getattr(state, name) for name in RolloutState.__slots__}
