"""The ``logs`` command: the last lines of the hub's own log, from the in-memory ring (gateway.log_ring).

What the ring keeps is already chosen for leaving the hub (the project's own loggers only, scrubbed,
no tracebacks); this bounds how much goes back in one MQTT message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.fleet.args import whole_number
from gateway.fleet.commands import Handler
from gateway.fleet.errors import CommandError
from gateway.log_ring import LogRing
from gateway.mqtt_policy import MAX_PACKET_BYTES

LINES_DEFAULT = 100
LINES_MAX = 1000
ANSWER_LINES_MAX_BYTES = MAX_PACKET_BYTES - 64 * 1024
"""The lines' share of the answer, as JSON. The answer is one MQTT message, and neither the hub's
link nor its broker passes a packet over MAX_PACKET_BYTES (260 KiB): 64 KiB is left for the topic,
the envelope and the figures beside the lines. Fewer lines come back, newest kept, when they are
longer than that (``cut_for_size``)."""
WHAT_IS_KEPT = ("the gateway's own log lines (ids, counts and states, never health values; scrubbed again "
                "before they are kept); other libraries' warnings by logger name only; no tracebacks. "
                "The hub's journal has everything.")


def logs(ring: LogRing | None) -> Handler:
    async def handler(args: Mapping[str, Any]) -> dict[str, Any]:
        count = whole_number(args, "lines", default=LINES_DEFAULT, low=1, high=LINES_MAX)
        if ring is None:
            raise CommandError("this hub keeps no log lines in memory (its logging was not set up by "
                               "`yiyang run`): read its journal")
        tail = ring.tail(count, max_json_bytes=ANSWER_LINES_MAX_BYTES)
        return {"lines": list(tail.lines), "asked": count, "returned": len(tail.lines), "held": tail.held,
                "cut_for_size": tail.cut_for_size, "kept": WHAT_IS_KEPT}

    return handler
