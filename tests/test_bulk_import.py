"""`leadgate import`: a simulated history through the live ingest path, on SQLite and
PostgreSQL, checked against the reference evaluator (`leadgate score`)."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from leadgate.adapters.model_source import read_model
from leadgate.cli import app
from leadgate.services.bulk_import import ImportFailed, import_events
from leadgate.simulation import main_simulate
from leadgate.store import create_engine, upgrade
from leadgate.store import tables as t
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)

MODEL = read_model()
AS_OF = datetime(2026, 4, 1, tzinfo=UTC)  # after the simulated 90 days from 2026-01-01
AS_OF_TEXT = "2026-04-01T00:00:00Z"
runner = CliRunner()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated Segment history (every persona, identify calls, anonymous visits)."""
    folder = tmp_path_factory.mktemp("history")
    path = folder / "events.jsonl.gz"
    main_simulate(40, 90, 11, path, folder / "truth.csv", events_per_lead=12.0)
    return path


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:  # noqa: F811
    upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def row_counts(db: Engine) -> dict[str, int]:
    tables = (t.leads, t.identities, t.events, t.score_ledger, t.stage_history)
    with db.connect() as conn:
        return {
            x.name: conn.execute(select(func.count()).select_from(x)).scalar_one() for x in tables
        }


def reference_stages(events: Path, out: Path) -> dict[str, str]:
    """Stages from `leadgate score` on the same file and as-of time."""
    result = runner.invoke(
        app, ["score", "--events", str(events), "--at", AS_OF_TEXT, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        return {row["lead_id"]: row["stage"] for row in csv.DictReader(f)}


def test_import_gives_the_stages_of_the_reference_evaluator_and_reimport_adds_nothing(
    db: Engine,
    history: Path,
    tmp_path: Path,
) -> None:
    # Chunks smaller than the file: leads whose messages span two transactions are decided twice.
    summary = import_events(db, MODEL, history, chunk=97, now=AS_OF)
    with gzip.open(history) as f:
        messages = sum(1 for _ in f)
    assert summary.messages == summary.accepted == messages
    assert summary.error_count == 0 and summary.duplicates == 0
    assert summary.stored == row_counts(db)["events"] > 0
    expected = reference_stages(history, tmp_path / "scored.csv")
    with db.connect() as conn:
        stored = dict(conn.execute(select(t.leads.c.id, t.leads.c.stage)).tuples().all())
    # Leads the reference leaves "new" are stored as new (nothing recorded) too; those
    # it makes sql are handed over to sales at once.
    assert stored == {i: "handed_over" if s == "sql" else s for i, s in expected.items()}
    assert sum(summary.stages.values()) == len(expected)
    assert len(set(expected.values())) >= 3  # the history reaches several stages

    before = row_counts(db)
    again = import_events(db, MODEL, history, chunk=500, now=AS_OF)
    assert again.stored == 0 and again.duplicates == summary.stored
    assert row_counts(db) == before
    assert again.stages == summary.stages


def test_unreadable_lines_are_reported_with_file_and_line_and_the_rest_imported(
    db: Engine, tmp_path: Path
) -> None:
    good = [
        {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {"title": "CEO"}},
        {"type": "page", "userId": "u1", "messageId": "p1", "properties": {"path": "/pricing"}},
        {"type": "track", "userId": "u1", "messageId": "t1", "event": "Guide Downloaded"},
        {"type": "page", "userId": "u2", "messageId": "p2", "properties": {"path": "/"}},
    ]
    lines = [orjson.dumps(m) for m in good]
    lines.insert(1, b'{"type": "page", "userId": ')  # line 2: cut short
    lines.insert(3, b"[1, 2]")  # line 4: not an object
    bad_time = {"type": "page", "userId": "u3", "messageId": "p3", "timestamp": "yesterday"}
    lines.append(orjson.dumps(bad_time))  # line 7: refused by the Segment code
    lines.insert(5, b"")  # line 6: blank, skipped silently
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    reported: list[str] = []
    summary = import_events(
        db, MODEL, path, chunk=2, now=AS_OF, on_error=lambda e: reported.append(str(e))
    )
    assert summary.error_count == 3
    assert sorted(e.line for e in summary.errors) == [2, 4, 8]
    assert any(r.startswith(f"{path}:2: invalid JSON") for r in reported)
    assert any(r.startswith(f"{path}:4: expected a JSON object") for r in reported)
    assert any(r.startswith(f"{path}:8: timestamp") for r in reported)
    assert summary.stored == 3 and summary.accepted == 4
    assert row_counts(db)["events"] == 3


def test_a_truncated_gzip_file_keeps_what_was_read(
    db: Engine, history: Path, tmp_path: Path
) -> None:
    data = history.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    summary = import_events(db, MODEL, cut, chunk=50, now=AS_OF)
    assert summary.error_count == 1
    assert "ends early" in summary.errors[0].reason
    assert summary.errors[0].line == summary.messages + 1
    assert summary.stored == row_counts(db)["events"] > 0


def test_the_import_command_prints_a_summary_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    msg = {"type": "page", "userId": "u1", "messageId": "p1", "properties": {"path": "/pricing"}}
    path.write_bytes(orjson.dumps(msg) + b"\nnot json\n")
    url = f"sqlite:///{tmp_path / 'lg.db'}"
    argv = ["import", "--events", str(path), "--database-url", url, "--at", AS_OF_TEXT]
    result = runner.invoke(app, [*argv, "--chunk", "10"])
    assert result.exit_code == 0, result.output
    assert f"{path}:2: invalid JSON" in result.output
    assert "1 message, 1 stored, 0 duplicates, 1 error" in result.output.replace("\n", " ")
    assert "leads per stage: nurturing 1" in result.output
    again = runner.invoke(app, argv)
    assert "0 stored, 1 duplicate," in again.output.replace("\n", " ")


def test_import_refuses_what_it_cannot_read(db: Engine, tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="no such file"):
        import_events(db, MODEL, tmp_path / "missing.jsonl")
    table = tmp_path / "events.csv"
    table.write_text("id,lead_id\n1,2\n")
    with pytest.raises(ImportFailed, match="not CSV"):
        import_events(db, MODEL, table)
    result = runner.invoke(app, ["import", "--events", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output
