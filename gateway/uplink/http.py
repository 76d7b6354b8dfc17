"""One blocking HTTP(S) POST. Call it from a worker thread only (``asyncio.to_thread``)."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from gateway.errors import UplinkError

MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""A v1 answer for 500 records is ~60 kB; a runaway body (a proxy streaming a page) is cut here."""


class TransportError(UplinkError):
    """The request did not get an HTTP answer: refused, reset, timed out, DNS, TLS."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    """Header names in lower case (``date``, ``retry-after``, ``content-type``)."""
    body: bytes


class Transport(Protocol):
    """What the uplink needs from HTTP; tests and other platforms may bring their own."""

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse: ...


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.hostname is None:
        raise TransportError(f"upload URL {url!r} has no host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if parts.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout_s, context=context), target
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s), target
    raise TransportError(f"upload URL {url!r} must start with http:// or https://")


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
    """POST ``body`` and return the answer, whatever its status; blocks up to ``timeout_s`` per socket step.

    Raises :class:`TransportError` when no HTTP answer came back.
    """
    connection, target = _connection(url, timeout_s)
    try:
        # One connection per batch: batches are seconds apart and a kept-alive
        # connection across a 4G link mostly comes back dead.
        connection.request("POST", target, body=body, headers={**headers, "Connection": "close"})
        response = connection.getresponse()
        answer = response.read(MAX_ANSWER_BYTES)
        return HttpResponse(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=answer,
        )
    except TimeoutError as exc:
        raise TransportError(f"no answer within {timeout_s:g} s") from exc
    except ssl.SSLError as exc:
        raise TransportError(f"TLS failed: {exc.reason or exc}") from exc
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve the platform's host: {exc.strerror}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()
