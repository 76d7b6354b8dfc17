"""Family contacts as the configuration gives them, for the broker and for the alerts.

A contact with ``app = true`` has a broker account whose user name is the contact id. The same
links decide what the broker lets that account read and write (:mod:`gateway.broker_acl`), whose
alerts the hub accepts a reply from it for, and which alerts reach it at all
(:class:`gateway.respond.contacts.Roster`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config.schema import ContactSettings
from gateway.respond.contacts import Contact, Roster
from gateway.vocabulary import Language, Severity


@dataclass(frozen=True, slots=True)
class FamilyAccount:
    """A family contact's broker account (user name = contact id) and the residents it is linked to."""

    contact_id: str
    residents: tuple[str, ...]
    """Never empty: "every resident" is resolved to the hub's residents when the account is made."""


def linked_residents(contact: ContactSettings, resident_ids: Sequence[str]) -> tuple[str, ...]:
    """The residents a contact is linked to; ``residents = []`` in the file means all of the hub's."""
    return tuple(contact.residents) if contact.residents else tuple(resident_ids)


def family_accounts(contacts: Sequence[ContactSettings], resident_ids: Sequence[str]) -> tuple[FamilyAccount, ...]:
    """The broker accounts of the contacts with ``app = true``, in configuration order."""
    return tuple(FamilyAccount(c.id, linked_residents(c, resident_ids)) for c in contacts if c.app)


def contact_of(settings: ContactSettings, resident_ids: Sequence[str]) -> Contact:
    return Contact(id=settings.id, residents=frozenset(linked_residents(settings, resident_ids)), tier=settings.tier,
                   min_severity=Severity(settings.min_severity.value), language=Language(settings.language.value),
                   phone=settings.phone, app=settings.app)


def roster_of(contacts: Sequence[ContactSettings], resident_ids: Sequence[str]) -> Roster:
    """Every configured contact, each linked to its residents (all of the hub's when it names none)."""
    return Roster.of(contact_of(c, resident_ids) for c in contacts)
