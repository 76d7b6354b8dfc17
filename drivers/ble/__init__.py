"""Bluetooth LE health devices: pure codecs for the SIG health profiles and wearables.

Each module decodes one characteristic family from bytes into a frozen dataclass in
canonical units (see :mod:`drivers.model`) and raises :class:`drivers.errors.CodecError`
on anything malformed. No module here does I/O, reads a clock or logs payloads: the
bleak sessions that do live beside them and call these codecs.
"""
