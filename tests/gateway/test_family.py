"""Family contacts from the configuration: broker accounts, SMS recipients, and the links between them."""

from __future__ import annotations

from gateway.alerts.model import Severity
from gateway.alerts.sms import Language, SmsContact
from gateway.config.schema import ContactSettings, SmsLanguage, SmsMinSeverity
from gateway.family import FamilyAccount, family_accounts, sms_contacts

RESIDENTS = ["r-0001", "r-0002"]
CONTACTS = (
    ContactSettings(id="c-app-only", app=True, residents=("r-0002",)),
    ContactSettings(id="c-both", app=True, phone="+8613800138000", sms_min_severity=SmsMinSeverity.EMERGENCY,
                    language=SmsLanguage.EN),
    ContactSettings(id="c-sms-only", phone="+8613900139000", residents=("r-0001",)),
)


def test_only_app_contacts_get_a_broker_account() -> None:
    assert family_accounts(CONTACTS, RESIDENTS) == (
        FamilyAccount("c-app-only", ("r-0002",)), FamilyAccount("c-both", ("r-0001", "r-0002")))


def test_only_contacts_with_a_phone_get_sms_about_their_residents() -> None:
    assert sms_contacts(CONTACTS, RESIDENTS) == [
        SmsContact("c-both", "+8613800138000", Severity.EMERGENCY, Language.EN,
                   residents=frozenset({"r-0001", "r-0002"})),
        SmsContact("c-sms-only", "+8613900139000", Severity.URGENT, Language.ZH_EN, residents=frozenset({"r-0001"})),
    ]
