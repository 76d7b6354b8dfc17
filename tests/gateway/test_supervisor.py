"""The supervisor: a failing service is reported and restarted with a growing, capped delay, never fatal."""

from __future__ import annotations

import asyncio

import pytest

from gateway.supervisor import HEALTHY_AFTER_S, RESTART_CAP_S, restart_delay, supervise


def test_restart_delay_doubles_from_one_second_to_the_cap() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(10_000) == RESTART_CAP_S
    with pytest.raises(ValueError, match="1 or more"):
        restart_delay(0)


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[str, str | None]] = []

    def __call__(self, name: str, text: str | None) -> None:
        self.items.append((name, text))


async def test_a_failing_service_is_restarted_reported_and_cleared_once_it_runs_well() -> None:
    runs = 0
    healthy = asyncio.Event()
    delays: list[float] = []

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError(f"disk hiccup {runs}")
        healthy.set()
        await asyncio.Event().wait()  # then runs forever

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    reports = Reports()
    task = asyncio.create_task(supervise("uplink", flaky, reports, sleep=no_wait))
    await asyncio.wait_for(healthy.wait(), 5)
    assert delays == [1.0, 2.0, 4.0]
    assert [text for _, text in reports.items] == [
        "uplink failed (1x, last: RuntimeError: disk hiccup 1); restarting in 1 s",
        "uplink failed (2x, last: RuntimeError: disk hiccup 2); restarting in 2 s",
        "uplink failed (3x, last: RuntimeError: disk hiccup 3); restarting in 4 s",
    ]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_problem_clears_after_running_well_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.supervisor.HEALTHY_AFTER_S", 0.01)
    attempts = 0
    cleared = asyncio.Event()

    async def once_broken() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("no such device")
        await asyncio.Event().wait()

    async def no_wait(_seconds: float) -> None:
        return None

    def report(name: str, text: str | None) -> None:
        if text is None:
            cleared.set()

    task = asyncio.create_task(supervise("device:meter", once_broken, report, sleep=no_wait))
    await asyncio.wait_for(cleared.wait(), 5)
    assert attempts == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert HEALTHY_AFTER_S > 0


async def test_cancelling_the_supervisor_cancels_the_service() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def service() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    task = asyncio.create_task(supervise("status", service, Reports()))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_a_service_that_returns_is_not_restarted() -> None:
    runs = 0

    async def done() -> None:
        nonlocal runs
        runs += 1

    await asyncio.wait_for(supervise("watchdog", done, Reports()), 5)
    assert runs == 1
