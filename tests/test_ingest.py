"""The ingest use case on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Engine, select

from leadgate.adapters.model_source import read_model
from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import evaluate
from leadgate.domain.segment import convert_message
from leadgate.services.ingest import IngestResult, advances, earned_points, ingest
from leadgate.services.rescore import rescore
from leadgate.store import create_engine, upgrade
from leadgate.store.repository import Repository
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MODEL = read_model()


def when(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def track(
    mid: str,
    event: str,
    days_ago: float,
    user: str | None = None,
    anon: str | None = None,
    **p: Any,
) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "track", "messageId": mid, "event": event}
    msg["timestamp"] = when(days_ago)
    msg["properties"] = p
    if user is not None:
        msg["userId"] = user
    if anon is not None:
        msg["anonymousId"] = anon
    return msg


def page(
    mid: str, path: str, days_ago: float, user: str | None = None, anon: str | None = None
) -> dict[str, Any]:
    msg = track(mid, "", days_ago, user, anon, path=path)
    msg["type"] = "page"
    del msg["event"]
    return msg


def identify(
    mid: str, user: str | None = None, anon: str | None = None, **traits: Any
) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "identify", "messageId": mid, "traits": traits}
    msg["timestamp"] = when(1)
    if user is not None:
        msg["userId"] = user
    if anon is not None:
        msg["anonymousId"] = anon
    return msg


def run(
    db: Engine, messages: list[Any], model: ScoringModel = MODEL, now: datetime = NOW
) -> IngestResult:
    with db.begin() as conn:
        return ingest(Repository(conn), model, messages, now)


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:  # noqa: F811
    """A migrated, empty database (a SQLite file, or a PostgreSQL schema)."""
    upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def stages(db: Engine, lead_id: str) -> list[tuple[str | None, str]]:
    with db.connect() as conn:
        return [(c.from_stage, c.to_stage) for c in Repository(conn).stage_history(lead_id)]


def state(db: Engine, lead_id: str) -> tuple[str, float] | None:
    with db.connect() as conn:
        return Repository(conn).lead_state(lead_id)


def warm_up(user: str) -> list[dict[str, Any]]:
    """Enough for an MQL with the default model, no hand-raise: 20 fit + 20 pricing + 21 guides."""
    return [
        identify(
            f"{user}-id", user, title="Director", company_size=50, email=f"{user}@acme.example"
        ),
        page(f"{user}-p1", "/pricing", 5, user),
        page(f"{user}-p2", "/pricing", 4, user),
        track(f"{user}-g1", "Guide Downloaded", 3, user, asset="seo-guide"),
        track(f"{user}-g2", "Guide Downloaded", 2, user, asset="web-guide"),
    ]


def test_a_lead_moves_nurturing_mql_sql_and_each_change_is_recorded(db: Engine) -> None:
    first = run(db, [page("m1", "/services/web-design", 6, "u1")])
    assert first.stored == 1 and first.leads["u1"].stage == "nurturing"
    assert run(db, warm_up("u1")).leads["u1"].stage == "mql"
    last = run(db, [track("m9", "Quote Requested", 1, "u1", message="a quote please")])
    assert last.leads["u1"].stage == "handed_over"  # sql, then straight to sales
    assert stages(db, "u1") == [
        ("new", "nurturing"),
        ("nurturing", "mql"),
        ("mql", "sql"),
        ("sql", "handed_over"),
    ]
    with db.connect() as conn:
        history = Repository(conn).stage_history("u1")
    sql, handed = history[-2:]
    assert handed.actor == "handover" and "no sales team" in handed.cause
    assert sql.model_version == MODEL.version and sql.actor == "model"
    assert "SQL threshold" in sql.cause and "intent:quote_requested" in sql.rule_ids
    assert "quote-request" in sql.rule_ids


def test_a_lead_above_a_threshold_does_not_reenter_and_is_not_moved_back(db: Engine) -> None:
    run(db, warm_up("u1"))
    assert stages(db, "u1") == [("new", "mql")]
    run(db, [page("p3", "/testimonials", 1, "u1")])  # still an MQL: no second entry
    run(db, [track("un", "Unsubscribed", 1, "u1"), track("bo", "Email Bounced", 1, "u1")])
    current = state(db, "u1")
    assert current is not None and current[0] == "mql" and current[1] < MODEL.thresholds.mql
    assert stages(db, "u1") == [("new", "mql")]


def test_disqualification_moves_a_lead_from_any_stage(db: Engine) -> None:
    run(db, warm_up("u1"))
    run(db, [track("js", "Form Submitted", 1, "u1", form="contact", message="Are you hiring?")])
    assert stages(db, "u1") == [("new", "mql"), ("mql", "disqualified")]


@pytest.mark.parametrize(
    ("current", "decided", "moves"),
    [
        ("new", "nurturing", True),
        ("nurturing", "sql", True),
        ("mql", "nurturing", False),
        ("sql", "mql", False),
        ("mql", "mql", False),
        ("sql", "disqualified", True),
        ("disqualified", "sql", False),
        ("handed_over", "sql", False),
        ("handed_over", "disqualified", True),
    ],
)
def test_the_model_only_moves_leads_forward(current: str, decided: str, moves: bool) -> None:
    assert advances(current, decided) is moves


def test_replaying_a_batch_adds_nothing(db: Engine) -> None:
    batch = [*warm_up("u1"), track("q", "Quote Requested", 1, "u1")]
    first = run(db, batch)
    with db.connect() as conn:
        ledger = Repository(conn).ledger("u1")
        history = Repository(conn).stage_history("u1")
    again = run(db, batch)
    assert (first.stored, first.duplicates) == (5, 0)
    assert (again.stored, again.duplicates, again.accepted) == (0, 5, 6)
    assert again.conflicts == []  # the same content again is a plain retry
    with db.connect() as conn:
        repo = Repository(conn)
        assert repo.count_events() == 5
        assert repo.ledger("u1") == ledger
        assert repo.stage_history("u1") == history


def test_events_in_shuffled_order_give_the_same_score_as_in_order(db: Engine) -> None:
    def history(user: str) -> list[dict[str, Any]]:
        return [
            *warm_up(user),
            page(f"{user}-s1", "/services/seo", 20, user),
            page(f"{user}-s2", "/services/seo/audit", 12, user),
            page(f"{user}-s3", "/services/seo", 11, user),
            page(f"{user}-r", "/pricing", 0.5, user),
            track(f"{user}-g3", "Guide Downloaded", 40, user, asset="seo-guide"),
        ]

    for message in history("ordered"):
        run(db, [message])
    shuffled = history("shuffled")
    random.Random(3).shuffle(shuffled)
    for message in shuffled:
        run(db, [message])
    ordered, late = state(db, "ordered"), state(db, "shuffled")
    assert ordered is not None and late is not None
    assert late[1] == pytest.approx(ordered[1]) and late[0] == ordered[0]
    with db.connect() as conn:
        repo = Repository(conn)
        sums: list[dict[str, float]] = []
        for lead_id in ("ordered", "shuffled"):
            per_rule: dict[str, float] = defaultdict(float)
            for entry in repo.ledger(lead_id):
                per_rule[entry.rule_id] += entry.points
            sums.append({k: round(v, 9) for k, v in per_rule.items() if round(v, 9)})
    assert sums[0] == sums[1]


def test_anonymous_history_joins_the_lead_on_identify(db: Engine) -> None:
    run(db, [page("a1", "/pricing", 3, anon="device-1")])
    run(db, [page("a2", "/services/seo", 2, anon="device-1")])
    assert state(db, "anon:device-1") is not None
    joined = run(db, [identify("i1", "u1", "device-1", email="  Jo@Acme.EXAMPLE ")])
    assert set(joined.leads) == {"u1"}
    assert state(db, "anon:device-1") is None  # folded in: no duplicate lead
    with db.connect() as conn:
        repo = Repository(conn)
        assert [e.id for e in repo.load_events("u1")] == ["a1", "a2"]
        assert ("anonymous_id", "device-1") in repo.identities_of("u1")
        assert ("email", "jo@acme.example") in repo.identities_of("u1")
        lead = repo.get_lead("u1")
        assert lead is not None and lead.attributes["email"] == "jo@acme.example"
    # Later visits from the same device go to the lead.
    later = run(db, [page("a3", "/pricing", 1, anon="device-1")])
    assert set(later.leads) == {"u1"}
    # A new device joins the known lead that keeps its id, by user id or by email.
    run(db, [page("b1", "/testimonials", 1, anon="device-2")])
    run(db, [identify("i2", anon="device-2", email="JO@acme.example")])
    run(db, [page("c1", "/case-studies/x", 1, anon="device-3")])
    run(db, [track("c2", "Signed In", 1, "u1", "device-3")])
    with db.connect() as conn:
        repo = Repository(conn)
        ids = {e.id for e in repo.load_events("u1")}
        assert ids == {"a1", "a2", "a3", "b1", "c1", "c2"}
        assert repo.get_lead("anon:device-2") is None and repo.get_lead("anon:device-3") is None
        score = repo.lead_state("u1")
        lead = repo.get_lead("u1")
        assert lead is not None and score is not None
        expected = evaluate(MODEL, lead, repo.load_events("u1"), NOW).total
        assert score[1] == pytest.approx(expected)


def test_invalid_messages_are_reported_by_index_and_the_others_accepted(db: Engine) -> None:
    result = run(
        db,
        [
            page("ok1", "/pricing", 1, "u1"),
            {"type": "track", "userId": "u1", "event": "X", "timestamp": "2015-2-02T00:30:08Z"},
            "not an object",
            {"type": "track", "event": "No Id", "timestamp": when(1)},
            page("ok2", "/pricing", 2, "u1"),
        ],
    )
    assert [e.index for e in result.errors] == [1, 2, 3]
    assert "timestamp" in result.errors[0].reason
    assert result.accepted == 2 and result.stored == 2


def _random_messages(rng: random.Random, users: list[str]) -> list[dict[str, Any]]:
    paths = ["/pricing", "/services/seo", "/services/web-design/x", "/testimonials", "/careers"]
    kinds = [
        ("Guide Downloaded", {"asset": "g1"}),
        ("Guide Downloaded", {"asset": "g2"}),
        ("Email Delivered", {"campaign": "c1"}),
        ("Email Delivered", {"campaign": "c2"}),
        ("Email Delivered", {"campaign": "c3"}),
        ("Email Opened", {"campaign": "c1"}),
        ("Email Opened", {"campaign": "c2"}),
        ("Email Link Clicked", {"campaign": "c1"}),
        ("Quote Requested", {"message": "how much?"}),
        ("Unsubscribed", {}),
    ]
    out: list[dict[str, Any]] = []
    for n in range(rng.randint(20, 60)):
        user = rng.choice(users)
        days = rng.uniform(0, 120)
        if rng.random() < 0.5:
            out.append(page(f"r{n}", rng.choice(paths), days, user))
        else:
            name, props = rng.choice(kinds)
            out.append(track(f"r{n}", name, days, user, **props))
    for user in users:
        out.append(identify(f"id-{user}", user, title=rng.choice(["CEO", "Student", "Dev"])))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_live_scores_equal_the_reference_evaluator_on_random_histories(
    db: Engine,
    seed: int,
) -> None:
    rng = random.Random(seed)
    users = ["r1", "r2", "r3"]
    messages = _random_messages(rng, users)
    arrival = messages[:]
    rng.shuffle(arrival)
    arrival += rng.sample(messages, 5)  # a few retries
    while arrival:
        size = rng.randint(1, 15)
        run(db, arrival[:size])
        arrival = arrival[size:]
    events: dict[str, list[Event]] = defaultdict(list)
    for msg in messages:
        converted = convert_message(msg)
        if isinstance(converted, Event):
            events[converted.lead_id].append(converted)
    with db.connect() as conn:
        repo = Repository(conn)
        for user in users:
            lead = repo.get_lead(user)
            current = repo.lead_state(user)
            assert lead is not None and current is not None
            expected = evaluate(MODEL, Lead(user, lead.attributes), events[user], NOW)
            assert current[1] == pytest.approx(expected.total)
            held: dict[tuple[str, str | None], float] = defaultdict(float)
            for entry in repo.ledger(user):
                held[(entry.rule_id, entry.event_id)] += entry.points
            assert {k: round(v, 6) for k, v in held.items() if round(v, 9)} == {
                k: round(v, 6) for k, v in earned_points(expected).items()
            }


def _identify_at(mid: str, user: str, days_ago: float, **traits: Any) -> dict[str, Any]:
    msg = identify(mid, user, **traits)
    msg["timestamp"] = when(days_ago)
    return msg


def test_traits_are_applied_by_time_whatever_order_they_arrive_in(db: Engine) -> None:
    newer = _identify_at("t2", "u1", 1, title="CEO", company="Acme Ltd")
    older = _identify_at("t1", "u1", 5, title="Intern", city="Leeds")
    run(db, [newer])
    run(db, [older])  # arrives late: only what the newer message did not say is taken
    with db.connect() as conn:
        lead = Repository(conn).get_lead("u1")
    assert lead is not None
    assert lead.attributes["title"] == "CEO" and lead.attributes["company"] == "Acme Ltd"
    assert lead.attributes["city"] == "Leeds"
    run(db, [_identify_at("t3", "u1", 0.5, title="Founder", company=None)])
    with db.connect() as conn:
        lead = Repository(conn).get_lead("u1")
    assert lead is not None and lead.attributes["title"] == "Founder"
    assert lead.attributes["company"] == "Acme Ltd"  # a null trait does not erase


def _ledger_by_key(db: Engine, lead_id: str) -> dict[tuple[str, str | None], float]:
    held: dict[tuple[str, str | None], float] = defaultdict(float)
    with db.connect() as conn:
        for entry in Repository(conn).ledger(lead_id):
            held[(entry.rule_id, entry.event_id)] += entry.points
    return {k: round(v, 6) for k, v in held.items() if round(v, 9)}


def test_two_known_leads_with_one_email_merge_with_a_combined_ledger(db: Engine) -> None:
    run(db, [*warm_up("crm-7")])  # an MQL known by its CRM id
    later = NOW + timedelta(minutes=1)  # the app's lead is created after the CRM's
    run(
        db, [page("w1", "/pricing", 3, "app-9"), page("w2", "/services/seo", 2, "app-9")], now=later
    )
    assert state(db, "crm-7") is not None and state(db, "app-9") is not None
    result = run(db, [identify("link", "app-9", email=" CRM-7@Acme.example")])
    assert result.merged == [("app-9", "crm-7")]  # the younger folds into the older
    assert state(db, "app-9") is None
    with db.connect() as conn:
        repo = Repository(conn)
        lead = repo.get_lead("crm-7")
        events = repo.load_events("crm-7")
        kinds = dict(repo.identities_of("crm-7"))
        assert {("user_id", "crm-7"), ("user_id", "app-9")} <= set(repo.identities_of("crm-7"))
    assert kinds["email"] == "crm-7@acme.example"
    assert {e.id for e in events} >= {"w1", "w2", "crm-7-p1"}
    assert lead is not None
    expected = evaluate(MODEL, lead, events, NOW)
    current = state(db, "crm-7")
    assert current is not None and current[1] == pytest.approx(expected.total)
    assert _ledger_by_key(db, "crm-7") == {
        k: round(v, 6) for k, v in earned_points(expected).items()
    }
    # Later messages under either user id reach the one lead.
    later = run(db, [page("w3", "/pricing", 1, "app-9")])
    assert set(later.leads) == {"crm-7"}


def test_an_alias_of_a_known_user_id_merges_the_two(db: Engine) -> None:
    run(db, [page("o1", "/pricing", 4, "old-id")])
    run(db, [page("n1", "/services/seo", 2, "new-id")], now=NOW + timedelta(minutes=1))
    result = run(
        db, [{"type": "alias", "previousId": "old-id", "userId": "new-id", "timestamp": when(1)}]
    )
    assert result.merged == [("new-id", "old-id")]
    with db.connect() as conn:
        assert {e.id for e in Repository(conn).load_events("old-id")} == {"o1", "n1"}


def test_a_shared_device_does_not_merge_two_people(db: Engine) -> None:
    run(db, [track("s1", "Signed In", 2, "alice", "kiosk")])
    result = run(db, [track("s2", "Signed In", 1, "bob", "kiosk")])
    assert result.merged == [] and state(db, "alice") is not None
    assert any("kiosk" in note for note in result.notes)


def test_a_message_without_id_or_time_counts_each_time_it_is_sent(db: Engine) -> None:
    msg = {"type": "track", "userId": "u1", "event": "Guide Downloaded", "properties": {}}
    first = run(db, [dict(msg)])
    later = run(db, [dict(msg)], now=NOW + timedelta(hours=1))  # the same, an hour later
    assert (first.stored, later.stored, later.duplicates) == (1, 1, 0)
    timed = {**msg, "timestamp": when(1)}  # with a time, a repeat is the same event
    assert run(db, [dict(timed)]).stored == 1
    assert run(db, [dict(timed)], now=NOW + timedelta(hours=2)).duplicates == 1


def test_a_request_costs_the_same_few_queries_however_many_messages(db: Engine) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def queries(n: int, prefix: str) -> int:
        statements.clear()
        batch = [page(f"{prefix}{i}", "/pricing", i % 30, f"{prefix}u{i % 7}") for i in range(n)]
        batch += [identify(f"{prefix}id{i}", f"{prefix}u{i}", title="CEO") for i in range(7)]
        sqlalchemy.event.listen(db, "before_cursor_execute", count)
        try:
            run(db, batch)
        finally:
            sqlalchemy.event.remove(db, "before_cursor_execute", count)
        return len(statements)

    small, large = queries(20, "a"), queries(400, "b")
    assert large == small  # set-based: nothing per message or per lead
    assert small < 40


def stage_of(db: Engine, lead_id: str) -> str | None:
    current = state(db, lead_id)
    return None if current is None else current[0]


def test_rescore_after_a_model_change_moves_leads_forward_only(db: Engine) -> None:
    run(db, warm_up("u1"))  # an MQL under the default model (61 points)
    run(db, [page("x1", "/pricing", 2, "u2")])  # nurturing
    assert stage_of(db, "u1") == "mql"
    stricter = dataclasses.replace(
        MODEL, version="2", thresholds=dataclasses.replace(MODEL.thresholds, mql=500.0)
    )
    later = NOW + timedelta(days=30)
    summary = rescore(db, stricter, later, chunk=1)
    assert summary.leads == 2 and summary.rescored == 2  # a month of decay
    assert not summary.moved  # a stricter model never moves a lead back
    assert stage_of(db, "u1") == "mql"
    looser = dataclasses.replace(
        MODEL, version="3", thresholds=dataclasses.replace(MODEL.thresholds, mql=1.0)
    )
    summary = rescore(db, looser, later)
    assert summary.moved == {"mql": 1} and summary.rescored == 0
    with db.connect() as conn:
        repo = Repository(conn)
        lead = repo.get_lead("u2")
        assert lead is not None
        expected = evaluate(looser, lead, repo.load_events("u2"), later)
        current = repo.lead_state("u2")
        assert current is not None and current == ("mql", pytest.approx(expected.total))
        assert repo.stage_history("u2")[-1].model_version == "3"
    assert _ledger_by_key(db, "u2") == {k: round(v, 6) for k, v in earned_points(expected).items()}


def test_times_far_in_the_future_or_past_are_refused_by_name(db: Engine) -> None:
    future = {**page("f1", "/pricing", 0, "u1"), "timestamp": "2099-01-01T00:00:00Z"}
    ancient = {**page("f2", "/pricing", 0, "u1"), "timestamp": "0001-01-01T00:00:00Z"}
    ahead = {**page("f3", "/pricing", 0, "u1"), "timestamp": (NOW + timedelta(hours=2)).isoformat()}
    result = run(db, [future, ancient, ahead])
    assert [e.index for e in result.errors] == [0, 1]
    assert "more than a day after" in result.errors[0].reason
    assert "before 1990" in result.errors[1].reason
    assert result.stored == 1  # a clock two hours ahead is taken


def test_a_message_id_reused_for_other_content_is_reported_and_the_first_kept(db: Engine) -> None:
    first = run(db, [track("m1", "Guide Downloaded", 2, "u1", asset="seo")])
    later = run(
        db,
        [
            track("m1", "Guide Downloaded", 2, "u1", asset="seo"),  # a retry: no conflict
            track("m1", "Quote Requested", 1, "u1"),  # same id, other event
            track("m2", "Guide Downloaded", 1, "u1", asset="a"),
            track("m2", "Guide Downloaded", 1, "u1", asset="b"),  # reused within a batch
        ],
    )
    assert (first.stored, later.stored, later.duplicates) == (1, 1, 3)
    assert later.conflicts == ["m1", "m2"]
    with db.connect() as conn:
        kept = Repository(conn).event_contents(["m1", "m2"])
    assert kept["m1"][0] == "asset_downloaded" and kept["m2"][2] == {"asset": "a"}


def test_merging_two_handed_over_leads_keeps_both_handovers_and_their_feedback(
    db: Engine,
) -> None:
    from leadgate.services.handover import record_outcome
    from leadgate.store import tables as t
    from leadgate.store.handover_store import HandoverStore

    run(db, [*warm_up("crm-7"), track("q7", "Quote Requested", 1, "crm-7")])
    later = NOW + timedelta(minutes=1)
    run(
        db,
        [
            identify("app-id", "app-9", title="Director", company_size=50),
            *warm_up("app-9")[1:],
            track("q9", "Quote Requested", 1, "app-9"),
        ],
        now=later,
    )
    with db.begin() as conn:
        mine = HandoverStore(conn).current("app-9")
        assert mine is not None
        record_outcome(conn, mine.id, "rejected", "not_ready", None, "rep", later)
        conn.execute(
            t.outcomes.insert().values(
                lead_id="app-9", good=True, at=later, reason=None, source="import",
                note=None, actor="crm", imported_at=later,
            )
        )  # fmt: skip
    result = run(db, [identify("link", "app-9", email="crm-7@acme.example")], now=later)
    assert result.merged == [("app-9", "crm-7")]
    with db.connect() as conn:
        handovers = HandoverStore(conn).listing(limit=10)
        dispositions = HandoverStore(conn).dispositions()
        outcomes = conn.execute(select(t.outcomes.c.lead_id)).scalars().all()
    assert sorted((h.lead_id, h.cycle) for h in handovers) == [("crm-7", 1), ("crm-7", 2)]
    assert [(d.lead_id, d.outcome) for d in dispositions] == [("crm-7", "rejected")]
    assert outcomes == ["crm-7"]
