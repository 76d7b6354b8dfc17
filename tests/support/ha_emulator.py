"""Home Assistant as the hub's broker sees it, for tests: it reads discovery configs and renders states.

It follows what Home Assistant's MQTT integration documents: a retained config on
``{prefix}/{component}/{node_id}/{object_id}/config`` makes an entity (an empty one removes it);
the entity's state is its ``value_template`` rendered over the latest message on its ``state_topic``
(``value_json`` is that message's JSON), and it is available when its availability topic's latest
message, through the availability ``value_template``, equals ``payload_available``. Templates are
rendered by Jinja2's immutable sandbox, the engine Home Assistant renders them with.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment
from mqtt_probe import Probe

JINJA = ImmutableSandboxedEnvironment()


def render(template: str, payload: bytes) -> str:
    value = payload.decode()
    return JINJA.from_string(template).render(value=value, value_json=json.loads(value)).strip()


class HomeAssistant:
    def __init__(self, host: str, port: int, prefix: str = "homeassistant", **account: str) -> None:
        self.prefix = prefix
        self.probe = Probe(host, port, "#", **account)

    def latest(self, topic: str) -> bytes | None:
        """The last payload seen on a topic (b"" for a cleared retained one), or None."""
        with self.probe.lock:
            found = [payload for t, payload, _ in self.probe.messages if t == topic]
        return found[-1] if found else None

    def configs(self) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config of every entity that exists now (cleared ones are gone)."""
        with self.probe.lock:
            topics = dict.fromkeys(t for t, _, _ in self.probe.messages if t.startswith(self.prefix + "/"))
        out = {}
        for topic in topics:
            payload = self.latest(topic)
            if payload:
                out[topic] = json.loads(payload)
        return out

    def state(self, config: dict[str, Any]) -> str | None:
        payload = self.latest(config["state_topic"])
        if not payload:
            return None
        return render(config.get("value_template", "{{ value }}"), payload)

    def available(self, config: dict[str, Any]) -> bool:
        for item in config.get("availability", []):
            payload = self.latest(item["topic"])
            if payload is None or render(item.get("value_template", "{{ value }}"), payload) != item.get(
                    "payload_available", "online"):
                return False
        return True

    def wait(self, predicate: Any, what: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"Home Assistant never saw {what}"
            time.sleep(0.05)

    def close(self) -> None:
        self.probe.close()
