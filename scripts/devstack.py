"""Start the real parts the demo and the tests need, on this machine only: a private Mosquitto,
the reference platform server and the OneTouch simulator. Each is a context manager that
stops what it started.

Used by ``yiyang demo`` (scripts/demo.py) and by tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on port {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_mosquitto() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if path is None:
        raise FileNotFoundError("mosquitto is not installed: run scripts/setup.sh (it installs the Debian package)")
    return path


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    proc: subprocess.Popen[bytes]


def password_file(path: Path, accounts: Mapping[str, str]) -> Path:
    """A Mosquitto password file for ``{user: password}``, made by ``mosquitto_passwd -b``."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path.write_text("")
    for user, password in accounts.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True, timeout=30)
    return path


BROKER_MAX_PACKET_BYTES = 256 * 1024 + 4 * 1024
"""The biggest packet the test/demo broker takes: a 256 KiB signed configuration document plus its
header and topic (gateway/mqtt_policy.py MAX_PACKET_BYTES, which scripts/ does not import)."""


def mosquitto_conf(port: int, workdir: Path, max_packet_bytes: int = BROKER_MAX_PACKET_BYTES,
                   extra_conf: str = "", *, acl: str | None = None,
                   accounts: Mapping[str, str] | None = None) -> str:
    """The test/demo broker's configuration (production: config/mosquitto-hub.conf.example)."""
    lines = [f"listener {port} 127.0.0.1", "persistence false", f"log_dest file {workdir / 'mosquitto.log'}"]
    # max_packet_size, not message_size_limit (Mosquitto 2.0.11 here, whose man page documents both):
    # max_packet_size is checked against the packet's length field before the payload is read, so a
    # 200 MB publish costs the broker nothing and its sender is disconnected; message_size_limit
    # reads the whole message first and only then drops it. 0 leaves the broker unlimited (a test
    # of the hub's own defences).
    if max_packet_bytes:
        lines.append(f"max_packet_size {max_packet_bytes}")
    if os.geteuid() == 0:
        # Started as root, Mosquitto becomes user "mosquitto", who cannot open files in a private work dir.
        lines.append("user root")
    if accounts is None:
        lines.append("allow_anonymous true")
    else:
        lines += ["allow_anonymous false", f"password_file {password_file(workdir / 'passwd', accounts)}"]
    if acl is not None:
        (workdir / "acl").write_text(acl)
        lines.append(f"acl_file {workdir / 'acl'}")
    return "\n".join(lines) + "\n" + extra_conf


@contextlib.contextmanager
def mosquitto(workdir: Path, port: int = 0, max_packet_bytes: int = BROKER_MAX_PACKET_BYTES,
              extra_conf: str = "", *, acl: str | None = None,
              accounts: Mapping[str, str] | None = None) -> Iterator[Broker]:
    """A private broker on 127.0.0.1 (persistence off, packets bounded), stopped on exit.

    Anonymous by default; with ``accounts`` ({user: password}) only those users may connect, and
    with ``acl`` (acl_file text) each may use only the topics it allows.
    ``extra_conf``: more mosquitto.conf lines, e.g. ``max_queued_messages 0`` for a flood test.
    """
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_conf(port, workdir, max_packet_bytes, extra_conf, acl=acl, accounts=accounts))
    with open(workdir / "mosquitto.stderr", "ab") as err:
        proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_port(port, proc=proc)
        yield Broker("127.0.0.1", port, proc)
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class Platform:
    url: str
    port: int
    db: Path
    secret_file: Path
    gateway_id: str
    proc: subprocess.Popen[bytes]


def write_secret(path: Path, secret: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)
    return path


@contextlib.contextmanager
def platform_server(workdir: Path, gateway_id: str, secret: str = "demo-secret-0123456789abcdef",
                    port: int = 0, extra_args: tuple[str, ...] = ()) -> Iterator[Platform]:
    """The reference platform (scripts/platform_server.py) on a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    secret_file = write_secret(workdir / "platform.secret", secret)
    port = port or free_port()
    db = workdir / "platform.sqlite"
    with open(workdir / "platform.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "platform_server.py"), "--port", str(port), "--db", str(db),
             "--secret-file", str(secret_file), "--gateway-id", gateway_id, *extra_args],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    try:
        wait_port(port, proc=proc)
        yield Platform(f"http://127.0.0.1:{port}", port, db, secret_file, gateway_id, proc)
    finally:
        stop_process(proc)


def hub_config(workdir: Path, gateway_id: str, platform: Platform, broker_port: int,
               devices: Mapping[str, Mapping[str, str]]) -> Path:
    """``workdir/gw.toml``: a hub of one resident (r-0001) with these devices (id: driver, address or port)
    reporting to ``platform`` through the broker on loopback; its data directory in ``workdir``."""
    blocks = "".join("\n[[devices]]\n" + f'id = "{device_id}"\n'
                     + "".join(f'{key} = "{value}"\n' for key, value in fields.items()) + 'resident = "r-0001"\n'
                     for device_id, fields in devices.items())
    config = workdir / "gw.toml"
    config.write_text(f"""
[gateway]
id = "{gateway_id}"
data_dir = "{workdir / 'data'}"
clock_sync = "assume_synced"
[platform]
url = "{platform.url}"
secret_file = "{platform.secret_file}"
[mqtt]
port = {broker_port}
[[residents]]
id = "r-0001"
{blocks}""", encoding="utf-8")
    return config


@dataclass(frozen=True)
class PtySimulator:
    """A running pty simulator (meter, radar, NIBP module): its link and its stdin."""

    link: Path
    proc: subprocess.Popen[bytes]

    def command(self, line: str) -> None:
        """Send a control command to the simulator (``add 63``, ``unplug``, ...)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def onetouch_meter(workdir: Path, records: int = 3,
                   extra_args: tuple[str, ...] = ()) -> contextlib.AbstractContextManager[PtySimulator]:
    """The OneTouch Ultra 2 simulator serving a pty, linked at ``workdir/meter``."""
    return _pty_simulator("sim_onetouch.py", workdir, "meter", ("--records", str(records), *extra_args))


@contextlib.contextmanager
def _pty_simulator(script: str, workdir: Path, name: str, extra_args: tuple[str, ...] = ()) -> Iterator[PtySimulator]:
    """A pty simulator from scripts/, linked at ``workdir/name``, driven through its stdin."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / name
    with open(workdir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / script), "--link", str(link), *extra_args],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while not link.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{script} did not create {link}")
            time.sleep(0.05)
        yield PtySimulator(link, proc)
    finally:
        stop_process(proc)


def radar(workdir: Path, extra_args: tuple[str, ...] = ()) -> contextlib.AbstractContextManager[PtySimulator]:
    """The MR60FDA1 fall radar simulator serving a pty, linked at ``workdir/radar``."""
    return _pty_simulator("sim_mr60fda1.py", workdir, "radar", extra_args)


def suntech(workdir: Path, extra_args: tuple[str, ...] = ()) -> contextlib.AbstractContextManager[PtySimulator]:
    """The SunTech Advantage NIBP module simulator serving a pty, linked at ``workdir/nibp``."""
    return _pty_simulator("sim_suntech.py", workdir, "nibp", extra_args)
