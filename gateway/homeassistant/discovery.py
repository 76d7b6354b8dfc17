"""Home Assistant MQTT discovery for the hub's residents, pure: which configs, on which topics.

One Home Assistant device per resident, named by its pseudonymous id. Its sensors are the latest
readings of the kinds its devices measure (a blood-pressure cuff gives systolic, diastolic and
pulse; a glucose meter glucose; an oximeter SpO2 and pulse; a thermometer temperature), and a
binary sensor says whether the resident has an open alert. The state topics are the hub's own
retained ``residents/{rid}/readings/{type}`` and ``residents/{rid}/alert_summary``, read through
value templates, so nothing is published twice. Every entity is available while the hub's retained
``status`` says online; its last will says offline, and Home Assistant greys them out.

Topics: ``{prefix}/{component}/{node_id}/{object_id}/config`` as Home Assistant documents them
(https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery); keys as documented for
``sensor.mqtt`` and ``binary_sensor.mqtt``. A removed resident or device is a config that is
no longer wanted: the publisher clears it with an empty retained message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.model import ReadingType
from gateway.config.schema import DeviceSettings
from gateway.topics import STATUS, alert_summary_topic, reading_topic

MANUFACTURER = "Yiyang"
MODEL = "Home-care hub resident (yiyang-gateway)"


@dataclass(frozen=True, slots=True)
class Quantity:
    """One sensor: a value of the resident's latest reading of a kind."""

    key: str
    """Its part of the object id and unique id."""
    reading_type: ReadingType
    value_key: str
    """Its key in the reading's ``values``."""
    name: str
    unit: str
    device_class: str | None
    """Home Assistant's sensor device class; None where none fits."""
    precision: int


QUANTITIES: tuple[Quantity, ...] = (
    # Blood pressure has no device class: "pressure" is atmospheric, and Home Assistant would convert
    # it to the household's unit (hPa). mmHg without a class is shown as measured.
    Quantity("systolic", ReadingType.BLOOD_PRESSURE, "systolic", "收缩压 Systolic", "mmHg", None, 0),
    Quantity("diastolic", ReadingType.BLOOD_PRESSURE, "diastolic", "舒张压 Diastolic", "mmHg", None, 0),
    Quantity("pulse", ReadingType.BLOOD_PRESSURE, "pulse", "脉搏 Pulse", "bpm", None, 0),
    Quantity("glucose", ReadingType.BLOOD_GLUCOSE, "value", "血糖 Glucose", "mmol/L", "blood_glucose_concentration", 1),
    Quantity("spo2", ReadingType.SPO2, "spo2", "血氧 SpO2", "%", None, 0),
    Quantity("spo2_pulse", ReadingType.SPO2, "pulse", "脉搏（血氧仪） Pulse (oximeter)", "bpm", None, 0),
    Quantity("temperature", ReadingType.BODY_TEMPERATURE, "value", "体温 Temperature", "°C", "temperature", 1),
)

_NOT_AN_ID_CHAR = re.compile(r"[^A-Za-z0-9_-]")
"""Home Assistant's discovery topic takes node and object ids of these characters only."""


def node_id(gateway_id: str) -> str:
    return f"yiyang-{gateway_id}"


def config_filter(prefix: str, gateway_id: str) -> str:
    """Every discovery config topic of this hub (its broker ACL)."""
    return f"{prefix}/+/{node_id(gateway_id)}/+/config"


def topic_id(resident_id: str) -> str:
    """A resident id as a topic id: unchanged when it can be, else made safe and kept unique by a hash."""
    safe = _NOT_AN_ID_CHAR.sub("_", resident_id)
    if safe == resident_id:
        return safe
    return f"{safe}_{hashlib.sha256(resident_id.encode()).hexdigest()[:6]}"


def readings_by_resident(residents: Iterable[str],
                         devices: Iterable[DeviceSettings]) -> dict[str, frozenset[ReadingType]]:
    """Each resident and the kinds of reading its configured devices take (the catalogue says which; empty:
    none of them)."""
    kinds: dict[str, set[ReadingType]] = {resident: set() for resident in residents}
    for device in devices:
        if device.resident in kinds:
            kinds[device.resident] |= device.spec.readings
    return {resident: frozenset(found) for resident, found in kinds.items()}


def discovery_configs(*, prefix: str, gateway_id: str, hub_root: str, version: str,
                      residents: Mapping[str, frozenset[ReadingType]]) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config for every entity of every resident. ``hub_root``: ``{topic_root}/{gateway_id}``."""
    configs: dict[str, dict[str, Any]] = {}
    node = node_id(gateway_id)
    for resident, kinds in residents.items():
        common = _common(gateway_id, hub_root, version, resident)
        rid = topic_id(resident)
        for quantity in QUANTITIES:
            if quantity.reading_type in kinds:
                configs[f"{prefix}/sensor/{node}/{rid}_{quantity.key}/config"] = _sensor(
                    common, quantity, f"{hub_root}/{reading_topic(resident, quantity.reading_type.value)}")
        configs[f"{prefix}/binary_sensor/{node}/{rid}_alert/config"] = _alert_sensor(
            common, f"{hub_root}/{alert_summary_topic(resident)}")
    return configs


def _common(gateway_id: str, hub_root: str, version: str, resident: str) -> dict[str, Any]:
    """What every entity of a resident's device says alike; ``unique_id`` is the device's, each entity adds to it."""
    return {
        "device": {"identifiers": [f"yiyang_{gateway_id}_{resident}"], "name": resident,
                   "manufacturer": MANUFACTURER, "model": MODEL, "sw_version": version},
        "origin": {"name": "yiyang-gateway", "sw_version": version},
        "availability": [{"topic": f"{hub_root}/{STATUS}", "value_template": "{{ value_json['state'] }}",
                          "payload_available": "online", "payload_not_available": "offline"}],
        "qos": 1,
        "unique_id": f"yiyang_{gateway_id}_{resident}",
    }


def _sensor(common: Mapping[str, Any], quantity: Quantity, state_topic: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        **common,
        "unique_id": f"{common['unique_id']}_{quantity.key}",
        "name": quantity.name,
        "state_topic": state_topic,
        # value_json['values'], not value_json.values: Jinja finds dict.values (the method) first.
        "value_template": f"{{{{ value_json['values']['{quantity.value_key}'] }}}}",
        "unit_of_measurement": quantity.unit,
        "state_class": "measurement",
        "suggested_display_precision": quantity.precision,
        "json_attributes_topic": state_topic,
        "json_attributes_template": "{{ {'measured_at': value_json['measured_at'], "
                                    "'flags': value_json['flags']} | tojson }}",
    }
    if quantity.device_class is not None:
        config["device_class"] = quantity.device_class
    return config


def _alert_sensor(common: Mapping[str, Any], state_topic: str) -> dict[str, Any]:
    return {
        **common,
        "unique_id": f"{common['unique_id']}_alert",
        "name": "警报 Alert active",
        "state_topic": state_topic,
        "value_template": "{{ 'ON' if value_json['active'] else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "safety",  # on: unsafe
        "json_attributes_topic": state_topic,
    }


def stale(published: Sequence[str], wanted: Iterable[str]) -> list[str]:
    """Config topics published before and not wanted now: each to be cleared (an empty retained message)."""
    keep = set(wanted)
    return [topic for topic in published if topic not in keep]
