"""Type=notify: the daemon says READY, feeds the watchdog from its loop and says STOPPING,
over a real NOTIFY_SOCKET datagram socket as systemd would provide it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import devstack
from gatewayproc import GATEWAY_ID, write_config


def test_ready_watchdog_and_stopping_are_sent(tmp_path: Path, broker: devstack.Broker) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, \
            devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform:
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None)
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
        with open(tmp_path / "daemon.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)], env=env,
                                    stdout=log, stderr=log)
        received: list[str] = []
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline and received.count("WATCHDOG=1") < 3:
                try:
                    received.append(sock.recv(256).decode())
                except TimeoutError:
                    continue
            proc.send_signal(signal.SIGTERM)
            while time.monotonic() < deadline and "STOPPING=1" not in received:
                try:
                    received.append(sock.recv(256).decode())
                except TimeoutError:
                    continue
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
    assert received[0] == "READY=1"
    assert received.count("WATCHDOG=1") >= 3
    assert "STOPPING=1" in received
