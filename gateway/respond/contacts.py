"""The people alerts are for: one notion of a contact, and the hub's roster of them, pure.

A contact has an id (also its broker user name when it has the family app), an escalation tier
(1 is told first), the least severe alert it is told of, a language for SMS, and a phone, an app
account or both. It is linked to some of the hub's residents and hears only about them.
Built from the configuration by :func:`gateway.family.roster_of`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.vocabulary import Language, Severity

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
TIERS = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    residents: frozenset[str] = frozenset()
    """The residents this contact is told about (and may acknowledge); empty: every one."""
    tier: int = 1
    min_severity: Severity = Severity.URGENT
    language: Language = Language.ZH_EN
    phone: str = ""
    """E.164 (+8613800138000) for SMS; empty for none."""
    app: bool = False
    """Has a family-app account on the hub's broker (user name = id): acknowledges and snoozes there."""

    def __post_init__(self) -> None:
        if self.phone and not _E164.fullmatch(self.phone):
            raise ValueError(
                f"contact {self.id}: phone must be E.164, '+' country code and number, e.g. +8613800138000"
            )
        if self.tier not in TIERS:
            raise ValueError(f"contact {self.id}: tier must be one of {TIERS}, not {self.tier}")

    def follows(self, resident_id: str) -> bool:
        return not self.residents or resident_id in self.residents

    def wants(self, resident_id: str, severity: Severity) -> bool:
        """Whether an alert of this resident at this severity is one to tell this contact of."""
        return self.follows(resident_id) and severity.at_least(self.min_severity)


@dataclass(frozen=True, slots=True)
class Roster:
    """Every contact of the hub, in configuration order; ids are unique."""

    contacts: tuple[Contact, ...] = ()
    _by_id: dict[str, Contact] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {contact.id: contact for contact in self.contacts}
        if len(by_id) != len(self.contacts):
            raise ValueError("contact ids must be unique")
        object.__setattr__(self, "_by_id", by_id)

    @classmethod
    def of(cls, contacts: Iterable[Contact]) -> Roster:
        return cls(tuple(contacts))

    def __iter__(self) -> Iterator[Contact]:
        return iter(self.contacts)

    def get(self, contact_id: str) -> Contact | None:
        return self._by_id.get(contact_id)

    def may_respond(self, contact_id: str, resident_id: str) -> bool:
        """Acknowledge or snooze this resident's alerts: an app account linked to the resident."""
        contact = self._by_id.get(contact_id)
        return contact is not None and contact.app and contact.follows(resident_id)

    def wanting(self, resident_id: str, severity: Severity, tier: int) -> tuple[str, ...]:
        """The ids of the contacts of one tier to tell of such an alert, in configuration order."""
        return tuple(c.id for c in self.contacts if c.tier == tier and c.wants(resident_id, severity))
