"""Driving a session on a real asyncio loop in a test, and failing the test if anything blocks that loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar


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


def run_checked(scenario: Awaitable[None], *, slow_s: float = 0.25) -> None:
    """Run ``scenario`` in asyncio debug mode and fail if a callback held the loop longer than ``slow_s``.

    0.25 s is above scheduling hiccups on a busy 2-core box (100 ms seen on a loaded CI run) and below
    any blocking pyserial read (the session tests' port timeouts are 0.3 s and longer). What the test
    process allocated before (the worker's earlier tests) is frozen out of the garbage collector for the
    run: a full collection of it would otherwise be charged to whichever callback it interrupted."""

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = slow_s
        await scenario

    slow: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: slow.append(record.getMessage())  # type: ignore[method-assign]
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    gc.freeze()
    try:
        asyncio.run(main(), debug=True)
    finally:
        gc.unfreeze()
        asyncio_log.removeHandler(handler)
    assert not slow, slow
