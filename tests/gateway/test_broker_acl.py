"""The broker ACL generator: its exact output, the names it refuses, and the example file it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.broker_acl import HomeAssistantAccount, acl_for_config, render_acl
from gateway.cli import main
from gateway.config import load_config, parse_config
from gateway.errors import BrokerAclError
from gateway.family import FamilyAccount, family_accounts

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "gateway.toml"
EXAMPLE_ACL = REPO / "config" / "mosquitto-acl.example"

COUPLE = """
[gateway]
id = "gw-0042"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
[mqtt]
username = "hub-0042"
[[residents]]
id = "r-0001"
[[residents]]
id = "r-0002"
[[contacts]]
id = "c-0001"
residents = ["r-0001"]
app = true
[[contacts]]
id = "c-0002"
app = true
[[contacts]]
id = "c-0003"
phone = "+8613800138000"
"""


def test_render_acl_gives_each_account_exactly_its_rules() -> None:
    accounts = [FamilyAccount("c-0001", ("r-0001",)), FamilyAccount("c-0002", ("r-0001", "r-0002"))]
    assert render_acl("gw-0042", "yiyang/v1", "hub-0042", "fleet", accounts) == """\
# Mosquitto ACL for hub gw-0042 (docs/mqtt-contract.md, "Identities and access").
# Generated from the gateway configuration by `yiyang broker-acl`: regenerate it, do not edit it.
# Whatever no line allows is refused.

# The hub itself: its own tree.
user hub-0042
topic readwrite yiyang/v1/gw-0042/#

# The fleet operator: configuration documents and signed commands; reads every hub.
user fleet
topic write yiyang/v1/+/config/desired
topic write yiyang/v1/+/cmd/#
topic read yiyang/v1/#

# Family contact c-0001, linked to r-0001.
user c-0001
topic read yiyang/v1/gw-0042/status
topic read yiyang/v1/gw-0042/residents/r-0001/#
topic write yiyang/v1/gw-0042/residents/r-0001/alerts/+/ack/c-0001
topic write yiyang/v1/gw-0042/residents/r-0001/alerts/+/snooze/c-0001

# Family contact c-0002, linked to r-0001, r-0002.
user c-0002
topic read yiyang/v1/gw-0042/status
topic read yiyang/v1/gw-0042/residents/r-0001/#
topic read yiyang/v1/gw-0042/residents/r-0002/#
topic write yiyang/v1/gw-0042/residents/r-0001/alerts/+/ack/c-0002
topic write yiyang/v1/gw-0042/residents/r-0001/alerts/+/snooze/c-0002
topic write yiyang/v1/gw-0042/residents/r-0002/alerts/+/ack/c-0002
topic write yiyang/v1/gw-0042/residents/r-0002/alerts/+/snooze/c-0002
"""


def test_accounts_come_from_app_contacts_and_no_residents_means_all() -> None:
    cfg = parse_config(COUPLE, "couple.toml")
    assert family_accounts(cfg.contacts, ["r-0001", "r-0002"]) == (
        FamilyAccount("c-0001", ("r-0001",)), FamilyAccount("c-0002", ("r-0001", "r-0002")))
    acl = acl_for_config(cfg)
    assert "user c-0003" not in acl  # SMS only: no broker account
    assert acl == render_acl("gw-0042", "yiyang/v1", "hub-0042", "fleet", family_accounts(cfg.contacts,
                                                                                           ["r-0001", "r-0002"]))


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("gw/1", "yiyang/v1", "hub", "fleet", ()), "gateway id"),
        (("gw-1", "yiyang/#", "hub", "fleet", ()), "topic root"),
        (("gw-1", "yiyang//v1", "hub", "fleet", ()), "topic root"),
        (("gw-1", "yiyang/v1", "hub\ntopic readwrite #", "fleet", ()), "control characters"),
        (("gw-1", "yiyang/v1", "hub", "", ()), "empty"),
        (("gw-1", "yiyang/v1", "hub", "hub", ()), "used twice"),
        (("gw-1", "yiyang/v1", "hub", "fleet", (FamilyAccount("fleet", ("r-1",)),)), "used twice"),
        (("gw-1", "yiyang/v1", "hub", "fleet", (FamilyAccount("c-1", ("r-1",)), FamilyAccount("c-1", ("r-2",)))),
         "used twice"),
        (("gw-1", "yiyang/v1", "hub", "fleet", (FamilyAccount("c+1", ("r-1",)),)), "contact id"),
        (("gw-1", "yiyang/v1", "hub", "fleet", (FamilyAccount("c-1", ("r-#",)),)), "resident id"),
        (("gw-1", "yiyang/v1", "hub", "fleet", (FamilyAccount("c-1", ()),)), "no resident"),
    ],
)
def test_names_mosquitto_would_misread_are_refused(args: tuple[object, ...], complaint: str) -> None:
    with pytest.raises(BrokerAclError, match=complaint.replace("+", r"\+")):
        render_acl(*args)  # type: ignore[arg-type]


def test_a_hub_without_a_broker_user_name_gets_no_acl() -> None:
    cfg = parse_config(COUPLE.replace('username = "hub-0042"', ""), "couple.toml")
    with pytest.raises(BrokerAclError, match=r"\[mqtt\] username"):
        acl_for_config(cfg)


def test_the_example_acl_is_the_generators_output_for_the_example_config() -> None:
    assert EXAMPLE_ACL.read_text(encoding="utf-8") == acl_for_config(load_config(EXAMPLE_CONFIG)), (
        "config/mosquitto-acl.example drifted; regenerate it with: "
        ".venv/bin/yiyang broker-acl --config config/gateway.toml > config/mosquitto-acl.example"
    )


def test_yiyang_broker_acl_prints_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["broker-acl", "--config", str(EXAMPLE_CONFIG)]) == 0
    assert capsys.readouterr().out == EXAMPLE_ACL.read_text(encoding="utf-8")
    anonymous = tmp_path / "gw.toml"
    anonymous.write_text(COUPLE.replace('username = "hub-0042"', ""), encoding="utf-8")
    assert main(["broker-acl", "--config", str(anonymous)]) == 1
    assert "username" in capsys.readouterr().err


def test_home_assistant_reads_its_entities_states_and_nothing_of_the_alerts() -> None:
    cfg = parse_config(COUPLE + '\n[homeassistant]\ndiscovery = true\nprefix = "ha"\nusername = "ha-user"\n',
                       "couple.toml")
    acl = acl_for_config(cfg)
    assert "topic write ha/+/yiyang-gw-0042/+/config" in acl.split("user fleet")[0]  # the hub's own block
    assert acl.split("user ha-user\n")[1] == """\
topic read ha/+/yiyang-gw-0042/+/config
topic readwrite ha/status
topic read yiyang/v1/gw-0042/status
topic read yiyang/v1/gw-0042/residents/+/readings/+
topic read yiyang/v1/gw-0042/residents/+/alert_summary
"""
    assert "ha-user" not in acl_for_config(parse_config(COUPLE, "couple.toml"))  # discovery off: no account
    with pytest.raises(BrokerAclError, match="used twice"):
        render_acl("gw-1", "yiyang/v1", "hub", "fleet", [FamilyAccount("ha", ("r-1",))],
                   homeassistant=HomeAssistantAccount("ha", "homeassistant"))
    with pytest.raises(BrokerAclError, match="discovery prefix"):
        render_acl("gw-1", "yiyang/v1", "hub", "fleet", [], homeassistant=HomeAssistantAccount("ha", "home/#"))
