"""A fake ``bluetoothd``: the part of the BlueZ D-Bus API that bleak uses, served with dbus-fast.

The radio side is a :class:`Peripheral` (see ``devices.py`` for the emulated health devices):
it advertises, holds a GATT table and reacts to reads, writes and subscriptions. This module turns
those into the D-Bus objects and signals bluetoothd would produce, so bleak's BleakScanner and
BleakClient run unmodified against it:

- ``/``: ``org.freedesktop.DBus.ObjectManager`` (GetManagedObjects, InterfacesAdded/Removed);
- ``/org/bluez``: ``AgentManager1``; pairing calls the registered agent as bluetoothd does;
- ``/org/bluez/hci0``: ``Adapter1``; adverts reach clients only while discovering;
- ``/org/bluez/hci0/dev_XX``: ``Device1``; the GATT objects below it exist while connected;
- ``org.freedesktop.DBus.Properties`` on every object, with PropertiesChanged as the only way
  adverts (RSSI, ManufacturerData, ServiceData) and notifications (Value) reach bleak.

Method handlers are coroutines, so a handler can wait (a connect that needs an advert, a pairing
that asks the agent) without holding up other calls, like bluetoothd's main loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import NameFlag, RequestNameReply
from dbus_fast.errors import DBusError

logger = logging.getLogger(__name__)

BLUEZ_SERVICE = "org.bluez"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
GATT_SERVICE = "org.bluez.GattService1"
GATT_CHARACTERISTIC = "org.bluez.GattCharacteristic1"
GATT_DESCRIPTOR = "org.bluez.GattDescriptor1"
AGENT_MANAGER = "org.bluez.AgentManager1"
AGENT = "org.bluez.Agent1"

ADAPTER_PATH = "/org/bluez/hci0"
ADAPTER_ADDRESS = "00:1A:7D:DA:71:13"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"

# BLE 4.2+ data length: what a Pi 4's controller negotiates with most health devices.
DEFAULT_MTU = 247
# How long Connect waits for a silent device before giving up, as a real LE create-connection
# would time out; kept short so a test of "device not there" does not take 20 s.
DEFAULT_PAGE_TIMEOUT_S = 3.0


class BluezError(StrEnum):
    """The error names bluetoothd replies with (``src/error.c``)."""

    FAILED = "org.bluez.Error.Failed"
    IN_PROGRESS = "org.bluez.Error.InProgress"
    NOT_READY = "org.bluez.Error.NotReady"
    NOT_PERMITTED = "org.bluez.Error.NotPermitted"
    NOT_SUPPORTED = "org.bluez.Error.NotSupported"
    NOT_CONNECTED = "org.bluez.Error.NotConnected"
    ALREADY_EXISTS = "org.bluez.Error.AlreadyExists"
    DOES_NOT_EXIST = "org.bluez.Error.DoesNotExist"
    INVALID_ARGUMENTS = "org.bluez.Error.InvalidArguments"
    AUTHENTICATION_FAILED = "org.bluez.Error.AuthenticationFailed"
    AUTHENTICATION_REJECTED = "org.bluez.Error.AuthenticationRejected"
    AUTHENTICATION_CANCELED = "org.bluez.Error.AuthenticationCanceled"
    NOT_AUTHORIZED = "org.bluez.Error.NotAuthorized"


def bluez_error(name: BluezError, text: str) -> DBusError:
    return DBusError(name.value, text)


def att_error(code: int) -> DBusError:
    """An ATT error from the device, worded as bluetoothd relays it (bleak parses the code back)."""
    return DBusError(BluezError.FAILED.value, f"Operation failed with ATT error: {code:#04x}")


class ConnectFault(Enum):
    """Ways a Connect goes wrong on real hubs (see reference/ble-health-devices.md)."""

    IN_PROGRESS = "in-progress"
    """A stale connection attempt is still pending in bluetoothd: ``org.bluez.Error.InProgress``."""
    ABORT_BY_LOCAL = "le-connection-abort-by-local"
    """The link comes up and drops at once (RF noise); BlueZ 5.62+ reports Failed with this text."""


class Pairing(Enum):
    """How the device authenticates, i.e. which agent call bluetoothd makes."""

    JUST_WORKS = "just-works"
    PASSKEY_ENTRY = "passkey-entry"
    """The device shows a passkey, the hub types it: Agent1.RequestPasskey."""
    DISPLAY_PASSKEY = "display-passkey"
    """The hub shows a passkey, the user types it on the device: Agent1.DisplayPasskey."""
    NUMERIC_COMPARISON = "numeric-comparison"
    """Both show a number, the user confirms: Agent1.RequestConfirmation."""


# --- the radio side: what an emulated device declares ----------------------------------------


@dataclass(frozen=True, slots=True)
class CharacteristicSpec:
    """One characteristic of a device's GATT table.

    ``flags`` are BlueZ's words ("read", "write", "write-without-response", "notify",
    "indicate"). ``encrypted`` characteristics answer NotPermitted until the device is paired,
    when the device requires bonding.
    """

    uuid: str
    flags: tuple[str, ...]
    value: bytes = b""
    encrypted: bool = False

    @property
    def subscribable(self) -> bool:
        return "notify" in self.flags or "indicate" in self.flags


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    uuid: str
    characteristics: tuple[CharacteristicSpec, ...]


@dataclass(slots=True)
class Advertisement:
    """What the device currently puts on air; each advert event sends all of it."""

    rssi: int = -60
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    tx_power: int | None = None


class Peripheral:
    """An emulated BLE device. Subclasses describe the GATT table and override the ``on_*`` hooks.

    The fake calls the hooks from D-Bus method handlers; the device calls :meth:`notify`,
    :meth:`start_advertising`, :meth:`stop_advertising` and :meth:`drop_link` to act on its own.
    """

    def __init__(
        self,
        address: str,
        name: str,
        services: tuple[ServiceSpec, ...] = (),
        *,
        address_type: str = "public",
        advertisement: Advertisement | None = None,
        advert_interval_s: float = 0.1,
        requires_bonding: bool = False,
        pairing: Pairing = Pairing.JUST_WORKS,
        passkey: int = 123456,
    ) -> None:
        self.address = address.upper()
        self.name = name
        self.services = services
        self.address_type = address_type
        self.advertisement = advertisement or Advertisement(service_uuids=tuple(s.uuid for s in services))
        self.advert_interval_s = advert_interval_s
        self.requires_bonding = requires_bonding
        self.pairing = pairing
        self.passkey = passkey
        self.paired = False
        self.page_timeout_s = DEFAULT_PAGE_TIMEOUT_S
        self.connect_faults: list[ConnectFault] = []
        self.connect_attempts = 0
        self.drop_after_notifications: int | None = None
        """Bad day: the link drops right after this many notifications in one connection."""
        self.notifications_sent = 0
        self._link: _Link | None = None
        self._bluez: FakeBluez | None = None
        self._advertiser: asyncio.Task[None] | None = None
        self._advertising = asyncio.Event()

    # -- hooks (override) --
    async def on_connected(self) -> None:
        """The link is up and the GATT table is exported."""

    async def on_disconnected(self) -> None:
        """The link went down, whoever dropped it."""

    async def on_read(self, uuid: str, value: bytes) -> bytes:
        """Answer a read; ``value`` is the characteristic's current value."""
        return value

    def check_write(self, uuid: str, data: bytes) -> None:
        """Refuse a write before it is acknowledged, e.g. ``raise att_error(0xFD)``."""

    async def on_write(self, uuid: str, data: bytes) -> None:
        """A write was acknowledged (and stored as the characteristic's value); act on it."""

    async def on_subscribed(self, uuid: str) -> None:
        """The client enabled notifications or indications (StartNotify or AcquireNotify)."""

    # -- what the device does --
    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def advertising(self) -> bool:
        return self._advertising.is_set()

    def is_subscribed(self, uuid: str) -> bool:
        return self._link is not None and self._link.is_subscribed(uuid)

    def fail_connects(self, fault: ConnectFault, times: int = 1) -> None:
        """Bad day: the next ``times`` Connect calls fail with ``fault``."""
        self.connect_faults.extend([fault] * times)

    def start_advertising(self) -> None:
        """Advertise every ``advert_interval_s`` until :meth:`stop_advertising`."""
        self._advertising.set()
        if self._bluez is not None and (self._advertiser is None or self._advertiser.done()):
            self._advertiser = asyncio.get_running_loop().create_task(self._advertise_loop(self._bluez))

    def stop_advertising(self) -> None:
        self._advertising.clear()
        if self._advertiser is not None:
            self._advertiser.cancel()
            self._advertiser = None

    async def advertise_once(self) -> None:
        """One advert event, e.g. a button that sends a burst on a press and then sleeps."""
        if self._bluez is not None:
            await self._bluez.advert_received(self)

    async def wait_advertising(self) -> None:
        await self._advertising.wait()

    async def notify(self, uuid: str, value: bytes) -> bool:
        """Send a notification or indication; False when nobody is subscribed or the link is down."""
        link = self._link
        if link is None:
            return False
        delivered = await link.notify(uuid, value)
        if delivered:
            self.notifications_sent += 1
            if self.drop_after_notifications is not None and self.notifications_sent >= self.drop_after_notifications:
                await self.drop_link()
        return delivered

    async def drop_link(self) -> None:
        """The device ends the connection (switched off, walked away, strip inserted...)."""
        if self._link is not None and self._bluez is not None:
            await self._bluez.link_lost(self)

    async def _advertise_loop(self, bluez: FakeBluez) -> None:
        while True:
            await bluez.advert_received(self)
            await asyncio.sleep(self.advert_interval_s)

    def _attach(self, bluez: FakeBluez) -> None:
        self._bluez = bluez
        if self.advertising:
            self.start_advertising()

    async def _detach(self) -> None:
        advertiser, self._advertiser = self._advertiser, None
        if advertiser is not None:
            advertiser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await advertiser
        self._bluez = None


# --- the D-Bus side ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    signature: str = ""
    body: tuple[Any, ...] = ()
    unix_fds: tuple[int, ...] = ()


NO_REPLY = Reply()
Handler = Callable[[Message], Awaitable[Reply]]


def _bytes(value: Any) -> bytes:
    return bytes(value)


class _Characteristic:
    """The runtime state of one characteristic while its device is connected."""

    def __init__(self, path: str, service_path: str, spec: CharacteristicSpec, peripheral: Peripheral) -> None:
        self.path = path
        self.service_path = service_path
        self.spec = spec
        self.peripheral = peripheral
        self.value = spec.value
        self.notifying = False
        self.acquired: socket.socket | None = None
        self.cccd_path = f"{path}/desc{int(path[-4:], 16) + 1:04x}" if spec.subscribable else None

    @property
    def subscribed(self) -> bool:
        return self.notifying or self.acquired is not None

    def interfaces(self) -> dict[str, dict[str, Variant]]:
        props = {
            "UUID": Variant("s", self.spec.uuid),
            "Service": Variant("o", self.service_path),
            "Value": Variant("ay", self.value),
            "Flags": Variant("as", list(self.spec.flags)),
            "MTU": Variant("q", DEFAULT_MTU),
        }
        if self.spec.subscribable:
            props["Notifying"] = Variant("b", self.notifying)
            props["NotifyAcquired"] = Variant("b", self.acquired is not None)
        return {GATT_CHARACTERISTIC: props}

    def cccd_interfaces(self) -> dict[str, dict[str, Variant]]:
        return {
            GATT_DESCRIPTOR: {
                "UUID": Variant("s", CCCD_UUID),
                "Characteristic": Variant("o", self.path),
                "Value": Variant("ay", self.cccd_value()),
                "Flags": Variant("as", ["read", "write"]),
            }
        }

    def cccd_value(self) -> bytes:
        if not self.subscribed:
            return b"\x00\x00"
        return b"\x02\x00" if "indicate" in self.spec.flags else b"\x01\x00"


class _Link:
    """One connection to a device: the GATT objects exported for it and their subscriptions."""

    def __init__(self, bluez: FakeBluez, device: _Device) -> None:
        self.bluez = bluez
        self.device = device
        self.characteristics: dict[str, _Characteristic] = {}
        self.services: dict[str, ServiceSpec] = {}
        handle = 0x0010
        for service in device.peripheral.services:
            service_path = f"{device.path}/service{handle:04x}"
            self.services[service_path] = service
            handle += 1
            for spec in service.characteristics:
                char_path = f"{service_path}/char{handle:04x}"
                self.characteristics[char_path] = _Characteristic(char_path, service_path, spec, device.peripheral)
                handle += 3 if spec.subscribable else 2

    def by_uuid(self, uuid: str) -> _Characteristic | None:
        wanted = uuid.lower()
        return next((c for c in self.characteristics.values() if c.spec.uuid.lower() == wanted), None)

    def is_subscribed(self, uuid: str) -> bool:
        char = self.by_uuid(uuid)
        return char is not None and char.subscribed

    def objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        objects: dict[str, dict[str, dict[str, Variant]]] = {}
        for path, service in self.services.items():
            objects[path] = {
                GATT_SERVICE: {
                    "UUID": Variant("s", service.uuid),
                    "Device": Variant("o", self.device.path),
                    "Primary": Variant("b", True),
                    "Includes": Variant("ao", []),
                }
            }
        for char in self.characteristics.values():
            objects[char.path] = char.interfaces()
            if char.cccd_path is not None:
                objects[char.cccd_path] = char.cccd_interfaces()
        return objects

    async def notify(self, uuid: str, value: bytes) -> bool:
        char = self.by_uuid(uuid)
        if char is None:
            raise KeyError(f"{self.device.peripheral.name} has no characteristic {uuid}")
        if char.acquired is not None:
            try:
                char.acquired.send(value)
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                # The client closed its end (bleak's stop_notify closes the fd): notify no more.
                self.release_acquired(char)
                return False
            return True
        if not char.notifying:
            return False
        char.value = value
        await self.bluez.properties_changed(char.path, GATT_CHARACTERISTIC, {"Value": Variant("ay", value)})
        return True

    def release_acquired(self, char: _Characteristic) -> None:
        if char.acquired is not None:
            char.acquired.close()
            char.acquired = None

    def close(self) -> None:
        for char in self.characteristics.values():
            self.release_acquired(char)


@dataclass(slots=True)
class _Agent:
    owner: str
    path: str
    capability: str


class _Device:
    """``org.bluez.Device1`` for one peripheral."""

    def __init__(self, bluez: FakeBluez, peripheral: Peripheral) -> None:
        self.bluez = bluez
        self.peripheral = peripheral
        self.path = f"{ADAPTER_PATH}/dev_{peripheral.address.replace(':', '_')}"
        self.exported = False
        self.trusted = False
        self.blocked = False
        self.services_resolved = False
        self.connecting = False

    def interfaces(self) -> dict[str, dict[str, Variant]]:
        p = self.peripheral
        props = {
            "Address": Variant("s", p.address),
            "AddressType": Variant("s", p.address_type),
            "Name": Variant("s", p.name),
            "Alias": Variant("s", p.name),
            "Adapter": Variant("o", ADAPTER_PATH),
            "Paired": Variant("b", p.paired),
            "Bonded": Variant("b", p.paired),
            "Trusted": Variant("b", self.trusted),
            "Blocked": Variant("b", self.blocked),
            "LegacyPairing": Variant("b", False),
            "Connected": Variant("b", p.connected),
            "ServicesResolved": Variant("b", self.services_resolved),
            "UUIDs": Variant("as", list(p.advertisement.service_uuids)),
        }
        props.update(self.advert_properties())
        return {DEVICE: props}

    def advert_properties(self) -> dict[str, Variant]:
        advert = self.peripheral.advertisement
        props = {
            "RSSI": Variant("n", advert.rssi),
            "ManufacturerData": Variant(
                "a{qv}", {company: Variant("ay", data) for company, data in advert.manufacturer_data.items()}
            ),
            "ServiceData": Variant("a{sv}", {uuid: Variant("ay", data) for uuid, data in advert.service_data.items()}),
            "UUIDs": Variant("as", list(advert.service_uuids)),
        }
        if advert.tx_power is not None:
            props["TxPower"] = Variant("n", advert.tx_power)
        return props


class FakeBluez:
    """The fake bluetoothd on one bus connection. Start with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, bus: MessageBus, *, adapter_address: str = ADAPTER_ADDRESS) -> None:
        self.bus = bus
        self.adapter_address = adapter_address
        self.powered = True
        self.adapter_present = True
        """False after :meth:`remove_adapter`: a USB dongle pulled out, a UART adapter that failed to come up."""
        self.discovery_sessions: set[str] = set()
        self.discovery_filter: dict[str, Any] = {}
        self.wedged = False
        """Discovery runs but no advert gets through, until the adapter is power-cycled."""
        self.agents: list[_Agent] = []
        self.default_agent: _Agent | None = None
        self.devices: dict[str, _Device] = {}
        self.links: dict[str, _Link] = {}
        self.calls: list[tuple[str, str]] = []
        """Every (path, member) called on the fake, for tests that check what the client did."""
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifetime --
    @classmethod
    async def start(cls, bus_address: str, *, adapter_address: str = ADAPTER_ADDRESS) -> FakeBluez:
        bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM, negotiate_unix_fd=True).connect()
        bluez = cls(bus, adapter_address=adapter_address)
        bus.add_message_handler(bluez._on_message)
        await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"],
            )
        )
        reply = await bus.request_name(BLUEZ_SERVICE, NameFlag.DO_NOT_QUEUE)
        if reply is not RequestNameReply.PRIMARY_OWNER:
            bus.disconnect()
            raise RuntimeError(f"could not own {BLUEZ_SERVICE} on {bus_address}: {reply.name}")
        return bluez

    async def stop(self) -> None:
        for device in list(self.devices.values()):
            await device.peripheral._detach()
        for link in self.links.values():
            link.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.bus.disconnect()
        await self.bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    # -- the radio side --
    def add(self, peripheral: Peripheral) -> Peripheral:
        """Put a device in range. It shows up on D-Bus at its first advert seen while discovering."""
        if peripheral.address in {d.peripheral.address for d in self.devices.values()}:
            raise ValueError(f"a device with address {peripheral.address} is already in range")
        device = _Device(self, peripheral)
        self.devices[device.path] = device
        peripheral._attach(self)
        return peripheral

    @property
    def discovering(self) -> bool:
        return bool(self.discovery_sessions)

    async def advert_received(self, peripheral: Peripheral) -> None:
        device = self._device_of(peripheral)
        if not (self.powered and self.discovering) or self.wedged:
            return
        if not device.exported:
            device.exported = True
            await self.interfaces_added(device.path, device.interfaces())
        else:
            await self.properties_changed(device.path, DEVICE, device.advert_properties())

    async def link_lost(self, peripheral: Peripheral) -> None:
        await self._disconnect(self._device_of(peripheral))

    def wedge_discovery(self) -> None:
        """Fault: the adapter keeps "discovering" but reports nothing until Powered goes false/true."""
        self.wedged = True

    async def remove_adapter(self) -> None:
        """Fault: the adapter goes away (bluetoothd keeps running and sees none), as when a dongle is pulled."""
        if not self.adapter_present:
            return
        await self._set_powered(False)
        self.adapter_present = False
        await self.interfaces_removed(ADAPTER_PATH, [ADAPTER])

    # -- signals --
    async def interfaces_added(self, path: str, interfaces: dict[str, dict[str, Variant]]) -> None:
        await self._signal("/", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [path, interfaces])

    async def interfaces_removed(self, path: str, interfaces: list[str]) -> None:
        await self._signal("/", OBJECT_MANAGER, "InterfacesRemoved", "oas", [path, interfaces])

    async def properties_changed(self, path: str, interface: str, changed: dict[str, Variant]) -> None:
        await self._signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [interface, changed, []])

    async def _signal(self, path: str, interface: str, member: str, signature: str, body: list[Any]) -> None:
        await self.bus.send(Message.new_signal(path, interface, member, signature, body))

    # -- dispatch --
    def _on_message(self, msg: Message) -> bool:
        if msg.message_type is MessageType.SIGNAL:
            if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
                self._client_gone(msg.body[0], msg.body[2])
            return False
        if msg.message_type is not MessageType.METHOD_CALL or msg.interface in {
            "org.freedesktop.DBus.Introspectable",
            "org.freedesktop.DBus.Peer",
        }:
            return False
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _answer(self, msg: Message) -> None:
        self.calls.append((msg.path or "", msg.member or ""))
        try:
            reply = await self._dispatch(msg)
        except DBusError as exc:
            await self.bus.send(Message.new_error(msg, exc.type, exc.text))
            return
        except Exception:
            logger.exception("fake bluez: handler for %s.%s on %s failed", msg.interface, msg.member, msg.path)
            await self.bus.send(Message.new_error(msg, BluezError.FAILED.value, "fake bluez internal error"))
            return
        await self.bus.send(Message.new_method_return(msg, reply.signature, list(reply.body), list(reply.unix_fds)))
        # The bus daemon holds its own duplicate once the message is written.
        for fd in reply.unix_fds:
            socket.close(fd)

    async def _dispatch(self, msg: Message) -> Reply:
        path, interface, member = msg.path or "", msg.interface or "", msg.member or ""
        if interface == OBJECT_MANAGER and member == "GetManagedObjects":
            return Reply("a{oa{sa{sv}}}", (self._managed_objects(),))
        if interface == PROPERTIES:
            return await self._properties_call(path, member, msg)
        handler = self._handler(path, interface, member)
        if handler is None:
            raise DBusError("org.freedesktop.DBus.Error.UnknownMethod", f"{interface}.{member} not on {path}")
        return await handler(msg)

    def _handler(self, path: str, interface: str, member: str) -> Handler | None:
        tables: dict[str, dict[tuple[str, str], Handler]] = {
            "/org/bluez": {
                (AGENT_MANAGER, "RegisterAgent"): self._register_agent,
                (AGENT_MANAGER, "UnregisterAgent"): self._unregister_agent,
                (AGENT_MANAGER, "RequestDefaultAgent"): self._request_default_agent,
            },
            ADAPTER_PATH: {
                (ADAPTER, "StartDiscovery"): self._start_discovery,
                (ADAPTER, "StopDiscovery"): self._stop_discovery,
                (ADAPTER, "SetDiscoveryFilter"): self._set_discovery_filter,
                (ADAPTER, "GetDiscoveryFilters"): self._get_discovery_filters,
                (ADAPTER, "RemoveDevice"): self._remove_device,
            },
        }
        if path == ADAPTER_PATH and not self.adapter_present:
            return None
        if path in tables:
            return tables[path].get((interface, member))
        device = self.devices.get(path)
        if device is not None and device.exported:
            device_table: dict[tuple[str, str], Handler] = {
                (DEVICE, "Connect"): self._connect,
                (DEVICE, "Disconnect"): self._disconnect_call,
                (DEVICE, "Pair"): self._pair,
                (DEVICE, "CancelPairing"): self._cancel_pairing,
            }
            return device_table.get((interface, member))
        char = self._characteristic(path)
        if char is not None:
            char_table: dict[tuple[str, str], Handler] = {
                (GATT_CHARACTERISTIC, "ReadValue"): self._read_value,
                (GATT_CHARACTERISTIC, "WriteValue"): self._write_value,
                (GATT_CHARACTERISTIC, "StartNotify"): self._start_notify,
                (GATT_CHARACTERISTIC, "StopNotify"): self._stop_notify,
                (GATT_CHARACTERISTIC, "AcquireNotify"): self._acquire_notify,
            }
            return char_table.get((interface, member))
        if self._cccd(path) is not None:
            return {
                (GATT_DESCRIPTOR, "ReadValue"): self._read_cccd,
                (GATT_DESCRIPTOR, "WriteValue"): self._write_cccd,
            }.get((interface, member))
        return None

    def _unknown_object(self, path: str) -> DBusError:
        return DBusError("org.freedesktop.DBus.Error.UnknownObject", f"no object at {path}")

    # -- object tree --
    def _adapter_interfaces(self) -> dict[str, dict[str, Variant]]:
        return {
            ADAPTER: {
                "Address": Variant("s", self.adapter_address),
                "AddressType": Variant("s", "public"),
                "Name": Variant("s", "fake-hub"),
                "Alias": Variant("s", "fake-hub"),
                "Class": Variant("u", 0),
                "Powered": Variant("b", self.powered),
                "PowerState": Variant("s", "on" if self.powered else "off"),
                "Discoverable": Variant("b", False),
                "Pairable": Variant("b", True),
                "Discovering": Variant("b", self.discovering),
                "UUIDs": Variant("as", []),
                "Modalias": Variant("s", "usb:v1D6Bp0246d0548"),
                "Roles": Variant("as", ["central", "peripheral"]),
            }
        }

    def _managed_objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        objects: dict[str, dict[str, dict[str, Variant]]] = {"/org/bluez": {AGENT_MANAGER: {}}}
        if self.adapter_present:
            objects[ADAPTER_PATH] = self._adapter_interfaces()
        for device in self.devices.values():
            if device.exported:
                objects[device.path] = device.interfaces()
        for link in self.links.values():
            objects.update(link.objects())
        return objects

    def _object_interfaces(self, path: str) -> dict[str, dict[str, Variant]]:
        objects = self._managed_objects()
        if path not in objects:
            raise self._unknown_object(path)
        return objects[path]

    def _device_of(self, peripheral: Peripheral) -> _Device:
        for device in self.devices.values():
            if device.peripheral is peripheral:
                return device
        raise KeyError(f"{peripheral.name} was never added to this fake BlueZ")

    def _exported_device(self, path: str) -> _Device:
        device = self.devices.get(path)
        if device is None or not device.exported:
            raise self._unknown_object(path)
        return device

    def _characteristic(self, path: str) -> _Characteristic | None:
        link = self.links.get(path.split("/service", maxsplit=1)[0])
        return None if link is None else link.characteristics.get(path)

    def _cccd(self, path: str) -> _Characteristic | None:
        link = self.links.get(path.split("/service", maxsplit=1)[0])
        if link is None:
            return None
        return next((c for c in link.characteristics.values() if c.cccd_path == path), None)

    # -- org.freedesktop.DBus.Properties --
    async def _properties_call(self, path: str, member: str, msg: Message) -> Reply:
        interfaces = self._object_interfaces(path)
        if member == "GetAll":
            return Reply("a{sv}", (interfaces.get(msg.body[0], {}),))
        if member == "Get":
            interface, name = msg.body
            if name not in interfaces.get(interface, {}):
                raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", f"no property {interface}.{name} on {path}")
            return Reply("v", (interfaces[interface][name],))
        if member == "Set":
            interface, name, value = msg.body
            await self._set_property(path, interface, name, value)
            return NO_REPLY
        raise DBusError("org.freedesktop.DBus.Error.UnknownMethod", f"Properties.{member}")

    async def _set_property(self, path: str, interface: str, name: str, value: Variant) -> None:
        if path == ADAPTER_PATH and interface == ADAPTER and name == "Powered":
            await self._set_powered(bool(value.value))
            return
        device = self.devices.get(path)
        if device is not None and interface == DEVICE and name in {"Trusted", "Blocked"}:
            setattr(device, name.lower(), bool(value.value))
            await self.properties_changed(path, DEVICE, {name: Variant("b", bool(value.value))})
            return
        raise DBusError("org.freedesktop.DBus.Error.PropertyReadOnly", f"{interface}.{name} is read-only here")

    async def _set_powered(self, powered: bool) -> None:
        if powered == self.powered:
            return
        self.powered = powered
        changed = {"Powered": Variant("b", powered), "PowerState": Variant("s", "on" if powered else "off")}
        if not powered:
            # Powering off ends discovery and every link; a wedged controller comes back clean.
            self.wedged = False
            for device in list(self.devices.values()):
                if device.peripheral.connected:
                    await self._disconnect(device)
            if self.discovery_sessions:
                self.discovery_sessions.clear()
                changed["Discovering"] = Variant("b", False)
        await self.properties_changed(ADAPTER_PATH, ADAPTER, changed)

    def _client_gone(self, name: str, new_owner: str) -> None:
        """bluetoothd drops a client's discovery session and agent when it leaves the bus."""
        if new_owner:
            return
        self.agents = [a for a in self.agents if a.owner != name]
        if self.default_agent is not None and self.default_agent.owner == name:
            self.default_agent = None
        if name in self.discovery_sessions:
            self.discovery_sessions.discard(name)
            if not self.discovery_sessions:
                self._spawn(self.properties_changed(ADAPTER_PATH, ADAPTER, {"Discovering": Variant("b", False)}))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- org.bluez.Adapter1 --
    async def _start_discovery(self, msg: Message) -> Reply:
        if not self.powered:
            raise bluez_error(BluezError.NOT_READY, "Resource Not Ready")
        # bluetoothd keys discovery sessions on the D-Bus sender, one each (src/adapter.c: "Every
        # client can only start one discovery"): two scanners in one process share a connection,
        # so the second is refused, and either one's StopDiscovery would end the other's scan.
        if (msg.sender or "") in self.discovery_sessions:
            raise bluez_error(BluezError.IN_PROGRESS, "Operation already in progress")
        was_discovering = self.discovering
        self.discovery_sessions.add(msg.sender or "")
        if not was_discovering:
            await self.properties_changed(ADAPTER_PATH, ADAPTER, {"Discovering": Variant("b", True)})
        # Devices already advertising are reported at once, as a fresh scan hears them.
        for device in self.devices.values():
            if device.peripheral.advertising:
                self._spawn(self.advert_received(device.peripheral))
        return NO_REPLY

    async def _stop_discovery(self, msg: Message) -> Reply:
        if not self.powered:
            raise bluez_error(BluezError.NOT_READY, "Resource Not Ready")
        if (msg.sender or "") not in self.discovery_sessions:
            raise bluez_error(BluezError.FAILED, "No discovery started")
        self.discovery_sessions.discard(msg.sender or "")
        if not self.discovering:
            await self.properties_changed(ADAPTER_PATH, ADAPTER, {"Discovering": Variant("b", False)})
        return NO_REPLY

    async def _set_discovery_filter(self, msg: Message) -> Reply:
        self.discovery_filter = {key: value.value for key, value in msg.body[0].items()}
        return NO_REPLY

    async def _get_discovery_filters(self, msg: Message) -> Reply:
        filters = ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable", "Pattern"]
        return Reply("as", (filters,))

    async def _remove_device(self, msg: Message) -> Reply:
        device = self._exported_device(msg.body[0])
        if device.peripheral.connected:
            await self._disconnect(device)
        device.peripheral.paired = False
        device.trusted = False
        device.exported = False
        await self.interfaces_removed(device.path, [PROPERTIES, DEVICE])
        return NO_REPLY

    # -- org.bluez.Device1 --
    async def _connect(self, msg: Message) -> Reply:
        device = self._exported_device(msg.path or "")
        await self._bring_up(device)
        return NO_REPLY

    async def _bring_up(self, device: _Device) -> None:
        peripheral = device.peripheral
        if peripheral.connected:
            return
        if device.connecting:
            raise bluez_error(BluezError.IN_PROGRESS, "In Progress")
        if not self.powered:
            raise bluez_error(BluezError.NOT_READY, "Resource Not Ready")
        peripheral.connect_attempts += 1
        if peripheral.connect_faults:
            await self._connect_fault(device, peripheral.connect_faults.pop(0))
        device.connecting = True
        try:
            # A device is only connectable while it advertises: wait for it as the controller would.
            async with asyncio.timeout(peripheral.page_timeout_s):
                await peripheral.wait_advertising()
        except TimeoutError:
            raise bluez_error(BluezError.FAILED, "Page Timeout") from None
        finally:
            device.connecting = False
        link = _Link(self, device)
        self.links[device.path] = link
        peripheral._link = link
        peripheral.notifications_sent = 0
        await self.properties_changed(device.path, DEVICE, {"Connected": Variant("b", True)})
        for path, interfaces in link.objects().items():
            await self.interfaces_added(path, interfaces)
        device.services_resolved = True
        await self.properties_changed(device.path, DEVICE, {"ServicesResolved": Variant("b", True)})
        self._spawn(peripheral.on_connected())

    async def _connect_fault(self, device: _Device, fault: ConnectFault) -> None:
        if fault is ConnectFault.IN_PROGRESS:
            raise bluez_error(BluezError.IN_PROGRESS, "In Progress")
        # bluetoothd saw the link come up and go at once: Connected flips before the error reply,
        # which is what bleak waits for before it retries.
        await self.properties_changed(device.path, DEVICE, {"Connected": Variant("b", True)})
        await self.properties_changed(device.path, DEVICE, {"Connected": Variant("b", False)})
        raise bluez_error(BluezError.FAILED, fault.value)

    async def _disconnect_call(self, msg: Message) -> Reply:
        device = self._exported_device(msg.path or "")
        if not device.peripheral.connected:
            raise bluez_error(BluezError.NOT_CONNECTED, "Not Connected")
        await self._disconnect(device)
        return NO_REPLY

    async def _disconnect(self, device: _Device) -> None:
        link = self.links.pop(device.path, None)
        if link is None:
            return
        device.peripheral._link = None
        link.close()
        device.services_resolved = False
        await self.properties_changed(device.path, DEVICE, {"ServicesResolved": Variant("b", False)})
        for path in reversed(list(link.objects())):
            await self.interfaces_removed(path, [PROPERTIES, *link.objects()[path]])
        await self.properties_changed(device.path, DEVICE, {"Connected": Variant("b", False)})
        self._spawn(device.peripheral.on_disconnected())

    async def _pair(self, msg: Message) -> Reply:
        device = self._exported_device(msg.path or "")
        peripheral = device.peripheral
        if peripheral.paired:
            raise bluez_error(BluezError.ALREADY_EXISTS, "Already Exists")
        await self._bring_up(device)
        await self._authenticate(device, msg.sender or "")
        peripheral.paired = True
        await self.properties_changed(device.path, DEVICE, {"Paired": Variant("b", True), "Bonded": Variant("b", True)})
        return NO_REPLY

    async def _authenticate(self, device: _Device, caller: str) -> None:
        peripheral = device.peripheral
        if peripheral.pairing is Pairing.JUST_WORKS:
            return
        # bluetoothd asks the caller's own agent first, then the default one.
        agent = next((a for a in self.agents if a.owner == caller), None) or self.default_agent
        if agent is None or agent.capability == "NoInputNoOutput":
            raise bluez_error(BluezError.AUTHENTICATION_FAILED, "Authentication Failed")
        calls: dict[Pairing, tuple[str, str, list[Any]]] = {
            Pairing.PASSKEY_ENTRY: ("RequestPasskey", "o", [device.path]),
            Pairing.DISPLAY_PASSKEY: ("DisplayPasskey", "ouq", [device.path, peripheral.passkey, 0]),
            Pairing.NUMERIC_COMPARISON: ("RequestConfirmation", "ou", [device.path, peripheral.passkey]),
        }
        member, signature, body = calls[peripheral.pairing]
        reply = await self.bus.call(
            Message(
                destination=agent.owner,
                path=agent.path,
                interface=AGENT,
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply is None or reply.message_type is MessageType.ERROR:
            raise bluez_error(BluezError.AUTHENTICATION_REJECTED, "Authentication Rejected")
        if peripheral.pairing is Pairing.PASSKEY_ENTRY and reply.body[0] != peripheral.passkey:
            raise bluez_error(BluezError.AUTHENTICATION_FAILED, "Authentication Failed")

    async def _cancel_pairing(self, msg: Message) -> Reply:
        self._exported_device(msg.path or "")
        raise bluez_error(BluezError.DOES_NOT_EXIST, "Does Not Exist")

    # -- org.bluez.AgentManager1 --
    async def _register_agent(self, msg: Message) -> Reply:
        path, capability = msg.body
        if any(a.owner == msg.sender for a in self.agents):
            raise bluez_error(BluezError.ALREADY_EXISTS, "Already Exists")
        self.agents.append(_Agent(msg.sender or "", path, capability or "KeyboardDisplay"))
        return NO_REPLY

    async def _unregister_agent(self, msg: Message) -> Reply:
        agent = next((a for a in self.agents if a.owner == msg.sender and a.path == msg.body[0]), None)
        if agent is None:
            raise bluez_error(BluezError.DOES_NOT_EXIST, "Does Not Exist")
        self.agents.remove(agent)
        if self.default_agent is agent:
            self.default_agent = None
        return NO_REPLY

    async def _request_default_agent(self, msg: Message) -> Reply:
        agent = next((a for a in self.agents if a.owner == msg.sender and a.path == msg.body[0]), None)
        if agent is None:
            raise bluez_error(BluezError.DOES_NOT_EXIST, "Does Not Exist")
        self.default_agent = agent
        return NO_REPLY

    # -- org.bluez.GattCharacteristic1 / GattDescriptor1 --
    def _gatt(self, msg: Message) -> tuple[_Link, _Characteristic]:
        path = msg.path or ""
        link = self.links.get(path.split("/service")[0])
        char = None if link is None else link.characteristics.get(path)
        if link is None or char is None:
            raise self._unknown_object(path)
        return link, char

    def _check_security(self, char: _Characteristic) -> None:
        if char.spec.encrypted and char.peripheral.requires_bonding and not char.peripheral.paired:
            # What bluetoothd relays when the device answers Insufficient Authentication and no bond exists.
            raise bluez_error(BluezError.NOT_PERMITTED, "Not paired")

    async def _read_value(self, msg: Message) -> Reply:
        _, char = self._gatt(msg)
        if "read" not in char.spec.flags:
            raise bluez_error(BluezError.NOT_PERMITTED, "Read not permitted")
        self._check_security(char)
        char.value = await char.peripheral.on_read(char.spec.uuid, char.value)
        return Reply("ay", (char.value,))

    async def _write_value(self, msg: Message) -> Reply:
        _, char = self._gatt(msg)
        if "write" not in char.spec.flags and "write-without-response" not in char.spec.flags:
            raise bluez_error(BluezError.NOT_PERMITTED, "Write not permitted")
        self._check_security(char)
        data = _bytes(msg.body[0])
        char.peripheral.check_write(char.spec.uuid, data)
        char.value = data
        # The ATT write response goes out before the device acts on it, so its notifications
        # (an RACP download) follow the reply, as on air.
        self._spawn(char.peripheral.on_write(char.spec.uuid, char.value))
        return NO_REPLY

    async def _start_notify(self, msg: Message) -> Reply:
        _, char = self._gatt(msg)
        if not char.spec.subscribable:
            raise bluez_error(BluezError.NOT_SUPPORTED, "Operation is not supported")
        if char.acquired is not None:
            raise bluez_error(BluezError.IN_PROGRESS, "Notify acquired")
        self._check_security(char)
        if not char.notifying:
            char.notifying = True
            await self.properties_changed(char.path, GATT_CHARACTERISTIC, {"Notifying": Variant("b", True)})
            self._spawn(char.peripheral.on_subscribed(char.spec.uuid))
        return NO_REPLY

    async def _stop_notify(self, msg: Message) -> Reply:
        _, char = self._gatt(msg)
        if not char.notifying:
            raise bluez_error(BluezError.FAILED, "No notify session started")
        char.notifying = False
        await self.properties_changed(char.path, GATT_CHARACTERISTIC, {"Notifying": Variant("b", False)})
        return NO_REPLY

    async def _acquire_notify(self, msg: Message) -> Reply:
        _, char = self._gatt(msg)
        if not char.spec.subscribable:
            raise bluez_error(BluezError.NOT_SUPPORTED, "Operation is not supported")
        if char.notifying or char.acquired is not None:
            raise bluez_error(BluezError.IN_PROGRESS, "Notify already started")
        self._check_security(char)
        # As bluetoothd: a SEQPACKET socketpair keeps one notification per read on the client side.
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        char.acquired = ours
        self._spawn(char.peripheral.on_subscribed(char.spec.uuid))
        return Reply("hq", (0, DEFAULT_MTU), (theirs.detach(),))

    async def _read_cccd(self, msg: Message) -> Reply:
        char = self._cccd(msg.path or "")
        if char is None:
            raise self._unknown_object(msg.path or "")
        return Reply("ay", (char.cccd_value(),))

    async def _write_cccd(self, msg: Message) -> Reply:
        # bluetoothd refuses CCCD writes over D-Bus: clients must use StartNotify.
        raise bluez_error(BluezError.NOT_PERMITTED, "Write not permitted")
