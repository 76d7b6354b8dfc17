"""Run the fake BlueZ as its own process, for testing the gateway daemon as a subprocess.

    PYTHONPATH=tests/support python -m fake_bluez --bus-address ADDR --scenario home

``ADDR`` is a bus started with :func:`fake_bluez.bus.private_bus` (or ``--own-bus`` starts one
and prints it). The process prints one JSON line when ready::

    {"event": "ready", "bus_address": "...", "devices": {"cuff": "A4:C1:38:00:00:01", ...}}

then reads JSON-lines commands on stdin and answers each with one JSON line on stdout
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). Commands (``device`` is a name
from the ready line):

    {"cmd": "measure", "device": "cuff", "systolic": 150, "diastolic": 95, "mean_arterial": 113, "pulse_rate": 80}
    {"cmd": "measure", "device": "thermometer", "celsius": 38.4}
    {"cmd": "measure", "device": "oximeter", "spo2": 88, "pulse_rate": 110}
    {"cmd": "stream", "device": "pc60f", "seconds": 40, "spo2": 88, "pulse_rate": 64, "rate_hz": 1.0}
        (a continuous oximeter, SIG or vendor: a finger in for that long, in the background)
    {"cmd": "add_record", "device": "meter", "mmol_per_l": 2.8, "meal": 3}
    {"cmd": "press", "device": "button", "event": "press"}
    {"cmd": "feed", "device": "microbit", "samples": [[0, 0, -1], [2.5, 0.3, 0.1]]}   (or "npy": "/path/fall.npy")
    {"cmd": "fault", "device": "cuff", "fault": "in-progress" | "le-connection-abort-by-local", "times": 2}
    {"cmd": "drop_after", "device": "meter", "notifications": 5}
    {"cmd": "drop", "device": "microbit"}
    {"cmd": "measure", "device": "mi-thermo", "celsius": 38.7}      (a MiBeacon thermometer's burst)
    {"cmd": "store_raw", "device": "cuff", "hex": "04ff07ff07ff07ff07"}   (a measurement as given bytes)
    {"cmd": "reset_memory", "device": "meter"}     (battery out: no records, numbering from 1)
    {"cmd": "wedge"}        the adapter stops reporting adverts until power-cycled
    {"cmd": "omron_measure", "device": "omron", "user": 1, "systolic": 150, "diastolic": 95, "pulse_rate": 80}
    {"cmd": "hold_button", "device": "omron"}     the cuff shows -P-: a host may program its key
    {"cmd": "sinocare_measure", "device": "sinocare", "mmol_per_l": 6.1}
    {"cmd": "status"}
    {"cmd": "quit"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from drivers.ble.omron_records import OmronRecord
from fake_bluez.bluez import ConnectFault, FakeBluez, Pairing, Peripheral
from fake_bluez.bus import private_bus
from fake_bluez.devices import (
    AndCuff,
    BloodPressureCuff,
    BloodPressureRecord,
    BTHomeButton,
    GlucoseMeter,
    MeasuringDevice,
    MicroBit,
    PulseOximeter,
    SpotCheckRecord,
    TemperatureRecord,
    Thermometer,
    XiaomiThermometer,
)
from fake_bluez.omron import OmronCuff
from fake_bluez.sinocare import SinocareMeter, SinocareResultRecord
from fake_bluez.vendor_oximeters import IChoiceOximeter, O2Ring, StreamingOximeter, ViatomPC60F

Devices = dict[str, Peripheral]


def _home() -> Devices:
    return {
        "cuff": BloodPressureCuff(),
        "meter": GlucoseMeter(),
        "oximeter": PulseOximeter(),
        "thermometer": Thermometer(),
        "button": BTHomeButton(),
        "microbit": MicroBit(),
    }


def _bonded_meter() -> Devices:
    return {"meter": GlucoseMeter(requires_bonding=True, pairing=Pairing.PASSKEY_ENTRY)}


def _vendors() -> Devices:
    """An Omron cuff with its own protocol and a Sinocare meter with three results in its memory. They
    advertise for a minute after a measurement: longer than the hub's pause after a visit (30 s)."""
    now = _now()
    history = [SinocareResultRecord(now - timedelta(days=days), 5.0 + days / 10) for days in (3, 2, 1)]
    return {"omron": OmronCuff(advertise_for_s=60.0),
            "sinocare": SinocareMeter(history=history, advertise_for_s=60.0)}


SCENARIOS: dict[str, Callable[[], Devices]] = {
    "empty": dict,
    "home": _home,
    "bonded-meter": _bonded_meter,
    "button": lambda: {"button": BTHomeButton()},
    "wearable": lambda: {"microbit": MicroBit()},
    # bench/ble.py: a meter full of records sent as fast as the bus takes them.
    "big-meter": lambda: {"meter": GlucoseMeter(record_count=2000, record_interval_s=0.001)},
    "cuff": lambda: {"cuff": BloodPressureCuff()},
    "vendors": _vendors,
    # Devices that bend the SIG profiles, and a Xiaomi MiBeacon thermometer (tests/e2e/test_ble_quirks_daemon.py).
    "quirks": lambda: {"mi-thermo": XiaomiThermometer(), "and-cuff": AndCuff(), "cuff": BloodPressureCuff(),
                       "meter": GlucoseMeter(record_count=10, ignores_filters=True)},
    # The vendor oximeters: a PC-60F on Nordic UART, a POD on FFB0/FFB2, an O2Ring, an iChoice.
    "oximeters": lambda: {"pc60f": ViatomPC60F(), "pod": ViatomPC60F("F0:5E:CD:00:00:13", "POD-1_SN0113",
                                                                     variant="ffb0"),
                          "o2ring": O2Ring(), "ichoice": IChoiceOximeter()},
    # bench/ble.py: one streaming oximeter at a time.
    "pc60f": lambda: {"pc60f": ViatomPC60F()},
    "o2ring": lambda: {"o2ring": O2Ring()},
    "ichoice": lambda: {"ichoice": IChoiceOximeter()},
}


class CommandError(Exception):
    """A control line the fake cannot act on; the text goes back on stdout."""


def _field(request: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in request:
        if default is ...:
            raise CommandError(f"{request.get('cmd')!r} needs a {name!r} field")
        return default
    value = request[name]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise CommandError(f"field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def _device(devices: Devices, request: dict[str, Any], kind: type[Peripheral] = Peripheral) -> Any:
    name = _field(request, "device", str)
    device = devices.get(name)
    if device is None:
        raise CommandError(f"no device {name!r} in this scenario; have {sorted(devices)}")
    if not isinstance(device, kind):
        raise CommandError(f"device {name!r} is a {type(device).__name__}, not a {kind.__name__}")
    return device


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)  # device clocks keep naive local time


async def _measure(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    if isinstance(devices.get(request.get("device", "")), XiaomiThermometer):
        thermometer: XiaomiThermometer = _device(devices, request, XiaomiThermometer)
        return {"frame_counter": thermometer.measure(_field(request, "celsius", float))}
    device = _device(devices, request, MeasuringDevice)
    if isinstance(device, BloodPressureCuff):
        device.measure(
            BloodPressureRecord(
                systolic=_field(request, "systolic", int),
                diastolic=_field(request, "diastolic", int),
                mean_arterial=_field(request, "mean_arterial", int),
                pulse_rate=_field(request, "pulse_rate", int, None),
                time=_now(),
            )
        )
    elif isinstance(device, Thermometer):
        device.measure(TemperatureRecord(_field(request, "celsius", float), time=_now()))
    elif isinstance(device, PulseOximeter):
        device.measure(SpotCheckRecord(_field(request, "spo2", int), _field(request, "pulse_rate", int), _now()))
    return {"stored": len(device.stored)}


async def _add_record(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    meter: GlucoseMeter = _device(devices, request, GlucoseMeter)
    record = meter.add_record(_field(request, "mmol_per_l", float), _now(), _field(request, "meal", int, None))
    return {"sequence_number": record.sequence_number}


async def _press(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    button: BTHomeButton = _device(devices, request, BTHomeButton)
    try:
        return {"packet_id": button.press(_field(request, "event", str, "press"))}
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


async def _feed(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    microbit: MicroBit = _device(devices, request, MicroBit)
    samples = np.load(_field(request, "npy", str)) if "npy" in request else _field(request, "samples", list)
    try:
        microbit.feed(samples)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return {"queued": len(microbit.queued)}


async def _stream(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    """A continuous oximeter (SIG or vendor): ``seconds`` of (spo2, pulse) at ``rate_hz``, in the background."""
    oximeter = _device(devices, request)
    if not isinstance(oximeter, PulseOximeter | StreamingOximeter):
        raise CommandError(f"device {request['device']!r} is a {type(oximeter).__name__}, not a streaming oximeter")
    seconds, rate_hz = _field(request, "seconds", float), _field(request, "rate_hz", float, 1.0)
    spo2, pulse = _field(request, "spo2", int, 96), _field(request, "pulse_rate", int, 64)
    task = asyncio.get_running_loop().create_task(oximeter.stream([(spo2, pulse)] * int(seconds * rate_hz), rate_hz))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return {"streaming": int(seconds * rate_hz)}


_BACKGROUND: set[asyncio.Task[int]] = set()


async def _fault(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    device: Peripheral = _device(devices, request)
    name = _field(request, "fault", str)
    try:
        fault = ConnectFault(name)
    except ValueError:
        raise CommandError(f"unknown fault {name!r}; one of {[f.value for f in ConnectFault]}") from None
    device.fail_connects(fault, _field(request, "times", int, 1))
    return {"pending_faults": len(device.connect_faults)}


async def _drop_after(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    device: Peripheral = _device(devices, request)
    device.drop_after_notifications = _field(request, "notifications", int)
    return {}


async def _drop(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    device: Peripheral = _device(devices, request)
    was_connected = device.connected
    await device.drop_link()
    return {"was_connected": was_connected}


async def _wedge(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    bluez.wedge_discovery()
    return {}


async def _status(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "powered": bluez.powered,
        "discovering": bluez.discovering,
        "wedged": bluez.wedged,
        "devices": {
            name: {"advertising": d.advertising, "connected": d.connected, "paired": d.paired,
                   "notifications": d.notifications_sent}
            for name, d in devices.items()
        },
    }


async def _omron_measure(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    cuff: OmronCuff = _device(devices, request, OmronCuff)
    user = _field(request, "user", int, 1)
    if user not in (1, 2):
        raise CommandError("an Omron cuff has users 1 and 2")
    record = OmronRecord(user=user, systolic_mmhg=_field(request, "systolic", int),
                         diastolic_mmhg=_field(request, "diastolic", int), pulse_bpm=_field(request, "pulse_rate", int),
                         time=_now(), body_movement=False, irregular_heartbeat=False)
    return {"slot": cuff.measure(user, record)}


async def _hold_button(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    cuff: OmronCuff = _device(devices, request, OmronCuff)
    cuff.hold_button()
    return {"pairing_mode": True}


async def _sinocare_measure(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    meter: SinocareMeter = _device(devices, request, SinocareMeter)
    meter.measure(_field(request, "mmol_per_l", float), _now())
    return {"history": len(meter.history)}
async def _store_raw(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    device: MeasuringDevice = _device(devices, request, MeasuringDevice)
    try:
        device.store(bytes.fromhex(_field(request, "hex", str)))
    except ValueError as exc:
        raise CommandError(f"hex: {exc}") from exc
    return {"stored": len(device.stored)}


async def _reset_memory(bluez: FakeBluez, devices: Devices, request: dict[str, Any]) -> dict[str, Any]:
    meter: GlucoseMeter = _device(devices, request, GlucoseMeter)
    meter.reset_memory()
    return {}


Command = Callable[[FakeBluez, Devices, dict[str, Any]], Awaitable[dict[str, Any]]]
COMMANDS: dict[str, Command] = {
    "measure": _measure,
    "add_record": _add_record,
    "press": _press,
    "feed": _feed,
    "stream": _stream,
    "fault": _fault,
    "drop_after": _drop_after,
    "drop": _drop,
    "wedge": _wedge,
    "store_raw": _store_raw,
    "reset_memory": _reset_memory,
    "status": _status,
    "omron_measure": _omron_measure,
    "hold_button": _hold_button,
    "sinocare_measure": _sinocare_measure,
}


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _answer(bluez: FakeBluez, devices: Devices, line: bytes) -> bool:
    """Act on one control line; False when it asks to quit."""
    try:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CommandError(f"line is not JSON ({exc}): {line[:80]!r}") from None
        if not isinstance(request, dict):
            raise CommandError("each line must be a JSON object with a 'cmd' field")
        name = _field(request, "cmd", str)
        if name == "quit":
            _emit({"ok": True, "cmd": "quit"})
            return False
        command = COMMANDS.get(name)
        if command is None:
            raise CommandError(f"unknown cmd {name!r}; one of {sorted([*COMMANDS, 'quit'])}")
        _emit({"ok": True, "cmd": name, **await command(bluez, devices, request)})
    except (CommandError, OSError) as exc:
        _emit({"ok": False, "error": str(exc)})
    return True


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(bus_address: str, scenario: str) -> None:
    devices = SCENARIOS[scenario]()
    bluez = await FakeBluez.start(bus_address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        for device in devices.values():
            bluez.add(device)
        _emit({"event": "ready", "bus_address": bus_address, "devices": {n: d.address for n, d in devices.items()}})
        reader = await _stdin_lines()
        stopped = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            next_line = asyncio.ensure_future(reader.readline())
            await asyncio.wait({next_line, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                break
            line = next_line.result()
            if not line:
                break  # stdin closed: whoever started us is gone
            if line.strip() and not await _answer(bluez, devices, line):
                break
        stopped.cancel()
    finally:
        await bluez.stop()


@contextlib.contextmanager
def _bus(address: str | None) -> Iterator[str]:
    if address is not None:
        yield address
        return
    with private_bus() as own:
        yield own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fake_bluez", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bus-address", help="D-Bus address to serve org.bluez on (a private bus)")
    where.add_argument("--own-bus", action="store_true", help="start a private dbus-daemon and serve on it")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="home")
    args = parser.parse_args(argv)
    with _bus(args.bus_address) as address:
        asyncio.run(serve(address, args.scenario))
    return 0


if __name__ == "__main__":
    sys.exit(main())
