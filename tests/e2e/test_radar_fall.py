"""A radar fall through the daemon: the family hears at once, and after the cancel window the
alert becomes an emergency, because a radar's motion never counts as getting up."""

from __future__ import annotations

from pathlib import Path

import devstack
import pytest
from gatewayproc import GATEWAY_ID, GatewayProcess, platform_records, wait_until, write_config
from mqtt_probe import Probe


@pytest.mark.timeout(120)
def test_radar_fall_alerts_then_escalates(tmp_path: Path, broker: devstack.Broker) -> None:
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            devstack.radar(tmp_path / "radar") as radar:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              detect="fall_cancel_window_s = 5.0",
                              extra=f"""
[[devices]]
id = "radar-bedroom"
driver = "mr60fda1"
port = "{radar.link}"
resident = "r-0001"
""")
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/#")
        gateway.start()
        try:
            wait_until(lambda: "radar connected" in gateway.log_text().lower()
                       or any(r["type"] == "device_status" for r in platform_records(platform.db)), 20,
                       "the radar to be heard")
            radar.command("presence 1")
            radar.command("fall 1")
            first = probe.wait_for("events/alert", timeout_s=20)[0]
            assert (first["kind"], first["severity"], first["state"]) == ("fall", "urgent", "raised")
            assert first["evidence"]["source"] == "radar"
            radar.command("motion 2")  # moving on the floor is not getting up
            second = probe.wait_for("events/alert", 2, timeout_s=30)[1]
            assert (second["severity"], second["state"]) == ("emergency", "escalated")
            wait_until(lambda: {"alert", "fall"} <= {r["type"] for r in platform_records(platform.db)}, 15,
                       "the alert and the fall record at the platform")
        finally:
            probe.close()
            assert gateway.stop() == 0
