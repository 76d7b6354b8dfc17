"""`yiyang config init`: a new hub's file from the documented defaults, and the installer's keys updated in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.config.check import DEFAULT_FILE_HEADER, render_default_toml
from gateway.config.initial import HubIdentity, new_config, updated_config
from gateway.errors import ConfigError

HUB = HubIdentity(gateway_id="gw-0042", platform_url="https://platform.example/api", residents=("r-0001", "r-0002"),
                  data_dir=Path("/var/lib/yiyang"), secret_file=Path("/etc/yiyang/platform.secret"),
                  broker_user="yiyang-gateway", broker_password_file=Path("/etc/yiyang/broker.password"),
                  fleet_key_file=Path("/etc/yiyang/fleet.pub"))


def test_a_new_file_is_the_documented_defaults_with_the_hubs_identity() -> None:
    text = new_config(HUB)
    cfg = parse_config(text, "gateway.toml")
    assert (cfg.gateway.id, cfg.platform.url, [r.id for r in cfg.residents]) == (
        "gw-0042", "https://platform.example/api", ["r-0001", "r-0002"])
    assert (cfg.mqtt.password_file, cfg.fleet.public_key_file) == (
        Path("/etc/yiyang/broker.password"), Path("/etc/yiyang/fleet.pub"))
    assert cfg.devices == () and cfg.contacts == ()
    # Every documented setting is still there to read, the examples as comments to copy.
    assert "# [[devices]]\n" in text and "# [[contacts]]\n" in text
    assert '# phone = "+8613800138000"' in text
    documentation = render_default_toml().removeprefix(DEFAULT_FILE_HEADER)
    for line in documentation.splitlines():
        if line.startswith("# "):
            assert line in text, line


def test_updating_sets_only_the_installers_keys() -> None:
    edited = new_config(HUB).replace("budget_mb = 512", "budget_mb = 1024  # a big SD card")
    moved = updated_config(edited, HubIdentity(**{**_fields(HUB), "platform_url": "https://new.example/api",
                                                  "fleet_key_file": None}), "gateway.toml")
    assert [line for line in moved.splitlines() if line not in edited.splitlines()] == [
        'url = "https://new.example/api"']
    assert updated_config(moved, HubIdentity(**{**_fields(HUB), "platform_url": "https://new.example/api"}),
                          "gateway.toml") == moved


def test_a_new_file_needs_a_resident_and_an_update_does_not_add_one() -> None:
    with pytest.raises(ConfigError, match="at least one resident"):
        new_config(HubIdentity(**{**_fields(HUB), "residents": ()}))
    with pytest.raises(ConfigError, match=r"residents: r-0009 not in the file"):
        updated_config(new_config(HUB), HubIdentity(**{**_fields(HUB), "residents": ("r-0009",)}), "gateway.toml")


def test_a_bad_hub_id_is_refused_by_key() -> None:
    with pytest.raises(ConfigError) as refused:
        new_config(HubIdentity(**{**_fields(HUB), "gateway_id": "GW 42"}))
    assert any("gateway.id" in problem for problem in refused.value.problems)


def _fields(hub: HubIdentity) -> dict[str, object]:
    return {name: getattr(hub, name) for name in HubIdentity.__slots__}
