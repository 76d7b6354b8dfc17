"""The daemon against the fake BlueZ as their own processes: the reference platform, a fake BlueZ scenario,
and a gateway configured with the scenario's devices, ready to start.

The tests under tests/e2e/test_ble_*daemon.py start and stop the gateway themselves (some tell the fake
devices what to hold before it starts, some listen on MQTT from the start).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import devstack
from bluez_process import BluezProcess, fake_bluez_process
from gatewayproc import GATEWAY_ID, RESIDENT_ID, GatewayProcess, platform_records, write_config


class BleDaemon(NamedTuple):
    platform: devstack.Platform
    bluez: BluezProcess
    gateway: GatewayProcess
    """Configured, not started."""


def device_rows(addresses: Mapping[str, str], settings: Mapping[str, Mapping[str, str]],
                ids: Mapping[str, str] | None = None) -> str:
    """The ``[[devices]]`` rows for the fake BlueZ's devices (name: address), in its order: each with its
    ``settings`` (driver, bind_key...) by name, its id the name unless ``ids`` gives another, all the
    one resident's."""
    rows = []
    for name, address in addresses.items():
        device_id = name if ids is None else ids[name]
        lines = [f'id = "{device_id}"', *(f'{key} = "{value}"' for key, value in settings[name].items()),
                 f'address = "{address}"', f'resident = "{RESIDENT_ID}"']
        rows.append("\n[[devices]]\n" + "\n".join(lines) + "\n")
    return "".join(rows)


@contextlib.contextmanager
def ble_daemon(tmp_path: Path, broker: devstack.Broker, scenario: str, settings: Mapping[str, Mapping[str, str]],
               ids: Mapping[str, str] | None = None) -> Iterator[BleDaemon]:
    """The platform and the fake BlueZ ``scenario`` for the block, and the gateway configured for both, the
    broker and the scenario's devices (see :func:`device_rows`); its log is ``tmp_path / "daemon.log"``."""
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            fake_bluez_process(tmp_path / "bluez", scenario) as bluez:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              extra=device_rows(bluez.devices, settings, ids))
        yield BleDaemon(platform, bluez, GatewayProcess(config, tmp_path / "daemon.log", env=bluez.env))


def types_at(platform: devstack.Platform) -> Counter[str]:
    """How many records of each type the platform holds."""
    return Counter(str(r["type"]) for r in platform_records(platform.db))
