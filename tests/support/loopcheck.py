"""Driving a session on a real asyncio loop in a test, and failing the test if anything blocks that loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import pytest


class Runs(Protocol):
    """A session or modem: ``run()`` serves until cancelled."""

    def run(self) -> Coroutine[Any, Any, None]: ...


R = TypeVar("R", bound=Runs)


@contextlib.asynccontextmanager
async def running(part: R) -> AsyncIterator[R]:
    """``part.run()`` as a task for the block, cancelled after it."""
    task = asyncio.create_task(part.run())
    try:
        yield part
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def run_without_blocking_the_loop(scenario: Callable[[], Awaitable[None]], caplog: pytest.LogCaptureFixture) -> None:
    """Run in asyncio debug mode, which logs every callback that held the loop too long."""

    async def main() -> None:
        # Above scheduling hiccups on a busy 2-core box, below any blocking pyserial read (the session
        # tests' port timeouts are 0.3 s and longer).
        asyncio.get_running_loop().slow_callback_duration = 0.25
        await scenario()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(main(), debug=True)
    slow = [record.getMessage() for record in caplog.records if record.name == "asyncio"]
    assert not slow, slow
