"""Device drivers: pure protocol codecs plus thin I/O sessions.

Nothing here imports :mod:`gateway`; drivers emit :mod:`drivers.model` records
and raise :mod:`drivers.errors` exceptions.
"""
