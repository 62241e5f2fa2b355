"""Handovers on a real database: once per qualification cycle, routed, due in working
time, notified through the outbox in the same transaction; outcomes and follow-up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from leadgate.services.handover import HandoverError, follow_up, record_outcome
from leadgate.services.ingest import ingest, redecide_many
from leadgate.services.leads import erase_lead, override_stage
from leadgate.services.outbox import add_subscription
from leadgate.services.team import load_demo_team
from leadgate.store import create_engine, transact, upgrade
from leadgate.store import tables as t
from leadgate.store.handover_store import Handover, HandoverStore
from leadgate.store.repository import Repository
from test_ingest import MODEL, identify, page, track
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)
from test_web import Api, api  # noqa: F401  (fixture: the app in process with keys)

# A Tuesday, 10:00 in London: inside working hours.
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def when(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:  # noqa: F811
    upgrade(db_url)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        load_demo_team(conn, NOW)
        add_subscription(
            conn, "http://crm.example/hooks", "s3cret", ["lead.sql", "handover.assigned"], NOW
        )
    yield engine
    engine.dispose()


def run(db: Engine, messages: list[Any], now: datetime = NOW) -> None:
    transact(db, lambda conn: ingest(Repository(conn), MODEL, messages, now))


def ready(user: str, country: str = "GB", email: str | None = None) -> list[dict[str, Any]]:
    """A warm lead (fit 20, pricing pages, guides) who then asks for a quote: SQL."""
    mail = email or f"{user}@acme-{user}.example"
    return [
        identify(
            f"{user}-id", user, title="Director", company_size=50, email=mail, country=country
        ),
        page(f"{user}-p1", "/pricing", 5, user),
        page(f"{user}-p2", "/pricing", 4, user),
        track(f"{user}-g1", "Guide Downloaded", 3, user, asset="seo-guide"),
        track(f"{user}-q", "Quote Requested", 1, user, message="a quote for a new site please"),
    ]


def handovers(db: Engine, lead_id: str | None = None) -> list[Handover]:
    with db.connect() as conn:
        rows = HandoverStore(conn).listing(limit=1000)
    return [h for h in rows if lead_id is None or h.lead_id == lead_id]


def outbox(db: Engine, event: str | None = None) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(select(t.outbox).order_by(t.outbox.c.id)).mappings().all()
    return [dict(r) for r in rows if event is None or r["event"] == event]


def stage(db: Engine, lead_id: str) -> str:
    with db.connect() as conn:
        state = Repository(conn).lead_state(lead_id)
    assert state is not None
    return state[0]


def test_a_sales_ready_lead_is_handed_over_once_routed_and_notified(db: Engine) -> None:
    run(db, ready("u1", country="DE"))
    [handover] = handovers(db, "u1")
    assert handover.status == "open" and handover.cycle == 1 and handover.stage == "sql"
    assert handover.rep_id == "anna" and handover.team == "europe"  # German: Berlin's rep
    assert "anna" in handover.reason
    # 4 working hours from Tuesday 10:00 UTC (11:00 in Berlin; lunch 12:30-13:30).
    assert handover.due_at == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert handover.breakdown["total"] >= 40 and handover.model_version == MODEL.version
    assert stage(db, "u1") == "handed_over"
    [email] = outbox(db, "email")
    assert email["target"] == "anna.weber@webstudio.example"
    text = email["payload"]["text"]
    assert "quote_requested" in text and "/api/leads/u1" in text and "Why now" in text
    assigned = outbox(db, "handover.assigned")
    assert len(assigned) == 1 and assigned[0]["target"] == "http://crm.example/hooks"
    assert assigned[0]["payload"]["data"]["rep"]["id"] == "anna"
    assert len(outbox(db, "lead.sql")) == 1
    # Later points do not hand it over again; neither does a replay.
    run(db, [page("u1-p9", "/pricing", 0.1, "u1"), *ready("u1", country="DE")])
    assert len(handovers(db, "u1")) == 1 and len(outbox(db, "email")) == 1


def test_two_leads_crossing_one_after_the_other_give_two_handovers(db: Engine) -> None:
    run(db, ready("a1"))
    run(db, ready("a2"))
    assert [h.lead_id for h in handovers(db)] == ["a1", "a2"]
    assert len(outbox(db, "handover.assigned")) == 2 and len(outbox(db, "email")) == 2
    # Same team (UK), weighted round robin: the second goes to the other rep.
    assert {h.rep_id for h in handovers(db)} == {"olivia", "james"}


def test_a_double_submitted_form_gives_one_handover_and_one_notification(db: Engine) -> None:
    run(db, ready("d1")[:4])
    form = track("d1-f", "Quote Requested", 0.01, "d1", message="a quote please")
    twice = {**form, "messageId": "d1-f2", "timestamp": when(0.01 - 1 / 86400)}
    run(db, [form])
    run(db, [twice])
    assert len(handovers(db, "d1")) == 1 and len(outbox(db, "email")) == 1


def test_a_lead_imported_above_the_threshold_is_handed_over_once(db: Engine) -> None:
    run(db, ready("i1"))  # its whole history in one go, as an import does
    run(db, [track("i1-q2", "Quote Requested", 0.5, "i1", message="still keen")])
    assert len(handovers(db, "i1")) == 1


def test_the_account_owner_gets_a_second_lead_from_the_same_company(db: Engine) -> None:
    run(db, ready("c1", country="US", email="amy@bigco.example"))
    run(db, ready("c2", country="GB", email="bob@bigco.example"))
    first, second = handovers(db)
    assert first.rep_id == "mike" and second.rep_id == "mike"
    assert "account" in second.reason


def test_a_rejection_recycles_the_lead_and_it_can_qualify_again(db: Engine) -> None:
    run(db, ready("r1"))
    [handover] = handovers(db, "r1")
    with pytest.raises(HandoverError, match="needs a reason"):
        transact(
            db, lambda c: record_outcome(c, handover.id, "rejected", None, None, "olivia", NOW)
        )
    transact(
        db,
        lambda c: record_outcome(
            c, handover.id, "rejected", "not_ready", "budget in Q3", "olivia", NOW
        ),
    )
    assert stage(db, "r1") == "nurturing"
    with db.connect() as conn:
        store = HandoverStore(conn)
        [kept] = store.dispositions(handover.id)
        history = Repository(conn).stage_history("r1")
    assert kept.reason == "not_ready" and kept.model_version == MODEL.version
    assert kept.breakdown == handover.breakdown  # what was known at handover, for learning
    assert history[-1].cause == "rejected by olivia: not_ready (budget in Q3)"
    with pytest.raises(HandoverError, match="closed"):
        transact(db, lambda c: record_outcome(c, handover.id, "won", None, None, "olivia", NOW))
    # The quote that was rejected does not count twice: more visits, a rescore, and the
    # lead is an MQL again at most, with no new handover.
    soon = NOW + timedelta(days=2)
    run(db, [page("r1-p3", "/pricing", 0, "r1"), page("r1-p4", "/pricing", 0, "r1")], soon)
    transact(db, lambda c: redecide_many(Repository(c), MODEL, ["r1"], soon))
    assert stage(db, "r1") == "mql" and len(handovers(db, "r1")) == 1
    # A new intent action later: the model moves it on, and a second cycle opens.
    later = NOW + timedelta(days=20)
    run(db, [track("r1-q2", "Quote Requested", 0, "r1", message="ready now")], later)
    cycles = handovers(db, "r1")
    assert [h.cycle for h in cycles] == [1, 2] and cycles[1].status == "open"
    assert stage(db, "r1") == "handed_over"


def test_outcomes_move_the_lead_through_sales_stages(db: Engine) -> None:
    run(db, ready("w1"))
    [handover] = handovers(db, "w1")
    for outcome, expected in [
        ("contacted", "handed_over"),
        ("accepted", "accepted"),
        ("opportunity", "opportunity"),
        ("won", "won"),
    ]:
        transact(
            db, lambda c, o=outcome: record_outcome(c, handover.id, o, None, None, "olivia", NOW)
        )
        assert stage(db, "w1") == expected
    [closed] = handovers(db, "w1")
    assert closed.status == "won" and closed.contacted_at == NOW and closed.closed_at == NOW
    with db.connect() as conn:
        assert [d.outcome for d in HandoverStore(conn).dispositions(handover.id)] == [
            "contacted",
            "accepted",
            "opportunity",
            "won",
        ]


def test_follow_up_reminds_then_reassigns_an_overdue_handover(db: Engine) -> None:
    run(db, ready("f1"))
    [handover] = handovers(db, "f1")
    assert handover.remind_at is not None and handover.due_at is not None
    before = transact(db, lambda c: follow_up(c, MODEL, handover.remind_at - timedelta(minutes=1)))
    assert before.reminded == [] and before.escalated == []
    reminded = transact(db, lambda c: follow_up(c, MODEL, handover.remind_at))
    assert reminded.reminded == [handover.id]
    again = transact(db, lambda c: follow_up(c, MODEL, handover.remind_at + timedelta(minutes=5)))
    assert again.reminded == []  # one reminder
    late = handover.due_at + timedelta(minutes=1)
    escalated = transact(db, lambda c: follow_up(c, MODEL, late))
    assert escalated.escalated == [handover.id]
    [moved] = handovers(db, "f1")
    assert moved.rep_id not in (None, handover.rep_id) and moved.due_at > late
    assert "missed the first contact" in moved.reason
    overdue = outbox(db, "handover.overdue")
    assert len(overdue) == 0  # nobody subscribed to it; the new rep is emailed instead
    emails = [e["target"] for e in outbox(db, "email")]
    rep_emails = {
        "olivia": "olivia.clarke@webstudio.example",
        "james": "james.murphy@webstudio.example",
    }
    assert emails[-1] == rep_emails[moved.rep_id or ""]
    # Contacted in time by the new rep: nothing more happens.
    transact(db, lambda c: record_outcome(c, moved.id, "contacted", None, None, "x", late))
    final = transact(db, lambda c: follow_up(c, MODEL, moved.due_at + timedelta(days=1)))
    assert final.reminded == [] and final.escalated == []


def test_the_handover_api_answers_bad_input_by_name(api: Api) -> None:  # noqa: F811
    auth = {"Authorization": f"Bearer {api.admin_key}"}
    post, get = api.client.post, api.client.get
    huge = post("/api/handovers/9223372036854775808/outcome", json={"outcome": "won"}, headers=auth)
    assert huge.status_code == 422 and huge.json()["parameter"] == "handover_id"
    missing = post("/api/handovers/1/outcome", json={}, headers=auth)
    assert missing.status_code == 422 and missing.json()["parameter"] == "outcome"
    unknown = get("/api/handovers", params={"status": "pending"}, headers=auth)
    assert unknown.status_code == 422 and "pending" in unknown.json()["error"]
    assert get("/api/handovers/5", headers=auth).status_code == 404
    assert get("/api/handovers").status_code == 401


def test_a_person_who_marks_a_lead_sales_ready_hands_it_over(db: Engine) -> None:
    run(db, [page("o1", "/pricing", 1, "o1")])
    assert stage(db, "o1") == "nurturing"
    transact(
        db,
        lambda c: override_stage(
            Repository(c), MODEL, "o1", "sql", "asked for a call by phone", "grace", NOW
        ),
    )
    [handover] = handovers(db, "o1")
    assert handover.rep_id is not None and stage(db, "o1") == "handed_over"
    assert len(outbox(db, "handover.assigned")) == 1


def test_erasing_a_handed_over_lead_leaves_nothing_in_handovers_or_the_outbox(db: Engine) -> None:
    run(db, ready("e1", email="eve.secret@acme-e1.example"))
    run(db, ready("e2"))
    [first] = handovers(db, "e1")
    transact(db, lambda c: record_outcome(c, first.id, "contacted", None, None, "x", NOW))
    assert any("eve.secret" in str(row["payload"]) for row in outbox(db))
    transact(db, lambda c: erase_lead(Repository(c), "e1", NOW))
    assert handovers(db, "e1") == [] and len(handovers(db, "e2")) == 1
    assert not any("eve.secret" in str(row) or row["lead_id"] == "e1" for row in outbox(db))
    with db.connect() as conn:
        assert conn.execute(select(t.dispositions)).all() == []
