"""A BlueZ pairing agent (org.bluez.Agent1) and pairing through Device1.Pair, over dbus-fast.

bleak has no agent: meters that need a bond ask for a passkey shown on their display, and
bluetoothd asks the registered agent for it. The passkey comes from an injected callable,
which the technician CLI answers by asking the technician.
"""

# No `from __future__ import annotations`: dbus-fast reads the D-Bus signatures from the real
# annotation objects, and a postponed "None" return would not parse.

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method

from drivers.ble.adapter import BLUEZ, adapter_path
from drivers.ble.policy import normalize_address
from drivers.errors import DriverError

log = logging.getLogger(__name__)

AGENT_INTERFACE = "org.bluez.Agent1"
AGENT_MANAGER_INTERFACE = "org.bluez.AgentManager1"
DEVICE_INTERFACE = "org.bluez.Device1"
AGENT_PATH = "/org/yiyang/agent"
CAPABILITY = "KeyboardDisplay"
"""The hub can show a number (to the technician's terminal) and take one typed in."""
_REJECTED = "org.bluez.Error.Rejected"
_ALREADY_PAIRED = "org.bluez.Error.AlreadyExists"
_YES = frozenset({"y", "yes", "是"})


class PairingError(DriverError):
    """Pairing failed; the message says why and what to try (pairing mode, passkey, range)."""


class PairingRequestKind(StrEnum):
    PASSKEY = "passkey"
    """Type the 6-digit passkey the device shows."""
    PIN_CODE = "pin_code"
    """Type the device's PIN (legacy devices)."""
    CONFIRM = "confirm"
    """Does the device show this passkey? Answer yes or no."""
    DISPLAY = "display"
    """Type this passkey on the device; the answer is ignored."""


@dataclass(frozen=True, slots=True)
class PairingRequest:
    address: str
    kind: PairingRequestKind
    passkey: int | None = None
    """For CONFIRM and DISPLAY: the number to compare or to type on the device."""


PasskeyProvider = Callable[[PairingRequest], Awaitable[str]]


def address_from_path(device_path: str) -> str:
    """``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF`` -> ``AA:BB:CC:DD:EE:FF``."""
    return device_path.rsplit("/dev_", 1)[-1].replace("_", ":")


def device_path(address: str, adapter: str = "hci0") -> str:
    return f"{adapter_path(adapter)}/dev_{normalize_address(address).replace(':', '_')}"


def parse_passkey(answer: str) -> int:
    """A typed passkey as BlueZ wants it (0-999999); raises ValueError with what is wrong."""
    digits = answer.strip()
    if not digits.isdigit() or len(digits) > 6:
        raise ValueError(f"a passkey is up to 6 digits, as shown on the device; got {answer!r}")
    return int(digits)


class PairingAgent(ServiceInterface):
    """The org.bluez.Agent1 object bluetoothd calls while pairing."""

    def __init__(self, provider: PasskeyProvider) -> None:
        super().__init__(AGENT_INTERFACE)
        self._provider = provider

    async def _ask(self, device: str, kind: PairingRequestKind, passkey: int | None = None) -> str:
        return await self._provider(PairingRequest(address_from_path(device), kind, passkey))

    @dbus_method()
    def Release(self) -> None:  # D-Bus method names are BlueZ's
        log.debug("pairing agent released")

    @dbus_method()
    async def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        answer = (await self._ask(device, PairingRequestKind.PIN_CODE)).strip()
        if not 1 <= len(answer) <= 16:
            raise DBusError(_REJECTED, "a PIN code is 1 to 16 characters")
        return answer

    @dbus_method()
    async def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        try:
            return parse_passkey(await self._ask(device, PairingRequestKind.PASSKEY))
        except ValueError as exc:
            raise DBusError(_REJECTED, str(exc)) from exc

    @dbus_method()
    async def DisplayPasskey(self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16) -> None:
        # bluetoothd calls this again per typed digit; show the number only once.
        if entered == 0:
            await self._ask(device, PairingRequestKind.DISPLAY, passkey)

    @dbus_method()
    async def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> None:
        await self._ask(device, PairingRequestKind.DISPLAY, int(pincode) if pincode.isdigit() else None)

    @dbus_method()
    async def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:
        answer = await self._ask(device, PairingRequestKind.CONFIRM, passkey)
        if answer.strip().lower() not in _YES:
            raise DBusError(_REJECTED, "the technician did not confirm the passkey")

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> None:
        # Only devices the technician is pairing right now reach this agent.
        log.info("pairing authorised address=%s", address_from_path(device))

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:
        log.debug("service authorised address=%s uuid=%s", address_from_path(device), uuid)

    @dbus_method()
    def Cancel(self) -> None:
        log.info("pairing cancelled by BlueZ")


async def _call(
    bus: MessageBus, path: str, interface: str, member: str, *, signature: str = "", body: list[object] | None = None
) -> Message:
    reply = await bus.call(
        Message(destination=BLUEZ, path=path, interface=interface, member=member, signature=signature, body=body or [])
    )
    if reply is None:
        raise PairingError(f"no reply from BlueZ to {member}; is bluetoothd running?")
    return reply


def _failure(reply: Message) -> str:
    return f"{reply.error_name}: {reply.body[0] if reply.body else ''}".strip()


# What to tell the technician for each way BlueZ refuses a pairing.
_PAIRING_ADVICE: dict[str, str] = {
    "org.bluez.Error.AuthenticationFailed": "wrong passkey, or the device is not in pairing mode; try again",
    "org.bluez.Error.AuthenticationRejected": "the passkey was refused or not confirmed; try again",
    "org.bluez.Error.AuthenticationCanceled": "pairing was cancelled on the device; try again",
    "org.bluez.Error.ConnectionAttemptFailed": "the device did not answer; put it in pairing mode, closer to the hub",
    "org.bluez.Error.InProgress": "another pairing or connection is under way; wait a few seconds and retry",
    "org.freedesktop.DBus.Error.UnknownObject": "the hub has not seen this device; run a scan with it advertising",
    # libdbus answers a call to a path nobody exports with UnknownMethod: the same missing device.
    "org.freedesktop.DBus.Error.UnknownMethod": "the hub has not seen this device; run a scan with it advertising",
}


async def pair(address: str, passkey_provider: PasskeyProvider, *, adapter: str = "hci0") -> bool:
    """Pair (and bond) with a device through BlueZ, answering its questions through ``passkey_provider``.

    Returns True when newly paired, False when it already was. Raises PairingError otherwise.
    """
    path = device_path(address, adapter)
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, EOFError) as exc:
        raise PairingError(f"cannot reach the system D-Bus: {exc}; is this the hub?") from exc
    try:
        bus.export(AGENT_PATH, PairingAgent(passkey_provider))
        registered = await _call(
            bus, "/org/bluez", AGENT_MANAGER_INTERFACE, "RegisterAgent", signature="os", body=[AGENT_PATH, CAPABILITY]
        )
        if registered.message_type is MessageType.ERROR:
            raise PairingError(f"BlueZ refused the pairing agent ({_failure(registered)})")
        await _call(bus, "/org/bluez", AGENT_MANAGER_INTERFACE, "RequestDefaultAgent", signature="o", body=[AGENT_PATH])
        reply = await _call(bus, path, DEVICE_INTERFACE, "Pair")
        if reply.message_type is MessageType.ERROR:
            if reply.error_name == _ALREADY_PAIRED:
                return False
            advice = _PAIRING_ADVICE.get(reply.error_name or "", "check the device is in pairing mode and in range")
            raise PairingError(f"pairing with {normalize_address(address)} failed ({_failure(reply)}): {advice}")
        # Trusted lets the device reconnect later without asking the agent again.
        await _call(
            bus,
            path,
            "org.freedesktop.DBus.Properties",
            "Set",
            signature="ssv",
            body=[DEVICE_INTERFACE, "Trusted", Variant("b", True)],
        )
        log.info("paired address=%s", normalize_address(address))
        return True
    finally:
        bus.disconnect()
