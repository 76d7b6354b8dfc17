"""Each configured serial port: there, a device the service may open, readable and writable by its user.

Nothing is opened: the running daemon holds its ports, and a second open could take a meter's
answer from it. The checks are the device node's own facts (stat), judged for the service user
(gateway.config.access.may) and against the unit's device allow-list (gateway.doctor.unit).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from drivers.catalogue import Transport
from gateway.config.access import ServiceUser, describe_owner, may
from gateway.config.schema import DeviceSettings
from gateway.doctor.report import Check, ok, problem, warning
from gateway.doctor.unit import DEVICE_CLASSES

STABLE_LINKS = ("yiyang-serial-*", "serial/by-id/*")
"""Names that follow the adapter, not the order it was plugged in: config/99-yiyang-serial.rules
makes the first, udev's own rules the second."""
_KERNEL_NUMBERED = re.compile(r"/dev/tty(USB|ACM)\d+")
LIST_PORTS = "ls -l /dev/yiyang-serial-* /dev/serial/by-id/"


def serial_checks(devices: Sequence[DeviceSettings], user: ServiceUser,
                  char_devices: Mapping[int, tuple[str, ...]] | None, dev: Path = Path("/dev")) -> list[Check]:
    """One check per serial device. ``char_devices``: /proc/devices (None: the class is not judged)."""
    return [port_check(d.id, d.port, user, char_devices, dev) for d in devices if d.transport is Transport.SERIAL]


def port_check(device_id: str, port: str, user: ServiceUser, char_devices: Mapping[int, tuple[str, ...]] | None,
               dev: Path = Path("/dev")) -> Check:
    name = f"serial {device_id}"
    path = Path(port)
    status = _device_node(name, path)
    if isinstance(status, Check):
        return status
    real = os.path.realpath(path)
    shown = port if real == port else f"{port} ({real})"
    refused = _class_refused(name, shown, real, os.major(status.st_rdev), char_devices)
    if refused is not None:
        return refused
    if not may(user, path, status, os.R_OK | os.W_OK):
        return problem(name, f"user {user.name} cannot read and write {shown} ({describe_owner(status)})",
                       _access_fix(user, real, status))
    stable = stable_names(real, dev) if _KERNEL_NUMBERED.fullmatch(port) else []
    if stable:
        return warning(name, f"{port} is numbered in plug-in order and may name another adapter after a "
                             f"reboot; it is also {stable[0]}", f'set port = "{stable[0]}" in the configuration')
    return ok(name, f"{shown} present, user {user.name} may read and write it")


def _device_node(name: str, path: Path) -> os.stat_result | Check:
    """The character device at ``path`` (symlinks followed), or the problem with it."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return problem(name, f"{path} is not there: the adapter is unplugged, or its name changed",
                       f"plug it in, then find its name: {LIST_PORTS}")
    except OSError as exc:
        return problem(name, f"cannot reach {path} ({exc.strerror})", f"ls -l {path}")
    if not stat.S_ISCHR(status.st_mode):
        return problem(name, f"{path} is not a serial device", f"point port at the adapter: {LIST_PORTS}")
    return status


def _class_refused(name: str, shown: str, real: str, major: int,
                   char_devices: Mapping[int, tuple[str, ...]] | None) -> Check | None:
    """A problem when the unit's ``DeviceAllow=`` would keep the daemon from opening the device."""
    if char_devices is None:
        return None
    names = char_devices.get(major, ())
    if set(names) & set(DEVICE_CLASSES):
        return None
    kind = "/".join(names) or f"major {major}"
    allow = f"char-{names[0]}" if names else real
    return problem(name, f"{shown} is a {kind} device: the service may open only {', '.join(DEVICE_CLASSES)} "
                         "(DeviceAllow= in its unit)",
                   f"systemctl edit yiyang, and add [Service] DeviceAllow={allow} rw")


def stable_names(device: str, dev: Path = Path("/dev")) -> list[str]:
    """The stable links under ``dev`` that lead to ``device``, ours first."""
    found: list[str] = []
    for pattern in STABLE_LINKS:
        found.extend(str(link) for link in sorted(dev.glob(pattern)) if os.path.realpath(link) == device)
    return found


def _access_fix(user: ServiceUser, device: str, status: os.stat_result) -> str:
    mode = stat.S_IMODE(status.st_mode)
    group_rw = stat.S_IRGRP | stat.S_IWGRP
    if status.st_gid in user.gids and mode & group_rw != group_rw:
        return f"chmod g+rw {device} (config/99-yiyang-serial.rules does it at every plug-in)"
    return f"chgrp dialout {device} && chmod g+rw {device} (config/99-yiyang-serial.rules does it at every plug-in)"
