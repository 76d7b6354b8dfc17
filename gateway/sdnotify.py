"""systemd readiness and watchdog notifications (Type=notify, WatchdogSec=).

Uses systemd-python when installed; otherwise speaks the tiny NOTIFY_SOCKET
datagram protocol itself, so a hub without the optional extra still gets
restarted by the watchdog when its event loop is stuck.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from types import ModuleType

_sd_daemon: ModuleType | None
try:
    _sd_daemon = importlib.import_module("systemd.daemon")
except ImportError:  # the optional [systemd] extra is not installed
    _sd_daemon = None


def _fallback_notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True


def _systemd_notify(state: str) -> bool:
    assert _sd_daemon is not None
    return bool(_sd_daemon.notify(state))


notify: Callable[[str], bool] = _systemd_notify if _sd_daemon is not None else _fallback_notify


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd asked for, or None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
