"""Commands from the fleet operator or a technician over MQTT: ``cmd/{name}`` -> ``cmd/{name}/result``.

Payload (docs/mqtt-contract.md, "Signed commands"): ``{"request_id", "args": {...}, "signature"}``. The signature is the
fleet's Ed25519 signature over the canonical JSON of ``{"gateway_id", "command", "request_id",
"args"}``: naming the hub and the command in what is signed means a captured ``ping`` cannot be
replayed as another command or at another hub, and a request id is answered once only.
The broker's ACL already limits who may write ``cmd/#``; the signature makes the hub itself sure.

Commands: ``ping``, ``queue`` (outbox statistics), ``doctor`` (the technician's problem list),
``test-alert`` (raise and clear a test alert end to end, so an installer sees the whole path).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import InboundError
from gateway.fleet.errors import CommandError
from gateway.fleet.signing import SignatureError, verify
from gateway.inbound import excerpt, parse_json_bounded
from gateway.logs import RateLimitedLog

__all__ = ["CommandError", "CommandService", "Handler", "Reply"]

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
Reply = Callable[[str, dict[str, Any]], None]

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DEPTH = 16
"""``{"args": {...}}`` is two levels; no command of ours nests its arguments deeper than a few more."""
MAX_ERROR_CHARS = 300
"""An error answer is for a person at the fleet console: long enough to say why, never a payload echo."""
ID_CHARS = 64
"""How much of a command name or request id (both chosen by the sender) goes into a log line."""
REFUSALS_LOGGED = 10
"""Refused commands logged per minute (then one summary line)."""
REMEMBERED_REQUESTS = 1000
"""Request ids answered before; enough for a day of fleet traffic to one hub."""


class CommandService:
    def __init__(self, *, gateway_id: str, public_key: Ed25519PublicKey | None,
                 handlers: Mapping[str, Handler], reply: Reply, clock: Callable[[], float] = time.monotonic) -> None:
        self._gateway_id = gateway_id
        self._key = public_key
        self._handlers = dict(handlers)
        self._reply = reply
        self._seen: OrderedDict[str, None] = OrderedDict()
        # Anyone who may write cmd/# can send garbage by the thousand; each is still answered.
        self._refusals = RateLimitedLog(log, "command refused", per_window=REFUSALS_LOGGED, window_s=60.0,
                                        clock=clock)

    async def handle(self, topic: str, payload: bytes) -> None:
        """``topic`` below the gateway root, e.g. ``cmd/ping``; results are not commands.

        Never raises: whatever goes wrong (a payload that is not a command, a handler's own bug)
        is logged and answered ``{"ok": false, "error": ...}``. It runs as a task of its own, and an
        exception there would only surface as "Task exception was never retrieved", unanswered.
        """
        parts = topic.split("/")
        if len(parts) != 2 or parts[0] != "cmd":
            return
        name = parts[1]
        request_id, outcome = await self._run(name, payload)
        if not self._send(name, {"request_id": request_id, **outcome}) and outcome["ok"]:
            # e.g. a handler that returned something JSON cannot hold: the requester still hears.
            self._send(name, {"request_id": request_id, "ok": False,
                              "error": "internal error: the result could not be sent"})

    def _send(self, name: str, answer: dict[str, Any]) -> bool:
        try:
            self._reply(f"cmd/{name}/result", answer)
        except Exception:
            log.exception("command answer not sent command=%s request_id=%s", excerpt(name, ID_CHARS),
                          excerpt(answer["request_id"] or "", ID_CHARS))
            return False
        return True

    async def _run(self, name: str, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        request_id: str | None = None
        try:
            request = self._parse(payload)
            request_id = request["request_id"]
            self._authenticate(name, request)
            handler = self._handlers.get(name)
            if handler is None:
                raise CommandError(f"unknown command '{excerpt(name, ID_CHARS)}'; "
                                   f"known: {', '.join(sorted(self._handlers))}")
            result = await handler(request["args"])
        except (CommandError, SignatureError) as exc:
            self._refusals.log(logging.WARNING, "command refused command=%s request_id=%s reason=%s",
                               excerpt(name, ID_CHARS), excerpt(request_id or "", ID_CHARS),
                               excerpt(str(exc), MAX_ERROR_CHARS))
            return request_id, {"ok": False, "error": excerpt(str(exc), MAX_ERROR_CHARS)}
        except Exception as exc:  # a handler's own bug: answered and logged, never lost in the task
            log.exception("command failed command=%s request_id=%s", excerpt(name, ID_CHARS),
                          excerpt(request_id or "", ID_CHARS))
            error = f"internal error ({type(exc).__name__}): {exc}"
            return request_id, {"ok": False, "error": excerpt(error, MAX_ERROR_CHARS)}
        log.info("command done command=%s request_id=%s", excerpt(name, ID_CHARS), excerpt(request_id, ID_CHARS))
        return request_id, {"ok": True, "result": result}

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        try:
            request = parse_json_bounded(payload, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_DEPTH)
        except InboundError as exc:
            raise CommandError(f"command refused: {exc}; send {{\"request_id\", \"args\", \"signature\"}}") from exc
        if not isinstance(request, dict) or not isinstance(request.get("request_id"), str) \
                or not request["request_id"] or not isinstance(request.get("args", {}), dict):
            raise CommandError("command needs a request_id (string) and args (object)")
        request.setdefault("args", {})
        return request

    def _authenticate(self, name: str, request: dict[str, Any]) -> None:
        if self._key is None:
            raise CommandError("this hub has no fleet public key ([fleet] public_key_file): commands are off")
        signed = {"gateway_id": self._gateway_id, "command": name, "request_id": request["request_id"],
                  "args": request["args"], "signature": request.get("signature")}
        verify(signed, self._key)
        if request["request_id"] in self._seen:
            raise CommandError(f"request {request['request_id']} was already answered (replay?)")
        self._seen[request["request_id"]] = None
        while len(self._seen) > REMEMBERED_REQUESTS:
            self._seen.popitem(last=False)
