"""The broker's access rules for one hub, as a Mosquitto ``acl_file``, pure (``yiyang broker-acl``).

Three kinds of identity (docs/mqtt-contract.md, "Identities and access"):

- the hub: reads and writes its own tree ``{root}/{gateway_id}/#`` and nothing else;
- the fleet operator: writes configuration documents and signed commands to any hub, reads everything;
- each family account (user name = contact id): reads the hub's ``status`` and, for each resident
  it is linked to, ``residents/{rid}/#``; writes only replies to alerts that carry its own id,
  ``residents/{rid}/alerts/+/ack/{contact_id}`` and ``.../snooze/{contact_id}``. Nothing else.
- Home Assistant, with ``[homeassistant] discovery`` on: reads the hub's discovery configs, its
  ``status``, and each resident's ``readings/+`` and ``alert_summary`` (not the alerts' texts and
  evidence); writes only its own ``{prefix}/status`` (its birth and last will). The hub may write
  its discovery configs below the prefix.

Mosquitto denies whatever no line allows, so what is not written here is refused. Subscribing is not
checked by Mosquitto 2.0, but every message is checked against ``read`` before it is delivered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config.schema import GatewayConfig
from gateway.errors import BrokerAclError
from gateway.family import FamilyAccount, family_accounts
from gateway.homeassistant.discovery import config_filter
from gateway.topics import STATUS, ack_topic, alert_summary_topic, reading_topic, resident_root, snooze_topic

_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
"""In a user name or topic: Mosquitto reads the ACL line by line and splits on spaces."""
_WILDCARDS = frozenset("/+#")

HEADER = """\
# Mosquitto ACL for hub {gateway_id} (docs/mqtt-contract.md, "Identities and access").
# Generated from the gateway configuration by `yiyang broker-acl`: regenerate it, do not edit it.
# Whatever no line allows is refused.
"""


@dataclass(frozen=True, slots=True)
class HomeAssistantAccount:
    """Home Assistant's broker user name and discovery prefix."""

    user: str
    prefix: str


def render_acl(gateway_id: str, topic_root: str, hub_user: str, fleet_user: str,
               contacts: Sequence[FamilyAccount], *, homeassistant: HomeAssistantAccount | None = None) -> str:
    """The ``acl_file`` text; :class:`BrokerAclError` when a name cannot be written safely."""
    _check_names(gateway_id, topic_root, hub_user, fleet_user, contacts, homeassistant=homeassistant)
    hub = f"{topic_root}/{gateway_id}"
    hub_rules = [f"topic readwrite {hub}/#"]
    if homeassistant is not None:
        hub_rules.append(f"topic write {config_filter(homeassistant.prefix, gateway_id)}")
    blocks = [
        HEADER.format(gateway_id=gateway_id),
        _block("The hub itself: its own tree" + (", and its Home Assistant discovery configs." if homeassistant
                                                 else "."), hub_user, hub_rules),
        _block("The fleet operator: configuration documents and signed commands; reads every hub.", fleet_user, [
            f"topic write {topic_root}/+/config/desired",
            f"topic write {topic_root}/+/cmd/#",
            f"topic read {topic_root}/#",
        ]),
    ]
    for account in contacts:
        rules = [f"topic read {hub}/{STATUS}"]
        rules += [f"topic read {hub}/{resident_root(rid)}/#" for rid in account.residents]
        rules += [f"topic write {hub}/{reply(rid, '+', account.contact_id)}" for rid in account.residents
                  for reply in (ack_topic, snooze_topic)]
        blocks.append(_block(f"Family contact {account.contact_id}, linked to {', '.join(account.residents)}.",
                             account.contact_id, rules))
    if homeassistant is not None:
        blocks.append(_block("Home Assistant: discovery configs, the hub's status, each resident's readings and "
                             "alert state.", homeassistant.user, [
            f"topic read {config_filter(homeassistant.prefix, gateway_id)}",
            f"topic readwrite {homeassistant.prefix}/status",
            f"topic read {hub}/{STATUS}",
            f"topic read {hub}/{reading_topic('+', '+')}",
            f"topic read {hub}/{alert_summary_topic('+')}",
        ]))
    return "\n".join(blocks)


def acl_for_config(cfg: GatewayConfig) -> str:
    """The ACL for a validated configuration: the hub is ``[mqtt] username``, the fleet ``fleet_username``."""
    if not cfg.mqtt.username:
        raise BrokerAclError("the hub has no broker user name: set [mqtt] username (and password_file) "
                             "so the broker can tell the hub from family accounts")
    accounts = family_accounts(cfg.contacts, [r.id for r in cfg.residents])
    ha = cfg.homeassistant
    homeassistant = HomeAssistantAccount(ha.username, ha.prefix) if ha.discovery else None
    return render_acl(cfg.gateway.id, cfg.mqtt.topic_root, cfg.mqtt.username, cfg.mqtt.fleet_username, accounts,
                      homeassistant=homeassistant)


def _block(comment: str, user: str, rules: list[str]) -> str:
    return "\n".join([f"# {comment}", f"user {user}", *rules, ""])


def _check_names(gateway_id: str, topic_root: str, hub_user: str, fleet_user: str,
                 contacts: Sequence[FamilyAccount], *, homeassistant: HomeAssistantAccount | None) -> None:
    for level in topic_root.split("/"):
        _check_level("topic root level", level)
    _check_level("gateway id", gateway_id)
    services = [hub_user, fleet_user]
    if homeassistant is not None:
        for level in homeassistant.prefix.split("/"):
            _check_level("discovery prefix level", level)
        services.append(homeassistant.user)
    for user in services:
        if not user or _UNSAFE.search(user):
            raise BrokerAclError(f"broker user name {user!r} is empty or has spaces or control characters")
    users = list(services)
    for account in contacts:
        _check_level("contact id", account.contact_id)
        if not account.residents:
            raise BrokerAclError(f"family account {account.contact_id} is linked to no resident")
        for resident in account.residents:
            _check_level("resident id", resident)
        users.append(account.contact_id)
    # Mosquitto merges the rules of a user named twice: a contact named like the fleet would get its rights.
    seen: set[str] = set()
    for user in users:
        if user in seen:
            raise BrokerAclError(f"broker user name {user!r} is used twice (hub, fleet and contacts need their own)")
        seen.add(user)


def _check_level(what: str, level: str) -> None:
    if not level or _UNSAFE.search(level) or _WILDCARDS.intersection(level):
        raise BrokerAclError(f"{what} {level!r} is not a topic level (empty, or has / + # spaces or control "
                             "characters)")
