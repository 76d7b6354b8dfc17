"""The tests' loop check fails a scenario that blocks its loop, and passes one that awaits."""

from __future__ import annotations

import asyncio
import time

import pytest
from loopcheck import run_checked


async def blocks() -> None:
    time.sleep(0.3)  # the point: a blocking call on the loop


async def awaits() -> None:
    await asyncio.sleep(0.3)


def test_a_blocking_call_on_the_loop_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="Executing"):
        run_checked(blocks())


def test_awaiting_passes_the_check() -> None:
    run_checked(awaits())
