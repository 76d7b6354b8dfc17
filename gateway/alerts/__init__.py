"""Alerts: the record, and getting it to the people who need it (MQTT, SMS, sounder)."""
