"""The doctor judges ports and files as the shipped unit lets the daemon meet them: the two must agree."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.doctor.unit import DEVICE_CLASSES, SERVICE_USER, SUPPLEMENTARY_GROUPS, char_devices

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "yiyang.service"


def directive(name: str) -> list[str]:
    return re.findall(rf"^{name}=(.*)$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)


def test_user_groups_and_device_classes_are_the_units() -> None:
    assert directive("User") == [SERVICE_USER]
    assert directive("SupplementaryGroups") == [" ".join(SUPPLEMENTARY_GROUPS)]
    assert directive("DevicePolicy") == ["closed"]
    assert directive("DeviceAllow") == [f"char-{name} rw" for name in DEVICE_CLASSES]


def test_proc_devices_is_read_by_major_with_every_name() -> None:
    text = "Character devices:\n  4 /dev/vc/0\n  4 tty\n  4 ttyS\n188 ttyUSB\n\nBlock devices:\n188 notachar\n"
    assert char_devices(text) == {4: ("/dev/vc/0", "tty", "ttyS"), 188: ("ttyUSB",)}
