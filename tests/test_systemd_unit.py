"""The shipped systemd unit: locked down (offline exposure score), valid, and the daemon runs inside what it forbids.

This machine has no systemd as PID 1, so the unit cannot be started here: what is checked offline is
its security score and `systemd-analyze verify`; what can be reproduced without systemd is checked by
running the real daemon under it -- W^X memory (MemoryDenyWriteExecute=) through the kernel's
PR_SET_MDWE, which is the same restriction.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import devstack
import pytest
from gatewayproc import GATEWAY_ID, GatewayProcess, wait_until, write_config
from mqtt_probe import Probe

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "yiyang.service"
MAX_EXPOSURE = 1.9
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool is not None, "systemd-analyze is missing: scripts/setup.sh installs systemd"
    return tool


def test_the_unit_is_exposed_no_more_than_1_9() -> None:
    result = subprocess.run([analyze(), "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for yiyang\.service: (\d+\.\d)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_unit_verifies_with_its_install_prefix(tmp_path: Path) -> None:
    # The unit names /opt/yiyang; install.sh puts its own prefix there. Here: this checkout's.
    unit = tmp_path / "yiyang.service"
    unit.write_text(UNIT.read_text().replace("/opt/yiyang", str(REPO)))
    assert (REPO / ".venv" / "bin" / "yiyang").exists(), "run scripts/setup.sh first"
    result = subprocess.run([analyze(), "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            check=False)
    # Units it depends on (mosquitto, bluetooth) may be missing from this machine: that is not the unit's fault.
    problems = [line for line in result.stderr.splitlines()
                if line.strip() and "mosquitto.service" not in line and "bluetooth.service" not in line]
    assert problems == [], result.stderr


def directives() -> str:
    """The unit without its comments."""
    return "\n".join(line for line in UNIT.read_text().splitlines() if not line.lstrip().startswith("#"))


def test_the_unit_keeps_what_the_hub_needs() -> None:
    text = directives()
    for needed in ("Type=notify", "WatchdogSec=", "SupplementaryGroups=dialout bluetooth", "DeviceAllow=char-ttyUSB rw",
                   "DeviceAllow=char-ttyACM rw", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                   "RuntimeDirectory=yiyang", "StateDirectory=yiyang", "UMask=0077"):
        assert needed in text, needed
    for forbidden in ("time-sync.target", "PrivateUsers=yes", "PrivateDevices=yes", "ExecStartPre="):
        assert forbidden not in text, forbidden


def _refuse_write_execute() -> None:
    # Runs in the child before exec: the kernel keeps the flag across execve.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE")


def test_the_daemon_runs_with_write_execute_memory_refused(tmp_path: Path, broker: devstack.Broker) -> None:
    check = subprocess.run([sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"],
                           preexec_fn=_refuse_write_execute, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "1", "the kernel did not keep W^X across exec: the test would prove nothing"
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            devstack.onetouch_meter(tmp_path / "meter", records=2) as meter:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link)
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/status")
        with open(gateway.log, "ab") as log:
            gateway.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                            stdout=log, stderr=log, env=dict(os.environ),
                                            preexec_fn=_refuse_write_execute)  # noqa: PLW1509
        try:
            wait_until(lambda: bool(probe.json_on("status")) and probe.json_on("status")[-1]["state"] == "online",
                       20, "the daemon online under W^X")
            assert gateway.proc.poll() is None
        finally:
            probe.close()
            assert gateway.stop() == 0


@pytest.mark.parametrize("line", ["ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet="])
def test_basic_hardening_lines_are_present(line: str) -> None:
    assert line in directives().splitlines()
