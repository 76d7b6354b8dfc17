#!/usr/bin/env python3
"""Reference provincial platform: the server side of Platform Upload API v1, for demos and tests.

It checks what a strict platform checks (signature, timestamp window, nonce reuse,
sizes, JSON shape, each record), dedupes by record_id, keeps every accepted record
in its own SQLite file, and can be told to misbehave at runtime:

    python scripts/platform_server.py --port 8480 --db /tmp/platform.sqlite \\
        --secret-file secret.txt --gateway-id gw-0001 [--faults 503:count=3,retry_after=2]

Admin endpoints (no auth; it listens on 127.0.0.1 by default):
    POST /admin/faults  {"mode": "503"|"429"|"500"|"timeout"|"slow"|"401"|"400"|"413"|"nonsense"|"down"|"ok",
                         "count": N (requests affected; omitted = until changed),
                         "retry_after": S, "delay_s": S, "max_bytes": B}
    GET  /admin/records  {"count": N, "record_ids": [...], "upload_requests": N, "upload_answers": {"200": N, ...}}
    GET  /admin/health   {"status": "ok", "faults": {...}, "upload_requests": N, "upload_answers": {...}}

FHIR R4 profile: ``POST /fhir`` takes a transaction Bundle (same signature headers, path
``/fhir``), validates every resource with the ``fhir.resources`` package (R4B models: the
newest release with pydantic 2 ships no 4.0.1 models, and Observation, Flag and Bundle
are the same in R4 and R4B), honours ``ifNoneExist`` and conditional ``PUT`` by
identifier, stores resources in the table ``fhir_resources`` and answers a
transaction-response Bundle. An entry that fails is answered in its own entry (4xx
with an OperationOutcome) and the others are kept; ``--fhir-atomic`` instead refuses
the whole transaction with 422, as HAPI does. ``--fhir-reject-code CODE`` refuses
Observations with that code. ``GET /admin/fhir`` lists what is stored.

Fault modes: 503/429/500 answer that status (503/429 with Retry-After if given);
timeout stores the records and answers only after delay_s (the client has given up:
its retry must come back as duplicates); slow waits delay_s, then answers normally;
401 refuses the signature; 400 refuses every request as malformed (a platform that changed
its API, a proxy that mangles bodies); 413 refuses every request as too large or, with
max_bytes, every body above max_bytes bytes after decompression (a proxy with a smaller body
limit than the contract's 1 MiB); nonsense answers 200 with unusable bodies and stores
nothing; down drops the connection without an answer.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import importlib
import itertools
import json
import re
import socket
import sqlite3
import sys
import threading
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateway.uplink.signing import sign

RECORD_TYPES = frozenset({
    "blood_pressure", "blood_glucose", "spo2", "body_temperature", "fall", "help_request", "alert", "device_status",
})
# A hub's device may not (yet) be assigned to a resident; every other record is about one.
TYPES_WITHOUT_RESIDENT = frozenset({"device_status"})
FAULT_MODES = frozenset({"503", "429", "500", "timeout", "slow", "401", "400", "413", "nonsense", "down", "ok"})
UUID_LIKE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
NONCE = re.compile(r"[0-9a-fA-F]{16,128}")
PATH = re.compile(r"/v1/gateways/([^/]+)/records")
FHIR_PATH = "/fhir"
FHIR_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json"})
FHIR_RESOURCE_TYPES = frozenset({"Observation", "Flag"})
CONDITION = re.compile(r"identifier=([^|&]+)\|([^&]+)")
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           412: "Precondition Failed", 422: "Unprocessable Entity"}


class Refusal(Exception):
    """Answer the whole request with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Faults:
    mode: str = "ok"
    count: int | None = None
    retry_after: float | None = None
    delay_s: float = 30.0
    max_bytes: int | None = None
    """Mode 413 only: refuse bodies above this (decompressed) size instead of every request."""

    @classmethod
    def from_json(cls, obj: Any) -> Faults:
        if not isinstance(obj, dict) or str(obj.get("mode")) not in FAULT_MODES:
            raise ValueError(f"faults need a mode, one of {sorted(FAULT_MODES)}")
        count = obj.get("count")
        retry_after = obj.get("retry_after")
        max_bytes = obj.get("max_bytes")
        return cls(mode=str(obj["mode"]), count=None if count is None else int(count),
                   retry_after=None if retry_after is None else float(retry_after),
                   delay_s=float(obj.get("delay_s", 30.0)), max_bytes=None if max_bytes is None else int(max_bytes))

    def body_limit(self, limit: int) -> int:
        """The body size limit for this request: the server's, or a 413 fault's smaller one."""
        return min(limit, self.max_bytes) if self.mode == "413" and self.max_bytes is not None else limit

    @classmethod
    def from_spec(cls, spec: str) -> Faults:
        """``MODE[:key=value,...]``, e.g. ``503:count=3,retry_after=2``."""
        mode, _, rest = spec.partition(":")
        obj: dict[str, Any] = {"mode": mode}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            obj[key.strip()] = value.strip()
        return cls.from_json(obj)


class Platform:
    """State shared by the request threads."""

    def __init__(self, args: argparse.Namespace, secret: bytes) -> None:
        self.gateway_id: str = args.gateway_id
        self.secret = secret
        self.clock_offset_s: float = args.clock_offset_s
        self.window_s: float = args.window_s
        self.max_records: int = args.max_records
        self.max_bytes: int = args.max_bytes
        self.reject_types = frozenset(args.reject_type or ())
        self.lock = threading.Lock()
        self.faults = Faults.from_spec(args.faults) if args.faults else Faults()
        self.nonces: dict[str, float] = {}
        self.upload_requests = 0
        self.upload_answers: dict[str, int] = {}
        """Answers to upload requests by HTTP status: what a hub got, for tests and benchmarks."""
        self.nonsense = itertools.count()
        self.db = sqlite3.connect(args.db, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (record_id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL,"
            " type TEXT NOT NULL, body TEXT NOT NULL, received_at REAL NOT NULL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS fhir_resources (id TEXT PRIMARY KEY, resource_type TEXT NOT NULL,"
            " identifier_system TEXT NOT NULL, identifier_value TEXT NOT NULL, version INTEGER NOT NULL,"
            " body TEXT NOT NULL, received_at REAL NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS fhir_identifier"
                        " ON fhir_resources (resource_type, identifier_system, identifier_value)")
        self.fhir_atomic: bool = args.fhir_atomic
        self.fhir_reject_codes = frozenset(args.fhir_reject_code or ())
        self.fhir_max_bytes: int = args.fhir_max_bytes
        self.fhir = FhirStore(self)

    def now(self) -> float:
        return time.time() + self.clock_offset_s

    def take_fault(self) -> Faults:
        """The fault for this upload request; counts it down."""
        with self.lock:
            self.upload_requests += 1
            current = self.faults
            if current.mode != "ok" and current.count is not None:
                left = current.count - 1
                self.faults = Faults() if left <= 0 else replace(current, count=left)
            return current

    def count_answer(self, status: int) -> None:
        with self.lock:
            self.upload_answers[str(status)] = self.upload_answers.get(str(status), 0) + 1

    def answers(self) -> dict[str, int]:
        with self.lock:
            return dict(self.upload_answers)

    def check_nonce(self, nonce: str, now: float) -> None:
        with self.lock:
            # Nonces older than the window cannot pass the timestamp check again; forget them.
            for old in [n for n, seen in self.nonces.items() if now - seen > 2 * self.window_s]:
                del self.nonces[old]
            if nonce in self.nonces:
                raise Refusal(401, "nonce already used")
            self.nonces[nonce] = now

    def store(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        with self.lock:
            self.db.execute("BEGIN")
            for record in records:
                reason = self.record_problem(record)
                if reason is not None:
                    results.append({"record_id": record.get("record_id"), "status": "rejected", "reason": reason})
                    continue
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO records (record_id, gateway_id, type, body, received_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record["record_id"], self.gateway_id, record["type"],
                     json.dumps(record, ensure_ascii=False, separators=(",", ":")), self.now()),
                )
                status = "accepted" if cursor.rowcount == 1 else "duplicate"
                results.append({"record_id": record["record_id"], "status": status})
            self.db.execute("COMMIT")
        return results

    def record_problem(self, record: dict[str, Any]) -> str | None:
        record_id = record.get("record_id")
        if not isinstance(record_id, str) or not UUID_LIKE.fullmatch(record_id):
            return "record_id missing or not a UUID"
        record_type = record.get("type")
        if record_type not in RECORD_TYPES:
            return f"unknown record type {record_type!r}"
        if record_type in self.reject_types:
            return f"record type {record_type!r} is not accepted by this platform"
        resident = record.get("resident_id")
        if record_type not in TYPES_WITHOUT_RESIDENT and (not isinstance(resident, str) or not resident):
            return "resident_id missing"
        return None

    def record_ids(self) -> list[str]:
        with self.lock:
            return [row[0] for row in self.db.execute("SELECT record_id FROM records ORDER BY rowid")]


def check_shape(document: Any, max_records: int) -> list[dict[str, Any]]:
    """The envelope and each record's JSON types; a violation refuses the whole request (400)."""
    if not isinstance(document, dict):
        raise Refusal(400, "body is not a JSON object")
    if not isinstance(document.get("sent_at"), str):
        raise Refusal(400, "sent_at missing or not a string")
    records = document.get("records")
    if not isinstance(records, list) or not records:
        raise Refusal(400, "records missing, not a list, or empty")
    if len(records) > max_records:
        raise Refusal(413, f"{len(records)} records; at most {max_records} per request")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise Refusal(400, f"records[{index}] is not an object")
        for key, kind in (("values", dict), ("device", dict), ("flags", list)):
            if key in record and not isinstance(record[key], kind):
                raise Refusal(400, f"records[{index}].{key} must be a JSON {kind.__name__}")
    return records


def gunzip_limited(data: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise Refusal(400, f"body is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise Refusal(413, f"body over {limit} bytes after decompression")
    return out


def operation_outcome(diagnostics: str, code: str = "invalid") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


def entry_answer(status: int, *, location: str | None = None, problem: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": f"{status} {REASONS.get(status, '')}".strip()}
    if location is not None:
        response["location"] = location
    if problem is not None:
        response["outcome"] = operation_outcome(problem)
    return {"response": response}


@dataclass(frozen=True)
class FhirWrite:
    """One entry of a transaction, checked: what to store under which identifier."""

    resource_type: str
    identifier: tuple[str, str]
    resource: dict[str, Any]
    method: str


def fhir_models() -> Any:
    """The ``fhir.resources`` R4B package, imported on first use so the v1 server runs without it."""
    try:
        return importlib.import_module("fhir.resources.R4B")
    except ImportError as exc:
        raise Refusal(501, "this reference server needs the fhir.resources package for /fhir "
                           "(pip install fhir.resources)") from exc


def validation_problem(resource: dict[str, Any]) -> str | None:
    """What ``fhir.resources`` finds wrong with one resource, in a line; None if it is valid R4(B)."""
    try:
        fhir_models().get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Refusal:
        raise
    except Exception as exc:  # pydantic's ValidationError and fhir.resources' own errors
        return f"{resource['resourceType']} is not valid FHIR: {' '.join(str(exc).split())}"[:400]
    return None


def fhir_condition(text: object, what: str) -> tuple[str, str]:
    match = CONDITION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{what} {text!r} is not identifier=system|value")
    return match.group(1), match.group(2)


class FhirStore:
    """The FHIR side of the platform: transactions into the ``fhir_resources`` table."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def check_entry(self, entry: Any) -> FhirWrite:
        """Raises ValueError naming what is wrong with the entry."""
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise ValueError("entry has no resource")
        resource, request = entry["resource"], entry.get("request")
        resource_type = resource.get("resourceType")
        if resource_type not in FHIR_RESOURCE_TYPES:
            raise ValueError(f"resource type {resource_type!r} is not accepted here")
        if not isinstance(request, dict):
            raise ValueError("entry has no request")
        method, url = request.get("method"), request.get("url")
        if method == "POST" and url == resource_type:
            identifier = fhir_condition(request.get("ifNoneExist"), "ifNoneExist")
        elif method == "PUT" and isinstance(url, str) and url.startswith(resource_type + "?"):
            identifier = fhir_condition(url.partition("?")[2], "conditional update")
        else:
            raise ValueError(f"request {method} {url} is not a conditional create or update")
        if not any(i.get("system") == identifier[0] and i.get("value") == identifier[1]
                   for i in resource.get("identifier") or [] if isinstance(i, dict)):
            raise ValueError("the resource does not carry the identifier its request is conditional on")
        problem = validation_problem(resource)
        if problem is not None:
            raise ValueError(problem)
        codes = {str(c.get("code")) for c in (resource.get("code") or {}).get("coding") or [] if isinstance(c, dict)}
        rejected = codes & self.platform.fhir_reject_codes
        if resource_type == "Observation" and rejected:
            raise ValueError(f"Observation code {sorted(rejected)[0]} is not accepted by this platform")
        return FhirWrite(resource_type, identifier, resource, method)

    def transaction(self, document: Any) -> dict[str, Any]:
        if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
            raise Refusal(400, "body is not a FHIR Bundle")
        if document.get("type") != "transaction":
            raise Refusal(400, f"Bundle type {document.get('type')!r}: this endpoint takes a transaction")
        entries = document.get("entry")
        if not isinstance(entries, list) or not entries:
            raise Refusal(400, "Bundle has no entries")
        checked: list[FhirWrite | str] = []
        for index, entry in enumerate(entries):
            try:
                checked.append(self.check_entry(entry))
            except ValueError as exc:
                if self.platform.fhir_atomic:
                    raise Refusal(422, f"entry[{index}]: {exc}") from exc
                checked.append(str(exc))
        with self.platform.lock:
            self.platform.db.execute("BEGIN")
            answers = [entry_answer(422, problem=item) if isinstance(item, str) else self.write(item)
                       for item in checked]
            self.platform.db.execute("COMMIT")
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}

    def write(self, item: FhirWrite) -> dict[str, Any]:
        db = self.platform.db
        rows = db.execute("SELECT id, version FROM fhir_resources WHERE resource_type = ?"
                          " AND identifier_system = ? AND identifier_value = ?",
                          (item.resource_type, *item.identifier)).fetchall()
        if len(rows) > 1:
            return entry_answer(412, problem=f"{len(rows)} {item.resource_type} resources match the condition")
        if rows and item.method == "POST":
            return entry_answer(200, location=f"{item.resource_type}/{rows[0][0]}/_history/{rows[0][1]}")
        resource_id, version = (rows[0][0], rows[0][1] + 1) if rows else (str(uuid.uuid4()), 1)
        body = json.dumps({**item.resource, "id": resource_id}, ensure_ascii=False, separators=(",", ":"))
        db.execute("INSERT OR REPLACE INTO fhir_resources (id, resource_type, identifier_system, identifier_value,"
                   " version, body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (resource_id, item.resource_type, *item.identifier, version, body, self.platform.now()))
        return entry_answer(200 if rows else 201, location=f"{item.resource_type}/{resource_id}/_history/{version}")

    def listing(self) -> list[dict[str, Any]]:
        with self.platform.lock:
            rows = self.platform.db.execute("SELECT resource_type, identifier_value, version, body"
                                            " FROM fhir_resources ORDER BY rowid").fetchall()
        return [{"resource_type": r[0], "identifier": r[1], "version": r[2], "resource": json.loads(r[3])}
                for r in rows]


class Handler(BaseHTTPRequestHandler):
    server_version = "yiyang-reference-platform/1"
    platform: Platform
    quiet = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header is what a hub with a wrong clock corrects itself by: use our (offset) clock.
        return formatdate(self.platform.now() if timestamp is None else timestamp, usegmt=True)

    def answer(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.answer_raw(status, data, "application/json", headers)

    def answer_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        if self.path == FHIR_PATH or PATH.fullmatch(self.path):
            self.platform.count_answer(status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout fault); nothing to tell it

    def do_GET(self) -> None:
        platform = self.platform
        if self.path == "/admin/records":
            ids = platform.record_ids()
            self.answer(200, {"count": len(ids), "record_ids": ids, "upload_requests": platform.upload_requests,
                              "upload_answers": platform.answers()})
        elif self.path == "/admin/fhir":
            self.answer(200, {"resources": self.platform.fhir.listing(), "upload_requests": platform.upload_requests})
        elif self.path == "/admin/health":
            self.answer(200, {"status": "ok", "faults": asdict(platform.faults),
                              "upload_requests": platform.upload_requests, "upload_answers": platform.answers()})
        else:
            self.answer(404, {"error": "no such endpoint"})

    def do_POST(self) -> None:
        if self.path == "/admin/faults":
            self.set_faults()
            return
        if self.path == FHIR_PATH:
            self.fhir_upload()
            return
        match = PATH.fullmatch(self.path)
        if match is None:
            self.answer(404, {"error": "no such endpoint"})
            return
        fault = self.platform.take_fault()
        if self.apply_fault_before(fault):
            return
        try:
            results = self.upload(match.group(1), fault)
        except Refusal as refusal:
            self.answer(refusal.status, {"error": refusal.message})
            return
        if fault.mode == "timeout":
            time.sleep(fault.delay_s)
        self.answer(200, {"results": results})

    def fhir_upload(self) -> None:
        fault = self.platform.take_fault()
        if self.apply_fault_before(fault):
            return
        try:
            answer = self.platform.fhir.transaction(
                self.read_signed_body(fault.body_limit(self.platform.fhir_max_bytes), FHIR_MEDIA_TYPES))
        except Refusal as refusal:
            self.answer_raw(refusal.status, json.dumps(operation_outcome(refusal.message)).encode(),
                            "application/fhir+json")
            return
        if fault.mode == "timeout":
            time.sleep(fault.delay_s)
        self.answer_raw(200, json.dumps(answer).encode(), "application/fhir+json")

    def set_faults(self) -> None:
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            faults = Faults.from_json(json.loads(body))
        except (ValueError, TypeError) as exc:
            self.answer(400, {"error": str(exc)})
            return
        with self.platform.lock:
            self.platform.faults = faults
        self.answer(200, {"faults": asdict(faults)})

    def apply_fault_before(self, fault: Faults) -> bool:
        """Act out a fault that replaces the normal answer; True if it did."""
        mode = fault.mode
        if mode == "slow":
            time.sleep(fault.delay_s)
            return False
        if mode in ("ok", "timeout") or (mode == "413" and fault.max_bytes is not None):
            return False
        self.drain_body()
        if mode == "down":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if mode == "nonsense":
            self.answer_nonsense()
            return True
        headers = {}
        if mode in ("503", "429") and fault.retry_after is not None:
            headers["Retry-After"] = str(round(fault.retry_after))
        message = {"503": "service unavailable", "429": "too many requests", "500": "internal error",
                   "401": "signature refused", "400": "malformed request", "413": "request too large"}[mode]
        self.answer(int(mode), {"error": message}, headers)
        return True

    def answer_nonsense(self) -> None:
        variant = next(self.platform.nonsense) % 4
        if variant == 0:
            self.answer_raw(200, b"<html><body>Portal login</body></html>", "text/html")
        elif variant == 1:
            self.answer(200, {"results": [{"record_id": "not-in-your-batch", "status": "accepted"}]})
        elif variant == 2:
            self.answer(200, {"ok": True})
        else:
            self.answer_raw(200, b'{"results": [', "application/json")

    def drain_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if 0 < length <= 4 * self.platform.max_bytes else b""

    def upload(self, path_gateway_id: str, fault: Faults) -> list[dict[str, Any]]:
        platform = self.platform
        if path_gateway_id != platform.gateway_id:
            self.drain_body()
            raise Refusal(401, "unknown gateway id")
        document = self.read_signed_body(fault.body_limit(platform.max_bytes), frozenset({"application/json"}))
        return platform.store(check_shape(document, platform.max_records))

    def read_signed_body(self, max_bytes: int, media_types: frozenset[str]) -> Any:
        """The request's JSON document, once its size, signature, media type and encoding check out."""
        platform = self.platform
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise Refusal(411, "Content-Length required")
        length = int(length_text)
        if length > max_bytes:
            # Read what was sent (within reason) so the client sees our 413, not a reset.
            self.drain_body()
            self.close_connection = True
            raise Refusal(413, f"body over {max_bytes} bytes")
        data = self.rfile.read(length)
        if self.headers.get("X-Gateway-Id") != platform.gateway_id:
            raise Refusal(401, "unknown gateway id")
        self.check_signature(data)
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type not in media_types:
            raise Refusal(400, f"Content-Type must be {' or '.join(sorted(media_types))}")
        encoding = (self.headers.get("Content-Encoding") or "identity").lower()
        if encoding == "gzip":
            data = gunzip_limited(data, max_bytes)
        elif encoding != "identity":
            raise Refusal(400, f"unsupported Content-Encoding {encoding}")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refusal(400, f"body is not UTF-8 JSON: {exc}") from exc

    def check_signature(self, data: bytes) -> None:
        platform = self.platform
        timestamp_text = self.headers.get("X-Timestamp") or ""
        nonce = self.headers.get("X-Nonce") or ""
        signature = self.headers.get("X-Signature") or ""
        if not timestamp_text.isdigit():
            raise Refusal(401, "X-Timestamp missing or not milliseconds")
        now = platform.now()
        if abs(int(timestamp_text) / 1000 - now) > platform.window_s:
            raise Refusal(401, f"X-Timestamp more than {platform.window_s:g} s from server time")
        if not NONCE.fullmatch(nonce):
            raise Refusal(401, "X-Nonce must be 16 or more hex characters")
        expected = sign(platform.secret, self.path, int(timestamp_text), nonce, data)
        if not hmac.compare_digest(expected, signature):
            raise Refusal(401, "signature does not match")
        platform.check_nonce(nonce, now)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8480, help="0 picks a free port")
    parser.add_argument("--db", required=True, help="SQLite file for accepted records")
    parser.add_argument("--secret-file", required=True, type=Path)
    parser.add_argument("--gateway-id", required=True)
    parser.add_argument("--faults", help="initial fault, MODE[:count=N,retry_after=S,delay_s=S,max_bytes=B]")
    parser.add_argument("--reject-type", action="append", help="reject this record type (repeatable)")
    parser.add_argument("--clock-offset-s", type=float, default=0.0, help="run the server clock this far ahead")
    parser.add_argument("--window-s", type=float, default=300.0, help="allowed X-Timestamp skew")
    parser.add_argument("--max-records", type=int, default=500)
    parser.add_argument("--max-bytes", type=int, default=1024 * 1024, help="limit before compression")
    parser.add_argument("--fhir-atomic", action="store_true",
                        help="refuse a whole FHIR transaction (422) when one entry fails, as HAPI does")
    parser.add_argument("--fhir-reject-code", action="append",
                        help="refuse FHIR Observations coded with this code (repeatable)")
    parser.add_argument("--fhir-max-bytes", type=int, default=8 * 1024 * 1024, help="FHIR Bundle size limit")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    secret = args.secret_file.read_bytes().strip()
    if not secret:
        print(f"secret file {args.secret_file} is empty", file=sys.stderr)
        return 2
    platform = Platform(args, secret)
    handler = type("BoundHandler", (Handler,), {"platform": platform, "quiet": not args.verbose})
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
