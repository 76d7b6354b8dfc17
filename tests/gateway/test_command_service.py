"""The fleet command service in-process: every command gets an answer, whatever it carried or whatever broke;
replays are refused by age and by request id, and the ids survive a restart (a new service on the same file)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.fleet.answered import KEEP_FOR, AnsweredRequests
from gateway.fleet.commands import MAX_ERROR_CHARS, Command, CommandService
from gateway.fleet.signing import sign

GATEWAY = "gw-test"
KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)


def signed(command: str, request_id: str, args: dict[str, Any], issued_at: datetime | str | None = T0) -> bytes:
    issued = issued_at.isoformat() if isinstance(issued_at, datetime) else issued_at
    document = {"gateway_id": GATEWAY, "command": command, "request_id": request_id, "issued_at": issued,
                "args": args}
    body: dict[str, Any] = {"request_id": request_id, "args": args, "signature": sign(document, KEY)}
    if issued is not None:
        body["issued_at"] = issued
    return json.dumps(body).encode()


class Hub:
    """The clock and the handlers' side: how often each command really ran."""

    def __init__(self) -> None:
        self.now = T0
        self.synced = True
        self.ran: list[str] = []

    def handler(self, name: str) -> Command:
        async def run(_args: Mapping[str, Any]) -> dict[str, Any]:
            self.ran.append(name)
            return {"pong": True} if name == "ping" else {"done": name}

        return Command(run, repeatable=name != "test-alert")


async def broken(args: Mapping[str, Any]) -> dict[str, Any]:
    return {"x": 1} | {}[args["missing"]]  # a handler with a bug of its own: KeyError


async def unserialisable(_args: Mapping[str, Any]) -> dict[str, Any]:
    return {"when": object()}


class Replies:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, suffix: str, payload: dict[str, Any]) -> None:
        json.dumps(payload)  # what MqttLink.publish does first: refuses what JSON cannot hold
        self.sent.append((suffix, payload))

    @property
    def errors(self) -> list[str | None]:
        return [answer.get("error") for _, answer in self.sent]


@pytest.fixture
def replies() -> Replies:
    return Replies()


@pytest.fixture
def hub() -> Hub:
    return Hub()


def make_service(hub: Hub, replies: Replies, answered: AnsweredRequests) -> CommandService:
    commands = {name: hub.handler(name) for name in ("ping", "queue", "test-alert")}
    commands |= {"broken": Command(broken, repeatable=True), "odd": Command(unserialisable, repeatable=True)}
    return CommandService(gateway_id=GATEWAY, public_key=KEY.public_key(), reply=replies, commands=commands,
                          answered=answered, now=lambda: hub.now, clock_synced=lambda: hub.synced)


async def restarted(hub: Hub, replies: Replies, path: Path) -> CommandService:
    """What the daemon does at start: read the answered ids back, build the service."""
    return make_service(hub, replies, await AnsweredRequests.load(path, now=hub.now, clock_synced=hub.synced))


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "fleet" / "commands.json"


@pytest.fixture
async def service(hub: Hub, replies: Replies, state_file: Path) -> CommandService:
    return await restarted(hub, replies, state_file)


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
        "error": 'command refused: nested deeper than 16; send {"request_id", "issued_at", "args", "signature"}'})]


async def test_oversized_and_non_utf8_commands_get_error_answers(service: CommandService, replies: Replies) -> None:
    await run_as_the_daemon_does(service, "cmd/ping", b'{"request_id": "' + b"x" * 70_000 + b'"}')
    await run_as_the_daemon_does(service, "cmd/ping", b'{"request_id": "\xff"}')
    assert [error.split(";")[0] for error in replies.errors if error] == [
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
        await run_as_the_daemon_does(service, f"cmd/{name}", signed(name, "r\n" * 60, {}))
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) < 600
    [(_, answer)] = replies.sent
    assert answer["error"].startswith("unknown command 'x\\x0ax")


async def test_a_flood_of_garbage_commands_is_answered_each_time_but_logged_ten_times_a_minute(
        hub: Hub, replies: Replies, caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    service = CommandService(gateway_id=GATEWAY, public_key=KEY.public_key(), reply=replies,
                             commands={"ping": hub.handler("ping")}, answered=AnsweredRequests(None),
                             now=lambda: hub.now, clock_synced=lambda: True, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gateway.fleet.commands"):
        for _ in range(100):
            await run_as_the_daemon_does(service, "cmd/ping", b"[" * 100)
        now[0] = 60.0
        await run_as_the_daemon_does(service, "cmd/ping", b"[" * 100)
    assert len(replies.sent) == 101
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 12
    assert messages[10] == "command refused: suppressed=90 more (at most 10 logged per 60 s)"


# -- replays: age, request ids, restarts ---------------------------------------------------------------


async def test_a_command_without_issued_at_is_refused_and_says_why(service: CommandService, hub: Hub,
                                                                   replies: Replies) -> None:
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-5", {}, issued_at=None))
    assert replies.errors == ["command refused: no issued_at; the fleet signs the time it issued each command "
                              "(ISO 8601 with offset): update the fleet tool"]
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-6", {}, issued_at="2026-11-22T09:00:00"))
    assert replies.errors[1] == ("command refused: issued_at '2026-11-22T09:00:00' has no UTC offset; "
                                 "the hub cannot place it in time")
    assert hub.ran == []


async def test_issued_at_is_signed_so_an_old_command_cannot_be_given_a_new_time(
        service: CommandService, hub: Hub, replies: Replies) -> None:
    old = json.loads(signed("ping", "r-7", {}, issued_at=T0 - timedelta(hours=1)))
    old["issued_at"] = T0.isoformat()
    await run_as_the_daemon_does(service, "cmd/ping", json.dumps(old).encode())
    assert replies.errors == ["bad signature: not signed by this hub's fleet key"]
    assert hub.ran == []


async def test_a_command_eleven_minutes_old_is_refused_and_one_nine_minutes_old_runs(
        service: CommandService, hub: Hub, replies: Replies) -> None:
    hub.now = T0 + timedelta(minutes=11)
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-8", {}))
    hub.now = T0 + timedelta(minutes=9)
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-9", {}))
    assert replies.sent[0][1] == {
        "request_id": "r-8", "ok": False,
        "error": "command refused: issued 11.0 min ago, older than 10.0 min (hub time 2026-11-22T01:11:00+00:00); "
                 "send it again"}
    assert replies.sent[1][1] == {"request_id": "r-9", "ok": True, "result": {"pong": True}}
    assert hub.ran == ["ping"]


async def test_a_command_from_the_future_is_refused_beyond_two_minutes_of_skew(
        service: CommandService, hub: Hub, replies: Replies) -> None:
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-10", {}, issued_at=T0 + timedelta(minutes=3)))
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-11", {}, issued_at=T0 + timedelta(minutes=1)))
    assert replies.errors[0] == ("command refused: issued 3.0 min in the future, more than 2.0 min ahead "
                                 "(hub time 2026-11-22T01:00:00+00:00): check the fleet console's clock")
    assert replies.sent[1][1]["ok"] is True
    assert hub.ran == ["ping"]


async def test_a_request_id_is_answered_once(service: CommandService, hub: Hub, replies: Replies) -> None:
    payload = signed("queue", "r-12", {})
    await run_as_the_daemon_does(service, "cmd/queue", payload)
    await run_as_the_daemon_does(service, "cmd/queue", signed("queue", "r-12", {},
                                                              issued_at=T0 + timedelta(seconds=30)))
    assert replies.errors == [None, "request r-12 was already answered (replay?)"]
    assert hub.ran == ["queue"]


async def test_the_same_command_twice_at_once_runs_once(service: CommandService, hub: Hub, replies: Replies) -> None:
    payload = signed("ping", "r-13", {})
    await asyncio.gather(service.handle("cmd/ping", payload), service.handle("cmd/ping", payload))
    assert sorted(replies.errors, key=str) == [None, "request r-13 was already answered (replay?)"]
    assert hub.ran == ["ping"]


async def test_a_retained_command_is_not_run_again_after_a_restart(
        service: CommandService, hub: Hub, replies: Replies, state_file: Path) -> None:
    retained = signed("test-alert", "r-14", {})
    await run_as_the_daemon_does(service, "cmd/test-alert", retained)
    # The daemon restarts a minute later; the broker hands it the retained command again on subscribe.
    hub.now = T0 + timedelta(minutes=1)
    after_restart = await restarted(hub, replies, state_file)
    await run_as_the_daemon_does(after_restart, "cmd/test-alert", retained)
    assert replies.errors == [None, "request r-14 was already answered (replay?)"]
    assert hub.ran == ["test-alert"]
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    assert saved == {"format": 1, "answered": {"r-14": T0.isoformat()}}
    assert os.listdir(state_file.parent) == ["commands.json"]  # no temporary file left behind


async def test_ids_are_forgotten_once_their_commands_are_refused_by_age_anyway(
        service: CommandService, hub: Hub, replies: Replies, state_file: Path) -> None:
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-15", {}))
    later = T0 + KEEP_FOR + timedelta(seconds=1)
    hub.now = later
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-16", {}, issued_at=later))
    assert json.loads(state_file.read_text(encoding="utf-8"))["answered"] == {"r-16": later.isoformat()}
    # r-15 is forgotten, and still refused: by its age.
    await run_as_the_daemon_does(await restarted(hub, replies, state_file), "cmd/ping", signed("ping", "r-15", {}))
    assert replies.errors[-1].startswith("command refused: issued 15.0 min ago")
    assert hub.ran == ["ping", "ping"]


async def test_an_unsynchronised_hub_runs_harmless_commands_by_request_id_only_and_says_so(
        hub: Hub, replies: Replies, state_file: Path) -> None:
    # No NTP since boot: the hub's clock says 2019, or next week; the age of a command means nothing.
    hub.synced = False
    hub.now = T0 - timedelta(days=2000)
    service = await restarted(hub, replies, state_file)
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-17", {}))
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-17", {}))
    await run_as_the_daemon_does(service, "cmd/test-alert", signed("test-alert", "r-18", {}))
    [(_, first), (_, replay), (_, acting)] = replies.sent
    assert first["ok"] is True
    assert first["warning"].startswith("hub clock not synchronised: issued_at was not checked")
    assert replay["error"] == "request r-17 was already answered (replay?)"
    assert acting["error"].startswith("command refused: the hub clock is not synchronised (no NTP yet), so the "
                                      "age of 'test-alert' cannot be checked and it is not safe to run twice")
    assert hub.ran == ["ping"]
    # Ids are not forgotten by a clock that cannot be trusted: years "later" r-17 is still known.
    hub.now = T0 + timedelta(days=3000)
    await run_as_the_daemon_does(await restarted(hub, replies, state_file), "cmd/ping", signed("ping", "r-17", {}))
    assert replies.errors[-1] == "request r-17 was already answered (replay?)"


async def test_a_damaged_state_file_is_logged_and_commands_still_run(
        hub: Hub, replies: Replies, state_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(b'{"format": 1, "answered": {"r-1": "yesterday"')
    with caplog.at_level(logging.ERROR, logger="gateway.fleet.answered"):
        service = await restarted(hub, replies, state_file)
    assert [r.getMessage().split(" reason=")[1].split(":")[0] for r in caplog.records] == ["damaged (JSONDecodeError)"]
    await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-19", {}))
    assert replies.errors == [None]
    assert json.loads(state_file.read_text(encoding="utf-8"))["answered"] == {"r-19": T0.isoformat()}


async def test_a_state_file_that_cannot_be_written_does_not_stop_the_technicians_commands(
        hub: Hub, replies: Replies, state_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The data directory is broken where the fleet state goes (a file where a directory should be):
    # writing fails as on a read-only or full card, whoever the tests run as.
    state_file.parent.parent.mkdir(parents=True)
    state_file.parent.write_bytes(b"")
    service = await restarted(hub, replies, state_file)
    with caplog.at_level(logging.ERROR, logger="gateway.fleet.commands"):
        await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-20", {}))
        await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-20", {}))
        await run_as_the_daemon_does(service, "cmd/ping", signed("ping", "r-21", {}))
    assert replies.errors == [None, "request r-20 was already answered (replay?)", None]  # refused from memory
    assert hub.ran == ["ping", "ping"]
    [record] = [r for r in caplog.records if r.name == "gateway.fleet.commands"]  # once, not at every command
    assert record.getMessage().startswith("answered fleet commands not saved reason=")
    assert "cannot write the answered fleet commands" in record.getMessage()
