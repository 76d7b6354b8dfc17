"""The MQTT inbox: routed by subscription filter, one message at a time, a failing one never fatal."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.inbox import Inbox, Route
from gateway.logs import log_id
from gateway.mqtt import IncomingMessage
from gateway.topics import ACK_FILTER, COMMAND_FILTER, legacy_retained_topics, matches


@pytest.mark.parametrize(
    ("topic_filter", "topic", "wanted"),
    [
        (ACK_FILTER, "residents/r-1/alerts/a-1/ack/c-1", True),
        (ACK_FILTER, "residents/r-1/alerts/a-1/ack", False),
        (ACK_FILTER, "residents/r-1/alerts/a-1/ack/c-1/x", False),
        (ACK_FILTER, "residents/r-1/alerts/a-1", False),
        (COMMAND_FILTER, "cmd/ping", True),
        (COMMAND_FILTER, "cmd/ping/result", False),
        ("residents/r-1/#", "residents/r-1/readings/spo2", True),
        ("residents/r-1/#", "residents/r-1", True),
        ("residents/r-1/#", "residents/r-2/readings/spo2", False),
    ],
)
def test_topic_filters_match_as_the_broker_does(topic_filter: str, topic: str, wanted: bool) -> None:
    assert matches(topic_filter, topic) is wanted


async def test_a_failing_message_is_dropped_and_the_next_one_is_handled() -> None:
    queue: asyncio.Queue[IncomingMessage] = asyncio.Queue()
    handled: list[str] = []
    done = asyncio.Event()

    async def ack(message: IncomingMessage) -> None:
        if message.payload == b"poison":
            raise KeyError("a field the payload lacked")
        handled.append(message.topic)
        if message.payload == b"last":
            done.set()

    inbox = Inbox([Route(ACK_FILTER, ack)])
    task = asyncio.create_task(inbox.serve(queue.get))
    for topic, payload in [("residents/r-1/alerts/a-1/ack/c-1", b"poison"),
                           ("something/else", b""),
                           ("residents/r-1/alerts/a-2/ack/c-1", b"last")]:
        queue.put_nowait(IncomingMessage(topic, payload, retained=False))
    await asyncio.wait_for(done.wait(), 5)
    assert handled == ["residents/r-1/alerts/a-2/ack/c-1"]
    assert not task.done(), "the inbox must go on after a failing message"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_background_route_does_not_hold_up_the_others_and_is_cancelled_with_the_inbox() -> None:
    queue: asyncio.Queue[IncomingMessage] = asyncio.Queue()
    command_started, ack_done = asyncio.Event(), asyncio.Event()
    command_cancelled = asyncio.Event()

    async def command(_message: IncomingMessage) -> None:
        command_started.set()
        try:
            await asyncio.Event().wait()  # a minute-long blood-pressure measurement
        except asyncio.CancelledError:
            command_cancelled.set()
            raise

    async def ack(_message: IncomingMessage) -> None:
        ack_done.set()

    inbox = Inbox([Route(ACK_FILTER, ack), Route(COMMAND_FILTER, command, background=True)])
    assert inbox.filters == (ACK_FILTER, COMMAND_FILTER)
    task = asyncio.create_task(inbox.serve(queue.get))
    queue.put_nowait(IncomingMessage("cmd/measure", b"{}", retained=False))
    await asyncio.wait_for(command_started.wait(), 5)
    queue.put_nowait(IncomingMessage("residents/r-1/alerts/a-1/ack/c-1", b"", retained=False))
    await asyncio.wait_for(ack_done.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.wait_for(command_cancelled.wait(), 5)


@pytest.mark.parametrize(("value", "logged"), [
    ("01938c2e-7d1a-7c3e-9f00-1b2c3d4e5f60", "01938c2e-7d1a-7c3e-9f00-1b2c3d4e5f60"),
    ("c-0001", "c-0001"),
    ("王小明 血糖 2.8", "<invalid>"),  # a name and a value typed into an id's place
    ("x" * 65, "<invalid>"),
    ("", "<invalid>"),
])
def test_only_what_looks_like_an_id_is_logged(value: str, logged: str) -> None:
    assert log_id(value) == logged


def test_legacy_retained_topics_are_the_hub_wide_ones() -> None:
    assert legacy_retained_topics(["a-1"], ["spo2", "blood_glucose"]) == [
        "alerts/a-1", "readings/spo2", "readings/blood_glucose"]
