"""What the shipped systemd unit gives the daemon, so checks judge files and devices as it will meet them.

systemd/yiyang.service runs the daemon as ``User=yiyang`` with ``SupplementaryGroups=dialout
bluetooth`` (whatever groups the user itself is in) and ``DevicePolicy=closed`` with ``DeviceAllow=``
for four tty classes only: a port of another class (``/dev/rfcomm0``, an Exar ``ttyXRUSB0``) opens
from a shell but not from the service. tests/test_systemd_unit.py keeps these equal to the unit.
"""

from __future__ import annotations

import grp
import re
from collections.abc import Iterable

from gateway.config.access import ServiceUser, UnknownUserError

SERVICE_USER = "yiyang"
SUPPLEMENTARY_GROUPS = ("dialout", "bluetooth")
DEVICE_CLASSES = ("ttyUSB", "ttyACM", "ttyAMA", "ttyS")
"""``DeviceAllow=char-NAME rw``: NAME as the kernel lists the driver in /proc/devices."""

_PROC_DEVICE = re.compile(r"^\s*(\d+)\s+(\S+)\s*$")


def service_user(name: str | None = None) -> ServiceUser:
    """The user the daemon runs as, with the unit's supplementary groups.

    ``name`` None: the unit's user if this system has it, else whoever runs this (a development
    machine without the service user). Raises UnknownUserError for a ``name`` that does not exist.
    """
    if name is None:
        try:
            user = ServiceUser.named(SERVICE_USER)
        except UnknownUserError:
            return ServiceUser.current()
    else:
        user = ServiceUser.named(name)
    return ServiceUser(user.name, user.uid, user.gids | _group_ids(SUPPLEMENTARY_GROUPS))


def char_devices(proc_devices: str) -> dict[int, tuple[str, ...]]:
    """Character-device major -> the driver names /proc/devices lists for it (major 4: tty, ttyS)."""
    found: dict[int, tuple[str, ...]] = {}
    for line in proc_devices.split("Block devices:", 1)[0].splitlines():
        match = _PROC_DEVICE.match(line)
        if match is not None:
            major = int(match.group(1))
            found[major] = (*found.get(major, ()), match.group(2))
    return found


def read_char_devices() -> dict[int, tuple[str, ...]] | None:
    """This machine's /proc/devices; None where it cannot be read (inside the unit, ``ProcSubset=pid``)."""
    try:
        with open("/proc/devices", encoding="ascii") as file:
            return char_devices(file.read())
    except OSError:
        return None


def _group_ids(names: Iterable[str]) -> frozenset[int]:
    ids: set[int] = set()
    for name in names:
        try:
            ids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            continue  # no such group here: the unit would not start either, and says so itself
    return frozenset(ids)
