"""A clock the test moves and a broker in memory, for the rollout engine's unit tests.

:class:`FakeLink` keeps retained messages like a broker, and plays each hub by a script: given the
document published to it, what it reports and after how many seconds. Waiting in ``receive`` moves
the clock to the next delivery (or by the whole timeout), so a test of a 150 s timeout takes no time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetctl.errors import LinkError
from fleetctl.topics import Message
from paho.mqtt.client import topic_matches_sub


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Answer:
    status: str = "applied"
    after_s: float = 1.0
    errors: tuple[dict[str, str], ...] = ()
    delivered: bool = True
    """False: the broker keeps the report retained but drops it on its way to the tool (a full queue)."""


Script = Callable[[str, dict[str, Any]], Answer | None]
"""(hub, document) -> the hub's answer, or None for a hub that never answers."""


def report(version: int | None, status: str = "applied", errors: Sequence[dict[str, str]] = (),
           applied_version: int | None = None) -> bytes:
    return json.dumps({"version": version, "status": status, "errors": list(errors),
                       "applied_version": applied_version if applied_version is not None else version,
                       "applied_at": "2027-01-15T08:00:00+08:00", "effective": {}}).encode()


class FakeLink:
    def __init__(self, clock: FakeClock, script: Script | None = None, root: str = "yiyang/v1") -> None:
        self.clock = clock
        self.script: Script = script or (lambda _hub, _doc: Answer())
        self.root = root
        self.retained: dict[str, bytes] = {}
        self.filters: list[str] = []
        self.subscribe_calls: list[str] = []
        self.publishes: list[tuple[float, list[tuple[str, bytes]]]] = []
        """Each publish_retained call: when, and what."""
        self.fail_publish_at: int | None = None
        """Make the n-th publish_retained call (0-based) fail after publishing nothing."""
        self._pending: list[tuple[float, Message]] = []
        self._retain_later: list[tuple[float, str, bytes]] = []

    # FleetLink

    def subscribe(self, topic_filter: str) -> None:
        self.subscribe_calls.append(topic_filter)
        self._settle_retained()
        if topic_filter not in self.filters:
            self.filters.append(topic_filter)
        for topic, payload in self.retained.items():
            if topic_matches_sub(topic_filter, topic):
                self._pending.append((self.clock.now, Message(topic, payload, True)))

    def unsubscribe(self, topic_filter: str) -> None:
        self.filters.remove(topic_filter)
        self._pending = [(t, m) for t, m in self._pending if not topic_matches_sub(topic_filter, m.topic)]

    def receive(self, timeout_s: float) -> list[Message]:
        until = self.clock.now + max(0.0, timeout_s)
        due = [t for t, _ in self._pending if t <= until]
        if not due:
            self.clock.now = until
            self._settle_retained()
            return []
        self.clock.now = max(self.clock.now, min(due))
        self._settle_retained()
        ready = [m for t, m in self._pending if t <= self.clock.now]
        self._pending = [(t, m) for t, m in self._pending if t > self.clock.now]
        return [m for m in ready if any(topic_matches_sub(f, m.topic) for f in self.filters)]

    def publish_retained(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self.fail_publish_at == len(self.publishes):
            self.publishes.append((self.clock.now, []))
            raise LinkError("the broker went away (fake)")
        self.publishes.append((self.clock.now, list(messages)))
        for topic, payload in messages:
            self.retained[topic] = payload
            hub = topic.split("/")[-3]
            document = json.loads(payload)
            answer = self.script(hub, document)
            if answer is None:
                continue
            reported = f"{self.root}/{hub}/config/reported"
            body = report(document["version"], answer.status, answer.errors,
                          applied_version=document["version"] if answer.status == "applied" else None)
            self._later(answer.after_s, reported, body, answer.delivered)

    # For tests

    def hub_reports(self, hub: str, payload: bytes, after_s: float = 0.0) -> None:
        self._later(after_s, f"{self.root}/{hub}/config/reported", payload, True)

    def _later(self, after_s: float, topic: str, payload: bytes, delivered: bool) -> None:
        # Retained from the moment the hub sends it; whether it reaches us live is another matter.
        self._retain_later.append((self.clock.now + after_s, topic, payload))
        if delivered:
            self._pending.append((self.clock.now + after_s, Message(topic, payload, False)))

    def _settle_retained(self) -> None:
        for at, topic, payload in sorted(self._retain_later):
            if at <= self.clock.now:
                self.retained[topic] = payload
        self._retain_later = [item for item in self._retain_later if item[0] > self.clock.now]

    def published_hubs(self) -> list[list[str]]:
        return [[topic.split("/")[-3] for topic, _ in messages] for _, messages in self.publishes]
