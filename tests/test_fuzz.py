"""Schemathesis against the app's own OpenAPI schema, in process (ASGI): no 5xx from
any operation, called with valid keys (a write key for /v1, an admin key for /api).

Most endpoints read their body from the request themselves, so the generated
schema declares no bodies. The schema is therefore widened before fuzzing: the
Segment calls get a valid-ish Segment message body (``/v1/batch`` a list of them),
which schemathesis's negative and coverage phases then break field by field, and
every other POST any JSON at all, so the generated data reaches the parsers and
the ingest path, not only the "body must be JSON" answers. Path parameters get
an existing lead and the real write key as examples. Bounded by ``MAX_EXAMPLES``
per operation and phase (about 20 s in all).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.schemas import OpenApiSchema

from leadgate.services.ingest import ingest
from leadgate.store.repository import Repository
from leadgate.web.app import create_app
from leadgate.web.segment_api import SEGMENT_CALLS
from leadgate.web.settings import Settings

MAX_EXAMPLES = 25
LEAD = "fuzz-lead"

TEXT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 40}
# A valid Segment message, loosely: the fuzzer's negative phase makes it invalid.
MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "userId"],  # without a messageId the server derives one
    "properties": {
        "type": {"enum": list(SEGMENT_CALLS)},
        "userId": {"anyOf": [{"enum": [LEAD, "u1", "u2"]}, TEXT, {"type": "integer"}]},
        "anonymousId": {"anyOf": [{"enum": ["a1", "a2"]}, TEXT]},
        "previousId": {"anyOf": [{"enum": ["a1", "u2", LEAD]}, TEXT]},
        "groupId": TEXT,
        "messageId": TEXT,
        "event": {"anyOf": [{"enum": ["Quote Requested", "Asset Downloaded"]}, TEXT]},
        "timestamp": {
            "anyOf": [
                {"enum": ["2026-03-02T09:30:00Z", "2026-03-02", "2026-03-02T09:30:00+05:30"]},
                {"type": "string", "format": "date-time"},
            ]
        },
        "properties": {
            "type": "object",
            "properties": {
                "path": {"anyOf": [{"enum": ["/pricing", "/services/seo"]}, {"type": "string"}]},
                "message": {"type": "string"},
                "form": {"type": "string"},
                "asset": {"type": ["string", "integer"]},
            },
        },
        "traits": {
            "type": "object",
            "properties": {
                "email": {"anyOf": [{"enum": ["a@b.io", "@", "x@", "A@B.IO "]}, TEXT]},
                "company_size": {"type": ["integer", "string", "number"]},
                "title": {"type": "string"},
                "company": {"type": ["object", "string"]},
                "address": {"type": ["object", "string"]},
                "do_not_contact": {"type": "boolean"},
            },
        },
        "context": {"type": "object"},
    },
}
BATCH: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "items": MESSAGE, "maxItems": 5},
        "context": {"type": "object"},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def widened(raw: dict[str, Any], write_key: str) -> dict[str, Any]:
    """The app's schema with request bodies and examples for the fuzzer."""
    doc = copy.deepcopy(raw)
    examples = {"lead_id": LEAD, "write_key": write_key}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in examples:
                    parameter["example"] = examples[parameter["name"]]
            if method != "post" or "requestBody" in operation:
                continue
            if path == "/v1/batch":
                operation["requestBody"] = _body(BATCH)
            elif path.startswith("/v1/"):
                operation["requestBody"] = _body(MESSAGE)
            else:
                operation["requestBody"] = _body({})
    return doc


class Keys:
    write = ""
    admin = ""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    db = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.db"
    # Webhooks on (a signature is checked, not refused with 503), no background rescoring.
    wanted = {
        "hubspot_client_secret": "fuzz",
        "calendly_signing_key": "fuzz",
        "rescore_every_seconds": 0,
    }
    known = {f.name for f in dataclasses.fields(Settings)}
    extra: dict[str, Any] = {k: v for k, v in wanted.items() if k in known}
    application = create_app(Settings(database_url=f"sqlite:///{db}", **extra))
    engine = application.state.service.engine
    now = datetime.now(UTC)
    seed = [
        {"type": "identify", "userId": LEAD, "traits": {"email": "fuzz@acme.io"}},
        {"type": "page", "userId": LEAD, "properties": {"path": "/pricing"}},
    ]
    with engine.begin() as conn:
        repo = Repository(conn)
        Keys.write = repo.create_api_key("write", now)[1]
        Keys.admin = repo.create_api_key("admin", now)[1]
        ingest(repo, application.state.service.model, seed, now)
    yield application
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(app: FastAPI) -> OpenApiSchema:
    schema = schemathesis.openapi.from_dict(widened(app.openapi(), Keys.write))
    schema.app = app
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def credentials(path: str) -> dict[str, str]:
    """The key each part of the API takes: the write key as the Basic user name (as
    Segment's clients send it) or as Bearer, the admin key as Bearer; webhooks are
    signed instead (and the fuzzer's signatures are refused with 401)."""
    if path.startswith("/api/webhooks/"):
        return {}
    if path.startswith("/v1/"):
        basic = base64.b64encode(f"{Keys.write}:".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    key = Keys.write if path.startswith(("/api/events", "/api/forms")) else Keys.admin
    return {"Authorization": f"Bearer {key}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_answers_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers=credentials(case.path))
    case.validate_response(response, checks=[not_a_server_error])
    if not case.path.startswith("/api/webhooks/"):
        assert response.status_code not in (401, 403), f"{case.path}: the key was refused"
