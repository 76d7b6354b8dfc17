"""Falls and help calls from detection to the family, through the cancel window and the long lie.

Real parts: a Mosquitto broker, the MQTT link, a SQLite outbox; the hub's monotonic clock is
driven by the test, and the signals come from the synthetic generator with known impact times.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from daemon_outbox import DaemonOutbox
from mqtt_probe import Probe
from synthetic import scenario

from drivers.model import DeviceEvent, DeviceEventKind, HubTime, MotionBlock
from gateway.detect.posture import LearntUpright
from gateway.mqtt import LinkSettings, MqttLink
from gateway.respond import messages
from gateway.respond.falls import FallResponder, escalate_interrupted_falls, upright_key
from gateway.respond.service import AlertService
from gateway.store import cursors, records, snippets

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.mono - 1000.0)

    def hub(self) -> HubTime:
        return HubTime(self.wall(), self.mono, True)


@pytest.fixture
async def services(tmp_path: Path, broker):  # type: ignore[no-untyped-def]
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    link = MqttLink(LinkSettings(broker.host, broker.port, "gw-test"))
    await link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    probe = Probe(broker.host, broker.port, "yiyang/v1/gw-test/#")
    clock = Clock()
    alerts = AlertService(outbox=outbox.intake, publisher=link, tz=TZ, now=clock.wall)
    yield alerts, outbox, probe, clock
    probe.close()
    await link.stop()
    await outbox.close()


def responder_for(alerts: AlertService, outbox: DaemonOutbox, clock: Clock, *, keep_upright: bool,
                  cancel_window_s: float = 30) -> FallResponder:
    async def upright_get(name: str) -> str | None:
        return await outbox.db.run(cursors.get(name))

    async def upright_set(name: str, value: str) -> None:
        await outbox.db.run(cursors.put(name, value))

    store = {"upright_get": upright_get, "upright_set": upright_set} if keep_upright else {}
    return FallResponder(alerts=alerts, outbox=outbox.intake, store=outbox.db, tz=TZ, now_wall=clock.wall,
                         now_monotonic=lambda: clock.mono, cancel_window_s=cancel_window_s, long_lie_s=120,
                         **store)  # type: ignore[arg-type]


@pytest.fixture
async def parts(services):  # type: ignore[no-untyped-def]
    alerts, outbox, probe, clock = services
    return responder_for(alerts, outbox, clock, keep_upright=False), outbox, probe, clock


async def stream(responder: FallResponder, clock: Clock, samples: np.ndarray, rate: float, block: int = 10) -> None:
    """Feed samples as a wearable would: blocks arriving in real (test) time."""
    for start in range(0, len(samples), block):
        chunk = samples[start:start + block].astype(np.float32)
        first = clock.hub()
        clock.mono += len(chunk) / rate
        await responder.on_motion(MotionBlock("band-1", "r-1", chunk, rate, first))


async def idle(responder: FallResponder, clock: Clock, seconds: float, *, level: str = "still",
               rate: float = 50.0) -> None:
    """Lying still (or walking) for a while, ticking the watch every second."""
    gravity = np.array([0.0, 0.0, -1.0] if level == "still" else [0.0, -1.0, 0.0], dtype=np.float32)
    rng = np.random.default_rng(3)
    for _ in range(int(seconds)):
        noise = 0.005 if level == "still" else 0.3
        chunk = gravity + rng.normal(0, noise, size=(int(rate), 3)).astype(np.float32)
        await stream(responder, clock, chunk, rate, block=int(rate))
        await responder.tick()


def states(probe: Probe) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["severity"], e["state"]) for e in probe.json_on("events/alert")]


async def settle() -> None:
    await asyncio.sleep(0.3)


async def test_fall_alerts_at_once_then_escalates_after_the_cancel_window_and_on_a_long_lie(parts) -> None:  # type: ignore[no-untyped-def]
    responder, outbox, probe, clock = parts
    fall = scenario("forward_fall", 50.0)
    await stream(responder, clock, fall.samples, 50.0)
    probe.wait_for("events/alert")
    assert states(probe) == [("fall", "urgent", "raised")]
    raised = probe.json_on("events/alert")[0]
    assert raised["evidence"]["source"] == "wearable"
    assert raised["evidence"]["peak_g"] > 2.5
    assert raised["evidence"]["kind"] == "impact"
    # The fall record and the raw evidence are stored.
    pending = await outbox.db.run(records.pending_batch())
    assert [p.type for p in pending] == ["alert", "fall"]
    evidence = await outbox.db.run(snippets.for_alert(raised["alert_id"]))
    assert len(evidence) == 1
    assert evidence[0].sample_rate_hz == 50.0

    await idle(responder, clock, 31)
    probe.wait_for("events/alert", 2)
    assert states(probe)[1] == ("fall", "emergency", "escalated")
    await idle(responder, clock, 120)
    probe.wait_for("events/alert", 3)
    assert probe.json_on("events/alert")[2]["evidence"]["outcome"] == "long_lie"


async def test_getting_up_within_the_window_cancels(parts) -> None:  # type: ignore[no-untyped-def]
    responder, _outbox, probe, clock = parts
    await stream(responder, clock, scenario("forward_fall", 50.0).samples, 50.0)
    probe.wait_for("events/alert")
    await idle(responder, clock, 5, level="walking")
    probe.wait_for("events/alert", 2)
    assert states(probe) == [("fall", "urgent", "raised"), ("fall", "urgent", "resolved")]


async def test_long_press_cancels_a_pending_fall_and_a_short_press_calls_for_help(parts) -> None:  # type: ignore[no-untyped-def]
    responder, _outbox, probe, clock = parts
    await stream(responder, clock, scenario("lateral_fall", 50.0).samples, 50.0)
    probe.wait_for("events/alert")
    await responder.on_event(DeviceEvent("sos-1", "r-1", DeviceEventKind.BUTTON_PRESS, clock.hub(), "long"))
    probe.wait_for("events/alert", 2)
    assert states(probe)[1] == ("fall", "urgent", "resolved")
    await responder.on_event(DeviceEvent("sos-1", "r-1", DeviceEventKind.BUTTON_PRESS, clock.hub(), "press"))
    probe.wait_for("events/alert", 3)
    assert states(probe)[2] == ("help_request", "emergency", "raised")


async def test_daily_activities_raise_nothing(parts) -> None:  # type: ignore[no-untyped-def]
    responder, outbox, probe, clock = parts
    for name in ("walking", "sitting_down", "lying_down", "stumbling"):
        await stream(responder, clock, scenario(name, 50.0).samples, 50.0)
    await settle()
    assert probe.json_on("events/alert") == []
    assert await outbox.db.run(records.pending_batch()) == []


async def test_radar_fall_uses_the_same_window_and_radar_motion_never_cancels(parts) -> None:  # type: ignore[no-untyped-def]
    responder, _outbox, probe, clock = parts
    await responder.on_event(DeviceEvent("radar-1", "r-1", DeviceEventKind.FALL, clock.hub(), 1))
    probe.wait_for("events/alert")
    assert probe.json_on("events/alert")[0]["evidence"]["source"] == "radar"
    for _ in range(31):
        clock.mono += 1
        await responder.on_event(DeviceEvent("radar-1", "r-1", DeviceEventKind.MOTION, clock.hub(), 2))
        await responder.tick()
    probe.wait_for("events/alert", 2)
    assert states(probe)[1] == ("fall", "emergency", "escalated")
    assert json.loads(json.dumps(probe.json_on("events/alert")[1]["evidence"]))["outcome"] == "confirmed"


async def test_the_fall_message_names_the_configured_cancel_window(services) -> None:  # type: ignore[no-untyped-def]
    alerts, outbox, probe, clock = services
    responder = responder_for(alerts, outbox, clock, keep_upright=False, cancel_window_s=60)
    await responder.on_event(DeviceEvent("radar-1", "r-1", DeviceEventKind.FALL, clock.hub(), 1))
    raised = probe.wait_for("events/alert")[0]
    assert raised["message"] == {"zh": "检测到疑似跌倒，60秒内未取消将呼叫救援",
                                 "en": "Possible fall detected: help is called unless cancelled within 60 s"}
    assert raised["evidence"]["cancel_window_s"] == 60
    for _ in range(31):   # the window the text names is the one the watch keeps: not escalated at 30 s
        clock.mono += 1
        await responder.tick()
    await settle()
    assert states(probe) == [("fall", "urgent", "raised")]
    for _ in range(30):
        clock.mono += 1
        await responder.tick()
    probe.wait_for("events/alert", 2)
    assert states(probe)[1] == ("fall", "emergency", "escalated")

    responder.reconfigure(cancel_window_s=45, long_lie_s=120, tz=TZ)    # a reload: the next fall names it
    await responder.on_event(DeviceEvent("radar-2", "r-2", DeviceEventKind.FALL, clock.hub(), 1))
    third = probe.wait_for("events/alert", 3)[2]
    assert third["resident_id"] == "r-2"
    assert "45秒内未取消" in third["message"]["zh"]
    assert third["message"]["en"].endswith("within 45 s")


async def test_a_fall_in_its_cancel_window_when_the_hub_restarted_becomes_an_emergency(services) -> None:  # type: ignore[no-untyped-def]
    alerts, outbox, probe, clock = services
    responder = responder_for(alerts, outbox, clock, keep_upright=False)
    await responder.on_event(DeviceEvent("radar-1", "r-1", DeviceEventKind.FALL, clock.hub(), 1))
    await responder.on_event(DeviceEvent("sos-1", "r-2", DeviceEventKind.BUTTON_PRESS, clock.hub(), "press"))
    probe.wait_for("events/alert", 2)

    await escalate_interrupted_falls(alerts, alerts.active)   # what the daemon does with the alerts restored

    escalated = probe.wait_for("events/alert", 3)[2]
    assert (escalated["kind"], escalated["severity"], escalated["state"]) == ("fall", "emergency", "escalated")
    assert escalated["message"] == {"zh": messages.RESTARTED_DURING_FALL.zh, "en": messages.RESTARTED_DURING_FALL.en}
    assert escalated["evidence"]["outcome"] == "hub_restarted"
    await settle()
    assert len(probe.json_on("events/alert")) == 3   # the help request was an emergency already


async def test_the_wearers_upright_survives_a_restart_of_the_hub(services) -> None:  # type: ignore[no-untyped-def]
    alerts, outbox, probe, clock = services
    before = responder_for(alerts, outbox, clock, keep_upright=True)
    await stream(before, clock, scenario("walking", 50.0).samples, 50.0)
    stored = LearntUpright.decode(await outbox.db.run(cursors.get(upright_key("band-1"))))
    assert stored is not None
    assert np.allclose(stored.direction, (0.0, -1.0, 0.0), atol=0.03)

    after = responder_for(alerts, outbox, clock, keep_upright=True)      # the hub restarted
    seated_then_faint = scenario("slump_from_chair", 50.0).samples[round(16.0 * 50.0):]   # no walk since
    await stream(after, clock, seated_then_faint, 50.0)

    probe.wait_for("events/alert")
    assert probe.json_on("events/alert")[0]["evidence"]["upright"] == "restored"


async def test_a_stored_upright_the_first_walk_disagrees_with_is_forgotten(services) -> None:  # type: ignore[no-untyped-def]
    alerts, outbox, _probe, clock = services
    await outbox.db.run(cursors.put(upright_key("band-1"), LearntUpright((0.0, -1.0, 0.0), 40).encode()))
    responder = responder_for(alerts, outbox, clock, keep_upright=True)
    upside_down = scenario("walking", 50.0).samples * np.array([1.0, -1.0, -1.0])   # clipped on the other way

    await stream(responder, clock, upside_down[: round(3.0 * 50.0)], 50.0)

    assert await outbox.db.run(cursors.get(upright_key("band-1"))) == ""
    await stream(responder, clock, upside_down, 50.0)
    relearnt = LearntUpright.decode(await outbox.db.run(cursors.get(upright_key("band-1"))))
    assert relearnt is not None
    assert np.allclose(relearnt.direction, (0.0, 1.0, 0.0), atol=0.03)


async def test_an_unusable_stored_upright_is_ignored(services) -> None:  # type: ignore[no-untyped-def]
    alerts, outbox, probe, clock = services
    await outbox.db.run(cursors.put(upright_key("band-1"), '{"v": 1, "upright": [0, 0, 0], "windows": 40}'))
    responder = responder_for(alerts, outbox, clock, keep_upright=True)

    await stream(responder, clock, scenario("forward_fall", 50.0).samples, 50.0)

    probe.wait_for("events/alert")
    assert probe.json_on("events/alert")[0]["evidence"]["upright"] == "none"
