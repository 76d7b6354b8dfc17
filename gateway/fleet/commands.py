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

import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.fleet.signing import SignatureError, verify

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
Reply = Callable[[str, dict[str, Any]], None]

MAX_PAYLOAD_BYTES = 64 * 1024
REMEMBERED_REQUESTS = 1000
"""Request ids answered before; enough for a day of fleet traffic to one hub."""


class CommandError(Exception):
    """The command could not run; the message goes back to the requester."""


class CommandService:
    def __init__(self, *, gateway_id: str, public_key: Ed25519PublicKey | None,
                 handlers: Mapping[str, Handler], reply: Reply) -> None:
        self._gateway_id = gateway_id
        self._key = public_key
        self._handlers = dict(handlers)
        self._reply = reply
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def handle(self, topic: str, payload: bytes) -> None:
        """``topic`` below the gateway root, e.g. ``cmd/ping``; results are not commands."""
        parts = topic.split("/")
        if len(parts) != 2 or parts[0] != "cmd":
            return
        name = parts[1]
        request_id, outcome = await self._run(name, payload)
        self._reply(f"cmd/{name}/result", {"request_id": request_id, **outcome})

    async def _run(self, name: str, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        request_id: str | None = None
        try:
            request = self._parse(payload)
            request_id = request["request_id"]
            self._authenticate(name, request)
            handler = self._handlers.get(name)
            if handler is None:
                raise CommandError(f"unknown command {name!r}; known: {', '.join(sorted(self._handlers))}")
            result = await handler(request["args"])
        except (CommandError, SignatureError) as exc:
            log.warning("command refused command=%s request_id=%s reason=%s", name, request_id, exc)
            return request_id, {"ok": False, "error": str(exc)}
        log.info("command done command=%s request_id=%s", name, request_id)
        return request_id, {"ok": True, "result": result}

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise CommandError(f"command larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            request = json.loads(payload)
        except ValueError as exc:
            raise CommandError("command is not JSON: send {\"request_id\", \"args\", \"signature\"}") from exc
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
