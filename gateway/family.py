"""Family contacts as the broker and the hub see them: which residents each one is linked to.

A contact with ``app = true`` has a broker account whose user name is the contact id. The same
links decide what the broker lets that account read and write (:mod:`gateway.broker_acl`), whose
alerts the hub accepts an acknowledgement from it for (:class:`FamilyLinks`), and, for a contact
with a phone, which alerts reach it by SMS (:func:`sms_contacts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.alerts.model import Severity
from gateway.alerts.sms import Language, SmsContact
from gateway.config.schema import ContactSettings


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


@dataclass(frozen=True, slots=True)
class FamilyLinks:
    """Who may acknowledge whose alerts: contact id -> the residents it is linked to (app accounts only)."""

    residents_of: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, accounts: Sequence[FamilyAccount]) -> FamilyLinks:
        return cls({account.contact_id: frozenset(account.residents) for account in accounts})

    def may_acknowledge(self, contact_id: str, resident_id: str) -> bool:
        return resident_id in self.residents_of.get(contact_id, frozenset())


def sms_contacts(contacts: Sequence[ContactSettings], resident_ids: Sequence[str]) -> list[SmsContact]:
    """The contacts with a phone, each told about its linked residents only; the others are app-only."""
    return [SmsContact(c.id, c.phone, Severity(c.sms_min_severity.value), Language(c.language.value),
                       residents=frozenset(linked_residents(c, resident_ids)))
            for c in contacts if c.phone]
