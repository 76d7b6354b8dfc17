"""A configuration rollout to 1,000 simulated hubs that each run the hub's real document path.

    python bench/fleet.py [--hubs 1000] [--canary 10] [--wave-percent 10] [--fail-percent 0] [--per-client 50]

Starts a private Mosquitto and ``--hubs`` hubs in this process. Each hub is a real
``gateway.fleet.service.ConfigDocumentService``: the document is size-checked, parsed, its Ed25519
signature verified, its gateway id and version checked, the merged configuration validated by the
schema, the trial and the outcome written atomically (fsync, rename, fsync of the directory) to the
hub's own state file, and the report published retained on its ``config/reported``. Only the reload
of device sessions and the health check are stand-ins: the health check fails for a fixed share of
hubs (``--fail-percent``, chosen by a seeded draw), which then roll back.

The operator's side is the real rollout engine (``fleet.py config push``): canary, then a share of
the rest per wave, halting after 2 rejections or rollbacks. Printed: the rollout's total time, each
wave, p50/p99 from a document's publication to its hub's report, the messages through the broker,
and, with failures, where the rollout halted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
import devstack  # noqa: E402
from fleetctl.engine import Progress, push_config  # noqa: E402
from fleetctl.link import BrokerAddress  # noqa: E402
from fleetctl.request import RolloutRequest  # noqa: E402

from gateway.config import GatewayConfig  # noqa: E402
from gateway.fleet.overlay import LocalConfig  # noqa: E402
from gateway.fleet.service import ConfigDocumentService, HealthResult  # noqa: E402
from gateway.fleet.statefile import FleetStateFile, state_path  # noqa: E402

ROOT = "yiyang/v1"
BODY = {"alerts": {"repeat_emergency_s": 90.0}, "thresholds": {"systolic_crisis_mmhg": 175}}


def local_mapping(gateway_id: str, data_dir: Path) -> dict[str, Any]:
    return {
        "gateway": {"id": gateway_id, "data_dir": str(data_dir)},
        "platform": {"url": "https://platform.example.cn", "secret_file": "/etc/yiyang/platform.secret"},
        "residents": [{"id": "r-0001"}],
        "devices": [{"id": "glucose-kitchen", "driver": "onetouch-ultra2", "port": "/dev/ttyUSB0",
                     "resident": "r-0001"}],
    }


class Hub:
    """One simulated hub: the real document service; reload and health check stand in."""

    def __init__(self, gateway_id: str, data_dir: Path, key: Ed25519PublicKey, fails: bool,
                 publish: Any, reported: dict[str, float]) -> None:
        self.gateway_id = gateway_id
        self._fails = fails
        self._reported = reported

        async def reload(_config: GatewayConfig) -> None:
            return None

        async def health_check(_old: GatewayConfig, _new: GatewayConfig) -> HealthResult:
            if self._fails:
                return HealthResult(ok=False, reason="the platform did not accept an upload", path="platform")
            return HealthResult(ok=True)

        def publish_report(report: dict[str, Any]) -> None:
            publish(f"{ROOT}/{gateway_id}/config/reported", json.dumps(report), retain=True)
            self._reported[gateway_id] = time.perf_counter()

        self.service = ConfigDocumentService(
            local=LocalConfig.from_mapping(local_mapping(gateway_id, data_dir), f"{gateway_id}.toml"),
            store=FleetStateFile(state_path(data_dir)), reload=reload, health_check=health_check,
            publish_report=publish_report, installed_key=lambda: key, grace_s=10.0)


class HubGroup:
    """Hubs sharing one MQTT connection (one process cannot hold a thousand paho clients: select())."""

    def __init__(self, host: str, port: int, hubs: list[Hub], loop: asyncio.AbstractEventLoop,
                 tasks: set[asyncio.Task[Any]]) -> None:
        self._hubs = {f"{ROOT}/{hub.gateway_id}/config/desired": hub for hub in hubs}
        self._loop = loop
        self._tasks = tasks
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.max_inflight_messages_set(100)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe([(topic, 1) for topic in self._hubs])
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("simulated hubs could not subscribe")

    def publish(self, topic: str, payload: str, *, retain: bool) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        hub = self._hubs.get(message.topic)
        if hub is not None and message.payload:
            self._loop.call_soon_threadsafe(self._spawn, hub, bytes(message.payload))

    def _spawn(self, hub: Hub, payload: bytes) -> None:
        task = self._loop.create_task(hub.service.handle(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    key = Ed25519PrivateKey.generate()
    ids = [f"gw-sim-{n:04d}" for n in range(1, args.hubs + 1)]
    failing = set(random.Random(args.seed).sample(ids, round(len(ids) * args.fail_percent / 100)))
    reported: dict[str, float] = {}
    sent: dict[str, float] = {}
    waves: list[tuple[tuple[str, ...], float]] = []  # (hubs, published at)
    tasks: set[asyncio.Task[Any]] = set()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp, \
            devstack.mosquitto(Path(tmp) / "broker") as broker:
        groups: list[HubGroup] = []
        hubs: list[Hub] = []
        set_up = time.perf_counter()
        for start in range(0, len(ids), args.per_client):
            members: list[Hub] = []
            group_publish: list[Any] = [None]
            for gateway_id in ids[start:start + args.per_client]:
                hub = Hub(gateway_id, Path(tmp) / gateway_id, key.public_key(), gateway_id in failing,
                          lambda topic, payload, retain, box=group_publish: box[0](topic, payload, retain=retain),
                          reported)
                members.append(hub)
            group = HubGroup(broker.host, broker.port, members, loop, tasks)
            group_publish[0] = group.publish
            groups.append(group)
            hubs.extend(members)
        await asyncio.gather(*(hub.service.resume() for hub in hubs))
        print(f"{len(hubs)} hubs (real document path) subscribed and resumed in {time.perf_counter() - set_up:.2f} s;"
              f" {len(failing)} will fail their health check")

        def progress(p: Progress) -> None:
            now = time.perf_counter()
            if p.sent:
                waves.append((p.sent, p.elapsed_s))
                for hub_id in p.sent:
                    sent[hub_id] = now

        request = RolloutRequest(hubs=tuple(ids), config=BODY, canary=args.canary, wave_percent=args.wave_percent,
                                 halt_after=2, timeout_s=60.0)
        started = time.perf_counter()
        result = await asyncio.to_thread(push_config, BrokerAddress(broker.host, broker.port), key, request,
                                         state_path=Path(tmp) / "rollout.json", progress=progress)
        total_s = time.perf_counter() - started
        while tasks:
            await asyncio.wait(set(tasks))
        for group in groups:
            group.close()
    latencies = sorted((reported[h] - sent[h]) * 1000 for h in sent if h in reported)
    for index, (members, at) in enumerate(waves, start=1):
        print(f"  wave {index:2d}: {len(members):4d} hubs, published at {at:6.2f} s")
    counts = result.counts
    print(f"rollout: {total_s:.2f} s for {len(ids)} hubs in {len(waves)} wave(s): applied {counts.applied}, "
          f"rolled back {counts.rolled_back}, rejected {counts.rejected}, no answer {counts.no_answer}, "
          f"not sent {len(ids) - len(sent)}; halted: {result.halted}")
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"publish -> report: p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms, "
              f"max {latencies[-1]:.0f} ms over {len(latencies)} hubs")
    reports = sum(hub.service.state.last_report is not None for hub in hubs)
    print(f"MQTT messages through the broker: {len(sent)} documents published (retained), {reports} reports "
          f"published (retained), each delivered once to its one subscriber: {2 * (len(sent) + reports)} "
          f"messages in and out")
    if failing:
        first = next((i for i, (members, _) in enumerate(waves, start=1) if failing & set(members)), None)
        verdict = "within one wave" if first is not None and len(waves) - first <= 1 else "LATER"
        print(f"failures: {len(failing)} planned; the first in wave {first}; the rollout stopped after wave "
              f"{len(waves)} ({verdict})")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.ERROR)  # a thousand hubs' info and warning lines would drown the figures
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--canary", type=int, default=10)
    parser.add_argument("--wave-percent", type=int, default=10)
    parser.add_argument("--fail-percent", type=float, default=0.0)
    parser.add_argument("--per-client", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
