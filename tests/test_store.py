"""The storage layer, on SQLite and (when LEADGATE_TEST_POSTGRES_URL is set) PostgreSQL.

Each PostgreSQL test runs in its own schema, with the session time zone set
away from UTC so that time zone handling is really exercised.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from leadgate.domain.events import Event, Lead
from leadgate.store import check, create_engine, database_url, migrate, upgrade
from leadgate.store import tables as t
from leadgate.store.engine import DEFAULT_DATABASE_URL, normalise_url
from leadgate.store.records import IdentityConflict, LedgerEntry, StageChange
from leadgate.store.repository import Repository, hash_api_key

PG_ENV = "LEADGATE_TEST_POSTGRES_URL"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leadgate.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL variant: set {PG_ENV} (e.g. postgresql+psycopg://u:p@host/db)")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalise_url(base).update_query_dict(
        {"options": f"-csearch_path={schema} -ctimezone=Asia/Kolkata"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def ev(message_id: str, lead_id: str, when: datetime, type_: str = "page_viewed") -> Event:
    return Event(message_id, lead_id, type_, when, {"path": f"/{message_id}"})


def add_leads(engine: Engine, *lead_ids: str) -> None:
    with engine.begin() as conn:
        for lead_id in lead_ids:
            Repository(conn).upsert_lead(Lead(lead_id), T0)


MIGRATION_FILES = Path(migrate.__file__).with_name("migrations") / "versions"


def test_migrations_apply_from_empty_and_match_the_tables(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # a second run is a no-op
    check(db_url)  # autogenerate finds no difference between tables.py and the migrations
    engine = create_engine(db_url)
    try:
        names = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    assert names == set(t.metadata.tables) | {"alembic_version"}
    head = sorted(p.name[:4] for p in MIGRATION_FILES.glob("[0-9][0-9][0-9][0-9]_*.py"))[-1]
    assert version == head  # the newest migration file


def test_same_message_id_is_stored_once(engine: Engine) -> None:
    add_leads(engine, "a")
    first = ev("m1", "a", T0)
    retry = Event("m1", "a", "form_submitted", T0 + timedelta(hours=1), {"form": "other"})
    with engine.begin() as conn:
        assert Repository(conn).append_event(first, T0) is True
    with engine.begin() as conn:
        assert Repository(conn).append_event(retry, T0) is False
        assert Repository(conn).append_event(first, T0) is False
    with engine.connect() as conn:
        repo = Repository(conn)
        assert repo.count_events() == 1
        assert repo.load_events("a") == [first]


def test_events_of_two_leads_are_kept_apart_in_time_order(engine: Engine) -> None:
    add_leads(engine, "a", "b")
    a_late = ev("a2", "a", T0 + timedelta(days=2))
    a_early = ev("a1", "a", T0)  # arrives after a_late
    b_only = ev("b1", "b", T0 + timedelta(days=1), "quote_requested")
    tie = ev("a0", "a", T0)  # same time as a1: ordered by message id
    with engine.begin() as conn:
        repo = Repository(conn)
        for event in (a_late, a_early, b_only, tie):
            assert repo.append_event(event, T0 + timedelta(days=3)) is True
    with engine.connect() as conn:
        repo = Repository(conn)
        assert repo.load_events("a") == [tie, a_early, a_late]
        assert repo.load_events("b") == [b_only]
        assert repo.load_events("nobody") == []
        assert repo.count_events("a") == 3
        assert repo.count_events() == 4


def test_an_event_needs_a_known_lead(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        Repository(conn).append_event(ev("m1", "ghost", T0), T0)


def test_lead_upsert_merges_attributes_and_identities(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = Repository(conn)
        created = repo.upsert_lead(
            Lead("a", {"email": "ann@acme.example", "title": "CTO"}),
            T0,
            [("email", "ann@acme.example"), ("anonymous_id", "anon-1")],
        )
        assert created is True
    with engine.begin() as conn:
        repo = Repository(conn)
        again = repo.upsert_lead(
            Lead("a", {"title": "CEO", "country": "NL"}), T0, [("email", "ann@acme.example")]
        )
        assert again is False
    with engine.connect() as conn:
        repo = Repository(conn)
        assert repo.get_lead("a") == Lead(
            "a", {"email": "ann@acme.example", "title": "CEO", "country": "NL"}
        )
        assert repo.get_lead("b") is None
        assert repo.identities_of("a") == [
            ("anonymous_id", "anon-1"),
            ("email", "ann@acme.example"),
        ]
        assert repo.lead_for_identity("email", "ann@acme.example") == "a"
        assert repo.lead_for_identity("email", "bob@acme.example") is None
        assert repo.lead_state("a") == ("new", 0.0)


def test_an_identity_belongs_to_one_lead(engine: Engine) -> None:
    with engine.begin() as conn:
        Repository(conn).upsert_lead(Lead("a"), T0, [("email", "ann@acme.example")])
    with pytest.raises(IdentityConflict) as info, engine.begin() as conn:
        Repository(conn).upsert_lead(Lead("b"), T0, [("email", "ann@acme.example")])
    assert (info.value.owner, info.value.claimant) == ("a", "b")
    add_leads(engine, "b")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            t.identities.insert().values(
                kind="email", value="ann@acme.example", lead_id="b", created_at=T0
            )
        )
    with engine.connect() as conn:
        assert Repository(conn).lead_for_identity("email", "ann@acme.example") == "a"
        assert Repository(conn).identities_of("b") == []


def test_score_ledger_and_stage_history_round_trip(engine: Engine) -> None:
    add_leads(engine, "a", "b")
    entries = [
        LedgerEntry("a", "senior-title", None, 10.0, "7", T0),
        LedgerEntry("a", "pricing-page", "m1", 10.0, "7", T0 + timedelta(minutes=1)),
        LedgerEntry("a", "unsubscribed", "m2", -30.5, "7", T0 + timedelta(minutes=2)),
        LedgerEntry("b", "guides", "m3", 8.0, "7", T0),
    ]
    changes = [
        StageChange("a", "new", "nurturing", "score 10 < MQL threshold 50", (), "7", "model", T0),
        StageChange(
            "a",
            "nurturing",
            "sql",
            "score 55 >= SQL threshold 50 and quote_requested",
            ("pricing-page", "intent:quote_requested"),
            "7",
            "model",
            T0 + timedelta(hours=1),
        ),
        StageChange(
            "a", "sql", "nurturing", "not ready: call in Q3", (), None, "maria", T0 + timedelta(1)
        ),
    ]
    with engine.begin() as conn:
        repo = Repository(conn)
        repo.record_ledger(entries)
        repo.record_ledger([])
        for change in changes:
            repo.record_stage_change(change)
        repo.set_score("a", -10.5, T0 + timedelta(days=1))
    with engine.connect() as conn:
        repo = Repository(conn)
        assert repo.ledger("a") == entries[:3]
        assert repo.ledger("b") == entries[3:]
        assert sum(e.points for e in repo.ledger("a")) == -10.5
        assert repo.stage_history("a") == changes
        assert repo.stage_history("b") == []
        assert repo.lead_state("a") == ("nurturing", -10.5)
        assert repo.lead_state("b") == ("new", 0.0)


def test_model_versions_are_saved_as_drafts_and_published(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = Repository(conn)
        repo.save_model_draft("default", "1", "name: default\n", T0)
        repo.save_model_draft("default", "2", "name: default  # v2\n", T0 + timedelta(1))
        assert repo.latest_published("default") is None
        repo.publish_model("default", "1", "ops@acme", "first model", T0 + timedelta(2))
    with engine.begin() as conn:
        repo = Repository(conn)
        v1 = repo.get_model_version("default", "1")
        assert v1 is not None
        assert (v1.status, v1.text, v1.published_by, v1.why) == (
            "published",
            "name: default\n",
            "ops@acme",
            "first model",
        )
        assert (v1.created_at, v1.published_at) == (T0, T0 + timedelta(2))
        draft = repo.get_model_version("default", "2")
        assert draft is not None
        assert (draft.status, draft.published_by, draft.published_at) == ("draft", None, None)
        assert repo.latest_published("default") == v1
        repo.publish_model("default", "2", "ops@acme", "backtest +4% precision", T0 + timedelta(3))
        latest = repo.latest_published("default")
        assert latest is not None
        assert latest.version == "2"
        assert repo.get_model_version("default", "3") is None
        with pytest.raises(LookupError):
            repo.publish_model("default", "2", "ops@acme", "again", T0 + timedelta(4))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        Repository(conn).save_model_draft("default", "1", "overwrite", T0)


def test_api_keys_are_stored_hashed(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = Repository(conn)
        write, write_key = repo.create_api_key("write", T0)
        admin, admin_key = repo.create_api_key("admin", T0)
        with pytest.raises(ValueError, match="write or admin"):
            repo.create_api_key("root", T0)  # type: ignore[arg-type]
    assert write_key != admin_key
    assert write_key.startswith("lg_")
    assert len(write_key) > 40
    with engine.connect() as conn:
        stored = conn.execute(sqlalchemy.select(t.api_keys.c.key_hash)).scalars().all()
        repo = Repository(conn)
        assert sorted(stored) == sorted([hash_api_key(write_key), hash_api_key(admin_key)])
        assert write_key not in stored
        assert admin_key not in stored
        assert repo.verify_api_key(write_key) == write
        assert repo.verify_api_key(admin_key) == admin
        assert write.kind == "write"
        assert admin.kind == "admin"
        assert repo.verify_api_key(write_key + "x") is None
        assert repo.verify_api_key(write_key[:-1]) is None
        assert repo.verify_api_key("") is None
        assert repo.verify_api_key(hash_api_key(write_key)) is None  # the hash is not a key
    with engine.begin() as conn:
        repo = Repository(conn)
        assert repo.revoke_api_key(write.id, T0 + timedelta(1)) is True
        assert repo.revoke_api_key(write.id, T0 + timedelta(2)) is False
        assert repo.verify_api_key(write_key) is None
        assert repo.verify_api_key(admin_key) == admin


def test_timestamps_come_back_as_the_same_utc_instants(engine: Engine) -> None:
    add_leads(engine, "a")
    plus_two = datetime(2026, 3, 29, 3, 15, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    minus_five = datetime(2026, 3, 29, 0, 0, tzinfo=timezone(timedelta(hours=-5)))
    naive = datetime(2026, 3, 29, 2, 0)  # taken to be UTC
    with engine.begin() as conn:
        repo = Repository(conn)
        repo.append_event(ev("p2", "a", plus_two), minus_five)
        repo.append_event(ev("m5", "a", minus_five), minus_five)
        repo.append_event(ev("nv", "a", naive), minus_five)
    with engine.connect() as conn:
        events = Repository(conn).load_events("a")
        received = conn.execute(sqlalchemy.select(t.events.c.received_at)).scalars().all()
        # The raw stored value: naive UTC text on SQLite, timestamptz in the session zone on PG.
        raw = conn.execute(
            text("SELECT CAST(at AS TEXT) FROM events WHERE message_id = 'p2'")
        ).scalar_one()
    # 01:15:07 UTC (p2) < 02:00 UTC (naive) < 05:00 UTC (m5): ordered by instant, not wall time
    assert [e.id for e in events] == ["p2", "nv", "m5"]
    assert [e.timestamp for e in events] == [
        datetime(2026, 3, 29, 1, 15, 7, 123456, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 5, 0, tzinfo=UTC),
    ]
    assert all(e.timestamp.tzinfo is UTC for e in events)
    assert received == [datetime(2026, 3, 29, 5, 0, tzinfo=UTC)] * 3
    if engine.dialect.name == "sqlite":
        assert raw == "2026-03-29 01:15:07.123456"
    else:  # the session time zone is Asia/Kolkata (+05:30)
        assert raw == "2026-03-29 06:45:07.123456+05:30"


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 10_000
    finally:
        engine.dispose()


def test_database_url_comes_from_argument_then_env_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LEADGATE_DATABASE_URL", raising=False)
    assert database_url(None) == DEFAULT_DATABASE_URL == "sqlite:///./leadgate.db"
    monkeypatch.setenv("LEADGATE_DATABASE_URL", "postgresql://u@h/db")
    assert database_url(None) == "postgresql://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


def test_a_database_with_data_upgrades_from_the_first_revision(db_url: str) -> None:
    upgrade(db_url, "0001")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO leads (id, attributes, stage, score, created_at, updated_at) "
                    "VALUES ('old-1', '{\"title\": \"CEO\"}', 'mql', 41, :t, :t)"
                ),
                {"t": T0},
            )
            conn.execute(
                text(
                    "INSERT INTO events (message_id, lead_id, type, at, received_at, properties) "
                    "VALUES ('m-old', 'old-1', 'page_viewed', :t, :t, '{}')"
                ),
                {"t": T0},
            )
        upgrade(db_url)  # every later migration, on a database that holds leads and events
        check(db_url)
        with engine.connect() as conn:
            repo = Repository(conn)
            lead = repo.get_lead("old-1")
            assert lead is not None and lead.attributes == {"title": "CEO"}
            assert repo.lead_state("old-1") == ("mql", 41.0)
            assert [e.id for e in repo.load_events("old-1")] == ["m-old"]
            assert repo.lead_facts(["old-1"])["old-1"].attribute_times == {}
    finally:
        engine.dispose()
