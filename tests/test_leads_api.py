"""The lead API for admins, in process (httpx's ASGI transport), on SQLite and
PostgreSQL: listing with filters and cursors, a person's stage override, and the
privacy routes (export and erasure)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from sqlalchemy import inspect, make_url, text

from leadgate.services.ingest import ingest
from leadgate.store.repository import Repository
from leadgate.web.app import create_app
from leadgate.web.service import Service
from leadgate.web.settings import Settings
from test_store import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)

STAGES = ("new", "nurturing", "mql", "sql", "handed_over", "disqualified")


class Admin:
    """httpx's async client on the app in process, called from sync tests, with an
    admin key (sent unless told otherwise) and a write key."""

    def __init__(
        self, app: FastAPI, portal: BlockingPortal, client: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        self.app = app
        self.portal = portal
        self.client = client
        self.admin_key = keys["admin"]
        self.write_key = keys["write"]
        self.admin_key_id = keys["admin_id"]

    @property
    def service(self) -> Service:
        service: Service = self.app.state.service
        return service

    def call(self, method: str, url: str, key: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.admin_key if key == 'admin' else key}"
        request = partial(self.client.request, method, url, headers=headers, **kw)
        return self.portal.call(request)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.call("GET", url, **kw)

    def send(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Ingest through the Segment batch endpoint, as a client would."""
        response = self.portal.call(
            partial(
                self.client.post, "/v1/batch", json={"batch": messages}, auth=(self.write_key, "")
            )
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["errors"] == [], body
        return body

    def ingest_at(self, messages: list[dict[str, Any]], now: datetime) -> None:
        """Ingest as if it were ``now``: the model's decisions are taken as of then."""
        service = self.service
        service.write(lambda repo: ingest(repo, service.model, messages, now))

    def override(self, lead_id: str, **body: Any) -> httpx.Response:
        return self.call("POST", f"/api/leads/{lead_id}/stage", json=body)

    def all_pages(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Every item of a listing, following the cursor (and checking each page's size)."""
        items: list[dict[str, Any]] = []
        url = f"/api/leads?{query}&limit={limit}" if query else f"/api/leads?limit={limit}"
        cursor: str | None = None
        for _ in range(1000):
            response = self.get(url if cursor is None else f"{url}&cursor={cursor}")
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= limit
            items += page["items"]
            cursor = page["next"]
            if cursor is None:
                return items
            assert len(page["items"]) == limit  # only the last page may be short
        raise AssertionError("the cursor never ended")


@pytest.fixture
def admin(db_url: str) -> Iterator[Admin]:  # noqa: F811
    app = create_app(Settings(database_url=db_url))
    with app.state.engine.begin() as conn:
        now = datetime.now(UTC)
        _, write_key = Repository(conn).create_api_key("write", now)
        record, admin_key = Repository(conn).create_api_key("admin", now)
    keys = {"write": write_key, "admin": admin_key, "admin_id": str(record.id)}
    transport = httpx.ASGITransport(app=app)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url="http://leadgate.test")
        try:
            yield Admin(app, portal, client, keys)
        finally:
            portal.call(client.aclose)
            app.state.engine.dispose()


NOW = datetime.now(UTC).replace(microsecond=0)


def at(days_ago: float, base: datetime = NOW) -> str:
    return (base - timedelta(days=days_ago)).isoformat()


def page(mid: str, user: str, path: str, days_ago: float, base: datetime = NOW) -> dict[str, Any]:
    return {
        "type": "page",
        "messageId": mid,
        "userId": user,
        "timestamp": at(days_ago, base),
        "properties": {"path": path},
    }


def track(
    mid: str, user: str, event: str, days_ago: float, base: datetime = NOW, **props: Any
) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": mid,
        "userId": user,
        "event": event,
        "timestamp": at(days_ago, base),
        "properties": props,
    }


def identify(user: str, days_ago: float, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "timestamp": at(days_ago), "traits": traits}


def population(n: int) -> list[dict[str, Any]]:
    """``n`` leads in several stages with many equal scores (so ties need the id order).

    Lead i views pricing i % 3 times and downloads i % 4 guides, all at the same
    times, so leads with the same pattern score exactly alike; every seventh asks
    for a quote, every eleventh asks about jobs.
    """
    messages: list[dict[str, Any]] = []
    for i in range(n):
        user = f"lead-{i:02d}"
        messages.append(identify(user, 9, email=f"  Person{i:02d}@Example.COM ", name=f"P {i}"))
        messages += [page(f"{user}-p{k}", user, "/pricing", 5 + k) for k in range(i % 3)]
        messages += [
            track(f"{user}-g{k}", user, "Guide Downloaded", 4, asset=f"guide-{k}")
            for k in range(i % 4)
        ]
        if i % 7 == 3:
            messages.append(track(f"{user}-q", user, "Quote Requested", 1, message="a quote?"))
        if i % 11 == 5:
            messages.append(
                track(f"{user}-f", user, "Form Submitted", 2, form="contact",
                      message="are you hiring? my CV is attached")
            )  # fmt: skip
    return messages


def test_pages_give_every_lead_once_in_score_then_id_order(admin: Admin) -> None:
    admin.send(population(23))
    everyone = admin.all_pages("", limit=500)
    assert len(everyone) == 23
    order = [(-lead["score"], lead["id"]) for lead in everyone]
    assert order == sorted(order)
    scores = [lead["score"] for lead in everyone]
    assert len(set(scores)) < len(scores) - 5  # many ties: the id breaks them
    for limit in (1, 4, 5, 22, 23):
        paged = admin.all_pages("", limit=limit)
        assert [lead["id"] for lead in paged] == [lead["id"] for lead in everyone], limit
    lead = everyone[0]
    assert set(lead) >= {"id", "email", "stage", "score", "score_as_of", "updated_at"}
    assert lead["score_as_of"] == lead["updated_at"]
    assert datetime.fromisoformat(lead["score_as_of"]) <= datetime.now(UTC)
    first = admin.get("/api/leads?limit=3")
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["next"] is not None


def test_filters_by_stage_score_email_and_text_across_pages(admin: Admin) -> None:
    admin.send(population(23))
    everyone = admin.all_pages("", limit=500)
    by_stage = {s: {x["id"] for x in everyone if x["stage"] == s} for s in STAGES}
    assert all(by_stage[s] for s in ("nurturing", "mql", "handed_over", "disqualified")), by_stage

    repeated = admin.all_pages("stage=mql&stage=handed_over", limit=2)
    comma = admin.all_pages("stage=MQL,%20handed_over", limit=3)
    assert [x["id"] for x in repeated] == [x["id"] for x in comma]
    assert {x["id"] for x in repeated} == by_stage["mql"] | by_stage["handed_over"]
    assert {x["stage"] for x in repeated} == {"mql", "handed_over"}

    threshold = sorted(x["score"] for x in everyone)[len(everyone) // 2]
    high = admin.all_pages(f"min_score={threshold}", limit=4)
    assert {x["id"] for x in high} == {x["id"] for x in everyone if x["score"] >= threshold}
    assert 0 < len(high) < len(everyone)
    both = admin.all_pages(f"stage=nurturing&min_score={threshold}", limit=1)
    expected = {x["id"] for x in everyone if x["score"] >= threshold and x["stage"] == "nurturing"}
    assert {x["id"] for x in both} == expected

    found = admin.get("/api/leads", params={"email": "  PERSON07@example.com "}).json()
    assert [(x["id"], x["email"], x["name"]) for x in found["items"]] == [
        ("lead-07", "person07@example.com", "P 7")
    ]
    assert found["next"] is None
    assert admin.get("/api/leads", params={"email": "person07@example.co"}).json()["items"] == []
    assert admin.get("/api/leads?email=person7@example.com").json()["items"] == []

    text_hits = admin.all_pages("q=PERSON1", limit=2)  # in the email, any case
    assert sorted(x["id"] for x in text_hits) == [f"lead-{i}" for i in range(10, 20)]
    assert [x["id"] for x in admin.all_pages("q=ad-05", limit=2)] == ["lead-05"]
    assert admin.all_pages("q=%25", limit=5) == []  # LIKE wildcards are literal


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=5&limit=6", "limit"),
        ("stage=mql,qualified", "stage"),
        ("stage=", None),  # an empty stage list means every stage: allowed
        ("min_score=high", "min_score"),
        ("min_score=nan", "min_score"),
        ("email=nobody", "email"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b'{"a": 1}').decode(), "cursor"),
        ("q=", "q"),
        ("stages=mql", "stages"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(
    admin: Admin, query: str, parameter: str | None
) -> None:
    admin.send(population(3))
    response = admin.get(f"/api/leads?{query}")
    if parameter is None:
        assert response.status_code == 200 and len(response.json()["items"]) == 3
        return
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["parameter"] == parameter
    assert body["error"].startswith(f"{parameter}:")
    assert "items" not in body


def test_keys_missing_or_of_the_wrong_kind_get_no_data_and_change_nothing(admin: Admin) -> None:
    admin.send(population(3))
    calls = [
        ("GET", "/api/leads", {}),
        ("GET", "/api/leads?stage=bogus", {}),  # the key is checked before the parameters
        ("GET", "/api/leads/lead-01", {}),
        ("GET", "/api/leads/lead-01/export", {}),
        ("POST", "/api/leads/lead-01/stage", {"json": {"stage": "sql", "reason": "x"}}),
        ("DELETE", "/api/leads/lead-01", {}),
    ]
    for method, url, kw in calls:
        for key, status in ((None, 401), ("lg_wrong", 401), (admin.write_key, 403)):
            response = admin.call(method, url, key=key, **kw)
            assert response.status_code == status, (method, url, key)
            assert set(response.json()) == {"error"}
            assert "person01" not in response.text.lower()
    lead = admin.get("/api/leads/lead-01").json()
    assert lead["email"] == "person01@example.com"
    assert [c["actor"] for c in lead["stage_history"]] == ["model"]  # no override went in


def test_a_person_moves_a_lead_back_and_the_model_moves_it_on_only_when_further_along(
    admin: Admin,
) -> None:
    past = NOW - timedelta(days=120)
    admin.ingest_at(
        [
            page("o-p1", "ola", "/pricing", 3, past),
            page("o-p2", "ola", "/pricing", 2, past),
            *(track(f"o-g{k}", "ola", "Guide Downloaded", 1, past, asset=f"g{k}") for k in "abc"),
        ],
        past,
    )
    before = admin.get("/api/leads/ola").json()
    assert before["stage"] == "mql"

    response = admin.override("ola", stage="nurturing", reason="  asked us to wait until Q3 ")
    assert response.status_code == 200, response.text
    change = response.json()
    assert (change["from"], change["to"], change["cause"]) == (
        "mql",
        "nurturing",
        "asked us to wait until Q3",
    )
    assert change["actor"] == f"admin key #{admin.admin_key_id}"
    assert change["model_version"] is None and change["rule_ids"] == []
    listed = admin.get("/api/leads?q=ola").json()["items"][0]
    assert listed["stage"] == "nurturing"
    # The override re-scored the lead as of now: its score has decayed since.
    assert listed["score"] < 40 and listed["score_as_of"] == change["at"]

    again = admin.override("ola", stage="nurturing", reason="once more")
    assert again.status_code == 409 and again.json()["stage"] == "nurturing"

    # Decayed to nurturing: the model's decision is not further along, the lead stays.
    admin.send([page("o-p3", "ola", "/about", 0.5)])
    view = admin.get("/api/leads/ola").json()
    assert view["stage"] == "nurturing"
    assert view["breakdown"]["decision"]["stage"] == "nurturing"
    assert len(view["stage_history"]) == len(before["stage_history"]) + 1

    # A hand-raise makes the decision sql: further along, so the model moves it on.
    admin.send(
        [
            # after the override: an intent from before it would not count again
            track("o-q", "ola", "Quote Requested", 0, datetime.now(UTC), message="a new site"),
            track("o-m", "ola", "Meeting Booked", 0, datetime.now(UTC)),
        ]
    )
    history = admin.get("/api/leads/ola").json()["stage_history"]
    assert [(c["from"], c["to"], c["actor"]) for c in history[-3:]] == [
        ("mql", "nurturing", f"admin key #{admin.admin_key_id}"),
        ("nurturing", "sql", "model"),
        ("sql", "handed_over", "handover"),  # no team loaded: it waits in the queue
    ]
    assert history[-2]["model_version"] is not None


def test_a_person_moves_a_lead_forward_and_the_model_never_moves_it_back(admin: Admin) -> None:
    admin.send([page("n-p1", "nik", "/services/seo", 1)])
    assert admin.get("/api/leads/nik").json()["stage"] == "nurturing"
    moved = admin.override("nik", stage="SQL", reason="called us", actor="maria@agency.example")
    assert moved.status_code == 200 and moved.json()["actor"] == "maria@agency.example"
    admin.send([page("n-p2", "nik", "/pricing", 0.5)])  # the model still says nurturing
    view = admin.get("/api/leads/nik").json()
    # marked sales ready by a person: handed over at once (no team: to the queue)
    assert view["stage"] == "handed_over" and view["breakdown"]["decision"]["stage"] == "nurturing"
    assert [c["cause"] for c in view["stage_history"]][-2] == "called us"

    back = admin.override("nik", stage="disqualified", reason="a competitor after all")
    assert back.status_code == 200
    admin.send([track("n-q", "nik", "Quote Requested", 0.1, message="price?")])
    assert admin.get("/api/leads/nik").json()["stage"] == "disqualified"  # the model won't undo
    assert admin.override("nik", stage="new", reason="start over").json()["to"] == "new"


@pytest.mark.parametrize(
    ("body", "status", "parameter"),
    [
        ({"stage": "sql"}, 422, "reason"),
        ({"stage": "sql", "reason": "   "}, 422, "reason"),
        ({"stage": "sql", "reason": "x" * 2001}, 422, "reason"),
        ({"stage": "closed_won", "reason": "closed"}, 422, "stage"),
        ({"reason": "no stage"}, 422, "stage"),
        ({"stage": 3, "reason": "x"}, 422, "stage"),
        ({"stage": "sql", "reason": "x", "actor": " "}, 422, "actor"),
        ({"stage": "sql", "reason": "x", "actor": "a" * 201}, 422, "actor"),
        ({"stage": "sql", "reason": "x", "by": "me"}, 422, "by"),
        (["sql"], 400, None),
    ],
)
def test_bad_overrides_are_refused_and_record_nothing(
    admin: Admin, body: Any, status: int, parameter: str | None
) -> None:
    admin.send([page("b-p1", "bea", "/pricing", 1)])
    response = admin.call("POST", "/api/leads/bea/stage", json=body)
    assert response.status_code == status, response.text
    assert response.json().get("parameter") == parameter
    assert len(admin.get("/api/leads/bea").json()["stage_history"]) == 1


def test_override_of_an_unknown_lead_is_404(admin: Admin) -> None:
    response = admin.override("ghost", stage="sql", reason="called")
    assert response.status_code == 404 and "ghost" in response.json()["error"]
    raw = admin.call("POST", "/api/leads/ghost/stage", content=b"{not json")
    assert raw.status_code == 400


PRIVATE = {
    "email": "Zoe.Quill@Quillworks.example",
    "name": "Zoë Quill",
    "phone": "+44 7700 900123",
    "title": "Head of Marketing",
}


def private_history() -> list[dict[str, Any]]:
    """A lead who said a lot: identify (twice, so her row was rewritten), visits,
    downloads and a quote request that repeats her name and phone number."""
    user = "zoe-q-1"
    traits = {"email": PRIVATE["email"], "name": PRIVATE["name"], "title": "Designer"}
    return [
        {"type": "identify", "userId": user, "anonymousId": "anon-zq", "timestamp": at(6),
         "traits": traits},
        page("zq-p1", user, "/pricing", 5),
        page("zq-p2", user, "/services/web-design", 4),
        track("zq-g1", user, "Guide Downloaded", 3, asset="rebrand-guide"),
        {"type": "identify", "userId": user, "timestamp": at(2),
         "traits": {**traits, "title": PRIVATE["title"], "phone": PRIVATE["phone"]}},
        track("zq-q1", user, "Quote Requested", 1,
              message=f"Please call {PRIVATE['name']} on {PRIVATE['phone']}"),
    ]  # fmt: skip


def test_export_holds_everything_sent_about_the_lead(admin: Admin) -> None:
    admin.send(private_history())
    admin.override("zoe-q-1", stage="nurturing", reason="waiting for budget")
    response = admin.get("/api/leads/zoe-q-1/export")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert doc["lead_id"] == "zoe-q-1"
    attributes = doc["lead"]["attributes"]
    assert attributes["email"] == PRIVATE["email"].lower()
    assert (attributes["name"], attributes["phone"]) == (PRIVATE["name"], PRIVATE["phone"])
    listed = admin.get("/api/leads?q=zoe-q-1").json()["items"][0]
    assert (doc["lead"]["stage"], doc["lead"]["score"]) == ("nurturing", listed["score"])
    assert doc["lead"]["created_at"] == listed["created_at"]
    records = doc["records"]
    assert {(r["kind"], r["value"]) for r in records["identities"]} == {
        ("user_id", "zoe-q-1"),
        ("anonymous_id", "anon-zq"),
        ("email", PRIVATE["email"].lower()),
    }
    sent = [m for m in private_history() if "messageId" in m]
    by_id = {e["message_id"]: e for e in records["events"]}
    assert set(by_id) == {m["messageId"] for m in sent}
    assert by_id["zq-q1"]["properties"]["message"].endswith(PRIVATE["phone"])
    assert by_id["zq-g1"]["type"] == "asset_downloaded"
    assert {e["event_id"] for e in records["score_ledger"]} >= {"zq-p1", "zq-g1", "zq-q1"}
    assert [(c["to_stage"], c["actor"]) for c in records["stage_history"]][-1] == (
        "nurturing",
        f"admin key #{admin.admin_key_id}",
    )
    assert admin.get("/api/leads/nobody/export").status_code == 404


def all_rows_as_text(admin: Admin) -> str:
    """Every row of every table in the database (not only the ones leadgate knows)."""
    engine = admin.app.state.engine
    with engine.connect() as conn:
        names = inspect(conn).get_table_names()
        assert {"leads", "events", "erasures"} <= set(names)
        return "\n".join(
            repr(conn.execute(text(f'SELECT * FROM "{name}"')).all()) for name in names
        )


def test_erasure_leaves_no_personal_data_and_refuses_the_erased_messages(
    admin: Admin,
    db_url: str,  # noqa: F811
) -> None:
    admin.send(private_history())
    admin.send(population(2))  # someone else, who must be left alone
    moved = admin.override("zoe-q-1", stage="mql", reason=f"{PRIVATE['name']} has no budget")
    assert moved.status_code == 200 and moved.json()["from"] == "handed_over"
    before = all_rows_as_text(admin)
    # Her surname, not "Zoë": JSON may hold the name as "Zo\\u00eb".
    needles = [PRIVATE["email"].lower(), "Quill", PRIVATE["phone"], "zoe-q-1", "anon-zq"]
    assert [n for n in needles if n not in before] == []

    response = admin.call("DELETE", "/api/leads/zoe-q-1")
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["erased"] is True and len(receipt["erasure_id"]) == 32
    assert receipt["deleted"]["leads"] == 1 and receipt["deleted"]["events"] == 4
    assert receipt["deleted"]["identities"] == 3 and receipt["deleted"]["stage_history"] == 3
    assert receipt["deleted"]["handovers"] == 1  # handed over at sql, then moved back
    assert receipt["deleted"]["score_ledger"] > 0
    assert "zoe" not in response.text.lower()

    after = all_rows_as_text(admin)
    for needle in [*needles, "7700 900123", "7700900123"]:  # not "7700": times hold digits
        assert needle.lower() not in after.lower(), needle
    assert receipt["erasure_id"] in after  # the erasure record is kept
    assert "person00@example.com" in after  # the other leads are not touched

    assert admin.get("/api/leads/zoe-q-1").status_code == 404
    assert admin.get("/api/leads/zoe-q-1/export").status_code == 404
    assert admin.call("DELETE", "/api/leads/zoe-q-1").status_code == 404
    assert admin.get("/api/leads?q=quill").json()["items"] == []
    service = admin.service
    ids = ["zq-p1", "zq-p2", "zq-g1", "zq-q1", "lead-01-p0", "never-sent"]
    erased = service.read(lambda repo: repo.erased_message_ids(ids))
    assert erased == {"zq-p1", "zq-p2", "zq-g1", "zq-q1"}
    record = service.read(lambda repo: repo.get_erasure(receipt["erasure_id"]))
    assert record is not None and record[1] == receipt["deleted"] and record[2] == 4

    if make_url(db_url).get_backend_name() == "sqlite":
        # The file itself: deleted rows are zeroed (secure_delete) and the erasure
        # emptied the write-ahead log, so no byte of her is left without a VACUUM.
        path = Path(str(make_url(db_url).database))
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        raw = b"".join(p.read_bytes() for p in files)
        assert b"person00@example.com" in raw  # the check can see what is there
        for needle in needles:
            assert needle.encode("utf-8") not in raw, needle


def test_a_retry_of_erased_events_does_not_bring_the_lead_back(admin: Admin) -> None:
    history = private_history()
    admin.send(history)
    assert admin.call("DELETE", "/api/leads/zoe-q-1").status_code == 200
    events_only = [m for m in history if m["type"] != "identify"]
    admin.send(events_only)  # the client retries the events it sent before
    assert admin.get("/api/leads/zoe-q-1").status_code == 404
    assert admin.service.read(lambda repo: repo.count_events("zoe-q-1")) == 0


def test_a_lead_id_with_slashes_and_spaces_can_be_read_exported_and_erased(admin: Admin) -> None:
    odd = "ünï/cødé id 🚀"
    admin.send([page("odd-1", odd, "/pricing", 1)])
    quoted = httpx.URL("/api/leads/").join(odd.replace("/", "%2F")).raw_path.decode()
    for path in (f"/api/leads/{odd}", quoted):
        assert admin.get(path).json()["id"] == odd
    assert admin.get(f"/api/leads/{odd}/export").json()["lead_id"] == odd
    assert admin.call("DELETE", f"/api/leads/{odd}").status_code == 200
    assert admin.get(f"/api/leads/{odd}").status_code == 404
