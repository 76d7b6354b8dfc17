"""The platform's per-request limits and the batch settings' ranges: one source for the config
schema (what a technician may write) and the uplink (what it checks when built without a file).

Kept apart from :mod:`gateway.uplink` so the config schema can read it without importing the
uplink's HTTP and outbox machinery.
"""

from __future__ import annotations

MAX_RECORDS = 500
"""Platform Upload API v1: at most 500 records per request."""
MAX_BODY_BYTES = 1024 * 1024
"""Platform Upload API v1: at most 1 MiB per request, before compression."""

BATCH_MAX_RECORDS_RANGE = (1, MAX_RECORDS)
"""``platform.batch_max_records``: one record per request up to the platform's limit."""
BATCH_MAX_BYTES_RANGE = (1024, MAX_BODY_BYTES)
"""``platform.batch_max_bytes`` (the records' JSON in one request, before gzip). Below 1 KiB not
two readings fit: such a value is a typo for kilobytes, not a wish. The top is the platform's
1 MiB; the room the request's envelope needs is the uplink's business, not the technician's."""
