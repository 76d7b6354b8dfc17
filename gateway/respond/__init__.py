"""From findings to the family: the messages, the fall workflow, silence and vital-sign alerts, escalation
and the contacts, and the service that carries each alert through its lifecycle.

The layer above :mod:`gateway.detect` (plain findings) and :mod:`gateway.alerts` (the record and its
delivery): it may import both; neither imports it (tests/test_layers.py).
"""
