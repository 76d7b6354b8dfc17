"""The real daemon under a flood of poison MQTT messages: does it stay up, small and answering?

    python bench/mqtt_flood.py [--seconds 20] [--broker-unlimited] [--skip deep-ack] [--keep]

Starts a private Mosquitto (scripts/devstack.py, with the test broker's max_packet_size unless
``--broker-unlimited``), the reference platform and the gateway daemon (``python -m gateway run``)
with a fleet key, then for ``--seconds`` publishes what a hostile family account or a broken app
might send at the hub's own topics (``yiyang/v1/gw-test/cmd/+`` and ``.../residents/+/alerts/+/ack/+``):
5,000-deep arrays, a 4 KB deep ack (under the ack size limit, so only the parser can stop it),
non-UTF-8 bytes, 100 KB commands, retained poison, 1 MB fields and 200 MB messages. Half way, and
again at the end, it sends a signed ``cmd/ping`` (scripts/fleet.py) and times the answer.

It prints what was sent, the daemon's RSS before and after (VmRSS, and VmHWM: the peak) from
/proc, the broker's peak RSS, how many lines the daemon logged, and whether it is still up and
answering. Everything runs on 127.0.0.1 and stops by itself.

``--broker-unlimited`` shows what the hub's own limits do alone, and what they cannot: Mosquitto
2.0.11 then accepts the 1 MB and 200 MB messages and may jam the hub's in-flight window with them
(gateway/mqtt_policy.py, MAX_PACKET_BYTES), so a ping can go unanswered until a reconnect.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests" / "support")]
import devstack  # noqa: E402
from gatewayproc import GATEWAY_ID, GatewayProcess, write_config  # noqa: E402
from mqtt_publisher import publish_once  # noqa: E402

ROOT = f"yiyang/v1/{GATEWAY_ID}/"
FLEET = REPO / "scripts" / "fleet.py"
DEEP = b"[" * 5000 + b"]" * 5000


@dataclass(frozen=True)
class Poison:
    kind: str
    topic: str
    payload: bytes
    retain: bool = False


SMALL_POISON = (
    Poison("deep-cmd", "cmd/ping", DEEP),
    Poison("deep-ack-10k", "residents/r-0001/alerts/p1/ack/c-0001", DEEP, retain=True),
    Poison("deep-ack", "residents/r-0001/alerts/p2/ack/c-0001", b"[" * 2000 + b"]" * 2000),
    Poison("non-utf8-cmd", "cmd/ping", b"\xff\xfe\xfd" * 100, retain=True),
    Poison("non-utf8-ack", "residents/r-0001/alerts/p3/ack/c-0001", b'{"by": "\xff\xfe"}'),
    Poison("100k-cmd", "cmd/doctor", b'{"request_id": "' + b"x" * 100_000 + b'"}'),
    Poison("60k-cmd", "cmd/queue", b'{"request_id": "r", "args": {"a": "' + b"y" * 60_000 + b'"}}'),
    Poison("garbage-ack", "residents/r-0001/alerts/p4/ack/c-0001", b"not json at all"),
)
BIG_POISON = (
    Poison("1mb-cmd", "cmd/ping", b'{"request_id": "' + b"z" * 2**20 + b'"}', retain=True),
)
HUGE_BYTES = 200 * 2**20


def status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def ping(broker: devstack.Broker, key: Path, timeout_s: float) -> tuple[bool, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(FLEET), "cmd", "--broker", f"{broker.host}:{broker.port}",
                             "--gateway", GATEWAY_ID, "--key", str(key), "--timeout", str(timeout_s), "ping"],
                            capture_output=True, text=True, timeout=timeout_s + 30, check=False)
    return result.returncode == 0 and '"pong": true' in result.stdout, time.monotonic() - started


class Flood:
    """Small poison round-robin from one connection; the big ones each from a connection of their own."""

    def __init__(self, broker: devstack.Broker, small: list[Poison], seconds: float) -> None:
        self.broker = broker
        self.small = small
        self.deadline = time.monotonic() + seconds
        self.sent: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def run_small(self) -> None:
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        client.max_inflight_messages_set(100)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            i = 0
            while time.monotonic() < self.deadline:
                poison = self.small[i % len(self.small)]
                info = client.publish(ROOT + poison.topic, poison.payload, qos=1, retain=poison.retain)
                i += 1
                if i % 100 == 0:  # keep at most ~100 in flight: a flood, not an unbounded queue in paho
                    info.wait_for_publish(10)
                self.sent[poison.kind] += 1
        finally:
            client.disconnect()
            client.loop_stop()

    def run_big(self, huge_every_s: float) -> None:
        huge = b"h" * HUGE_BYTES
        next_huge = time.monotonic()
        while time.monotonic() < self.deadline:
            for poison in BIG_POISON:
                self._once(poison)
            if time.monotonic() >= next_huge:
                self._once(Poison("200mb-cmd", "cmd/ping", huge))
                next_huge = time.monotonic() + huge_every_s

    def _once(self, poison: Poison) -> None:
        accepted = publish_once(self.broker.host, self.broker.port, ROOT + poison.topic, poison.payload,
                                retain=poison.retain, timeout_s=120)
        self.sent[poison.kind] += 1
        if not accepted:
            self.refused[poison.kind] += 1


def run(args: argparse.Namespace, work: Path) -> int:
    subprocess.run([sys.executable, str(FLEET), "keygen", "--out", str(work / "fleet")], check=True,
                   capture_output=True)
    key = work / "fleet" / "fleet.key"
    broker_limit = 0 if args.broker_unlimited else devstack.BROKER_MAX_PACKET_BYTES
    small = [p for p in SMALL_POISON if p.kind not in args.skip]
    with devstack.mosquitto(work / "broker", max_packet_bytes=broker_limit) as broker, \
            devstack.platform_server(work / "platform", GATEWAY_ID) as platform:
        config = write_config(work / "gw.toml", data_dir=work / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              extra=f'\n[fleet]\npublic_key_file = "{work / "fleet" / "fleet.pub"}"\n')
        daemon = GatewayProcess(config, work / "daemon.log")
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        try:
            up, first_ping_s = ping(broker, key, 30)
            if not up:
                print("the daemon did not answer a ping before the flood:\n" + daemon.log_text()[-3000:])
                return 1
            before = status_kb(pid)
            log_lines_before = len(daemon.log_text().splitlines())
            flood = Flood(broker, small, args.seconds)
            threads = [threading.Thread(target=flood.run_small),
                       threading.Thread(target=flood.run_big, args=(args.huge_every,))]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            time.sleep(args.seconds / 2)
            mid_up, mid_ping_s = ping(broker, key, 30) if daemon.proc.poll() is None else (False, 0.0)
            for thread in threads:
                thread.join()
            flood_s = time.monotonic() - started
            alive = daemon.proc.poll() is None
            after = status_kb(pid) if alive else {}
            end_up, end_ping_s = ping(broker, key, 30) if alive else (False, 0.0)
            settled = status_kb(pid) if daemon.proc.poll() is None else {}
            log_lines = len(daemon.log_text().splitlines()) - log_lines_before
            broker_peak = status_kb(broker.proc.pid).get("VmHWM", 0)
        finally:
            code = daemon.stop() if daemon.proc.poll() is None else daemon.proc.returncode
    _report(args, flood, flood_s, before, after, settled, broker_peak, log_lines,
            (first_ping_s, mid_up, mid_ping_s, end_up, end_ping_s), alive, code)
    if not alive:
        print("\nthe daemon died; its last lines:\n" + "\n".join(daemon.log_text().splitlines()[-25:]))
    return 0 if alive and mid_up and end_up else 1


def _report(args: argparse.Namespace, flood: Flood, flood_s: float, before: dict[str, int], after: dict[str, int],
            settled: dict[str, int], broker_peak_kb: int, log_lines: int,
            pings: tuple[float, bool, float, bool, float], alive: bool, exit_code: int) -> None:
    first_ping_s, mid_up, mid_ping_s, end_up, end_ping_s = pings
    mb = 1024
    print(f"mqtt flood: {flood_s:.1f} s at {ROOT}cmd/+ and {ROOT}residents/+/alerts/+/ack/+, broker max_packet_size="
          f"{'none' if args.broker_unlimited else devstack.BROKER_MAX_PACKET_BYTES}")
    for kind in sorted(flood.sent):
        refused = f" (broker refused {flood.refused[kind]})" if flood.refused[kind] else ""
        print(f"  sent {kind:>14}: {flood.sent[kind]:7d}{refused}")
    print(f"  {'daemon RSS before':>30}: {before['VmRSS'] / mb:7.1f} MB (peak so far {before['VmHWM'] / mb:.1f} MB)")
    if after:
        print(f"  {'daemon RSS right after':>30}: {after['VmRSS'] / mb:7.1f} MB")
        print(f"  {'daemon peak RSS (VmHWM)':>30}: {after['VmHWM'] / mb:7.1f} MB")
    if settled:
        print(f"  {'daemon RSS after the pings':>30}: {settled['VmRSS'] / mb:7.1f} MB")
    print(f"  {'broker peak RSS (VmHWM)':>30}: {broker_peak_kb / mb:7.1f} MB")
    print(f"  {'daemon log lines in the flood':>30}: {log_lines}")
    print(f"  {'signed ping before':>30}: answered in {first_ping_s:.2f} s")
    print(f"  {'signed ping mid-flood':>30}: {'answered' if mid_up else 'NOT answered'} in {mid_ping_s:.2f} s")
    print(f"  {'signed ping after':>30}: {'answered' if end_up else 'NOT answered'} in {end_ping_s:.2f} s")
    print(f"  {'daemon':>30}: {'still up' if alive else 'DIED'}, exit code {exit_code} on stop")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to flood (default 20)")
    parser.add_argument("--huge-every", type=float, default=5.0, help="seconds between 200 MB messages")
    parser.add_argument("--broker-unlimited", action="store_true",
                        help="no max_packet_size on the broker: only the hub's own limits stand")
    parser.add_argument("--skip", action="append", default=[], help="a poison kind to leave out (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mqtt-flood-"))
    try:
        return run(args, work)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
