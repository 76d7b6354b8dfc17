"""The hub's MQTT inbox: each message goes to the handler of the filter it matches, and is handled alone.

Anything a client sends is hostile input. A handler that fails on one message is logged (ids only,
rate-limited) and the inbox goes on with the next one: a bad message never stops the family's
acknowledgements or the fleet's commands.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.logs import RateLimitedLog, log_id
from gateway.mqtt import IncomingMessage
from gateway.topics import matches

log = logging.getLogger(__name__)

Handler = Callable[[IncomingMessage], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Route:
    topic_filter: str
    """Below the gateway root, as subscribed, e.g. ``cmd/+``."""
    handler: Handler
    background: bool = False
    """Handle as a task of its own: a command may take a minute, and acks must not wait behind it."""


class Inbox:
    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = tuple(routes)
        self._running: set[asyncio.Task[None]] = set()
        self._failures = RateLimitedLog(log, "inbox message dropped", per_window=10, window_s=60.0,
                                        clock=time.monotonic)

    @property
    def filters(self) -> tuple[str, ...]:
        return tuple(route.topic_filter for route in self._routes)

    async def serve(self, receive: Callable[[], Awaitable[IncomingMessage]]) -> None:
        """Handle messages one at a time until cancelled; background handlers are cancelled with it."""
        try:
            while True:
                message = await receive()
                route = next((r for r in self._routes if matches(r.topic_filter, message.topic)), None)
                if route is None:
                    continue
                if route.background:
                    task = asyncio.create_task(self._handle(route, message))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                else:
                    await self._handle(route, message)
        finally:
            for task in self._running:
                task.cancel()

    async def _handle(self, route: Route, message: IncomingMessage) -> None:
        try:
            await route.handler(message)
        except Exception as exc:  # noqa: BLE001 - the point: one message's failure stays with that message
            # The exception's text may quote the payload: only its type and where it was raised.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self._failures.log(logging.WARNING, "inbox message dropped topic=%s error=%s at=%s:%s",
                                   "/".join(log_id(level) for level in message.topic.split("/")),
                                   type(exc).__name__, Path(frame.filename).name, frame.lineno)
