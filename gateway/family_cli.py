"""``yiyang family add|remove|list``: family-app accounts on the hub's broker, managed by the gateway.

One command keeps three things in step: the contact in the configuration (``[[contacts]]``, edited
with comments kept), its account in Mosquitto's password file, and the ACL generated from the
configuration (:mod:`gateway.broker_acl`); then Mosquitto is told to reload. Everything is checked
(the edited configuration as a whole, the ACL it gives, the password) before any file is written.

The running gateway reads its contacts at start: restart it (``systemctl restart yiyang``) so it
takes acknowledgements from a new contact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import tomlkit

from gateway.broker_accounts import (
    Reload,
    ReloadKind,
    broker_users,
    delete_user,
    generate_password,
    read_acl,
    reload_broker,
    set_password,
    write_acl,
)
from gateway.broker_acl import acl_for_config
from gateway.config import GatewayConfig, load_config
from gateway.config.edit import array_of_tables, commit_edit, prepare_edit
from gateway.errors import BrokerAccountError
from gateway.family import linked_residents


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """The hub's Mosquitto files and how to make it read them again (``--password-file`` ...)."""

    password_file: Path
    acl_file: Path
    reload: Reload


@dataclass(frozen=True, slots=True)
class ContactChange:
    """What ``family add`` sets on a contact; None: leave as it is (a new contact gets the defaults)."""

    residents: tuple[str, ...] | None = None
    tier: int | None = None
    min_severity: str | None = None
    phone: str | None = None
    language: str | None = None


def add(config_path: Path, contact_id: str, change: ContactChange, files: BrokerFiles, out: TextIO, *,
        password: str | None = None, keep_password: bool = False) -> None:
    """Make (or update) an app contact and its broker account; a generated password is printed once.

    ``password``: the technician's own (read from stdin), else one is generated. ``keep_password``:
    an account that exists keeps its password (to change only the residents, tier...).
    """
    edit = prepare_edit(config_path, lambda document: _put_contact(document, contact_id, change))
    acl = acl_for_config(edit.config)
    shown = not keep_password and password is None
    if keep_password:
        if contact_id not in broker_users(files.password_file):
            raise BrokerAccountError(f"broker user {contact_id} has no password to keep: leave out --keep-password")
    else:
        password = generate_password() if password is None else password
        set_password(files.password_file, contact_id, password)
    commit_edit(edit)
    write_acl(files.acl_file, acl)
    contact = next(c for c in edit.config.contacts if c.id == contact_id)
    residents = linked_residents(contact, [r.id for r in edit.config.residents])
    print(f"{config_path}: contact {contact_id} (tier {contact.tier}, {contact.min_severity.value} and above) has "
          f"a family-app account, linked to {', '.join(residents)}", file=out)
    if shown:
        print(f"broker user {contact_id} password (shown once; enter it in the family app): {password}", file=out)
    _reload(files, out)
    print("restart the gateway so it takes this contact's acknowledgements: systemctl restart yiyang", file=out)


def remove(config_path: Path, contact_id: str, files: BrokerFiles, out: TextIO) -> None:
    """Take away a contact's family-app account; a contact with a phone stays, for SMS."""
    current = load_config(config_path)
    if contact_id in (current.mqtt.username, current.mqtt.fleet_username):
        raise BrokerAccountError(f"{contact_id} is the broker user of the hub or the fleet, not a family account")
    kept_for_sms: list[bool] = []
    edit = prepare_edit(config_path, lambda document: kept_for_sms.append(_drop_app(document, contact_id)))
    acl = acl_for_config(edit.config)
    had_user = delete_user(files.password_file, contact_id)
    commit_edit(edit)
    write_acl(files.acl_file, acl)
    in_config = any(c.id == contact_id for c in current.contacts)
    if not in_config and not had_user:
        print(f"{contact_id}: neither a contact nor a broker user; the ACL was written again all the same", file=out)
    elif in_config and kept_for_sms[0]:
        print(f"{config_path}: contact {contact_id} has no family-app account any more; it keeps its SMS", file=out)
    elif in_config:
        print(f"{config_path}: contact {contact_id} removed", file=out)
    if had_user:
        print(f"broker user {contact_id} removed from {files.password_file}", file=out)
    _reload(files, out)
    if in_config:
        print("restart the gateway so it forgets the account: systemctl restart yiyang", file=out)


def list_contacts(config_path: Path, files: BrokerFiles, out: TextIO) -> int:
    """The contacts and their broker accounts; problems (an account missing or left over, a stale ACL) exit 1."""
    cfg = load_config(config_path)
    users = broker_users(files.password_file)
    residents = [r.id for r in cfg.residents]
    rows = [("ID", "TIER", "MIN SEVERITY", "SMS", "APP", "RESIDENTS")]
    rows += [(c.id, str(c.tier), c.min_severity.value, "yes" if c.phone else "-", "yes" if c.app else "-",
              ",".join(linked_residents(c, residents))) for c in cfg.contacts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
    problems = broker_problems(cfg, users, read_acl(files.acl_file), files)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=out)
    return 1 if problems else 0


def broker_problems(cfg: GatewayConfig, users: Sequence[str], acl: str | None, files: BrokerFiles) -> list[str]:
    """Where the broker's files and the configuration disagree, each with what to do."""
    problems = [f"contact {c.id} has app = true but no broker user in {files.password_file}: "
                f"yiyang family add {c.id}" for c in cfg.contacts if c.app and c.id not in users]
    if cfg.mqtt.username and cfg.mqtt.username not in users:
        problems.append(f"the hub's own broker user {cfg.mqtt.username} is not in {files.password_file}: "
                        f"mosquitto_passwd {files.password_file} {cfg.mqtt.username} (its password as in [mqtt] "
                        "password_file)")
    ours = {c.id for c in cfg.contacts if c.app} | {cfg.mqtt.username, cfg.mqtt.fleet_username}
    if cfg.homeassistant.discovery:
        ours.add(cfg.homeassistant.username)
    problems += [f"broker user {user} in {files.password_file} is no family-app contact of this hub: "
                 f"yiyang family remove {user}" for user in users if user not in ours]
    if cfg.mqtt.username:
        if acl is None:
            problems.append(f"no ACL at {files.acl_file}: yiyang broker-acl > {files.acl_file}, then reload Mosquitto")
        elif acl != acl_for_config(cfg):
            problems.append(f"{files.acl_file} is not the ACL of this configuration: "
                            f"yiyang broker-acl > {files.acl_file}, then reload Mosquitto")
    return problems


def _reload(files: BrokerFiles, out: TextIO) -> None:
    if files.reload.kind is ReloadKind.NONE:
        print(f"Mosquitto was not told: reload it (systemctl reload mosquitto) so {files.password_file} and "
              f"{files.acl_file} take effect", file=out)
        return
    reload_broker(files.reload)
    print(f"Mosquitto reloaded ({files.reload.describe()})", file=out)


def _put_contact(document: tomlkit.TOMLDocument, contact_id: str, change: ContactChange) -> None:
    contacts = array_of_tables(document, "contacts")
    entry = next((c for c in contacts if c.get("id") == contact_id), None)
    if entry is None:
        entry = tomlkit.table()
        entry.add("id", contact_id)
        entry.trivia.indent = "\n"  # a blank line before the new [[contacts]], as a person would write it
        contacts.append(entry)
    entry["app"] = True
    values: dict[str, object] = {"residents": list(change.residents) if change.residents is not None else None,
                                 "tier": change.tier, "min_severity": change.min_severity, "phone": change.phone,
                                 "language": change.language}
    for key, value in values.items():
        if value is not None:
            entry[key] = value


def _drop_app(document: tomlkit.TOMLDocument, contact_id: str) -> bool:
    """The contact without its app account: True when it stays for SMS, False when it is gone (or never was)."""
    contacts = array_of_tables(document, "contacts")
    for index, entry in enumerate(contacts):
        if entry.get("id") != contact_id:
            continue
        if entry.get("phone"):
            entry["app"] = False
            return True
        del contacts[index]
        return False
    return False
