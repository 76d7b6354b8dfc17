"""The MQTT link against a real Mosquitto: poison messages, floods, broker restarts, no broker at all."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import devstack
import pytest
from mqtt_publisher import flood, publish_once

from gateway.mqtt import IncomingMessage, LinkSettings, MqttLink
from gateway.mqtt_policy import Subscription

GATEWAY = "gw-test"
ROOT = f"yiyang/v1/{GATEWAY}/"
SUBSCRIPTIONS = (Subscription("alerts/+/ack", 4096), Subscription("cmd/+", 65536))


def make_link(port: int) -> MqttLink:
    return MqttLink(LinkSettings(host="127.0.0.1", port=port, gateway_id=GATEWAY, client_id=f"link-{port}"),
                    subscriptions=SUBSCRIPTIONS)


@contextlib.asynccontextmanager
async def mosquitto(workdir: Path, **options: object) -> AsyncIterator[devstack.Broker]:
    """devstack's broker, started and stopped off the event loop (it waits for the port)."""
    broker = devstack.mosquitto(workdir, **options)  # type: ignore[arg-type]
    started = await asyncio.to_thread(broker.__enter__)
    try:
        yield started
    finally:
        await asyncio.to_thread(broker.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[MqttLink]:
    await link.start()
    try:
        yield link
    finally:
        await link.stop()


async def eventually(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``predicate`` held; polls a counter the link keeps (no fixed sleeps)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def publish(port: int, suffix: str, payload: bytes, *, retain: bool = False) -> bool:
    return await asyncio.to_thread(publish_once, "127.0.0.1", port, ROOT + suffix, payload, retain=retain)


async def drain(link: MqttLink) -> list[IncomingMessage]:
    taken = []
    while (item := link._inbox.take()) is not None:
        taken.append(item)
    return taken


DEEP = b"[" * 5000 + b"]" * 5000


async def poison_then_good(port: int, *, broker_limits_packets: bool) -> None:
    assert await publish(port, "alerts/a1/ack", DEEP, retain=True)  # there before the hub starts, as found
    link = make_link(port)
    connects = 0

    def count() -> None:
        nonlocal connects
        connects += 1

    link.on_connect(count)
    async with running(link):
        await asyncio.wait_for(link.connected.wait(), 10)
        assert await publish(port, "cmd/ping", DEEP)                          # under the command limit: passes
        assert await publish(port, "cmd/big", b"x" * 2**20) is not broker_limits_packets  # 1 MB
        for _ in range(25 if broker_limits_packets else 1):
            # Over the packet size. 25: more than Mosquitto's in-flight window, which a broker without
            # max_packet_size jams with messages it may not send us (gateway/mqtt_policy.py).
            assert await publish(port, "cmd/mid", b"y" * 300_000) is not broker_limits_packets
        assert await publish(port, "cmd/over", b"z" * 100_000)                 # under the packet size, over cmd's
        assert await publish(port, "alerts/a2/ack", b"\xff\xfe\x00 not utf-8")
        assert await publish(port, "alerts/a3/ack", b'{"by": "c-daughter"}')
        good = await asyncio.wait_for(_receive_until(link, "alerts/a3/ack"), 10)
        stats = link.stats()
        assert connects == 1 and link.connected.is_set(), "a poison message cost the connection"
    # The retained 10 KB ack, the 100 KB command: dropped on paho's thread -- the retained one handed on
    # without its payload, so it can be cleared from the broker. The 1 MB and 300 KB ones never
    # reached the hub: the broker refused them (max_packet_size) or kept them from us (our MQTT 5
    # Maximum Packet Size).
    assert [(m.topic, m.oversized) for m in good] == [
        ("alerts/a1/ack", True), ("cmd/ping", False), ("alerts/a2/ack", False), ("alerts/a3/ack", False)]
    assert good[0].payload == b"" and good[0].retained
    assert good[1].payload == DEEP and good[2].payload == b"\xff\xfe\x00 not utf-8"
    assert (stats.dropped_oversized, stats.received, stats.dropped_inbox_full) == (2, 4, 0)


async def _receive_until(link: MqttLink, topic: str) -> list[IncomingMessage]:
    got = [await link.receive()]
    while got[-1].topic != topic:
        got.append(await link.receive())
    return got


@pytest.mark.timeout(60)
async def test_poison_messages_are_dropped_and_the_link_stays_up(broker: devstack.Broker) -> None:
    await poison_then_good(broker.port, broker_limits_packets=True)


@pytest.mark.timeout(60)
async def test_the_hub_bounds_what_it_takes_even_from_a_broker_without_limits(tmp_path: Path) -> None:
    async with mosquitto(tmp_path / "broker", max_packet_bytes=0) as unlimited:
        await poison_then_good(unlimited.port, broker_limits_packets=False)


@pytest.mark.timeout(60)
async def test_a_retained_poison_message_is_dropped_again_on_every_restart(broker: devstack.Broker) -> None:
    assert await publish(broker.port, "alerts/a1/ack", DEEP, retain=True)
    for _restart in range(2):
        link = make_link(broker.port)
        async with running(link):
            await asyncio.wait_for(link.connected.wait(), 10)
            await eventually(lambda: link.stats().dropped_oversized == 1, 5, "the retained ack to be dropped")  # noqa: B023
            # Only its topic is handed on (to be cleared by its handler; this test has none): no payload.
            marker = await asyncio.wait_for(link.receive(), 5)
            assert (marker.topic, marker.payload, marker.retained, marker.oversized) == (
                "alerts/a1/ack", b"", True, True)


@pytest.mark.timeout(120)
async def test_a_flood_fills_the_inbox_to_its_bound_and_a_later_message_still_arrives(tmp_path: Path) -> None:
    # The broker's own per-client queue unbounded here, so every flood message reaches the hub and
    # the count below is exact: what is tested is the hub's bound, not Mosquitto's.
    async with mosquitto(tmp_path / "broker", extra_conf="max_queued_messages 0\n") as b:
        link = make_link(b.port)
        async with running(link):
            await asyncio.wait_for(link.connected.wait(), 10)
            messages = [(f"{ROOT}alerts/a{i}/ack", b'{"by": "c-%d"}' % i) for i in range(10_000)]
            await asyncio.to_thread(flood, "127.0.0.1", b.port, messages)
            await eventually(lambda: link.stats().received + link.stats().dropped_inbox_full == 10_000, 60,
                             "the whole flood to reach the hub")
            stats = link.stats()
            assert (stats.inbox_peak, stats.received, stats.dropped_inbox_full) == (1000, 1000, 9000)
            first = await drain(link)
            assert [m.topic for m in first[:2]] == ["alerts/a0/ack", "alerts/a1/ack"]  # the oldest are kept
            assert await publish(b.port, "cmd/ping", b'{"request_id": "r-after-flood"}')
            after = await asyncio.wait_for(link.receive(), 10)
            assert (after.topic, after.payload) == ("cmd/ping", b'{"request_id": "r-after-flood"}')


@pytest.mark.timeout(60)
async def test_after_a_broker_restart_the_link_is_back_within_3_s(tmp_path: Path) -> None:
    async with mosquitto(tmp_path / "first") as first:
        link = make_link(first.port)
        await link.start()
        await asyncio.wait_for(link.connected.wait(), 10)
        first.proc.kill()  # killed, as by the OOM killer: no clean goodbye
    try:
        await eventually(lambda: not link.connected.is_set(), 10, "the link to notice the broker is gone")
        # Down long enough for three failed attempts: paho's doubling backoff would now wait 8 s.
        await eventually(lambda: link.stats().connect_failures >= 3, 10, "three failed reconnect attempts")
        async with mosquitto(tmp_path / "second", port=first.port):  # entered once the broker listens
            back_at = time.monotonic()
            await asyncio.wait_for(link.connected.wait(), 3.0)
            print(f"connected again {time.monotonic() - back_at:.2f} s after the broker was back")
    finally:
        await link.stop()


@pytest.mark.timeout(60)
async def test_a_broker_that_is_not_there_at_start_is_reported_within_2_s(tmp_path: Path) -> None:
    port = devstack.free_port()
    link = make_link(port)
    started = time.monotonic()
    async with running(link):
        await eventually(lambda: link.stats().connect_failures >= 1, 2.0, "a connect failure to be reported")
        assert "ConnectionRefusedError" in (link.stats().last_connect_error or "")
        assert time.monotonic() - started < 2.0
        async with mosquitto(tmp_path / "late", port=port):
            await asyncio.wait_for(link.connected.wait(), 3.0)  # and it gets there once the broker does
