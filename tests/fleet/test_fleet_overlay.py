"""gateway.fleet.overlay: whole sections replaced, absent ones kept, the fleet's sections kept as an overlay."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fleetdocs import Fleet, local_config, local_toml

from gateway.config import DriverName, GatewayConfig
from gateway.fleet.document import check_config, check_document, open_document
from gateway.fleet.overlay import LocalConfig, effective_mapping, layer, validate_effective

FLEET = Fleet()
DATA_DIR = Path("/var/lib/yiyang")
LOCAL = local_config(DATA_DIR)
ONE_DEVICE = {"devices": [{"id": "oximeter", "driver": "ble-plx", "address": "AA:BB:CC:DD:EE:01",
                           "resident": "r-0002"}]}
THRESHOLDS = {"thresholds": {"glucose_level1_hypo_mmol_l": 4.2}}


def apply(local: LocalConfig, overlay: dict[str, object], version: int,
          sections: dict[str, object]) -> dict[str, object]:
    """The overlay after one document (what the service keeps), checked against ``local``."""
    document = open_document(FLEET.payload(version, sections), gateway_id="gw-0001", key=FLEET.public)
    return dict(check_config(document, local, overlay).overlay)


def effective(local: LocalConfig, overlay: dict[str, object]) -> GatewayConfig:
    config, problems = validate_effective(local.mapping, overlay)
    assert problems == []
    assert config is not None
    return config


def test_an_array_of_tables_is_replaced_whole() -> None:
    config = check_document(FLEET.payload(1, ONE_DEVICE), local=LOCAL, overlay={}, key=FLEET.public).config
    assert [(d.id, d.driver) for d in config.devices] == [("oximeter", DriverName.BLE_PLX)]


def test_an_empty_array_removes_every_device() -> None:
    config = check_document(FLEET.payload(1, {"devices": []}), local=LOCAL, overlay={}, key=FLEET.public).config
    assert config.devices == ()


def test_a_table_is_replaced_whole_not_key_by_key() -> None:
    # The local file sets [platform] timeout_s = 5; the fleet's [platform] leaves it out: the default.
    assert LOCAL.config.platform.timeout_s == 5.0
    sections = {"platform": {"url": "https://other.example.cn", "secret_file": "/etc/yiyang/platform.secret"}}
    config = check_document(FLEET.payload(1, sections), local=LOCAL, overlay={}, key=FLEET.public).config
    assert (config.platform.url, config.platform.timeout_s) == ("https://other.example.cn", 15.0)


def test_sections_absent_from_the_document_are_kept() -> None:
    config = check_document(FLEET.payload(1, THRESHOLDS), local=LOCAL, overlay={}, key=FLEET.public).config
    assert config.devices == LOCAL.config.devices
    assert config.residents[0].thresholds.glucose_level1_hypo_mmol_l == 4.2, "residents inherit [thresholds]"


def test_the_overlay_is_cumulative_across_documents() -> None:
    overlay = apply(LOCAL, {}, 1, THRESHOLDS)
    overlay = apply(LOCAL, overlay, 2, ONE_DEVICE)
    assert overlay == {**THRESHOLDS, **ONE_DEVICE}
    config = effective(LOCAL, overlay)
    assert config.thresholds.glucose_level1_hypo_mmol_l == 4.2
    assert [d.id for d in config.devices] == ["oximeter"]
    # A later document's section replaces the earlier one's, and only that one.
    overlay = apply(LOCAL, overlay, 3, {"thresholds": {"pulse_high_bpm": 140}})
    config = effective(LOCAL, overlay)
    assert (config.thresholds.glucose_level1_hypo_mmol_l, config.thresholds.pulse_high_bpm) == (3.9, 140)
    assert [d.id for d in config.devices] == ["oximeter"]


def test_a_technicians_later_edit_of_a_section_the_fleet_never_touched_still_applies() -> None:
    overlay = apply(LOCAL, {}, 1, THRESHOLDS)
    edited = local_config(DATA_DIR, extra="\n[mqtt]\nport = 8883\n")
    config = effective(edited, overlay)
    assert (config.mqtt.port, config.thresholds.glucose_level1_hypo_mmol_l) == (8883, 4.2)


def test_a_technicians_edit_of_a_section_the_fleet_set_is_overridden_by_the_fleet() -> None:
    overlay = apply(LOCAL, {}, 1, THRESHOLDS)
    edited = local_config(DATA_DIR, extra="\n[thresholds]\nglucose_level1_hypo_mmol_l = 4.8\n")
    assert effective(edited, overlay).thresholds.glucose_level1_hypo_mmol_l == 4.2


def test_the_hubs_id_and_data_directory_always_come_from_the_local_file() -> None:
    overlay = apply(LOCAL, {}, 1, {"gateway": {"id": "gw-0001", "timezone": "UTC"}})
    assert overlay == {"gateway": {"timezone": "UTC"}}
    moved = LocalConfig.from_text(local_toml(Path("/srv/yiyang")), "gateway.toml")
    config = effective(moved, overlay)
    assert (config.gateway.id, config.gateway.data_dir, config.gateway.timezone) == (
        "gw-0001", Path("/srv/yiyang"), "UTC")


def test_layer_and_merge_never_modify_their_arguments() -> None:
    local = tomllib.loads(local_toml(DATA_DIR))
    before = repr(local)
    overlay = {"gateway": {"timezone": "UTC"}}
    layered = layer(overlay, {"gateway": {"id": "x", "log_level": "debug"}, **THRESHOLDS})
    assert layered == {"gateway": {"log_level": "debug"}, **THRESHOLDS}
    merged = effective_mapping(local, layered)
    assert merged["gateway"] == {"log_level": "debug", "id": "gw-0001", "data_dir": str(DATA_DIR)}
    assert repr(local) == before
    assert overlay == {"gateway": {"timezone": "UTC"}}
