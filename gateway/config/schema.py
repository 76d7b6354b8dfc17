"""The configuration schema: one frozen dataclass per TOML section, every key described by ``setting``.

The metadata on each field (doc, range, choices, pattern) is the single source for validation
(:mod:`gateway.config.validate`), for the documented default file (``config/gateway.toml``) and for
error messages, so the three cannot drift apart. Rules that involve more than one field are the
section's methods marked ``@rule``; the validator runs each one whose fields were all valid.
"""


from __future__ import annotations

import dataclasses
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from drivers.catalogue import CATALOGUE, DeviceOption, DriverSpec, Role, Transport, names, spec_of
from gateway.config.locate import KeyPath
from gateway.platform_limits import BATCH_MAX_BYTES_RANGE, BATCH_MAX_RECORDS_RANGE

_SETTING = "yiyang.setting"
_RULE = "__config_rule__"

Check = Callable[[Any], "tuple[str, str] | None"]
"""Validates one already-typed value; returns (what is wrong, what to do) or None."""

RuleMethod = TypeVar("RuleMethod", bound=Callable[[Any], Iterable["Problem"]])


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration, relative to the section that found it."""

    path: KeyPath
    what: str
    todo: str


@dataclass(frozen=True, slots=True)
class Setting:
    """What a field accepts, and the words that explain it to a technician."""

    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[object, ...] | None = None
    pattern: re.Pattern[str] | None = None
    form: str | None = None
    """The pattern in words, for error messages and the default file."""
    check: Check | None = None
    inherit: str | None = None
    """For a section field: missing keys take the values of this top-level section."""
    example: object = None
    """Shown in the documented default file where there is no default (or the default is empty)."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[object, ...] | None = None,
    pattern: str | None = None,
    form: str | None = None,
    check: Check | None = None,
    inherit: str | None = None,
    example: object = None,
) -> Any:
    """A dataclass field with validation metadata; no ``default`` and no ``factory`` means required."""
    meta = {
        _SETTING: Setting(
            doc=doc,
            minimum=min,
            maximum=max,
            choices=choices,
            pattern=re.compile(pattern) if pattern is not None else None,
            form=form,
            check=check,
            inherit=inherit,
            example=example,
        )
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting_of(field: dataclasses.Field[Any]) -> Setting:
    """The metadata ``setting`` attached to a field; every schema field has one."""
    meta = field.metadata.get(_SETTING)
    if not isinstance(meta, Setting):
        raise TypeError(f"schema field {field.name!r} was declared without setting(...)")
    return meta


def rule(method: RuleMethod) -> RuleMethod:
    """Mark a section method as a cross-field rule yielding :class:`Problem` (paths relative to it).

    The validator also runs rules on a section with refused fields; those fields are then unset and
    reading one raises AttributeError, which skips the rule (its input was already reported).
    """
    setattr(method, _RULE, True)
    return method


def rules_of(cls: type[Any]) -> list[Callable[[Any], Iterable[Problem]]]:
    return [method for method in vars(cls).values() if getattr(method, _RULE, False)]


def renamed_settings(cls: type[Any]) -> Mapping[str, tuple[str, str]]:
    """A section's ``RENAMED`` keys: old name -> (new name, why), refused with the new name in the message."""
    renamed: Mapping[str, tuple[str, str]] = getattr(cls, "RENAMED", {})
    return renamed


def format_bound(bound: float) -> str:
    """A range bound as a technician would write it: 1048576, 0.01, 60."""
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


PERSON_ID = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
"""Resident and contact ids: also MQTT topic levels and (contacts) broker user names, so no / + # or spaces."""
PERSON_ID_FORM = "letters, digits and _.:-, not starting with a symbol, at most 64 characters"


# --- single-value checks ------------------------------------------------------------------------


def _timezone(name: str) -> tuple[str, str] | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not an IANA time zone", 'use a name like "Asia/Shanghai"'
    return None


def _http_url(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{url!r} is not an http(s) URL", 'write the base URL, e.g. "https://platform.example.cn"'
    if parts.query or parts.fragment:
        return "the base URL must not have a query or fragment", "remove everything from '?' or '#'"
    return None


def _absolute_path(path: Path) -> tuple[str, str] | None:
    # The daemon runs under systemd with / as working directory: a relative path would
    # silently point somewhere else than the technician meant.
    if not path.is_absolute():
        return f"{str(path)!r} is a relative path", "write the full path, starting with /"
    return None


def _absolute_device_path(port: str) -> tuple[str, str] | None:
    if port and not port.startswith("/"):
        return f"{port!r} is not a device path", 'write the full path, e.g. "/dev/serial/by-id/..."'
    return None


# --- sections -----------------------------------------------------------------------------------


class ClockSync(StrEnum):
    AUTO = "auto"
    ASSUME_SYNCED = "assume_synced"
    ASSUME_UNSYNCED = "assume_unsynced"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """This hub: its identity, where it keeps data, and its local clock."""

    id: str = setting(
        doc="The hub's id: in MQTT topics, in platform URLs, and the platform app key.",
        pattern=r"[a-z0-9][a-z0-9-]{0,62}",
        form="lowercase letters, digits and -, not starting with -, at most 63 characters",
        example="gw-0001",
    )
    data_dir: Path = setting(
        Path("/var/lib/yiyang"), doc="Directory of the SQLite outbox.", check=_absolute_path
    )
    timezone: str = setting(
        "Asia/Shanghai",
        doc="IANA time zone of the home, for device clocks and messages.",
        check=_timezone,
    )
    clock_sync: ClockSync = setting(
        ClockSync.AUTO,
        doc="Whether the hub clock is network-synchronised: auto asks the system; the others override it.",
    )
    log_level: LogLevel = setting(LogLevel.INFO, doc="Least severe log level written.")


class UplinkProfile(StrEnum):
    V1 = "v1"
    FHIR_R4 = "fhir-r4"


def _optional_http_url(url: str) -> tuple[str, str] | None:
    return _http_url(url) if url else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformSettings:
    """The provincial platform (Platform Upload API v1, or HL7 FHIR R4) that receives every record."""

    url: str = setting(
        doc="Base URL of the Platform Upload API v1.", check=_http_url, example="http://127.0.0.1:8480"
    )
    secret_file: Path = setting(
        doc="File holding the gateway's HMAC secret (mode 0600).",
        check=_absolute_path,
        example="/etc/yiyang/platform.secret",
    )
    enabled: bool = setting(True, doc="Upload at all; when false records stay in the outbox.")
    profile: UplinkProfile = setting(
        UplinkProfile.V1, doc="Upload protocol: v1 (Platform Upload API v1) or fhir-r4 (transaction Bundles)."
    )
    fhir_base: str = setting(
        "", doc="FHIR R4 base URL (the transaction endpoint); required with profile = fhir-r4.",
        check=_optional_http_url,
    )
    batch_max_records: int = setting(
        500, doc="Most records in one upload batch.", min=BATCH_MAX_RECORDS_RANGE[0], max=BATCH_MAX_RECORDS_RANGE[1]
    )
    batch_max_bytes: int = setting(
        1_000_000, doc="Most bytes of JSON in one upload batch, before gzip.",
        min=BATCH_MAX_BYTES_RANGE[0], max=BATCH_MAX_BYTES_RANGE[1],
    )
    gzip: bool = setting(True, doc="Compress batches with gzip (Content-Encoding: gzip).")
    timeout_s: float = setting(15.0, doc="Seconds to wait for one upload response.", min=1, max=120)
    backoff_initial_s: float = setting(
        1.0, doc="First retry delay after a failed upload, in seconds.", min=0.01, max=60
    )
    backoff_max_s: float = setting(
        300.0, doc="Longest retry delay, in seconds; not less than backoff_initial_s.", min=1, max=3600
    )
    mark_delivered_after_s: float = setting(
        300.0, doc="Seconds the hub may keep in memory which records the platform has before writing them "
        "delivered, in one transaction with the others (or sooner, per 2,000): fewer small writes on the SD "
        "card. A restart before that only uploads them again, answered duplicate; 0 writes them at once.",
        min=0, max=3600,
    )

    @rule
    def fhir_needs_base(self) -> Iterator[Problem]:
        if self.profile is UplinkProfile.FHIR_R4 and not self.fhir_base:
            yield Problem(("fhir_base",), "profile = fhir-r4 needs the FHIR base URL", "set fhir_base")

    @rule
    def backoff_order(self) -> Iterator[Problem]:
        if self.backoff_max_s < self.backoff_initial_s:
            yield Problem(
                ("backoff_max_s",),
                f"{self.backoff_max_s} is less than backoff_initial_s ({self.backoff_initial_s})",
                "raise backoff_max_s or lower backoff_initial_s",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """The MQTT broker for family alerts, hub status and fleet configuration."""

    host: str = setting(
        "127.0.0.1", doc="Broker host name or address.", pattern=r"[^\s/]+", form="a host name or IP address"
    )
    port: int = setting(1883, doc="Broker TCP port.", min=1, max=65535)
    username: str = setting(
        "", doc="This hub's broker user name, its own identity (`yiyang broker-acl` gives it the hub's topics); "
        "empty for none.", example="yiyang-gateway",
    )
    fleet_username: str = setting(
        "fleet", doc="The fleet operator's broker user name: the one identity the broker ACL (`yiyang broker-acl`) "
        "lets write configuration documents (config/desired) and commands (cmd/...).", pattern=PERSON_ID,
        form=PERSON_ID_FORM,
    )
    password_file: Path | None = setting(
        None, doc="File holding the broker password; empty for none.", check=_absolute_path
    )
    client_id: str = setting(
        "",
        doc='MQTT client id; empty means "yiyang-" followed by the gateway id.',
        pattern=r"[A-Za-z0-9_.:-]{0,128}",
        form="letters, digits and _.:-, at most 128 characters",
    )
    keepalive_s: int = setting(30, doc="Seconds between keep-alive pings.", min=5, max=600)
    topic_root: str = setting(
        "yiyang/v1",
        doc="Topic prefix; the gateway id follows it.",
        pattern=r"[^#+/\x00\s]+(/[^#+/\x00\s]+)*",
        form="topic levels separated by /, without wildcards, spaces or empty levels",
    )
    tls: bool = setting(False, doc="Connect with TLS.")
    ca_file: Path | None = setting(
        None, doc="CA certificate file for TLS; empty for the system CAs.", check=_absolute_path
    )

    @rule
    def ca_needs_tls(self) -> Iterator[Problem]:
        if self.ca_file is not None and not self.tls:
            yield Problem(("ca_file",), "ca_file is set but tls is false", "set tls = true or remove ca_file")

    @rule
    def password_needs_username(self) -> Iterator[Problem]:
        if self.password_file is not None and not self.username:
            yield Problem(
                ("password_file",), "a password needs a username", "set username or remove password_file"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    """How much disk the outbox may use and how long delivered records are kept."""

    budget_mb: int = setting(512, doc="Disk budget of the outbox, in MiB.", min=16, max=65536)
    warn_percent: int = setting(
        80, doc="Warn (status, log, fleet report) when this share of the budget is used.", min=50, max=99
    )
    delivered_retention_days: int = setting(
        30,
        doc="Days delivered records are kept, then pruned (PIPL: no longer than needed).",
        min=1,
        max=365,
    )
    reserve_mb: int = setting(
        8,
        doc="Disk space, in MiB, held in reserve in the data directory and given back when the disk fills, "
        "so alerts can still be stored; 0 turns it off.",
        min=0,
        max=256,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectSettings:
    """On-hub emergency detection."""

    max_reading_age_s: int = setting(
        3600,
        doc="Older readings (back-filled from device memory) are stored and uploaded but not alarmed on.",
        min=60,
        max=604_800,
    )
    fall_cancel_window_s: float = setting(
        30.0,
        doc="Seconds after a detected fall in which the resident can cancel (long press, getting up) "
        "before it becomes an emergency; commercial pendants wait about 30 s.",
        min=5,
        max=300,
    )
    long_lie_s: float = setting(
        120.0,
        doc="Seconds without motion after a fall that escalate it as a long lie.",
        min=30,
        max=3600,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    """The fleet operator: commands and configuration documents over MQTT are accepted only when signed
    with this key."""

    public_key_file: Path | None = setting(
        None, doc="The fleet's Ed25519 public key (PEM, or 32 bytes in base64); empty turns commands and "
        "remote configuration off.",
        check=_absolute_path,
    )
    apply_grace_s: float = setting(
        120.0, doc="Seconds a configuration from the fleet has to pass the hub's health checks (broker, "
        "platform, devices) before it is rolled back; the running configuration's value applies.",
        min=10, max=600,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeAssistantSettings:
    """Home Assistant on the hub's broker: one device per resident, found by MQTT discovery."""

    discovery: bool = setting(
        False, doc="Publish Home Assistant MQTT discovery configs (retained): per resident, sensors of the latest "
        "readings its devices take, an \"alert active\" binary sensor, available while the hub is online."
    )
    prefix: str = setting(
        "homeassistant", doc="Home Assistant's discovery prefix (its MQTT integration's setting).",
        pattern=r"[^#+/\x00\s]+(/[^#+/\x00\s]+)*",
        form="topic levels separated by /, without wildcards, spaces or empty levels",
    )
    username: str = setting(
        "homeassistant", doc="Home Assistant's broker user name: `yiyang broker-acl` lets it read the discovery "
        "configs, the hub's status and each resident's readings and alert state, nothing else.",
        pattern=PERSON_ID, form=PERSON_ID_FORM,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """The alert lifecycle: repeat and escalate until someone acknowledges (clinical-thresholds.md)."""

    repeat_emergency_s: float = setting(
        120.0, doc="Repeat an unacknowledged emergency alert this often, in seconds.", min=30, max=3600
    )
    repeat_urgent_s: float = setting(
        900.0, doc="Repeat an unacknowledged urgent alert this often, in seconds.", min=60, max=86_400
    )
    escalate_after_s: float = setting(
        300.0, doc="Tell the next tier of [[contacts]] when nobody acknowledged an emergency alert within this "
        "many seconds of telling the last one; an urgent alert waits three times as long, a warning never "
        "escalates.", min=60, max=3600,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """Emergency thresholds (see clinical-thresholds.md); defaults for every resident."""

    glucose_level2_hypo_mmol_l: float = setting(
        3.0, doc="Glucose below this is level 2 hypoglycaemia (emergency).", min=1.5, max=5.0
    )
    glucose_level1_hypo_mmol_l: float = setting(
        3.9, doc="Glucose below this is level 1 hypoglycaemia (urgent).", min=2.0, max=7.0
    )
    glucose_high_mmol_l: float = setting(13.9, doc="Glucose above this is high (warning).", min=7.0, max=25.0)
    glucose_fasting_high_mmol_l: float = setting(
        13.9,
        doc="A fasting or before-meal glucose above this is high (warning); used instead of "
        "glucose_high_mmol_l when the meter marks the meal. The default is the one sourced high level "
        "(> 13.9, International Consensus on Time in Range 2019); ADA's fasting >= 7.0 is a diagnostic "
        "criterion, not an alarm, so lower it only on the family doctor's advice.",
        min=7.0,
        max=25.0,
    )
    glucose_postprandial_high_mmol_l: float = setting(
        13.9,
        doc="An after-meal glucose above this is high (warning); used instead of glucose_high_mmol_l "
        "when the meter marks the meal. The default is the one sourced high level (> 13.9); change it "
        "only on the family doctor's advice.",
        min=7.0,
        max=25.0,
    )
    glucose_severe_hyper_mmol_l: float = setting(
        16.7, doc="Glucose at or above this is severe hyperglycaemia (urgent).", min=10.0, max=30.0
    )
    glucose_crisis_mmol_l: float = setting(
        33.3,
        doc="Glucose at or above this is the hyperglycaemic crisis range (emergency).",
        min=15.0,
        max=40.0,
    )
    systolic_crisis_mmhg: int = setting(
        180, doc="Systolic pressure at or above this is a hypertensive crisis (urgent).", min=140, max=260
    )
    diastolic_crisis_mmhg: int = setting(
        120, doc="Diastolic pressure at or above this is a hypertensive crisis (urgent).", min=90, max=160
    )
    diastolic_grade3_mmhg: int = setting(
        110, doc="Diastolic pressure at or above this is grade 3 hypertension (warning).", min=80, max=150
    )
    systolic_low_mmhg: int = setting(
        90, doc="Systolic pressure below this is hypotension (urgent).", min=60, max=120
    )
    pulse_low_bpm: int = setting(40, doc="Pulse below this is out of range (urgent).", min=20, max=70)
    pulse_high_bpm: int = setting(130, doc="Pulse above this is out of range (urgent).", min=90, max=220)
    spo2_low_percent: int = setting(90, doc="SpO2 below this, sustained, is low (urgent).", min=80, max=97)
    spo2_very_low_percent: int = setting(85, doc="SpO2 below this is very low (emergency).", min=60, max=95)
    spo2_sustained_s: int = setting(
        30, doc="Seconds SpO2 must stay low on a continuous oximeter before it alarms.", min=5, max=600
    )
    fever_warning_c: float = setting(
        38.5, doc="Temperature at or above this is fever (warning).", min=37.0, max=41.0
    )
    fever_urgent_c: float = setting(
        39.5, doc="Temperature at or above this is high fever (urgent).", min=37.5, max=42.0
    )
    hypothermia_c: float = setting(
        35.0, doc="Temperature below this is hypothermia (urgent).", min=30.0, max=36.5
    )
    crisis_repeat_window_min: int = setting(
        30,
        doc="A second hypertensive crisis within this many minutes, or one this close to a fall, is an "
        "emergency; so is a repeat of urgent hypoglycaemia, hypotension, pulse out of range or low SpO2.",
        min=1,
        max=1440,
    )
    remeasure_quiet_min: int = setting(
        30,
        doc="After asking for a re-measure (the device flagged a reading), ask again for the same device "
        "only after this many minutes or after a good reading from it.",
        min=1,
        max=1440,
    )

    @rule
    def ordered(self) -> Iterator[Problem]:
        for lower, higher in THRESHOLD_ORDER:
            low_value, high_value = getattr(self, lower, None), getattr(self, higher, None)
            if low_value is not None and high_value is not None and low_value >= high_value:
                yield Problem(
                    (lower,),
                    f"{low_value} is not below {higher} ({high_value})",
                    f"keep {lower} < {higher}",
                )


THRESHOLD_ORDER: tuple[tuple[str, str], ...] = (
    ("glucose_level2_hypo_mmol_l", "glucose_level1_hypo_mmol_l"),
    ("glucose_level1_hypo_mmol_l", "glucose_high_mmol_l"),
    ("glucose_high_mmol_l", "glucose_severe_hyper_mmol_l"),
    ("glucose_level1_hypo_mmol_l", "glucose_fasting_high_mmol_l"),
    ("glucose_fasting_high_mmol_l", "glucose_severe_hyper_mmol_l"),
    ("glucose_level1_hypo_mmol_l", "glucose_postprandial_high_mmol_l"),
    ("glucose_postprandial_high_mmol_l", "glucose_severe_hyper_mmol_l"),
    ("glucose_severe_hyper_mmol_l", "glucose_crisis_mmol_l"),
    ("systolic_low_mmhg", "systolic_crisis_mmhg"),
    ("diastolic_grade3_mmhg", "diastolic_crisis_mmhg"),
    ("pulse_low_bpm", "pulse_high_bpm"),
    ("spo2_very_low_percent", "spo2_low_percent"),
    ("hypothermia_c", "fever_warning_c"),
    ("fever_warning_c", "fever_urgent_c"),
)
"""Pairs (lower, higher) that must stay strictly ordered, or an alarm level could never fire."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResidentSettings:
    """A person cared for, by pseudonymous id only: no names or ID numbers here (PIPL)."""

    # The pattern keeps out spaces and CJK characters, which is where names would creep in.
    id: str = setting(
        doc="Pseudonymous resident id that the platform maps to a person.",
        pattern=PERSON_ID,
        form=PERSON_ID_FORM,
        example="r-0001",
    )
    thresholds: Thresholds = setting(
        factory=Thresholds,
        doc="This resident's own thresholds: same keys as [thresholds]; keys not set here keep those.",
        inherit="thresholds",
    )


# The driver names are the catalogue's, in its order (DriverName.BLE_BPS == "ble-bps"): a new row is a
# new choice, with nothing here to add. mypy cannot see members made this way; the gateway names none.
DriverName = StrEnum(  # type: ignore[misc]
    "DriverName", [(name.upper().replace("-", "_"), name) for name in CATALOGUE]
)


def _listed(where: Callable[[DriverSpec], bool], separator: str = ", ") -> str:
    """The names of the drivers ``where`` holds for, for the documentation and messages."""
    return separator.join(names(where))


def _taking(option: DeviceOption, separator: str = ", ") -> str:
    return _listed(lambda spec: option in spec.options, separator)


def _default_silences() -> str:
    by_minutes: dict[float, list[str]] = {}
    for spec in CATALOGUE.values():
        if spec.silent_after_min is not None:
            by_minutes.setdefault(spec.silent_after_min, []).append(spec.name)
    return "; ".join(f"{minutes:g} for {', '.join(drivers)}" for minutes, drivers in sorted(by_minutes.items()))


_OPTION_REFUSALS: Mapping[DeviceOption, Callable[[str], str]] = {
    DeviceOption.SAMPLE_RATE_HZ: lambda driver: f"driver {driver} streams no accelerometer",
    DeviceOption.MEASURE_EVERY_MIN: lambda driver: f"driver {driver} cannot be told to measure",
    DeviceOption.BIND_KEY: lambda _driver: f"bind_key is for {_taking(DeviceOption.BIND_KEY, ' or ')} devices",
}
"""What is wrong with an option set for a driver that does not take it (the catalogue says which do)."""


def _zero_or_at_least_one(value: float) -> tuple[str, str] | None:
    # Below one hour (or minute) the rule would fire between two ordinary polls; 0 is the off switch.
    if 0 < value < 1:
        return f"{value} is too short to tell silence from an ordinary pause", "use 0 (off) or 1 or more"
    return None

SERIAL_BAUDRATES = (0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


class BleNotify(StrEnum):
    START_NOTIFY = "start-notify"
    ACQUIRE_NOTIFY = "acquire-notify"


def _measure_every(minutes: float) -> tuple[str, str] | None:
    if minutes and not 5.0 <= minutes <= 1440.0:
        return f"{minutes} minutes is outside 5-1440", "use 0 (off) or 5 to 1440 minutes"
    return None


def _sample_rate(rate: float) -> tuple[str, str] | None:
    if rate and not 25.0 <= rate <= 200.0:
        return f"{rate} Hz is outside 25-200 Hz, the rates the fall detector works at", "use 0 (50 Hz) or 25-200"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSettings:
    """A device the hub talks to, over a serial port or Bluetooth LE."""

    id: str = setting(
        doc="Device id, unique on this hub.",
        pattern=r"[a-z0-9][a-z0-9_.:-]{0,63}",
        form="lowercase letters, digits and _.:-, not starting with a symbol, at most 64 characters",
        example="glucose-kitchen",
    )
    driver: DriverName = setting(
        doc="Driver: serial drivers need port, BLE drivers need address.", example="onetouch-ultra2"
    )
    port: str = setting(
        "",
        doc="Serial device path (serial drivers), e.g. /dev/serial/by-id/...",
        check=_absolute_device_path,
        example="/dev/ttyUSB0",
    )
    baudrate: int = setting(0, doc="Serial speed; 0 means the driver's default.", choices=SERIAL_BAUDRATES)
    address: str = setting(
        "",
        doc="Bluetooth address AA:BB:CC:DD:EE:FF (BLE drivers).",
        pattern=r"|(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}",
        form="six hex byte pairs separated by colons, AA:BB:CC:DD:EE:FF",
    )
    resident: str = setting(
        "", doc=f"Id of the resident this device measures (every driver except "
        f"{_listed(lambda spec: not spec.has_resident)}).", example="r-0001"
    )
    poll_interval_s: float = setting(5.0, doc="Seconds between polls of the device.", min=0.5, max=3600)
    measure_every_min: float = setting(
        0.0, doc=f"{_taking(DeviceOption.MEASURE_EVERY_MIN)}: start a measurement this often, in minutes "
        "(0: only on demand or at the device).",
        check=_measure_every,
    )
    ble_notify: BleNotify = setting(
        BleNotify.START_NOTIFY,
        doc="BLE drivers: how BlueZ delivers notifications. start-notify works with every device; "
        "acquire-notify (a socket, fewer D-Bus messages) suits streaming wearables whose firmware allows it.",
    )
    sample_rate_hz: float = setting(
        0.0, doc=f"Wearables ({_taking(DeviceOption.SAMPLE_RATE_HZ)}): accelerometer rate to ask for; 0 means 50.",
        check=_sample_rate,
    )
    bind_key: str = setting(
        "", doc=f"{_taking(DeviceOption.BIND_KEY)}: the 32-hex-digit key of a device that encrypts its "
        "advertisements; empty for none.",
        pattern=r"|[0-9A-Fa-f]{32}", form="empty, or 32 hex digits",
    )
    expect_reading_every_h: float = setting(
        0,
        doc="Measurement devices: warn the family (\"measurement missed\") when no reading came for this "
        "many hours; 26 suits a daily measurement. 0 means no schedule.",
        min=0,
        max=720,
        check=_zero_or_at_least_one,
    )
    silent_after_min: float = setting(
        0,
        doc="Tell family and technician (urgent) when the device was not heard from for this many minutes. "
        f"0 means the driver's default: {_default_silences()}; off for the others.",
        min=0,
        max=1440,
        check=_zero_or_at_least_one,
    )

    @property
    def spec(self) -> DriverSpec:
        """The driver's row in the catalogue."""
        return spec_of(self.driver)

    @property
    def transport(self) -> Transport:
        return self.spec.transport

    @rule
    def transport_settings(self) -> Iterator[Problem]:
        serial = self.transport is Transport.SERIAL
        if serial and not self.port:
            yield Problem(("port",), f"driver {self.driver} is a serial driver and needs a port", "set port")
        if not serial and not self.address:
            yield Problem(
                ("address",), f"driver {self.driver} is a BLE driver and needs an address", "set address"
            )
        if serial and self.address:
            yield Problem(("address",), "address is for BLE drivers", "remove address")
        if not serial and self.port:
            yield Problem(("port",), "port is for serial drivers", "remove port")
        if not serial and self.baudrate:
            yield Problem(("baudrate",), "baudrate is for serial drivers", "remove baudrate")
        if serial and self.ble_notify is BleNotify.ACQUIRE_NOTIFY:
            yield Problem(("ble_notify",), "ble_notify is for BLE drivers", "remove ble_notify")

    @rule
    def driver_options(self) -> Iterator[Problem]:
        spec = self.spec
        for option, refusal in _OPTION_REFUSALS.items():
            if option not in spec.options and getattr(self, option.value):
                yield Problem((option.value,), refusal(self.driver), f"remove {option.value}")
        if spec.binding.key and not self.bind_key:
            yield Problem(("bind_key",), f"driver {self.driver} encrypts what it sends and needs its key",
                          "set bind_key to the device's 32-hex-digit key")

    @rule
    def silence_settings(self) -> Iterator[Problem]:
        spec = self.spec
        if self.expect_reading_every_h and spec.role is not Role.MEASURES:
            yield Problem(
                ("expect_reading_every_h",),
                f"driver {self.driver} takes no scheduled measurements",
                "remove expect_reading_every_h (use silent_after_min to watch that it is alive)",
            )
        if self.silent_after_min and not spec.has_resident:
            yield Problem(
                ("silent_after_min",), f"driver {self.driver} belongs to no resident to warn", "remove silent_after_min"
            )

    @rule
    def attribution(self) -> Iterator[Problem]:
        spec = self.spec
        if not spec.has_resident and self.resident:
            yield Problem(("resident",), f"driver {self.driver} measures nobody", "remove resident")
        if spec.has_resident and not self.resident:
            yield Problem(
                ("resident",), "whose readings these are is not said", "set resident to a resident id"
            )


class ContactSeverity(StrEnum):
    WARNING = "warning"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class ContactLanguage(StrEnum):
    ZH = "zh"
    EN = "en"
    ZH_EN = "zh+en"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactSettings:
    """A family member or carer, alerted by SMS, by the family app on the hub's broker, or both."""

    RENAMED: ClassVar[Mapping[str, tuple[str, str]]] = {
        "sms_min_severity": ("min_severity", "it now applies to every channel, the family app as well as SMS"),
    }
    """Keys of earlier versions: refused with their new name, never read silently under the old one."""

    id: str = setting(
        doc="Contact id (logged instead of the number); with app = true also the broker user name.",
        pattern=PERSON_ID, form=PERSON_ID_FORM, example="c-0001",
    )
    residents: tuple[str, ...] = setting(
        (), doc="Ids of the residents this contact is told about and may acknowledge alerts of; "
        "empty means every resident of the hub.",
        pattern=PERSON_ID, form=PERSON_ID_FORM, example=("r-0001",),
    )
    tier: int = setting(
        1, doc="Escalation tier: 1 is told first; while nobody acknowledges, 2 is told [alerts] "
        "escalate_after_s later (three times that for an urgent alert), then 3. A tier with nobody for "
        "an alert is skipped.", min=1, max=3,
    )
    min_severity: ContactSeverity = setting(
        ContactSeverity.URGENT, doc="Least severe alert this contact is told of, by SMS and in the app: warning, "
        "urgent or emergency. Warnings go to the app only, never by SMS."
    )
    app: bool = setting(
        False, doc="Has a family-app account on the hub's broker, user name = this contact's id: sees the "
        "linked residents' alerts and readings, acknowledges and snoozes their alerts (`yiyang family add` "
        "makes the account; `yiyang broker-acl` writes the broker's rules for it).", example=True,
    )
    phone: str = setting(
        "", doc="Phone number for SMS in E.164 form: + country code and number; empty for no SMS.",
        pattern=r"|\+[1-9][0-9]{6,14}", form="empty, or E.164, e.g. +8613800138000", example="+8613800138000",
    )
    language: ContactLanguage = setting(
        ContactLanguage.ZH_EN, doc="Language of the SMS text: zh, en or zh+en (Chinese first)."
    )

    @rule
    def told_something(self) -> Iterator[Problem]:
        if not self.phone and not self.app:
            yield Problem(("phone",), "this contact is told nothing: no phone for SMS and no app account",
                          "set phone, or app = true, or remove the contact")

    @rule
    def warnings_need_the_app(self) -> Iterator[Problem]:
        if self.min_severity is ContactSeverity.WARNING and not self.app:
            yield Problem(("min_severity",), "warnings never go by SMS and this contact has no app account",
                          'use "urgent" or "emergency", or set app = true')


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsSettings:
    """SMS alerts through the GSM modem (a [[devices]] entry with driver = "gsm-modem")."""

    max_per_contact_per_hour: int = setting(
        6, doc="Most SMS per contact per hour, emergencies excepted.", min=1, max=60
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The whole configuration, parsed once; each part of the daemon receives only its own section."""

    gateway: GatewaySettings = setting(doc="This hub.")
    platform: PlatformSettings = setting(doc="The provincial platform.")
    mqtt: MqttSettings = setting(factory=MqttSettings, doc="The MQTT broker.")
    storage: StorageSettings = setting(factory=StorageSettings, doc="The outbox's disk budget.")
    detect: DetectSettings = setting(factory=DetectSettings, doc="On-hub detection.")
    alerts: AlertSettings = setting(factory=AlertSettings, doc="Alert repeats and escalation.")
    fleet: FleetSettings = setting(factory=FleetSettings, doc="Fleet commands and remote configuration.")
    homeassistant: HomeAssistantSettings = setting(factory=HomeAssistantSettings, doc="Home Assistant discovery.")
    thresholds: Thresholds = setting(factory=Thresholds, doc="Default emergency thresholds.")
    residents: tuple[ResidentSettings, ...] = setting(
        doc="Repeat [[residents]] for each person; at least one.", min=1
    )
    devices: tuple[DeviceSettings, ...] = setting(
        (), doc="Repeat [[devices]] for each device; the entry below is an example."
    )
    sms: SmsSettings = setting(factory=SmsSettings, doc="SMS alerts through a GSM modem.")
    contacts: tuple[ContactSettings, ...] = setting(
        (), doc="Repeat [[contacts]] for each person alerted (SMS, family app); the entry below is an example."
    )

    def thresholds_for(self, resident_id: str) -> Thresholds:
        """The resident's effective thresholds (their overrides merged over [thresholds]).

        Raises KeyError for a resident that is not configured: devices can only name configured ones.
        """
        for resident in self.residents:
            if resident.id == resident_id:
                return resident.thresholds
        raise KeyError(f"resident {resident_id!r} is not configured")

    def with_derived_defaults(self) -> GatewayConfig:
        """Fill in the defaults that depend on other sections (the MQTT client id)."""
        if self.mqtt.client_id:
            return self
        mqtt = dataclasses.replace(self.mqtt, client_id=f"yiyang-{self.gateway.id}")
        return dataclasses.replace(self, mqtt=mqtt)

    @rule
    def unique_residents(self) -> Iterator[Problem]:
        yield from _duplicates("residents", [r.id for r in self.residents], "id")

    @rule
    def unique_devices(self) -> Iterator[Problem]:
        yield from _duplicates("devices", [d.id for d in self.devices], "id")
        yield from _duplicates("devices", [d.port for d in self.devices], "port")
        yield from _duplicates("devices", [d.address.upper() for d in self.devices], "address")

    @rule
    def sms_has_a_modem(self) -> Iterator[Problem]:
        # Contacts without a modem are allowed (the daemon says loudly that SMS is off): the documented
        # default file shows an example contact next to an example meter.
        modems = [d.id for d in self.devices if d.spec.role is Role.NOTIFIES]
        if len(modems) > 1:
            kind = _listed(lambda spec: spec.role is Role.NOTIFIES, " or ")
            yield Problem(("devices",), f"{len(modems)} {kind} devices ({', '.join(modems)}); one is used",
                          f"keep one {kind} device")
        yield from _duplicates("contacts", [c.id for c in self.contacts], "id")

    @rule
    def contacts_name_residents(self) -> Iterator[Problem]:
        residents = {r.id for r in self.residents}
        for index, contact in enumerate(self.contacts):
            for position, resident in enumerate(contact.residents):
                if resident not in residents:
                    yield Problem(
                        ("contacts", index, "residents", position),
                        f"no resident has id {resident!r}",
                        f"use one of: {', '.join(sorted(residents))}, or add a [[residents]] entry",
                    )

    @rule
    def broker_identities_are_distinct(self) -> Iterator[Problem]:
        # One broker user name, one set of rights: a family account named like the hub or the fleet
        # would get their rights as well in the ACL.
        if self.mqtt.username and self.mqtt.username == self.mqtt.fleet_username:
            yield Problem(("mqtt", "fleet_username"), "the fleet and this hub have the same broker user name",
                          "give the fleet its own user name")
        if self.homeassistant.discovery and self.homeassistant.username in (self.mqtt.username,
                                                                             self.mqtt.fleet_username):
            yield Problem(("homeassistant", "username"), "Home Assistant has the broker user name of the hub or the "
                          "fleet", "give Home Assistant its own user name")
        others = (self.mqtt.username, self.mqtt.fleet_username,
                  self.homeassistant.username if self.homeassistant.discovery else "")
        for index, contact in enumerate(self.contacts):
            if contact.app and contact.id in others:
                yield Problem(("contacts", index, "id"),
                              f"{contact.id!r} is also the broker user name of the hub, the fleet or Home Assistant",
                              "give the contact another id")

    @rule
    def devices_name_residents(self) -> Iterator[Problem]:
        residents = {r.id for r in self.residents}
        for index, device in enumerate(self.devices):
            if device.resident and device.resident not in residents:
                yield Problem(
                    ("devices", index, "resident"),
                    f"no resident has id {device.resident!r}",
                    f"use one of: {', '.join(sorted(residents))}, or add a [[residents]] entry",
                )


def _duplicates(array: str, values: list[str], key: str) -> Iterator[Problem]:
    first_index: dict[str, int] = {}
    for index, value in enumerate(values):
        if not value:
            continue
        if value in first_index:
            yield Problem(
                (array, index, key),
                f"{key} {value!r} is already used by {array}[{first_index[value]}]",
                f"give each entry of {array} its own {key}",
            )
        else:
            first_index[value] = index
