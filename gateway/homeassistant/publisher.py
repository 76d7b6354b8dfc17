"""Keeps Home Assistant's retained discovery configs on the broker in step with the configuration.

At start and at every reload (:meth:`DiscoveryPublisher.configure`) the wanted configs are worked
out again (:mod:`.discovery`) and published, retained, again at every (re)connect. Configs published
before and no longer wanted (a resident or device removed, discovery turned off, another prefix)
are cleared with an empty retained message. Which topics were published is kept in the outbox's
cursors, so a resident removed while the hub was down is cleared at the next start too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from drivers.model import ReadingType
from gateway.config.schema import HomeAssistantSettings
from gateway.errors import StoreError
from gateway.homeassistant.discovery import discovery_configs, stale
from gateway.store import cursors
from gateway.store.work import Runner

log = logging.getLogger(__name__)

STORE_KEY = "homeassistant.discovery_topics"


class TopicPublisher(Protocol):
    def publish_topic(self, topic: str, payload: dict[str, Any] | None, *, qos: int = 1,
                      retain: bool = False) -> None: ...


class DiscoveryPublisher:
    def __init__(self, link: TopicPublisher, store: Runner) -> None:
        """``store``: the outbox database; the topics published are kept in its cursors."""
        self._link = link
        self._store = store
        self._wanted: dict[str, dict[str, Any]] = {}
        self._clear: list[str] = []
        self._remembered: list[str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def wanted(self) -> Mapping[str, dict[str, Any]]:
        return self._wanted

    async def configure(self, settings: HomeAssistantSettings, *, gateway_id: str, hub_root: str, version: str,
                        residents: Mapping[str, frozenset[ReadingType]]) -> None:
        """Work out the configs for this configuration, publish them and clear those no longer wanted."""
        wanted = discovery_configs(prefix=settings.prefix, gateway_id=gateway_id, hub_root=hub_root,
                                   version=version, residents=residents) if settings.discovery else {}
        before = await self._published_before()
        self._clear = sorted({*stale(before, wanted), *stale(self._clear, wanted)})
        self._wanted = wanted
        # Remember every topic that may still hold a config until the broker has had the clears.
        await self._remember(sorted({*wanted, *self._clear}))
        if wanted or self._clear:
            log.info("home assistant discovery: %d config(s), %d to clear", len(wanted), len(self._clear))
        self.publish()

    def publish(self) -> None:
        """Publish every wanted config and clear the stale ones (also the on-connect hook); never blocks."""
        for topic in self._clear:
            self._link.publish_topic(topic, None, retain=True)
        for topic, config in self._wanted.items():
            self._link.publish_topic(topic, config, retain=True)

    def connected(self) -> None:
        """On (re)connect: publish all again; once the clears went out, stop remembering their topics."""
        self.publish()
        if self._clear:
            self._clear = []
            task = asyncio.get_running_loop().create_task(self._remember(sorted(self._wanted)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _published_before(self) -> Sequence[str]:
        if self._remembered is not None:
            return self._remembered
        try:
            text = await self._store.run(cursors.get(STORE_KEY))
        except StoreError as exc:
            log.warning("home assistant discovery: topics published before cannot be read (%s); configs of "
                        "residents removed meanwhile may stay in Home Assistant", exc)
            return []
        try:
            topics = json.loads(text) if text else []
        except ValueError:
            topics = []
        self._remembered = [str(t) for t in topics] if isinstance(topics, list) else []
        return self._remembered

    async def _remember(self, topics: list[str]) -> None:
        self._remembered = topics
        try:
            await self._store.run(cursors.put(STORE_KEY, json.dumps(topics)))
        except StoreError as exc:
            log.warning("home assistant discovery: topics published cannot be kept (%s)", exc)
