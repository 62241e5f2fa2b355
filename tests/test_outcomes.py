"""Outcomes in the database (imports, the API, dispositions), the examples built from
them, and ``leadgate outcomes`` / ``leadgate rules report``: on SQLite and PostgreSQL,
over HTTP in process and through the command line."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from leadgate.cli import app
from leadgate.services.handover import record_outcome
from leadgate.services.outcomes import database_examples, import_outcomes, known_outcomes
from leadgate.store import create_engine, transact
from leadgate.store import tables as t
from leadgate.store.outcome_store import OutcomeStore
from test_handover import NOW, handovers, ready, run
from test_handover import db as db
from test_ingest import MODEL, identify, page, track
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)
from test_web import Api, api  # noqa: F401  (fixture: the app in process with keys)

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
XEDU_LEADS = ROOT.parent / "shared" / "data" / "xeducation_leads.csv"
# The events of test_ingest's helpers are dated relative to its own clock.
EVENT_CLOCK = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return EVENT_CLOCK - timedelta(days=days)


def browsing(user: str) -> list[dict[str, Any]]:
    """A lead who reads pricing 9 and 5 days ago, and asks for a quote 2 days ago."""
    return [
        identify(f"{user}-id", user, title="Director", email=f"{user}@acme.example"),
        page(f"{user}-p9", "/pricing", 9, user),
        page(f"{user}-p5", "/pricing", 5, user),
        track(f"{user}-q2", "Quote Requested", 2, user, message="a quote please"),
    ]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def import_file(db: Engine, path: Path, now: datetime = NOW, **kwargs: Any) -> Any:
    return transact(db, lambda conn: import_outcomes(conn, path, now, **kwargs))


def stored(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.outcomes)).scalar_one())


def examples_of(db: Engine, now: datetime = NOW) -> dict[str, Any]:
    with db.connect() as conn:
        return {ex.lead.id: ex for ex in database_examples(conn, MODEL, now)}


def points(example: Any, rule_id: str) -> float:
    return sum(r.raw for r in example.breakdown.rules if r.rule_id == rule_id)


# Imports -------------------------------------------------------------------


def test_an_outcome_dated_before_some_events_uses_only_what_came_before(
    db: Engine,
    tmp_path: Path,
) -> None:
    run(db, browsing("bo"))
    decided = days_ago(6)
    rows = [["lead_id", "outcome", "date", "reason"], ["bo", "won", decided.isoformat(), "signed"]]
    report = import_file(db, write_csv(tmp_path / "won.csv", rows))
    assert (report.read, report.imported, report.already, report.errors) == (1, 1, 0, [])
    example = examples_of(db)["bo"]
    assert example.good and example.as_of == decided
    # Only the pricing view of 9 days ago: not the one of 5 days ago, not the quote.
    assert [e.id for e in example.events] == ["bo-p9"]
    assert points(example, "pricing-page") == 10 and points(example, "quote-request") == 0
    assert example.breakdown.intent is None
    # The title came in an identify call a day ago: not known when the deal was won.
    assert "title" not in example.lead.attributes
    # An outcome dated after everything sees everything, title included.
    later = [["lead_id", "outcome", "date"], ["bo", "lost", days_ago(0.5).isoformat()]]
    import_file(db, write_csv(tmp_path / "later.csv", later))
    example = examples_of(db)["bo"]
    assert not example.good
    assert [e.id for e in example.events] == ["bo-p9", "bo-p5", "bo-q2"]
    assert example.lead.attributes["title"] == "Director"


def test_a_reimport_adds_nothing_twice(db: Engine, tmp_path: Path) -> None:
    run(db, browsing("re1") + browsing("re2"))
    rows = [
        ["email", "outcome", "date"],
        ["re1@acme.example", "good", "2026-03-05"],
        ["RE2@Acme.example", "bad", "2026-03-06T09:00:00Z"],
        ["re2@acme.example", "bad", "2026-03-06T09:00:00Z"],  # the same again in one file
    ]
    path = write_csv(tmp_path / "outcomes.csv", rows)
    first = import_file(db, path)
    assert (first.read, first.imported, first.already, first.errors) == (3, 2, 1, [])
    again = import_file(db, path)
    assert (again.read, again.imported, again.already, again.errors) == (3, 0, 3, [])
    assert stored(db) == 2
    with db.connect() as conn:
        listed = OutcomeStore(conn).listing()
    assert [(o.lead_id, o.good, o.at, o.source) for o in listed] == [
        ("re2", False, datetime(2026, 3, 6, 9, tzinfo=UTC), "import"),
        ("re1", True, datetime(2026, 3, 5, tzinfo=UTC), "import"),
    ]


def test_bad_rows_are_reported_with_their_line_and_the_good_rows_imported(
    db: Engine,
    tmp_path: Path,
) -> None:
    run(db, browsing("ok1") + browsing("ok2"))
    rows = [
        ["id", "result", "closed", "reason"],
        ["ok1", "won", "2026-03-01", "signed"],  # line 2
        ["ok2", "maybe", "2026-03-01", ""],  # line 3
        ["ok2", "lost", "", ""],  # line 4
        ["ok2", "lost", "2026-3-1", ""],  # line 5
        ["ok2", "lost", "2027-01-01", ""],  # line 6
        ["ghost", "won", "2026-03-01", ""],  # line 7
        ["ghost@nowhere.example", "won", "2026-03-01", ""],  # line 8
        ["", "", "", ""],  # line 9
        ["ok2", "0", "2026-03-02T10:00:00+01:00", "no budget"],  # line 10
    ]
    path = write_csv(tmp_path / "mixed.csv", rows)
    report = import_file(db, path, outcome_column="result", date_column="closed")
    assert (report.read, report.imported, report.already) == (9, 2, 0)
    assert [str(e) for e in report.errors] == [
        f"{path}:3: outcome 'maybe' is not one of good/bad, won/lost, yes/no, 1/0, true/false",
        f"{path}:4: no date (an outcome must say when it became known)",
        f"{path}:5: date: not an ISO 8601 timestamp: '2026-3-1'",
        f"{path}:6: date 2027-01-01T00:00:00+00:00 is in the future",
        f"{path}:7: unknown lead: no lead has the lead id 'ghost'",
        f"{path}:8: unknown lead: no lead has the email 'ghost@nowhere.example'",
        f"{path}:9: no lead id or email; no outcome (good/bad, won/lost, yes/no, 1/0); "
        "no date (an outcome must say when it became known)",
    ]
    with db.connect() as conn:
        latest = OutcomeStore(conn).latest_per_lead()
    assert latest["ok2"].at == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert latest["ok2"].reason == "no budget" and not latest["ok2"].good


def test_a_file_without_a_date_column_is_refused_whole(
    db: Engine,
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "undated.csv", [["lead_id", "outcome"], ["x", "won"]])
    with pytest.raises(ValueError, match="no date column") as caught:
        import_file(db, path)
    assert str(path) in str(caught.value)
    with pytest.raises(ValueError, match="no outcome column 'won'"):
        import_file(db, path, outcome_column="won")


def test_erasing_a_lead_erases_its_outcomes_and_export_shows_them(
    db: Engine,
    tmp_path: Path,
) -> None:
    from leadgate.services.leads import erase_lead
    from leadgate.store.repository import Repository

    run(db, browsing("gone") + browsing("kept"))
    rows = [
        ["lead_id", "outcome", "date"],
        ["gone", "won", "2026-03-05"],
        ["kept", "lost", "2026-03-05"],
    ]
    import_file(db, write_csv(tmp_path / "o.csv", rows))
    with db.connect() as conn:
        records = Repository(conn).lead_records("gone")
    assert records is not None
    assert [(r["lead_id"], r["good"]) for r in records["outcomes"]] == [("gone", True)]
    erasure = transact(db, lambda conn: erase_lead(Repository(conn), "gone", NOW))
    assert erasure is not None and erasure.counts["outcomes"] == 1
    with db.connect() as conn:
        assert [o.lead_id for o in OutcomeStore(conn).listing()] == ["kept"]
    assert set(examples_of(db)) == {"kept"}


def test_a_corrected_outcome_replaces_the_stored_one_and_is_counted_as_updated(
    db: Engine,
    tmp_path: Path,
) -> None:
    run(db, browsing("fix"))
    header = ["lead_id", "outcome", "date", "reason", "note"]
    first = import_file(
        db, write_csv(tmp_path / "a.csv", [header, ["fix", "won", "2026-03-05", "signed", ""]])
    )
    assert (first.imported, first.updated, first.already) == (1, 0, 0)
    # The CRM corrected it: the deal fell through. Same lead, source and date.
    path = write_csv(tmp_path / "b.csv", [header, ["fix", "lost", "2026-03-05", "no budget", ""]])
    second = import_file(db, path, actor="crm")
    assert (second.read, second.imported, second.updated, second.already) == (1, 0, 1, 0)
    assert second.errors == [] and second.warnings == []
    with db.connect() as conn:
        [held] = OutcomeStore(conn).listing()
    assert (held.good, held.reason, held.actor) == (False, "no budget", "crm")
    assert stored(db) == 1 and not examples_of(db)["fix"].good
    # The same again is already there; a changed note alone is an update too.
    assert import_file(db, path).already == 1
    noted = write_csv(
        tmp_path / "c.csv", [header, ["fix", "lost", "2026-03-05", "no budget", "Q3"]]
    )
    assert import_file(db, noted).updated == 1
    with db.connect() as conn:
        assert [o.note for o in OutcomeStore(conn).listing()] == ["Q3"]


def test_rows_of_one_file_that_contradict_each_other_are_warned_about_and_the_last_kept(
    db: Engine,
    tmp_path: Path,
) -> None:
    run(db, browsing("cw") + browsing("ok"))
    rows = [
        ["email", "outcome", "date", "reason"],
        ["cw@acme.example", "won", "2026-03-05", ""],  # line 2
        ["cw", "won", "2026-03-05", ""],  # line 3: the same lead by id, the same outcome
        ["cw@acme.example", "lost", "2026-03-05", "price"],  # line 4: contradicts line 3
        ["cw", "won", "2026-03-06", ""],  # line 5: another date, no contradiction
        ["ok", "won", "2026-03-05", ""],  # line 6
        ["ok", "won", "2026-03-05", ""],  # line 7: a plain repeat
    ]
    path = write_csv(tmp_path / "contra.csv", rows)
    report = import_file(db, path, id_column="email")
    assert (report.read, report.imported, report.updated, report.already, report.overridden) == (
        6,
        3,
        0,
        1,
        2,
    )
    assert report.errors == []
    assert [str(w) for w in report.warnings] == [
        f"{path}:4: lead 'cw@acme.example' on 2026-03-05: bad (reason 'price') contradicts "
        "line 3 (good); the last one is kept"
    ]
    with db.connect() as conn:
        listed = OutcomeStore(conn).listing(lead_id="cw")
    assert [(o.at.date().isoformat(), o.good, o.reason) for o in listed] == [
        ("2026-03-06", True, None),
        ("2026-03-05", False, "price"),
    ]
    # The same file again: nothing new, nothing changed, the same warning.
    again = import_file(db, path, id_column="email")
    assert (again.imported, again.updated, again.already, again.overridden) == (0, 0, 4, 2)
    assert [w.line for w in again.warnings] == [4]


def test_outcome_files_may_be_gzipped_and_must_be_utf8_with_distinct_columns(
    db: Engine,
    tmp_path: Path,
) -> None:
    run(db, browsing("gz"))
    text = "lead_id,outcome,date,reason\ngz,won,2026-03-05,sign\u00e9\n"
    packed = tmp_path / "outcomes.csv.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    report = import_file(db, packed)
    assert (report.read, report.imported, report.errors) == (1, 1, [])
    with db.connect() as conn:
        assert [o.reason for o in OutcomeStore(conn).listing()] == ["sign\u00e9"]

    latin = tmp_path / "latin1.csv"
    latin.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as caught:
        import_file(db, latin)
    assert str(caught.value) == (
        f"{latin}:2: not UTF-8 text (byte 0xe9 at position 23 of the line); the file must be "
        'UTF-8: save it as "CSV UTF-8", or convert it (e.g. iconv -f latin1 -t utf-8)'
    )
    twice = write_csv(
        tmp_path / "twice.csv",
        [["lead_id", "date", "outcome", "date"], ["gz", "2026-03-01", "won", "2026-03-02"]],
    )
    with pytest.raises(ValueError) as caught:
        import_file(db, twice)
    assert str(caught.value) == (
        f"{twice}: the column 'date' appears twice (columns 2 and 4); rename or remove one"
    )
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(text.encode("utf-8"))[:-12])
    with pytest.raises(ValueError, match="the file ends early or is corrupt"):
        import_file(db, broken)
    assert stored(db) == 1


def test_outcome_checks_reason_note_date_and_echoes_are_bounded() -> None:
    from leadgate.services.outcomes import entry

    with pytest.raises(ValueError) as caught:
        entry("x", "won", "0001-01-01", NOW)
    assert str(caught.value) == "date 0001-01-01T00:00:00+00:00 is before 1990"
    assert entry("x", "won", "1990-01-01", NOW).at == datetime(1990, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError) as caught:
        entry("x", "won", "2026-03-01", NOW, reason={"a": 1}, note="n" * 1001)
    assert str(caught.value) == (
        "reason: expected text, got an object; note: 1,001 characters; at most 1,000"
    )
    kept = entry("x", "won", "2026-03-01", NOW, reason=42, note="n" * 1000)
    assert (kept.reason, len(kept.note or "")) == ("42", 1000)
    with pytest.raises(ValueError) as caught:
        entry("x", "w" * 5000, "d" * 5000, NOW)
    message = str(caught.value)
    assert len(message) < 400 and "(5,000 characters)" in message


# Dispositions ----------------------------------------------------------------


def test_a_disposition_takes_features_as_of_the_handover(db: Engine) -> None:
    run(db, ready("dp"))
    [handover] = handovers(db, "dp")
    assert handover.created_at == NOW
    # After the handover the lead keeps browsing: that must not count.
    later = NOW + timedelta(days=2)
    run(db, [page("dp-late", "/pricing", -1.5, "dp")], now=later)
    for outcome, at in [("contacted", 2.1), ("accepted", 2.2), ("lost", 3)]:
        transact(
            db,
            lambda c, o=outcome, d=at: record_outcome(
                c, handover.id, o, None, None, "olivia", NOW + timedelta(days=d)
            ),
        )
    example = examples_of(db, NOW + timedelta(days=4))["dp"]
    assert not example.good  # the latest decisive disposition (lost), not accepted
    assert example.as_of == NOW
    assert "dp-late" not in [e.id for e in example.events]
    assert {e.id for e in example.events} == {"dp-p1", "dp-p2", "dp-g1", "dp-q"}
    # As sales saw it: the quote that made it sales-ready, the title said the day before.
    assert example.breakdown.intent is not None and example.breakdown.intent.event_id == "dp-q"
    assert example.lead.attributes["title"] == "Director"
    # A later outcome from a file (say the CRM's) wins over the disposition.
    with db.begin() as conn:
        OutcomeStore(conn).add_many(
            [
                {
                    "lead_id": "dp",
                    "good": True,
                    "at": NOW + timedelta(days=5),
                    "reason": "came back",
                    "source": "import",
                    "note": None,
                    "actor": "test",
                    "imported_at": NOW + timedelta(days=5),
                }
            ]
        )
    with db.connect() as conn:
        known = known_outcomes(conn)
    assert known["dp"].good and known["dp"].source == "import"
    example = examples_of(db, NOW + timedelta(days=6))["dp"]
    assert example.good and "dp-late" in [e.id for e in example.events]


# Command line ------------------------------------------------------------------


def _seed(db_url: str) -> None:  # noqa: F811
    from leadgate.services.ingest import ingest
    from leadgate.store import create_engine, upgrade
    from leadgate.store.repository import Repository

    upgrade(db_url)
    engine = create_engine(db_url)
    try:
        messages = browsing("c1") + browsing("c2") + browsing("c3")
        messages += [page("c3-t", "/testimonials", 8, "c3")]
        transact(engine, lambda conn: ingest(Repository(conn), MODEL, messages, EVENT_CLOCK))
    finally:
        engine.dispose()


def test_cli_imports_lists_and_reports_from_the_database(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    _seed(db_url)
    rows = [
        ["lead_id", "outcome", "date", "reason"],
        ["c1", "won", "2026-03-09", "signed"],
        ["c2", "lost", "2026-03-09", "price"],
        ["c3", "won", "2026-03-03", ""],  # before its quote and its second pricing view
        ["nobody", "won", "2026-03-09", ""],
    ]
    path = write_csv(tmp_path / "outcomes.csv", rows)
    url = ["--database-url", db_url]
    first = runner.invoke(app, ["outcomes", "import", str(path), *url])
    assert first.exit_code == 0, first.output
    assert (
        "imported 3 outcomes from 4 rows (0 updated, 0 already there, 1 row refused)"
        in first.output
    )
    assert f"refused {path}:5: unknown lead: no lead has the lead id 'nobody'" in first.output
    again = runner.invoke(app, ["outcomes", "import", str(path), *url])
    assert (
        "imported 0 outcomes from 4 rows (0 updated, 3 already there, 1 row refused)"
        in again.output
    )

    missing = runner.invoke(app, ["outcomes", "import", str(tmp_path / "none.csv"), *url])
    assert missing.exit_code == 2 and "no such file" in missing.output
    undated = write_csv(tmp_path / "undated.csv", [["lead_id", "outcome"], ["c1", "won"]])
    refused = runner.invoke(app, ["outcomes", "import", str(undated), *url])
    assert refused.exit_code == 2 and "no date column" in refused.output

    listed = runner.invoke(app, ["outcomes", "list", "--json", *url])
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.output)
    assert [(i["lead_id"], i["good"], i["reason"]) for i in doc["items"]] == [
        ("c2", False, "price"),  # the latest first; on the same date, the last stored
        ("c1", True, "signed"),
        ("c3", True, None),
    ]
    assert doc["leads_with_outcome"] == 3
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            ids = {o.lead_id: o.id for o in OutcomeStore(conn).listing()}
    finally:
        engine.dispose()
    assert {i["lead_id"]: i["id"] for i in doc["items"]} == ids  # the ids the API gives
    text = runner.invoke(app, ["outcomes", "list", "--lead", "c2", *url])
    assert "2026-03-09 00:00 lead c2: bad (price) [import by cli]" in text.output

    report = runner.invoke(app, ["rules", "report", "--json", *url])
    assert report.exit_code == 0, report.output
    rules = {r["rule_id"]: r for r in json.loads(report.output)["rules"]}
    # c1 and c2 asked for a quote before their outcome, c3 had not yet: one good of two.
    quote = rules["quote-request"]
    assert (quote["fired"], quote["good_with"], quote["not_fired"], quote["good_without"]) == (
        2,
        1,
        1,
        1,
    )
    assert quote["share_with"] == 0.5 and quote["lift"] == 0.5
    assert (rules["pricing-page"]["fired"], rules["pricing-page"]["good_with"]) == (3, 2)
    # Only c3 (good) read testimonials; of c1 and c2 one was good: lift 1 / 0.5.
    assert rules["testimonials"]["fired"] == 1 and rules["testimonials"]["lift"] == 2.0
    table = runner.invoke(app, ["rules", "report", *url])
    assert table.exit_code == 0, table.output
    assert "3 leads with an outcome, 2 good" in table.output and "quote-request" in table.output


def test_cli_import_counts_updates_warns_of_contradictions_and_fails_when_nothing_stored(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    _seed(db_url)
    url = ["--database-url", db_url]
    header = ["lead_id", "outcome", "date", "reason"]
    first = write_csv(tmp_path / "first.csv", [header, ["c1", "won", "2026-03-09", "signed"]])
    assert runner.invoke(app, ["outcomes", "import", str(first), *url]).exit_code == 0
    fixed = write_csv(
        tmp_path / "fixed.csv",
        [
            header,
            ["c1", "lost", "2026-03-09", "cancelled"],  # a correction of the stored one
            ["c2", "won", "2026-03-09", ""],
            ["c2", "lost", "2026-03-09", ""],  # contradicts line 3: kept
        ],
    )
    done = runner.invoke(app, ["outcomes", "import", str(fixed), *url])
    assert done.exit_code == 0, done.output
    assert (
        f"warning: {fixed}:4: lead 'c2' on 2026-03-09: bad contradicts line 3 (good); "
        "the last one is kept" in done.output
    )
    assert (
        "imported 1 outcome from 3 rows (1 updated, 0 already there, 1 overridden by a later "
        "row, 0 rows refused)" in done.output
    )
    listed = json.loads(runner.invoke(app, ["outcomes", "list", "--json", *url]).output)
    assert sorted((i["lead_id"], i["good"], i["reason"]) for i in listed["items"]) == [
        ("c1", False, "cancelled"),
        ("c2", False, None),
    ]

    refused = write_csv(
        tmp_path / "refused.csv",
        [header, ["ghost", "won", "2026-03-09", ""], ["c1", "maybe", "2026-03-09", ""]],
    )
    done = runner.invoke(app, ["outcomes", "import", str(refused), *url])
    assert done.exit_code == 2, done.output
    assert f"refused {refused}:2: unknown lead: no lead has the lead id 'ghost'" in done.output
    assert "imported 0 outcomes from 2 rows (0 updated, 0 already there, 2 rows refused)" in (
        done.output
    )
    assert "no outcome of" in done.output and "every row was refused" in done.output
    only_header = write_csv(tmp_path / "empty.csv", [header])
    assert runner.invoke(app, ["outcomes", "import", str(only_header), *url]).exit_code == 0

    latin = tmp_path / "latin1.csv"
    latin.write_bytes(
        "lead_id,outcome,date,reason\nc3,won,2026-03-09,d\u00e9j\u00e0\n".encode("latin-1")
    )
    done = runner.invoke(app, ["outcomes", "import", str(latin), *url])
    assert done.exit_code == 2
    assert f"{latin}:2: not UTF-8 text" in done.output and "must be UTF-8" in done.output
    packed = tmp_path / "c3.csv.gz"
    packed.write_bytes(gzip.compress(b"lead_id,outcome,date\nc3,won,2026-03-09\n"))
    done = runner.invoke(app, ["outcomes", "import", str(packed), *url])
    assert done.exit_code == 0 and "imported 1 outcome from 1 row" in done.output


def test_cli_rules_report_from_files(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "lead_id,title,won\n"
        "a,Director,yes\n"
        "b,Director,yes\n"
        "c,Student,no\n"
        "d,Director,no\n"
        "e,Student,maybe\n",
        encoding="utf-8",
    )
    events = tmp_path / "events.jsonl"
    lines = [
        {"id": f"{who}-{n}", "lead_id": who, "type": "page_viewed",
         "timestamp": f"2026-03-0{n}T10:00:00Z", "properties": {"path": "/pricing"}}
        for who, n in [("a", 1), ("a", 5), ("b", 2), ("c", 6), ("d", 7)]
    ]  # fmt: skip
    events.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    files = ["--leads", str(leads), "--events", str(events)]
    by_column = runner.invoke(app, ["rules", "report", *files, "--outcome", "won", "--json"])
    assert by_column.exit_code == 0, by_column.output
    doc = json.loads(by_column.stdout)
    assert (doc["examples"], doc["good"]) == (4, 2)
    rules = {r["rule_id"]: r for r in doc["rules"]}
    assert rules["pricing-page"]["fired"] == 4 and rules["pricing-page"]["lift"] is None
    senior = rules["senior-title"]
    assert (senior["fired"], senior["good_with"], senior["not_fired"]) == (3, 2, 1)
    assert f"skipped {leads}:6: won: outcome 'maybe' is not one of" in by_column.stderr

    # An outcomes file dated between the events: a's second and c's and d's views drop.
    outcomes = write_csv(
        tmp_path / "outcomes.csv",
        [
            ["lead_id", "outcome", "date"],
            ["a", "won", "2026-03-03"],
            ["c", "lost", "2026-03-04"],
            ["d", "lost", "2026-03-08"],
        ],
    )
    by_file = runner.invoke(app, ["rules", "report", *files, "--outcome", str(outcomes), "--json"])
    assert by_file.exit_code == 0, by_file.output
    rules = {r["rule_id"]: r for r in json.loads(by_file.stdout)["rules"]}
    pricing = rules["pricing-page"]
    assert (pricing["fired"], pricing["good_with"], pricing["not_fired"]) == (2, 1, 1)
    assert pricing["weight"] == 10.0  # a's one view before the win, d's one view

    missing = runner.invoke(app, ["rules", "report", *files])
    assert missing.exit_code == 2 and "--outcome COLUMN_OR_FILE is needed" in missing.output
    wrong = runner.invoke(app, ["rules", "report", *files, "--outcome", "nope"])
    assert wrong.exit_code == 2 and "not a file, nor a column" in wrong.output


# HTTP ----------------------------------------------------------------------------


def _admin(api: Api) -> dict[str, str]:  # noqa: F811
    return {"Authorization": f"Bearer {api.admin_key}"}


def test_api_takes_outcomes_one_or_many_with_errors_by_index(api: Api) -> None:  # noqa: F811
    now = datetime.now(UTC)
    for user in ("h1", "h2"):
        three_days_ago = (now - timedelta(days=3)).isoformat()
        body = {"userId": user, "messageId": f"{user}-p", "timestamp": three_days_ago,
                "properties": {"path": "/pricing"}}  # fmt: skip
        assert api.send("page", body).status_code == 200
        traits = {"email": f"{user}@acme.example"}
        ident = {"userId": user, "messageId": f"{user}-i", "traits": traits,
                 "timestamp": three_days_ago}  # fmt: skip
        assert api.send("identify", ident).status_code == 200
    when = (now - timedelta(days=1)).isoformat()

    one = api.client.post(
        "/api/outcomes", json={"lead_id": "h1", "outcome": "won", "at": when}, headers=_admin(api)
    )
    assert one.status_code == 200, one.text
    assert one.json() == {
        "received": 1,
        "imported": 1,
        "updated": 0,
        "already": 0,
        "overridden": 0,
        "errors": [],
        "warnings": [],
    }

    many = api.client.post(
        "/api/outcomes",
        json={
            "items": [
                {"email": "H2@acme.example", "outcome": "lost", "at": when, "reason": "price"},
                {"lead_id": "h1", "outcome": "won", "at": when},  # already there
                {"lead_id": "h3", "outcome": "won", "at": when},
                {"lead_id": "h2", "outcome": "perhaps", "at": when},
                {"lead_id": "h2", "outcome": "won"},
                {"lead_id": "h2", "outcome": "won", "at": when, "colour": "red"},
                "h2 won",
            ]
        },
        headers=_admin(api),
    )
    assert many.status_code == 200, many.text
    doc = many.json()
    assert (doc["received"], doc["imported"], doc["already"]) == (7, 1, 1)
    assert [(e["index"], e["error"].split(":")[0]) for e in doc["errors"]] == [
        (2, "unknown lead"),
        (3, "outcome 'perhaps' is not one of good/bad, won/lost, yes/no, 1/0, true/false"),
        (4, "no date (an outcome must say when it became known)"),
        (5, "unknown field(s) colour (known"),
        (6, "expected an object, got text"),
    ]

    none = api.client.post(
        "/api/outcomes", json=[{"lead_id": "h9", "outcome": "won", "at": when}], headers=_admin(api)
    )
    assert none.status_code == 422 and none.json()["errors"][0]["index"] == 0
    empty = api.client.post("/api/outcomes", json=[], headers=_admin(api))
    assert (empty.status_code, empty.json()["error"]) == (400, "no outcomes given")
    not_list = api.client.post("/api/outcomes", json={"items": "h1"}, headers=_admin(api))
    assert not_list.status_code == 400 and not_list.json()["parameter"] == "items"
    assert api.client.post("/api/outcomes", json={}).status_code == 401
    writer = {"Authorization": f"Bearer {api.write_key}"}
    assert api.client.post("/api/outcomes", json={}, headers=writer).status_code == 403

    listed = api.client.get("/api/outcomes", headers=_admin(api))
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert sorted((i["lead_id"], i["good"], i["source"]) for i in items) == [
        ("h1", True, "api"),
        ("h2", False, "api"),
    ]
    assert {i["actor"] for i in items} == {"admin key #2"}
    only = api.client.get("/api/outcomes?lead_id=h2", headers=_admin(api)).json()["items"]
    assert [(i["lead_id"], i["reason"]) for i in only] == [("h2", "price")]
    assert api.client.get("/api/outcomes?source=x", headers=_admin(api)).status_code == 422

    report = api.client.get("/api/rules/report", headers=_admin(api))
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["examples"], body["good"]) == (2, 1)
    pricing = next(r for r in body["rules"] if r["rule_id"] == "pricing-page")
    assert (pricing["fired"], pricing["good_with"], pricing["not_fired"]) == (2, 1, 0)
    assert api.client.get("/api/rules/report").status_code == 401


def test_api_counts_updates_warns_of_contradictions_and_checks_every_field(
    api: Api,  # noqa: F811
) -> None:
    now = datetime.now(UTC)
    body = {"userId": "k1", "messageId": "k1-p", "timestamp": (now - timedelta(days=3)).isoformat(),
            "properties": {"path": "/pricing"}}  # fmt: skip
    assert api.send("page", body).status_code == 200
    when = (now - timedelta(days=1)).isoformat()
    post = lambda doc: api.client.post("/api/outcomes", json=doc, headers=_admin(api))  # noqa: E731

    first = post({"lead_id": "k1", "outcome": "won", "at": when, "reason": "signed"})
    assert (first.status_code, first.json()["imported"]) == (200, 1)
    fixed = post({"lead_id": "k1", "outcome": "lost", "at": when, "reason": "cancelled"})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json() == {
        "received": 1,
        "imported": 0,
        "updated": 1,
        "already": 0,
        "overridden": 0,
        "errors": [],
        "warnings": [],
    }
    same = post({"lead_id": "k1", "outcome": "lost", "at": when, "reason": "cancelled"})
    assert (same.json()["already"], same.json()["updated"]) == (1, 0)
    listed = api.client.get("/api/outcomes?lead_id=k1", headers=_admin(api)).json()["items"]
    assert [(i["good"], i["reason"]) for i in listed] == [(False, "cancelled")]

    later = (now - timedelta(hours=1)).isoformat()
    contra = post(
        [
            {"lead_id": "k1", "outcome": "won", "at": later},
            {"lead_id": "k1", "outcome": "won", "at": later, "actor": "dana"},
            {"lead_id": "k1", "outcome": "lost", "at": later, "note": "lost to a rival"},
        ]
    )
    doc = contra.json()
    assert (doc["imported"], doc["overridden"], doc["errors"]) == (1, 2, [])
    [warning] = doc["warnings"]
    assert warning["index"] == 2
    assert warning["warning"].endswith(
        "bad (note 'lost to a rival') contradicts item 1 (good); the last one is kept"
    )
    listed = api.client.get("/api/outcomes?lead_id=k1", headers=_admin(api)).json()["items"]
    assert [(i["good"], i["note"]) for i in listed] == [(False, "lost to a rival"), (False, None)]

    huge_id = "x" * 400_000
    bad = post(
        [
            {"lead_id": "k1", "outcome": "won", "at": when, "reason": {"a": 1}},
            {"lead_id": "k1", "outcome": "won", "at": when, "reason": "r" * 100_000},
            {"lead_id": "k1", "outcome": "won", "at": "0001-01-01"},
            {"lead_id": huge_id, "outcome": "won", "at": when},
            None,
            [1],
            {"lead_id": True, "outcome": "won", "at": when},
            {"lead_id": "k1", "outcome": "won", "at": 20260301},
        ]
    )
    assert bad.status_code == 422
    errors = {e["index"]: e["error"] for e in bad.json()["errors"]}
    assert errors[0] == "reason: expected text, got an object"
    assert errors[1] == "reason: 100,000 characters; at most 1,000"
    assert errors[2] == "date 0001-01-01T00:00:00+00:00 is before 1990"
    assert errors[3].startswith("unknown lead: no lead has the lead id 'xxxx")
    assert errors[3].endswith("... (400,000 characters)") and len(errors[3]) < 200
    assert errors[4] == "expected an object, got null"
    assert errors[5] == "expected an object, got a list"
    assert errors[6] == "lead_id: expected text, got true"
    assert errors[7] == "date: expected ISO 8601 text, got a number"
    null = api.client.post(
        "/api/outcomes",
        content=b"null",
        headers={**_admin(api), "Content-Type": "application/json"},
    )
    assert null.status_code == 422
    assert null.json()["errors"] == [{"index": 0, "error": "expected an object, got null"}]
    not_list = post({"items": 3})
    assert (not_list.status_code, not_list.json()["error"]) == (
        400,
        "items: expected a list of outcomes, got a number",
    )

    # The documented limits: 500 KB a request, and 10,000 items; 10,000 fit only when
    # each takes under about 50 bytes (compact JSON, as httpx sends it).
    minimal = {"lead_id": "k1", "outcome": 1, "at": "2026-01-01"}
    fits = post([minimal] * 10_000)
    assert fits.status_code == 200 and fits.json()["received"] == 10_000
    stamped = {"lead_id": "k1", "outcome": 1, "at": "2026-01-01T00:00:00Z"}
    too_big = post([stamped] * 10_000)
    assert too_big.status_code == 413, too_big.text
    assert post([stamped] * 8_500).status_code == 200  # 57 bytes each
    too_many = post([{}] * 10_001)
    assert too_many.status_code == 413
    assert too_many.json()["error"] == "at most 10,000 outcomes in one request"


# Real data ---------------------------------------------------------------------------


@pytest.mark.realdata
def test_xeducation_rules_report_finds_the_enquiry_form_lifts_conversion() -> None:
    if not XEDU_LEADS.is_file():
        pytest.skip(f"real data not found at {XEDU_LEADS} (the ../shared/data folder is absent)")
    result = runner.invoke(
        app,
        [
            "rules",
            "report",
            "--leads",
            str(XEDU_LEADS),
            "--mapping",
            str(EXAMPLES / "xeducation" / "mapping.yaml"),
            "--model",
            str(EXAMPLES / "xeducation" / "model.yaml"),
            "--outcome",
            "Converted",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["examples"], doc["good"]) == (9240, 3561)
    rules = {r["rule_id"]: r for r in doc["rules"]}
    form = rules["enquiry-form"]
    assert form["lift"] > 2 and form["lift_ci"][0] > 1  # the form's leads convert far more
    assert form["share_with"] > 0.85
    # A chat that went no further is a bad sign, and the model's negative points agree.
    cold = rules["chat-went-cold"]
    assert cold["lift_ci"][1] < 1 and cold["suggested_points"] < 0
