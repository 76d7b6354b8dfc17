"""The MQTT link's pure decisions: reconnect cap by broker host, payload limits by topic, the bounded inbox."""

from __future__ import annotations

import threading

import pytest

from gateway.mqtt_inbox import BoundedInbox, Put
from gateway.mqtt_policy import (
    LOCAL_RECONNECT_MAX_S,
    MAX_DOCUMENT_BYTES,
    MAX_PACKET_BYTES,
    REMOTE_RECONNECT_MAX_S,
    Subscription,
    is_local_host,
    payload_limit,
    reconnect_cap_s,
)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.1.1", "::1", "[::1]",
                                  "192.168.1.20", "10.0.0.5", "172.16.3.4", "fd12:3456::1", "fe80::1",
                                  "169.254.10.1", "yiyang-hub.local", "broker.lan", "hub.home.arpa."])
def test_a_broker_on_this_box_or_the_home_lan_is_retried_within_2_s(host: str) -> None:
    assert is_local_host(host)
    assert reconnect_cap_s(host) == LOCAL_RECONNECT_MAX_S == 2


@pytest.mark.parametrize("host", ["mqtt.fleet.example.com", "8.8.8.8", "100.64.0.1", "2400:3200::1",
                                  "localhost.example.com", "local", ""])
def test_a_remote_broker_keeps_the_long_backoff(host: str) -> None:
    assert not is_local_host(host)
    assert reconnect_cap_s(host) == REMOTE_RECONNECT_MAX_S == 60


SUBSCRIPTIONS = (Subscription("alerts/+/ack", 4096), Subscription("cmd/+", 65536),
                 Subscription("config/desired", MAX_DOCUMENT_BYTES))


def test_each_topic_gets_its_subscriptions_limit_and_strangers_none() -> None:
    assert payload_limit(SUBSCRIPTIONS, "alerts/0192f/ack") == 4096
    assert payload_limit(SUBSCRIPTIONS, "cmd/ping") == 65536
    assert payload_limit(SUBSCRIPTIONS, "config/desired") == MAX_DOCUMENT_BYTES
    assert payload_limit(SUBSCRIPTIONS, "cmd/ping/result") is None
    assert payload_limit(SUBSCRIPTIONS, "alerts/0192f") is None


def test_subscriptions_refuse_limits_beyond_the_biggest_packet() -> None:
    assert Subscription("config/desired", MAX_PACKET_BYTES).max_payload_bytes > MAX_DOCUMENT_BYTES
    with pytest.raises(ValueError, match="max_payload_bytes"):
        Subscription("cmd/+", MAX_PACKET_BYTES + 1)
    with pytest.raises(ValueError, match="relative"):
        Subscription("/cmd/+", 10)


def test_the_inbox_is_bounded_by_count_and_wakes_only_on_empty_to_not_empty() -> None:
    inbox: BoundedInbox[int] = BoundedInbox(max_items=3, max_bytes=1000)
    assert [inbox.put(i, 10) for i in range(5)] == [Put.QUEUED_WAKE, Put.QUEUED, Put.QUEUED, Put.DROPPED,
                                                    Put.DROPPED]
    assert (len(inbox), inbox.dropped, inbox.peak_items) == (3, 2, 3)
    assert [inbox.take(), inbox.take(), inbox.take(), inbox.take()] == [0, 1, 2, None]
    assert inbox.put(9, 10) is Put.QUEUED_WAKE  # room again, and the consumer may be asleep


def test_the_inbox_is_bounded_by_bytes() -> None:
    inbox: BoundedInbox[str] = BoundedInbox(max_items=100, max_bytes=1000)
    assert inbox.put("a", 600) is Put.QUEUED_WAKE
    assert inbox.put("b", 600) is Put.DROPPED
    assert inbox.put("c", 400) is Put.QUEUED
    assert inbox.peak_bytes == 1000
    inbox.take()
    assert inbox.put("d", 600) is Put.QUEUED


def test_a_producer_thread_flooding_never_passes_the_bound() -> None:
    inbox: BoundedInbox[int] = BoundedInbox(max_items=100, max_bytes=10**9)
    taken: list[int] = []
    done = threading.Event()

    def produce() -> None:
        for i in range(20_000):
            inbox.put(i, 1)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    while not done.is_set() or len(inbox):
        item = inbox.take()
        if item is not None:
            taken.append(item)
    producer.join()
    assert inbox.peak_items <= 100
    assert len(taken) + inbox.dropped == 20_000
    assert taken == sorted(taken)  # FIFO: what got in comes out in order
