"""The BLE manager's pure decisions: backoff, which adverts start a session, wedged adapters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.policy import (
    BackoffPolicy,
    ConnectionStyle,
    LinkState,
    ScanHealth,
    SessionOutcome,
    WedgePolicy,
    advert_seen,
    normalize_address,
    power_cycle_reason,
    power_cycled,
    retry_delay,
    scan_start_failed,
    scan_started,
    session_ended,
    session_started,
    should_connect,
)

BACKOFF = BackoffPolicy(initial_s=2.0, factor=2.0, max_s=60.0, after_completed_s=30.0, after_lost_s=1.0)
WEDGE = WedgePolicy(silence_s=600.0, max_scan_start_failures=3, min_cycle_interval_s=60.0)


def test_retry_delay_doubles_from_initial_and_caps() -> None:
    assert [retry_delay(n, BACKOFF) for n in range(8)] == [0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


@settings(deadline=None, max_examples=200)
@given(st.integers(min_value=0, max_value=10_000))
def test_retry_delay_is_never_negative_nor_above_the_cap(failures: int) -> None:
    assert 0.0 <= retry_delay(failures, BACKOFF) <= BACKOFF.max_s


def test_backoff_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        BackoffPolicy(initial_s=10.0, max_s=5.0)


def test_cuff_advert_starts_a_session_once_and_not_again_right_after_it_completed() -> None:
    state = LinkState()
    assert should_connect(ConnectionStyle.ON_ADVERT, state, now=100.0)
    state = session_started(state)
    assert not should_connect(ConnectionStyle.ON_ADVERT, state, now=101.0)
    state = session_ended(state, SessionOutcome.COMPLETED, now=110.0, policy=BACKOFF)
    assert state == LinkState(running=False, failures=0, not_before=140.0)
    # The cuff keeps advertising for ~20 s after it hung up: those adverts start nothing.
    assert not should_connect(ConnectionStyle.ON_ADVERT, state, now=130.0)
    assert should_connect(ConnectionStyle.ON_ADVERT, state, now=140.0)


def test_failed_connects_back_off_and_a_success_resets_the_count() -> None:
    state = LinkState()
    for expected_failures, expected_not_before in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        state = session_ended(session_started(state), SessionOutcome.CONNECT_FAILED, now=0.0, policy=BACKOFF)
        assert (state.failures, state.not_before) == (expected_failures, expected_not_before)
    state = session_ended(session_started(state), SessionOutcome.COMPLETED, now=10.0, policy=BACKOFF)
    assert state.failures == 0


def test_a_lost_wearable_is_retried_soon() -> None:
    state = session_ended(LinkState(running=True, failures=4), SessionOutcome.LOST, now=50.0, policy=BACKOFF)
    assert state == LinkState(running=False, failures=0, not_before=51.0)


def test_bthome_adverts_never_start_a_connection() -> None:
    assert not should_connect(ConnectionStyle.ADVERT_ONLY, LinkState(), now=1e9)


def test_a_quiet_adapter_is_left_alone_before_the_silence_limit() -> None:
    health = advert_seen(scan_started(ScanHealth(), now=0.0), now=100.0)
    assert power_cycle_reason(health, expecting_adverts=True, now=699.0, policy=WEDGE) is None


def test_an_adapter_silent_for_the_limit_is_power_cycled_once_then_given_time() -> None:
    health = advert_seen(scan_started(ScanHealth(), now=0.0), now=100.0)
    assert power_cycle_reason(health, expecting_adverts=True, now=700.0, policy=WEDGE) == (
        "no advertisement for 600 s while scanning"
    )
    health = scan_started(power_cycled(health, now=700.0), now=705.0)
    assert power_cycle_reason(health, expecting_adverts=True, now=1000.0, policy=WEDGE) is None
    assert power_cycle_reason(health, expecting_adverts=True, now=1305.0, policy=WEDGE) is not None


def test_silence_proves_nothing_when_no_advert_is_expected() -> None:
    health = scan_started(ScanHealth(), now=0.0)
    assert power_cycle_reason(health, expecting_adverts=False, now=1e6, policy=WEDGE) is None


def test_repeated_scan_start_failures_power_cycle_the_adapter_but_not_in_a_loop() -> None:
    health = ScanHealth()
    for _ in range(2):
        health = scan_start_failed(health)
    assert power_cycle_reason(health, expecting_adverts=True, now=10.0, policy=WEDGE) is None
    health = scan_start_failed(health)
    assert power_cycle_reason(health, expecting_adverts=False, now=10.0, policy=WEDGE) == (
        "scanning failed to start 3 times in a row"
    )
    health = power_cycled(health, now=10.0)
    for _ in range(3):
        health = scan_start_failed(health)
    assert power_cycle_reason(health, expecting_adverts=True, now=30.0, policy=WEDGE) is None
    assert power_cycle_reason(health, expecting_adverts=True, now=70.0, policy=WEDGE) is not None


@pytest.mark.parametrize(
    ("given_address", "expected"),
    [("aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF"), (" AA-BB-CC-DD-EE-01 ", "AA:BB:CC:DD:EE:01")],
)
def test_addresses_are_normalised_as_bluez_writes_them(given_address: str, expected: str) -> None:
    assert normalize_address(given_address) == expected


def test_a_malformed_address_is_refused_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match="AA:BB:CC:DD:EE:FF"):
        normalize_address("AA:BB:CC:DD:EE")
