"""scripts/install.sh --root DIR: the tree it writes, the same on a second run, and what --uninstall keeps.

Offline only (no systemd as PID 1, no udev here): under --root the script skips what needs the live
system (packages, useradd, chown, udevadm, systemctl, the doctor) and prints the owners it would set
in its manifest. What is checked for real: every file, mode and byte under DIR, the configuration
it writes (valid, with the hub's identity), the broker it sets up (a real Mosquitto on the installed
configuration lets the hub in with the installed password), and the unit with its install prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import devstack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.config import parse_config
from gateway.doctor.broker import Target, try_connect
from gateway.store import DatabaseFile, records
from gateway.store.api import NewRecord, Priority

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "scripts" / "install.sh"
SECRET = "platform-secret-for-gw-0042"
HUB = ("--hub-id", "gw-0042", "--platform-url", "https://platform.example/api", "--resident", "r-0001")

EXPECTED = {  # path -> (mode, owner:group) as the manifest promises and the hub needs
    "/etc/yiyang": ("0755", "root:root"),
    "/etc/yiyang/gateway.toml": ("0640", "root:yiyang"),
    "/etc/yiyang/platform.secret": ("0600", "yiyang:yiyang"),
    "/etc/yiyang/broker.password": ("0600", "yiyang:yiyang"),
    "/etc/yiyang/fleet.pub": ("0640", "root:yiyang"),
    "/var/lib/yiyang": ("0750", "yiyang:yiyang"),
    "/etc/mosquitto/conf.d/yiyang.conf": ("0644", "root:root"),
    "/etc/mosquitto/yiyang.passwd": ("0600", "mosquitto:mosquitto"),
    "/etc/mosquitto/yiyang.acl": ("0600", "mosquitto:mosquitto"),
    "/etc/udev/rules.d/99-yiyang-serial.rules": ("0644", "root:root"),
    "/etc/systemd/system/yiyang.service": ("0644", "root:root"),
}


def install(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), "--root", str(root), *args], input=stdin, capture_output=True,
                          text=True, timeout=120, check=False, env=dict(os.environ, YIYANG_PYTHON=sys.executable))


def fleet_pub(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.pub"
    path.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.PEM,
                                                                           PublicFormat.SubjectPublicKeyInfo))
    return path


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``root``: its mode and the hash of its bytes."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found["/" + str(path.relative_to(root))] = (f"{mode:04o}", digest)
    return found


def manifest(output: str) -> dict[str, tuple[str, str]]:
    lines = re.findall(r"^install:   (\d{4}) (\S+:\S+) (/\S+)$", output, re.MULTILINE)
    return {path: (mode, owner) for mode, owner, path in lines}


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path / "hub"
    root.mkdir()
    first = install(root, *HUB, "--secret-file", "-", "--fleet-key", str(fleet_pub(tmp_path)), stdin=SECRET + "\n")
    assert first.returncode == 0, first.stdout + first.stderr
    return root, first


def test_a_second_run_changes_nothing_and_says_so(installed: tuple[Path, subprocess.CompletedProcess[str]],
                                                  tmp_path: Path) -> None:
    root, first = installed
    before = tree(root)
    (tmp_path / "secret").write_text(SECRET + "\n")
    again = install(root, *HUB, "--secret-file", str(tmp_path / "secret"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert tree(root) == before
    assert again.stdout.splitlines()[-1] == "install: nothing changed: everything was already in place"
    assert "install: 11 change(s)" in first.stdout  # two directories, eight files, the broker user
    assert manifest(again.stdout) == manifest(first.stdout) == EXPECTED
    assert "install:   user yiyang (system, groups dialout,bluetooth)" in first.stdout


def test_the_tree_has_the_modes_the_manifest_says_and_nothing_else(
        installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, first = installed
    written = {path: mode for path, (mode, _digest) in tree(root).items()
               if path in EXPECTED or not (root / path.lstrip("/")).is_dir()}
    assert written == {path: mode for path, (mode, _owner) in EXPECTED.items()}
    # Every step said what it did, and the secret was never shown.
    assert [int(n) for n in re.findall(r"^install: \[(\d+)\]", first.stdout, re.MULTILINE)] == list(range(1, 12))
    assert SECRET not in first.stdout + first.stderr
    assert (root / "etc/yiyang/platform.secret").read_text() == SECRET + "\n"


def test_the_configuration_names_the_hub_and_the_installed_files(
        installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _first = installed
    cfg = parse_config((root / "etc/yiyang/gateway.toml").read_text(), "gateway.toml")
    assert (cfg.gateway.id, cfg.platform.url, [r.id for r in cfg.residents]) == (
        "gw-0042", "https://platform.example/api", ["r-0001"])
    assert (cfg.platform.secret_file, cfg.mqtt.username, cfg.mqtt.password_file, cfg.fleet.public_key_file) == (
        Path("/etc/yiyang/platform.secret"), "yiyang-gateway", Path("/etc/yiyang/broker.password"),
        Path("/etc/yiyang/fleet.pub"))
    assert cfg.devices == () and cfg.contacts == ()  # the examples are comments
    unit = (root / "etc/systemd/system/yiyang.service").read_text()
    assert f"ExecStart={REPO}/.venv/bin/yiyang run --config /etc/yiyang/gateway.toml" in unit
    assert "/opt/yiyang" not in unit
    assert "user yiyang-gateway\ntopic readwrite yiyang/v1/gw-0042/#" in (root / "etc/mosquitto/yiyang.acl").read_text()


@pytest.mark.timeout(60)
def test_the_installed_broker_lets_the_hub_in_with_its_password(
        installed: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    root, _first = installed
    conf = (root / "etc/mosquitto/conf.d/yiyang.conf").read_text()
    assert re.search(r"^persistence true$", conf, re.MULTILINE)
    port = devstack.free_port()
    conf = conf.replace("/etc/mosquitto/", f"{root}/etc/mosquitto/")
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.MULTILINE)
    conf += f"user root\npersistence_location {tmp_path}/\n"  # test-only: the files are root's here
    (tmp_path / "hub.conf").write_text(conf)
    with open(tmp_path / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([devstack.find_mosquitto(), "-c", str(tmp_path / "hub.conf")],
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        devstack.wait_port(port, proc=proc)
        password = (root / "etc/yiyang/broker.password").read_text().strip()
        assert try_connect(Target("127.0.0.1", port, "yiyang-gateway", password, None), 5.0).connected
        refused = try_connect(Target("127.0.0.1", port, "yiyang-gateway", "guess", None), 5.0)
        assert not refused.connected and refused.refusal is not None
        assert try_connect(Target("127.0.0.1", port, None, None, None), 5.0).refusal is not None
    finally:
        devstack.stop_process(proc)


def test_a_new_url_changes_only_its_line_and_bound_devices_stay(
        installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _first = installed
    config = root / "etc/yiyang/gateway.toml"
    bound = subprocess.run([sys.executable, "-m", "gateway", "bind", "--config", str(config), "--id", "bp-bedroom",
                            "--driver", "ble-bps", "--address", "A4:C1:38:00:00:01", "--resident", "r-0001"],
                           capture_output=True, text=True, check=False)
    assert bound.returncode == 0, bound.stderr
    before = config.read_text()
    moved = install(root, "--hub-id", "gw-0042", "--platform-url", "https://new.example/api")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    after = config.read_text()
    assert [line for line in after.splitlines() if line not in before.splitlines()] == [
        'url = "https://new.example/api"']
    assert "install: 1 change(s)" in moved.stdout
    assert [d.id for d in parse_config(after, "gateway.toml").devices] == ["bp-bedroom"]


def test_wrong_or_missing_arguments_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    root.mkdir()
    no_secret = install(root, *HUB)
    assert no_secret.returncode == 2
    assert "--secret-file FILE (or - for standard input) is required" in no_secret.stderr
    no_resident = install(root, "--hub-id", "gw-0042", "--platform-url", "https://p.example", "--secret-file", "-",
                          stdin="s\n")
    assert no_resident.returncode == 2
    assert "--resident ID is required for a new hub" in no_resident.stderr
    assert list(root.iterdir()) == []
    empty = install(root, *HUB, "--secret-file", "-", stdin="\n")
    assert empty.returncode == 1
    assert "the platform secret is empty" in empty.stderr


def test_uninstall_keeps_the_data_and_purge_removes_it(
        installed: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _first = installed
    outbox = root / "var/lib/yiyang/outbox.sqlite"
    with DatabaseFile.open(outbox) as store:
        store.run(records.accept([NewRecord("device_status", Priority.STATUS, "{ }", datetime.now(UTC))]))
    removed = install(root, "--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    for gone in ("etc/systemd/system/yiyang.service", "etc/udev/rules.d/99-yiyang-serial.rules",
                 "etc/mosquitto/conf.d/yiyang.conf"):
        assert not (root / gone).exists(), gone
    for kept in ("etc/yiyang/gateway.toml", "etc/yiyang/platform.secret", "var/lib/yiyang/outbox.sqlite",
                 "etc/mosquitto/yiyang.passwd"):
        assert (root / kept).exists(), kept

    refused = install(root, "--uninstall", "--purge")
    assert refused.returncode == 1
    assert "1 record(s) in /var/lib/yiyang have not reached the platform: nothing was purged" in refused.stderr
    assert outbox.exists()

    purged = install(root, "--uninstall", "--purge", "--force")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for gone in ("etc/yiyang", "var/lib/yiyang", "etc/mosquitto/yiyang.passwd", "etc/mosquitto/yiyang.acl"):
        assert not (root / gone).exists(), gone


def test_the_udev_rules_name_every_common_usb_serial_chip() -> None:
    rules = (REPO / "config" / "99-yiyang-serial.rules").read_text()
    found = re.findall(r'ENV\{ID_VENDOR_ID\}=="([0-9a-f]{4})", ENV\{ID_MODEL_ID\}=="([0-9a-f]{4})", '
                       r'ENV\{YIYANG_CHIP\}="(\w+)"', rules)
    chips = {f"{vendor}:{product}": chip for vendor, product, chip in found}
    assert chips == {"067b:2303": "pl2303", "10c4:ea60": "cp210x", "0403:6001": "ftdi", "0403:6015": "ftdi",
                     "1a86:7523": "ch340", "1a86:5523": "ch341"}
    assert 'SYMLINK+="yiyang-serial-$env{YIYANG_CHIP}-$env{ID_SERIAL_SHORT}"' in rules
    assert 'SYMLINK+="yiyang-serial-$env{YIYANG_CHIP}-port-$env{ID_PATH_TAG}"' in rules
