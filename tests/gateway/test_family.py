"""Family contacts from the configuration: broker accounts, the roster alerts go by, and their links."""

from __future__ import annotations

from gateway.config.schema import ContactLanguage, ContactSettings, ContactSeverity
from gateway.family import FamilyAccount, family_accounts, roster_of
from gateway.respond.contacts import Contact, Roster
from gateway.vocabulary import Language, Severity

RESIDENTS = ["r-0001", "r-0002"]
CONTACTS = (
    ContactSettings(id="c-app-only", app=True, residents=("r-0002",), min_severity=ContactSeverity.WARNING),
    ContactSettings(id="c-both", app=True, phone="+8613800138000", min_severity=ContactSeverity.EMERGENCY,
                    language=ContactLanguage.EN, tier=2),
    ContactSettings(id="c-sms-only", phone="+8613900139000", residents=("r-0001",), tier=3),
)


def test_only_app_contacts_get_a_broker_account() -> None:
    assert family_accounts(CONTACTS, RESIDENTS) == (
        FamilyAccount("c-app-only", ("r-0002",)), FamilyAccount("c-both", ("r-0001", "r-0002")))


def test_every_contact_is_on_the_roster_linked_to_its_residents_or_all() -> None:
    assert roster_of(CONTACTS, RESIDENTS) == Roster((
        Contact("c-app-only", frozenset({"r-0002"}), min_severity=Severity.WARNING, app=True),
        Contact("c-both", frozenset({"r-0001", "r-0002"}), tier=2, min_severity=Severity.EMERGENCY,
                language=Language.EN, phone="+8613800138000", app=True),
        Contact("c-sms-only", frozenset({"r-0001"}), tier=3, phone="+8613900139000"),
    ))
