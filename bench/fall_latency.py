"""Fall alert latency through the real daemon: micro:bit (fake BlueZ, real bleak) -> daemon -> MQTT.

    python bench/fall_latency.py [--falls 20]

Feeds a fall (the synthetic "fall, then gets up" signal, so each episode ends and the next can
start) to an emulated micro:bit streaming at 50 Hz, N times, with the daemon running as a separate
process against a private Mosquitto, the reference platform and the fake BlueZ. Prints:

- decision latency: from the arrival at the hub of the sample that completes the evidence to the
  alert handed to MQTT (after its outbox commit), as the daemon logs it per alert;
- broker hop: from that hand-over to a family subscriber receiving ``residents/{rid}/events/alert``
  (both sides read CLOCK_MONOTONIC of this machine);
- end to end: the sum, per alert (target p99 <= 20 ms);
- daemon CPU per sample while streaming.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests" / "support")]
import devstack  # noqa: E402
from bluez_process import fake_bluez_process  # noqa: E402
from synthetic import scenario  # noqa: E402

from gateway.status import read_status, runtime_status_path  # noqa: E402

GATEWAY_ID = "gw-bench"
LATENCY_LINE = re.compile(r"fall alert published alert_id=(\S+) .*decision_latency_ms=([\d.]+) "
                          r"published_monotonic=([\d.]+)")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def summary(name: str, values: list[float]) -> str:
    return (f"  {name:>22}: p50 {percentile(values, 50):7.2f}  p95 {percentile(values, 95):7.2f}  "
            f"p99 {percentile(values, 99):7.2f}  max {max(values, default=float('nan')):7.2f} ms  (n={len(values)})")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime in clock ticks (USER_HZ = 100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--falls", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fall-latency-"))
    received: dict[str, float] = {}
    raised = threading.Event()
    fall = scenario("fall_then_get_up", 50.0).samples.astype(np.float32)
    np.save(workdir / "fall.npy", fall)
    with devstack.mosquitto(workdir / "broker") as broker, \
            devstack.platform_server(workdir / "platform", GATEWAY_ID) as platform, \
            fake_bluez_process(workdir / "bluez", "wearable") as bluez:
        config = workdir / "gw.toml"
        config.write_text(f"""
[gateway]
id = "{GATEWAY_ID}"
data_dir = "{workdir / 'data'}"
[platform]
url = "{platform.url}"
secret_file = "{platform.secret_file}"
[mqtt]
port = {broker.port}
[detect]
fall_cancel_window_s = 5.0
[[residents]]
id = "r-0001"
[[devices]]
id = "band"
driver = "microbit-accel"
address = "{bluez.devices['microbit']}"
resident = "r-0001"
""", encoding="utf-8")

        def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
            at = time.monotonic()
            body = json.loads(msg.payload)
            if body.get("kind") == "fall" and body.get("state") == "raised":
                received[body["alert_id"]] = at
                raised.set()

        family = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        family.on_message = on_message
        family.on_connect = lambda c, *_: c.subscribe(f"yiyang/v1/{GATEWAY_ID}/residents/+/events/alert", qos=1)
        family.connect(broker.host, broker.port)
        family.loop_start()
        log_path = workdir / "daemon.log"
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                      stdout=log, stderr=log, env=dict(os.environ, **bluez.env))
        try:
            status_paths = [workdir / "data" / "status.json", runtime_status_path(GATEWAY_ID, workdir / "data")]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(KeyError):
                    if (read_status(status_paths) or {})["devices"]["band"]["last_seen"]:
                        break
                time.sleep(0.2)
            else:
                print(f"the micro:bit never streamed: see {log_path}")
                return 1
            time.sleep(2.0)
            cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(10.0)
            idle_stream_cpu = (cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0)
            missed = 0
            for n in range(args.falls):
                raised.clear()
                bluez.command(cmd="feed", device="microbit", npy=str(workdir / "fall.npy"))
                if not raised.wait(len(fall) / 50.0 + 10):
                    missed += 1
                time.sleep(3.0)  # got up: the episode is cancelled; let the refractory period pass
                print(f"  fall {n + 1}/{args.falls}: {'alert' if raised.is_set() else 'MISSED'}", flush=True)
        finally:
            devstack.stop_process(daemon)
            family.loop_stop()
    decision: list[float] = []
    hop: list[float] = []
    total: list[float] = []
    for line in log_path.read_text().splitlines():
        match = LATENCY_LINE.search(line)
        if match and match.group(1) in received:
            d = float(match.group(2))
            h = (received[match.group(1)] - float(match.group(3))) * 1000
            decision.append(d)
            hop.append(h)
            total.append(d + h)
    print(f"fall alert latency through the daemon: {args.falls} falls fed at 50 Hz, "
          f"{len(total)} alerts, {missed} missed")
    print(summary("decision (in daemon)", decision))
    print(summary("broker hop", hop))
    print(summary("end to end", total) + "  (target p99 <= 20 ms)")
    print(f"  daemon CPU while one 50 Hz micro:bit streams (bleak + D-Bus + detector): "
          f"{idle_stream_cpu * 100:.1f} % of a core = {idle_stream_cpu / 50 * 1e6:.0f} us per sample")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if total and not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
