"""A private ``dbus-daemon`` that plays the system bus for one test (or one demo run).

bleak finds the system bus through ``DBUS_SYSTEM_BUS_ADDRESS``; pointing that at a bus we own
lets the real bleak BlueZ backend run on a machine with no radio and no system bus.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Everything is allowed: the bus only ever carries the test's own processes. Root (or whoever runs
# the test) must be able to own org.bluez, which the stock system.conf forbids.
_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

_START_TIMEOUT_S = 5.0


class BusStartError(RuntimeError):
    """dbus-daemon did not come up; the message says what it printed."""


@contextmanager
def private_bus(directory: Path | None = None) -> Iterator[str]:
    """Run a private dbus-daemon; yield its address (``unix:path=...``) and stop it on exit.

    ``directory`` holds the config and the socket. A unix socket path must stay under 108 bytes,
    and pytest's ``tmp_path`` can be longer, so by default a short directory in /tmp is used.
    """
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        raise BusStartError("dbus-daemon is not installed: apt-get install dbus-daemon (Debian) or dbus")
    own_directory = directory is None
    workdir = Path(tempfile.mkdtemp(prefix="fakebus-")) if directory is None else directory
    socket = workdir / "bus.sock"
    if len(str(socket)) >= 100:
        raise BusStartError(f"socket path {socket} is too long for a unix socket; pass a shorter directory")
    config = workdir / "bus.conf"
    config.write_text(_CONFIG.format(socket=socket))
    process = subprocess.Popen(
        [daemon, f"--config-file={config}", "--nofork", "--nosyslog", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # The daemon prints its address once it listens, so reading the line is the readiness check.
        address = process.stdout.readline().strip()
        if not address:
            process.kill()
            _, stderr = process.communicate(timeout=_START_TIMEOUT_S)
            raise BusStartError(f"dbus-daemon exited without an address: {stderr.strip()}")
        yield address
    finally:
        process.terminate()
        try:
            process.communicate(timeout=_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        if own_directory:
            shutil.rmtree(workdir, ignore_errors=True)


_BLUETOOTHCTL = """#!/bin/sh
# Fake bluetoothctl for the fake BlueZ: bleak only asks it for the version.
if [ "$1" = "--version" ]; then echo "bluetoothctl: {version}"; exit 0; fi
echo "fake bluetoothctl: only --version is emulated" >&2
exit 1
"""


def write_fake_bluetoothctl(bin_dir: Path, version: str = "5.66") -> Path:
    """Write a ``bluetoothctl`` that answers ``--version``; put ``bin_dir`` first on PATH.

    bleak runs ``bluetoothctl --version`` once per process to decide which BlueZ quirks apply.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "bluetoothctl"
    script.write_text(_BLUETOOTHCTL.format(version=version))
    script.chmod(0o755)
    return bin_dir
