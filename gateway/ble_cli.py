"""Technician commands for Bluetooth devices: scan what is nearby, pair, bind a device in the config.

The logic lives here; ``gateway.cli`` wires it to argparse. ``bind_device`` edits the TOML
file with tomlkit so the technician's comments survive, and refuses any edit that leaves the
configuration invalid.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

import tomlkit

from drivers.ble.agent import PairingError, PairingRequest, PairingRequestKind
from drivers.ble.agent import pair as pair_device
from drivers.ble.policy import normalize_address
from drivers.catalogue import CATALOGUE, Binding, DriverSpec
from gateway.ble_scan import BleScanError, Sighting, Sightings, own_scanner
from gateway.config.edit import array_of_tables, commit_edit, prepare_edit

PROGRESS_EVERY_S = 1.0


def _in_table_order(sightings: Sequence[Sighting]) -> list[Sighting]:
    return sorted(sightings, key=lambda s: (not s.drivers, -s.rssi, s.address))


def needs(binding: Binding) -> str:
    """What a driver's device needs before binding, in a word or three: ``pairing+key+button``, or ``-``."""
    words = [word for word, wanted in (("pairing", binding.pairing), ("key", binding.key),
                                       ("button", binding.hold is not None)) if wanted]
    return "+".join(words) or "-"


def format_sightings(sightings: Sequence[Sighting], configured: Mapping[str, str],
                     specs: Mapping[str, DriverSpec] = CATALOGUE) -> str:
    """The table ``scan`` prints: health devices first, then by signal strength.

    DRIVERS lists the drivers that can serve a device, the one to bind first; NEEDS says what that
    first one needs before binding (the lines under the table say how).
    """
    known = {normalize_address(address): device_id for address, device_id in configured.items()}
    rows = [("ADDRESS", "NAME", "RSSI", "DRIVERS", "NEEDS", "CONFIGURED AS")]
    ordered = _in_table_order(sightings)
    rows += [
        (s.address, s.name or "-", str(s.rssi), ",".join(s.drivers) or "-",
         needs(specs[s.drivers[0]].binding) if s.drivers else "-", known.get(s.address, "-"))
        for s in ordered
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _steps(binding: Binding, address: str) -> list[str]:
    steps = [f"hold {binding.hold}"] if binding.hold else []
    if binding.pairing:
        steps.append(f"pair it (yiyang pair {address})")
    if binding.key:
        steps.append("put its 32-hex-digit key in bind_key of its [[devices]] entry")
    return steps


def binding_steps(sightings: Sequence[Sighting], specs: Mapping[str, DriverSpec] = CATALOGUE) -> list[str]:
    """What to do before ``yiyang bind`` for each device heard whose driver needs more (its catalogue row's
    binding): one line per device and driver, in the table's order."""
    lines = []
    for sighting in _in_table_order(sightings):
        for driver in sighting.drivers:
            steps = _steps(specs[driver].binding, sighting.address)
            if steps:
                lines.append(f"{sighting.address} as {driver}: {'; '.join(steps)}, then bind it")
    return lines


async def scan(duration_s: float, configured: dict[str, str], out: TextIO) -> int:
    """Scan for ``duration_s`` seconds, printing progress, then a table of what advertises nearby and
    what to do before binding the devices that need more than ``yiyang bind``.

    ``configured`` maps the addresses already in the configuration to their device ids. A process of
    its own: its discovery session sits beside the daemon's, which it does not disturb.
    """
    seen = Sightings()
    try:
        async with own_scanner(seen.on_advert):
            elapsed = 0.0
            while elapsed < duration_s:
                step = min(PROGRESS_EVERY_S, duration_s - elapsed)
                await asyncio.sleep(step)
                elapsed += step
                print(f"scanning... {elapsed:.0f}/{duration_s:.0f} s: {len(seen.all())} devices, {seen.health} health",
                      file=out)
    except BleScanError as exc:
        print(str(exc), file=out)
        return 1
    print(format_sightings(seen.all(), configured), file=out)
    steps = binding_steps(seen.all())
    if steps:
        print("\nBefore binding:", *(f"  {line}" for line in steps), sep="\n", file=out)
    return 0


def _question(request: PairingRequest) -> str:
    shown = f"{request.passkey:06d}" if request.passkey is not None else ""
    return {
        PairingRequestKind.PASSKEY: f"Passkey shown on {request.address}: ",
        PairingRequestKind.PIN_CODE: f"PIN code of {request.address}: ",
        PairingRequestKind.CONFIRM: f"Does {request.address} show {shown}? [yes/no] ",
        PairingRequestKind.DISPLAY: f"Type {shown} on {request.address}, then press Enter: ",
    }[request.kind]


async def pair(address: str, passkey_prompt: Callable[[str], str], out: TextIO = sys.stdout) -> int:
    """Pair with a device (in pairing mode) through BlueZ; ``passkey_prompt`` asks the technician.

    ``passkey_prompt`` may block (``input``): it runs in a thread, off the event loop.
    """
    try:
        normalized = normalize_address(address)
    except ValueError as exc:
        print(str(exc), file=out)
        return 2

    async def provider(request: PairingRequest) -> str:
        return await asyncio.to_thread(passkey_prompt, _question(request))

    try:
        newly = await pair_device(normalized, provider)
    except PairingError as exc:
        print(str(exc), file=out)
        return 1
    print(f"{normalized} {'paired' if newly else 'was already paired'}", file=out)
    return 0


def bind_device(config_path: str | os.PathLike[str], device_id: str, driver: str, address: str, resident: str) -> None:
    """Add or replace the ``[[devices]]`` entry ``device_id`` in the TOML file, keeping its comments.

    The edited text is validated as a whole before it replaces the file, and the file on disk is
    loaded again after; if either fails the original stays, and ConfigError says what is wrong.
    """
    commit_edit(prepare_edit(config_path, lambda document: _put_device(
        document, device_id=device_id, driver=driver, address=address, resident=resident)))


def _put_device(document: tomlkit.TOMLDocument, *, device_id: str, driver: str, address: str, resident: str) -> None:
    entry = tomlkit.table()
    entry.add("id", device_id)
    entry.add("driver", driver)
    entry.add("address", address.strip().upper())
    entry.add("resident", resident)
    entry.trivia.indent = "\n"  # a blank line before the new [[devices]], as a person would write it
    devices = array_of_tables(document, "devices")
    for index, existing in enumerate(devices):
        if existing.get("id") == device_id:
            # Keep the technician's other keys and comments on the entry; replace only what binding sets.
            for key, value in entry.items():
                existing[key] = value
            devices[index] = existing
            return
    devices.append(entry)
