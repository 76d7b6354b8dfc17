"""Commands from the fleet operator or a technician over MQTT: ``cmd/{name}`` -> ``cmd/{name}/result``.

Payload (docs/mqtt-contract.md, "Signed commands"): ``{"request_id", "issued_at", "args": {...},
"signature"}``. The signature is the fleet's Ed25519 signature over the canonical JSON of
``{"gateway_id", "command", "request_id", "issued_at", "args"}``: naming the hub and the command in
what is signed means a captured ``ping`` cannot be replayed as another command or at another hub;
signing ``issued_at`` means it cannot be given a new time. The broker's ACL already limits who may
write ``cmd/#``; the signature makes the hub itself sure.

Replays: a command is refused when older than ten minutes or issued more than two in the future
(gateway.fleet.freshness), and when its request id was answered before: the ids are kept on disk
(gateway.fleet.answered), so a command retained on the broker does not run again at every restart.
A hub whose clock is not synchronised cannot check ages: it then runs only the commands marked
``repeatable`` (harmless to run twice), refuses the others until NTP has set its clock, and says
in each answer that only the request id guarded it.

What each command does lives in gateway.fleet.handlers; this module only decides whether to run it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import InboundError
from gateway.fleet.answered import AnsweredRequests
from gateway.fleet.errors import AnsweredFileError, CommandError
from gateway.fleet.freshness import Freshness, check_freshness, parse_issued_at
from gateway.fleet.signing import SignatureError, verify
from gateway.inbound import excerpt, parse_json_bounded
from gateway.logs import RateLimitedLog

__all__ = ["MAX_PAYLOAD_BYTES", "Command", "CommandError", "CommandService", "Handler", "Reply"]

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
REQUEST_ID_MAX_CHARS = 128
"""A UUID is 36; the bound keeps the answered-requests file small whatever the fleet tool sends."""
REFUSALS_LOGGED = 10
"""Refused commands logged per minute (then one summary line)."""
UNCHECKED_AGE = ("hub clock not synchronised: issued_at was not checked; this request id is refused "
                 "from now on, but an old command with a new id could not be told from a new one")


@dataclass(frozen=True, slots=True)
class Command:
    handler: Handler
    repeatable: bool
    """Harmless to run twice: it reads the hub, or asks devices for records the outbox dedupes.
    Only these run on a hub whose clock is not synchronised, where a replayed command with a
    request id the hub never saw cannot be told by its age."""


class CommandService:
    def __init__(self, *, gateway_id: str, public_key: Ed25519PublicKey | None, commands: Mapping[str, Command],
                 reply: Reply, answered: AnsweredRequests, now: Callable[[], datetime],
                 clock_synced: Callable[[], bool], clock: Callable[[], float] = time.monotonic,
                 key_source: Callable[[], Ed25519PublicKey | None] | None = None) -> None:
        """``key_source``, when given, is asked for the fleet's key at each command (it follows a key
        rotation); else ``public_key`` is the key."""
        self._gateway_id = gateway_id
        self._key = public_key
        self._key_source = key_source
        self._commands = dict(commands)
        self._reply = reply
        self._answered = answered
        self._now = now
        self._clock_synced = clock_synced
        # Anyone who may write cmd/# can send garbage by the thousand; each is still answered.
        self._refusals = RateLimitedLog(log, "command refused", per_window=REFUSALS_LOGGED, window_s=60.0,
                                        clock=clock)
        self._save_failures = RateLimitedLog(log, "answered commands not saved", per_window=1, window_s=600.0,
                                             clock=clock)

    def replace_commands(self, commands: Mapping[str, Command]) -> None:
        """The commands of a reloaded configuration (its devices and residents); answered ids are kept."""
        self._commands = dict(commands)

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
            command, freshness = await self._admit(name, request)
            result = await command.handler(request["args"])
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
        log.info("command done command=%s request_id=%s age_checked=%s", excerpt(name, ID_CHARS),
                 excerpt(request_id, ID_CHARS), freshness.age_checked)
        answer: dict[str, Any] = {"ok": True, "result": result}
        if not freshness.age_checked:
            answer["warning"] = UNCHECKED_AGE
        return request_id, answer

    async def _admit(self, name: str, request: dict[str, Any]) -> tuple[Command, Freshness]:
        """The command to run, once the request is authentic, fresh and new; CommandError otherwise."""
        issued_at = parse_issued_at(request.get("issued_at"))
        self._authenticate(name, request)
        command = self._commands.get(name)
        if command is None:
            raise CommandError(f"unknown command '{excerpt(name, ID_CHARS)}'; "
                               f"known: {', '.join(sorted(self._commands))}")
        now, synced = self._now(), self._clock_synced()
        freshness = check_freshness(issued_at, now=now, clock_synced=synced)
        if not freshness.age_checked and not command.repeatable:
            raise CommandError(f"command refused: the hub clock is not synchronised (no NTP yet), so the age "
                               f"of '{name}' cannot be checked and it is not safe to run twice; send it again "
                               "once status shows clock_synced")
        request_id = request["request_id"]
        if request_id in self._answered:
            raise CommandError(f"request {request_id} was already answered (replay?)")
        # Remembered before it runs: a restart during the command must not run it again.
        self._answered.remember(request_id, issued_at, now=now, clock_synced=synced)
        try:
            await self._answered.save()
        except AnsweredFileError as exc:
            # The technician may need this very command to see why the disk fails: it runs, and the
            # id is refused from memory until the next restart.
            self._save_failures.log(logging.ERROR, "answered fleet commands not saved reason=%s: a restart "
                                    "forgets the ids answered meanwhile", exc)
        return command, freshness

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        try:
            request = parse_json_bounded(payload, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_DEPTH)
        except InboundError as exc:
            raise CommandError(f"command refused: {exc}; send {{\"request_id\", \"issued_at\", \"args\", "
                               "\"signature\"}") from exc
        if not isinstance(request, dict) or not isinstance(request.get("request_id"), str) \
                or not request["request_id"] or not isinstance(request.get("args", {}), dict):
            raise CommandError("command needs a request_id (string) and args (object)")
        if len(request["request_id"]) > REQUEST_ID_MAX_CHARS:
            raise CommandError(f"command refused: request_id longer than {REQUEST_ID_MAX_CHARS} characters")
        request.setdefault("args", {})
        return request

    def _authenticate(self, name: str, request: dict[str, Any]) -> None:
        key = self._key_source() if self._key_source is not None else self._key
        if key is None:
            raise CommandError("this hub has no fleet public key ([fleet] public_key_file): commands are off")
        signed = {"gateway_id": self._gateway_id, "command": name, "request_id": request["request_id"],
                  "issued_at": request["issued_at"], "args": request["args"], "signature": request.get("signature")}
        verify(signed, key)
