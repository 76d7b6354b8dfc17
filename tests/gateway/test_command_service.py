"""The fleet command service in-process: every command gets an answer, whatever it carried or whatever broke."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.fleet.commands import MAX_ERROR_CHARS, CommandService
from gateway.fleet.signing import sign

GATEWAY = "gw-test"
KEY = Ed25519PrivateKey.generate()


def signed(command: str, request_id: str, args: dict[str, Any]) -> bytes:
    document = {"gateway_id": GATEWAY, "command": command, "request_id": request_id, "args": args}
    return json.dumps({"request_id": request_id, "args": args, "signature": sign(document, KEY)}).encode()


async def ping(_args: Mapping[str, Any]) -> dict[str, Any]:
    return {"pong": True}


async def broken(_args: Mapping[str, Any]) -> dict[str, Any]:
    return {"x": 1} | {}[_args["missing"]]  # a handler with a bug of its own: KeyError


async def unserialisable(_args: Mapping[str, Any]) -> dict[str, Any]:
    return {"when": object()}


class Replies:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, suffix: str, payload: dict[str, Any]) -> None:
        json.dumps(payload)  # what MqttLink.publish does first: refuses what JSON cannot hold
        self.sent.append((suffix, payload))


@pytest.fixture
def replies() -> Replies:
    return Replies()


@pytest.fixture
def service(replies: Replies) -> CommandService:
    return CommandService(gateway_id=GATEWAY, public_key=KEY.public_key(), reply=replies,
                          handlers={"ping": ping, "broken": broken, "odd": unserialisable})


async def run_as_the_daemon_does(service: CommandService, topic: str, payload: bytes) -> None:
    # The daemon's inbox runs each command as a task nobody awaits: it must finish without an exception.
    task = asyncio.create_task(service.handle(topic, payload))
    await asyncio.wait([task])
    assert task.exception() is None


async def test_a_signed_ping_is_answered(service: CommandService, replies: Replies) -> None:
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-1", {}))
    assert replies.sent == [("cmd/ping/result", {"request_id": "r-1", "ok": True, "result": {"pong": True}})]


async def test_a_10_kb_nested_command_gets_an_error_answer(service: CommandService, replies: Replies) -> None:
    payload = b'{"request_id": "r-2", "args": ' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}"
    assert 10_000 < len(payload) < 65_536
    await run_as_the_daemon_does(service, "cmd/ping", payload)
    assert replies.sent == [("cmd/ping/result", {
        "request_id": None, "ok": False,
        "error": 'command refused: nested deeper than 16; send {"request_id", "args", "signature"}'})]


async def test_oversized_and_non_utf8_commands_get_error_answers(service: CommandService, replies: Replies) -> None:
    await run_as_the_daemon_does(service, "cmd/ping", b'{"request_id": "' + b"x" * 70_000 + b'"}')
    await run_as_the_daemon_does(service, "cmd/ping", b'{"request_id": "\xff"}')
    assert [answer["error"].split(";")[0] for _, answer in replies.sent] == [
        "command refused: too large: 70018 bytes > 65536", "command refused: not UTF-8 at byte 16"]


async def test_a_handler_that_raises_gets_an_error_answer_and_a_log_line(
        service: CommandService, replies: Replies, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.fleet.commands"):
        await run_as_the_daemon_does(service, "cmd/broken", signed("broken", "r-3", {"missing": "k" * 1000}))
    [(topic, answer)] = replies.sent
    assert topic == "cmd/broken/result"
    assert answer["request_id"] == "r-3"
    assert answer["ok"] is False
    assert answer["error"].startswith("internal error (KeyError): 'kkkk")
    assert len(answer["error"]) <= MAX_ERROR_CHARS + len("…(9999 chars)")
    [record] = caplog.records
    assert record.getMessage() == "command failed command=broken request_id=r-3"
    assert record.exc_info is not None  # the traceback is in the journal for whoever fixes it


async def test_a_result_that_cannot_be_sent_is_answered_as_an_error(service: CommandService,
                                                                     replies: Replies) -> None:
    await run_as_the_daemon_does(service, "cmd/odd", signed("odd", "r-4", {}))
    assert replies.sent == [("cmd/odd/result", {"request_id": "r-4", "ok": False,
                                                "error": "internal error: the result could not be sent"})]


async def test_sender_chosen_names_and_ids_are_cut_short_in_logs(
        service: CommandService, replies: Replies, caplog: pytest.LogCaptureFixture) -> None:
    name = "x\n" * 500
    with caplog.at_level(logging.WARNING, logger="gateway.fleet.commands"):
        await run_as_the_daemon_does(service, f"cmd/{name}", signed(name, "r\n" * 1000, {}))
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) < 600
    [(_, answer)] = replies.sent
    assert answer["error"].startswith("unknown command 'x\\x0ax")


async def test_a_flood_of_garbage_commands_is_answered_each_time_but_logged_ten_times_a_minute(
        replies: Replies, caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    service = CommandService(gateway_id=GATEWAY, public_key=KEY.public_key(), reply=replies,
                             handlers={"ping": ping}, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gateway.fleet.commands"):
        for _ in range(100):
            await run_as_the_daemon_does(service, "cmd/ping", b"[" * 100)
        now[0] = 60.0
        await run_as_the_daemon_does(service, "cmd/ping", b"[" * 100)
    assert len(replies.sent) == 101
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 12
    assert messages[10] == "command refused: suppressed=90 more (at most 10 logged per 60 s)"
