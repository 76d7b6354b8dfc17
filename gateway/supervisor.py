"""Keeps the daemon's services and device sessions running: a failure is reported and restarted, never fatal.

Before, a failed service was re-raised to stop the daemon so that systemd would restart it. That
turned every persistent fault (a full disk, a bad retained message, a driver bug on one device)
into a crash loop, with the family hearing nothing and nobody told. Now each service runs under a
small supervisor loop: on failure the traceback is logged once, a problem is put on the status
board (``yiyang status``, the retained ``status`` topic, the fleet's ``doctor``), and the service
starts again after a capped, growing delay. The problem clears once it has run well for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RESTART_INITIAL_S = 1.0
"""Most failures are transient (a device unplugged mid-exchange, a disk briefly full): retry soon."""
RESTART_CAP_S = 60.0
"""A fault that persists (a driver bug, a broken disk) is retried once a minute: often enough to
recover by itself when the cause goes, rarely enough not to fill the journal."""
HEALTHY_AFTER_S = 60.0
"""Running this long after a restart counts as recovered: the problem clears, the delay resets."""

Report = Callable[[str, str | None], None]
"""(service name, problem text or None when it cleared)."""


def restart_delay(failures: int) -> float:
    """Seconds before the ``failures``-th consecutive restart (1 = after the first failure)."""
    if failures < 1:
        raise ValueError(f"failures must be 1 or more, got {failures}")
    return min(RESTART_CAP_S, RESTART_INITIAL_S * 2.0 ** min(failures - 1, 30))


async def supervise(name: str, start: Callable[[], Awaitable[None]], report: Report, *,
                    monotonic: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Run ``start()`` until it returns; restart it after each failure. Cancel to stop it."""
    failures = 0
    while True:
        task = asyncio.ensure_future(start())
        try:
            if failures:
                done, _ = await asyncio.wait({task}, timeout=HEALTHY_AFTER_S)
                if not done:
                    log.warning("service recovered service=%s after_failures=%d", name, failures)
                    report(name, None)
                    failures = 0
            await task
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            delay = restart_delay(failures)
            if failures == 1:
                log.exception("service failed service=%s restart_in_s=%.0f", name, delay)
            else:
                log.error("service failed again service=%s failures=%d restart_in_s=%.0f error=%s", name,
                          failures, delay, _describe(exc))
            report(name, f"{name} failed ({failures}x, last: {_describe(exc)}); restarting in {delay:.0f} s")
            await sleep(delay)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
