"""Home Assistant discovery configs, checked against the keys and values Home Assistant documents.

The documented sets below are the configuration variables of Home Assistant's ``sensor.mqtt`` and
``binary_sensor.mqtt`` integrations (https://www.home-assistant.io/integrations/sensor.mqtt/,
.../binary_sensor.mqtt/), the discovery topic format and the ``device``/``origin`` maps of its MQTT
discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery), and the units its
sensor device classes accept (https://www.home-assistant.io/integrations/sensor/#device-class).
The value templates are rendered with Jinja2, as Home Assistant renders them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ha_emulator import render

from drivers.model import DeviceInfo, Glucose, HubTime, Reading, TimeSource
from gateway.alerts.model import Alert, AlertState, Message
from gateway.config.schema import DeviceSettings, DriverName
from gateway.homeassistant.discovery import discovery_configs, readings_by_resident, stale, topic_id
from gateway.vocabulary import AlertKind, Severity
from gateway.wire import alert_summary, local_reading_payload

TZ = ZoneInfo("Asia/Shanghai")

COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after", "force_update",
    "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin", "payload_available",
    "payload_not_available", "platform", "qos", "state_topic", "unique_id", "value_template", "device_class",
}
SENSOR_KEYS = COMMON_KEYS | {"last_reset_value_template", "options", "state_class", "suggested_display_precision",
                             "unit_of_measurement"}
BINARY_SENSOR_KEYS = COMMON_KEYS | {"off_delay", "payload_off", "payload_on"}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
               "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"payload_available", "payload_not_available", "topic", "value_template"}
SENSOR_DEVICE_CLASS_UNITS = {"temperature": {"°C", "°F", "K"}, "blood_glucose_concentration": {"mg/dL", "mmol/L"}}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
BINARY_SENSOR_DEVICE_CLASSES = {"problem", "safety", "running", "occupancy", "moisture", "smoke"}
DISCOVERY_TOPIC = re.compile(r"homeassistant/(?P<component>sensor|binary_sensor)/(?P<node_id>[A-Za-z0-9_-]+)/"
                             r"(?P<object_id>[A-Za-z0-9_-]+)/config")

HUB_ROOT = "yiyang/v1/gw-0001"


def device(device_id: str, driver: DriverName, resident: str) -> DeviceSettings:
    return DeviceSettings(id=device_id, driver=driver, address="C4:7C:8D:6A:11:02", resident=resident)


DEVICES = (device("cuff", DriverName.BLE_BPS, "r-0001"), device("meter", DriverName.BLE_GLS, "r-0001"),
           device("oximeter", DriverName.BLE_PLX, "r-0002"), device("thermometer", DriverName.BLE_HTS, "r-0002"),
           device("button", DriverName.BTHOME_BUTTON, "r-0002"))


def configs() -> dict[str, dict[str, Any]]:
    return discovery_configs(prefix="homeassistant", gateway_id="gw-0001", hub_root=HUB_ROOT, version="0.1.0",
                             residents=readings_by_resident(["r-0001", "r-0002", "r-0003"], DEVICES))


def test_each_resident_gets_the_sensors_of_its_devices_and_an_alert_sensor() -> None:
    assert sorted(configs()) == [
        "homeassistant/binary_sensor/yiyang-gw-0001/r-0001_alert/config",
        "homeassistant/binary_sensor/yiyang-gw-0001/r-0002_alert/config",
        "homeassistant/binary_sensor/yiyang-gw-0001/r-0003_alert/config",  # no devices yet: alerts all the same
        "homeassistant/sensor/yiyang-gw-0001/r-0001_diastolic/config",
        "homeassistant/sensor/yiyang-gw-0001/r-0001_glucose/config",
        "homeassistant/sensor/yiyang-gw-0001/r-0001_pulse/config",
        "homeassistant/sensor/yiyang-gw-0001/r-0001_systolic/config",
        "homeassistant/sensor/yiyang-gw-0001/r-0002_spo2/config",
        "homeassistant/sensor/yiyang-gw-0001/r-0002_spo2_pulse/config",
        "homeassistant/sensor/yiyang-gw-0001/r-0002_temperature/config",
    ]


def test_every_config_uses_only_documented_keys_and_values() -> None:
    unique_ids = set()
    for topic, config in configs().items():
        match = DISCOVERY_TOPIC.fullmatch(topic)
        assert match, topic
        keys = SENSOR_KEYS if match["component"] == "sensor" else BINARY_SENSOR_KEYS
        assert set(config) <= keys, f"{topic}: undocumented {set(config) - keys}"
        assert {"state_topic", "unique_id", "device", "name", "availability"} <= set(config)
        assert set(config["device"]) <= DEVICE_KEYS and config["device"]["identifiers"]
        assert set(config["origin"]) <= ORIGIN_KEYS and config["origin"]["name"]
        for item in config["availability"]:
            assert set(item) <= AVAILABILITY_KEYS and item["topic"] == f"{HUB_ROOT}/status"
        unique_ids.add(config["unique_id"])
        if match["component"] == "sensor":
            assert config["state_class"] in STATE_CLASSES
            if "device_class" in config:
                assert config["unit_of_measurement"] in SENSOR_DEVICE_CLASS_UNITS[config["device_class"]]
        else:
            assert config["device_class"] in BINARY_SENSOR_DEVICE_CLASSES
    assert len(unique_ids) == len(configs())
    systolic = configs()["homeassistant/sensor/yiyang-gw-0001/r-0001_systolic/config"]
    assert "device_class" not in systolic and systolic["unit_of_measurement"] == "mmHg"  # no class fits BP
    assert systolic["device"]["name"] == "r-0001"  # the pseudonymous id, never a name


def test_the_templates_give_the_state_of_a_real_reading_and_of_the_alert_summary() -> None:
    at = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    reading = Reading(device=DeviceInfo(id="meter", transport="ble"), resident_id="r-0001",
                      measurement=Glucose(mmol_l=6.66), measured_at=at, time_source=TimeSource.DEVICE,
                      received=HubTime(wall=at, monotonic=0.0, synced=True))
    payload = json.dumps(local_reading_payload(reading, TZ)).encode()
    glucose = configs()["homeassistant/sensor/yiyang-gw-0001/r-0001_glucose/config"]
    assert glucose["state_topic"] == f"{HUB_ROOT}/residents/r-0001/readings/blood_glucose"
    assert render(glucose["value_template"], payload) == "6.66"
    assert json.loads(render(glucose["json_attributes_template"], payload)) == {
        "measured_at": "2026-11-23T08:00:00.000+08:00", "flags": []}

    alert_config = configs()["homeassistant/binary_sensor/yiyang-gw-0001/r-0001_alert/config"]
    assert alert_config["state_topic"] == f"{HUB_ROOT}/residents/r-0001/alert_summary"
    fall = Alert(alert_id="a-1", kind=AlertKind.FALL, severity=Severity.EMERGENCY, state=AlertState.ACKNOWLEDGED,
                 resident_id="r-0001", raised_at=at, message=Message("", ""))
    on = json.dumps(alert_summary("r-0001", [fall])).encode()
    off = json.dumps(alert_summary("r-0001", [])).encode()
    assert render(alert_config["value_template"], on) == alert_config["payload_on"]
    assert render(alert_config["value_template"], off) == alert_config["payload_off"]
    availability = alert_config["availability"][0]
    assert render(availability["value_template"], b'{"state": "offline"}') == availability["payload_not_available"]
    assert render(availability["value_template"], b'{"state": "online", "devices": {}}') == "online"


@pytest.mark.parametrize(("resident", "expected"), [("r-0001", "r-0001"), ("R_7", "R_7")])
def test_resident_ids_that_are_topic_ids_stay_as_they_are(resident: str, expected: str) -> None:
    assert topic_id(resident) == expected


def test_other_resident_ids_are_made_safe_and_kept_apart() -> None:
    assert topic_id("r.1").startswith("r_1_") and topic_id("r:1").startswith("r_1_")
    assert topic_id("r.1") != topic_id("r:1") != topic_id("r_1")


def test_what_is_no_longer_wanted_is_cleared() -> None:
    before = ["a/config", "b/config", "c/config"]
    assert stale(before, ["b/config", "d/config"]) == ["a/config", "c/config"]
