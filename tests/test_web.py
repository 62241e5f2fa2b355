"""The HTTP API in process (httpx's ASGI transport), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from leadgate.store.repository import Repository
from leadgate.web.app import basic_user, create_app
from leadgate.web.settings import Settings
from test_store import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HTTP_API_07 = SHARED_DATA / "formats" / "segment_spec" / "http_api_07.json"


class Client:
    """httpx's async client on the app in process, called from sync tests."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.post, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.get, url, **kwargs))


class Api:
    """A client with a write key and an admin key."""

    def __init__(self, client: Client, write_key: str, admin_key: str) -> None:
        self.client = client
        self.write_key = write_key
        self.admin_key = admin_key

    def send(self, call: str, body: Any, key: str | None = None) -> httpx.Response:
        auth = (key if key is not None else self.write_key, "")
        return self.client.post(f"/v1/{call}", json=body, auth=auth)

    def lead(self, lead_id: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return self.client.get(f"/api/leads/{lead_id}", headers=headers)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:  # noqa: F811
    app = create_app(Settings(database_url=db_url))
    with app.state.engine.begin() as conn:
        now = datetime.now(UTC)
        _, write_key = Repository(conn).create_api_key("write", now)
        _, admin_key = Repository(conn).create_api_key("admin", now)
    transport = httpx.ASGITransport(app=app)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url="http://leadgate.test")
        try:
            yield Api(Client(portal, client), write_key, admin_key)
        finally:
            portal.call(client.aclose)
            app.state.engine.dispose()


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def test_segment_calls_move_a_lead_to_sql_visible_in_the_lead_api(api: Api) -> None:
    traits = {"email": " Dana@Acme.example", "title": "Head of Marketing", "company_size": 40}
    steps = [
        ("page", {"userId": "u1", "messageId": "p0", "timestamp": ago(6), "name": "Services",
                  "properties": {"path": "/services/seo"}}),
        ("identify", {"userId": "u1", "messageId": "i1", "timestamp": ago(5), "traits": traits}),
        ("page", {"userId": "u1", "messageId": "p1", "timestamp": ago(5),
                  "properties": {"path": "/pricing"}}),
        ("page", {"userId": "u1", "messageId": "p2", "timestamp": ago(4),
                  "properties": {"path": "/pricing"}}),
        ("track", {"userId": "u1", "messageId": "g1", "event": "Guide Downloaded",
                   "timestamp": ago(3), "properties": {"asset": "a"}}),
        ("track", {"userId": "u1", "messageId": "g2", "event": "Guide Downloaded",
                   "timestamp": ago(2), "properties": {"asset": "b"}}),
        ("track", {"userId": "u1", "messageId": "q1", "event": "Quote Requested",
                   "timestamp": ago(1), "properties": {"message": "a quote please"}}),
    ]  # fmt: skip
    seen = []
    for call, body in steps:
        response = api.send(call, body)
        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
        seen.append(api.lead("u1").json()["stage"])
    assert seen == ["nurturing", "nurturing", "nurturing", "mql", "mql", "mql", "handed_over"]
    view = api.lead("u1").json()
    assert view["email"] == "dana@acme.example"
    assert view["attributes"]["title"] == "Head of Marketing"
    assert [(c["from"], c["to"]) for c in view["stage_history"]] == [
        ("new", "nurturing"),
        ("nurturing", "mql"),
        ("mql", "sql"),
        ("sql", "handed_over"),
    ]
    assert view["breakdown"]["decision"]["stage"] == "sql"
    assert "lead u1: SQL" in view["breakdown"]["explanation"]
    assert {r["rule_id"] for r in view["breakdown"]["rules"]} >= {"pricing-page", "quote-request"}
    assert view["recent_events"][0]["id"] == "q1"
    assert api.lead("nobody").status_code == 404


def test_batch_reports_the_malformed_timestamps_by_index_and_accepts_the_rest(api: Api) -> None:
    if not HTTP_API_07.exists():
        pytest.skip(f"{HTTP_API_07} is absent")
    doc = json.loads(HTTP_API_07.read_text(encoding="utf-8"))
    response = api.send("batch", doc)
    assert response.status_code == 200
    body = response.json()
    assert [e["index"] for e in body["errors"]] == [2, 3]  # "2015-2-02T00:30:08.276Z"
    assert all("timestamp" in e["reason"] and "2015-2-02" in e["reason"] for e in body["errors"])
    assert (body["accepted"], body["stored"]) == (2, 1)
    lead = api.lead("019mr8mf4r").json()
    assert lead["email"] == "jake@yahoo.com" and len(lead["recent_events"]) == 1
    assert api.lead("971mj8mk7p").status_code == 404


def test_replaying_a_batch_adds_nothing(api: Api) -> None:
    batch = {
        "batch": [
            {"type": "page", "userId": "u2", "messageId": f"m{i}", "timestamp": ago(i),
             "properties": {"path": "/pricing"}}
            for i in range(3)
        ]
    }  # fmt: skip
    first = api.send("batch", batch).json()
    again = api.send("batch", batch).json()
    assert (first["stored"], first["duplicates"]) == (3, 0)
    assert (again["stored"], again["duplicates"], again["errors"]) == (0, 3, [])
    view = api.lead("u2").json()
    assert len(view["recent_events"]) == 3 and len(view["stage_history"]) == 1


def test_size_limits_are_answered_with_413_naming_the_limit(api: Api) -> None:
    big = "x" * (33 * 1024)
    one = {"userId": "u3", "event": "Big", "timestamp": ago(1), "properties": {"text": big}}
    response = api.send("track", one)
    assert response.status_code == 413
    assert "32 KB" in response.json()["error"] and response.json()["limit_bytes"] == 32 * 1024
    small = {"type": "track", "userId": "u3", "event": "Ok", "timestamp": ago(1)}
    many = {"batch": [{**small, "properties": {"text": "y" * 30_000}}] * 20}
    response = api.send("batch", many)
    assert response.status_code == 413 and "500 KB" in response.json()["error"]
    # gzip is decoded before the limit is checked
    compressed = gzip.compress(orjson.dumps(many))
    response = api.client.post(
        "/v1/batch",
        content=compressed,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=(api.write_key, ""),
    )
    assert response.status_code == 413
    # In a batch under the limit, one oversized message is reported, the rest accepted.
    mixed = {"batch": [{**small, "messageId": "ok"}, one | {"type": "track"}]}
    body = api.send("batch", mixed).json()
    assert body["accepted"] == 1 and body["errors"][0]["index"] == 1
    assert "32 KB" in body["errors"][0]["reason"]


def test_keys_missing_wrong_or_of_the_wrong_kind_get_no_data(api: Api) -> None:
    message = {"userId": "u4", "event": "X", "timestamp": ago(1)}
    assert api.client.post("/v1/track", json=message).status_code == 401
    assert api.send("track", message, key="lg_wrong").status_code == 401
    assert api.send("track", message, key=api.admin_key).status_code == 403
    assert api.client.get("/api/leads/u4").status_code == 401
    wrong = {"Authorization": "Bearer lg_wrong"}
    assert api.client.get("/api/leads/u4", headers=wrong).status_code == 401
    write = {"Authorization": f"Bearer {api.write_key}"}
    assert api.client.get("/api/leads/u4", headers=write).status_code == 403
    assert api.lead("u4").status_code == 404  # nothing was stored by the refused calls


def test_an_invalid_single_message_is_a_400_with_its_reason(api: Api) -> None:
    response = api.send("track", {"userId": "u5", "event": "X", "timestamp": "2015-2-02"})
    assert response.status_code == 400 and "timestamp" in response.json()["error"]
    response = api.client.post("/v1/track", content=b"{not json", auth=(api.write_key, ""))
    assert response.status_code == 400
    assert api.send("batch", {"nobatch": []}).status_code == 400


@pytest.mark.parametrize(
    ("header", "user"),
    [
        (None, None),
        ("Basic " + base64.b64encode(b"key:").decode(), "key"),
        ("Basic " + base64.b64encode(b"key").decode(), "key"),
        ("Basic !!!", None),
        ("Bearer key", None),
    ],
)
def test_the_write_key_is_the_basic_auth_user_name(header: str | None, user: str | None) -> None:
    assert basic_user(header) == user
