"""The `leadgate` command on small files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadgate.cli import app

runner = CliRunner()

LEADS = """lead_id,email,title,company_size
L1,ann@acme.io,Head of Marketing,50
L2,bob@gmail.com,Student,
L3,cat@rival-agency.example,Owner,20
L4,dan@quiet.io,Engineer,5000
"""


def _events() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(lead: str, kind: str, at: str, **props: object) -> None:
        rows.append(
            {
                "id": f"e{len(rows)}",
                "lead_id": lead,
                "type": kind,
                "timestamp": at,
                "properties": props,
            }
        )

    for day in ("01", "05", "09"):
        add("L1", "page_viewed", f"2026-03-{day}T10:00:00Z", path="/pricing")
    for hour in ("10", "11", "12"):
        add("L1", "page_viewed", f"2026-03-10T{hour}:00:00+02:00", path="/services/seo")
    for n in range(3):
        add("L1", "asset_downloaded", f"2026-03-1{n}T09:00:00Z", asset=f"guide-{n}")
    add("L1", "quote_requested", "2026-03-20T09:00:00Z", message="Quote for a new site?")
    add(
        "L2",
        "form_submitted",
        "2026-03-02T09:00:00Z",
        form="contact",
        message="Do you have an internship for me?",
    )
    add("L3", "page_viewed", "2026-03-03T09:00:00Z", path="/pricing")
    return rows


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    leads = tmp_path / "leads.csv"
    leads.write_text(LEADS)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    return leads, events


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["lead_id"]: row for row in csv.DictReader(f)}


def test_score_writes_one_row_per_lead_with_stage_and_reasons(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    leads, events = files
    out = tmp_path / "scored.csv"
    result = runner.invoke(
        app,
        [
            "score",
            "--leads",
            str(leads),
            "--events",
            str(events),
            "--out",
            str(out),
            "--at",
            "2026-03-21T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = _read_csv(out)
    assert set(rows) == {"L1", "L2", "L3", "L4"}
    assert list(rows["L1"])[:6] == [
        "lead_id",
        "stage",
        "score",
        "fit_score",
        "engagement_score",
        "reasons",
    ]
    assert rows["L1"]["stage"] == "sql"
    assert float(rows["L1"]["score"]) >= 40
    assert "pricing page" in rows["L1"]["reasons"]
    assert rows["L2"]["stage"] == "disqualified"
    assert rows["L2"]["disqualified_reason"] == "job_seeker"
    assert rows["L3"]["disqualified_reason"] == "competitor"
    assert rows["L4"]["stage"] == "new"
    assert float(rows["L1"]["fit_score"]) == 20.0
    assert "sql" in result.output and "scored 4 leads" in result.output


def test_score_as_json_lines(files: tuple[Path, Path], tmp_path: Path) -> None:
    leads, events = files
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(
        app, ["score", "--leads", str(leads), "--events", str(events), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["lead_id"] for r in rows] == ["L1", "L2", "L3", "L4"]
    # Without --at, the scoring time is the latest event read.
    assert rows[0]["as_of"] == "2026-03-20T09:00:00+00:00"
    assert isinstance(rows[0]["score"], float)


def test_unreadable_rows_are_reported_with_line_and_counted(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    leads, events = files
    lines = events.read_text().splitlines()
    lines.insert(
        2,
        '{"id": "bad1", "lead_id": "L1", "type": "page_viewed", '
        '"timestamp": "2026-3-02T10:00:00Z"}',
    )
    lines.insert(4, "{not json")
    events.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scored.csv"
    result = runner.invoke(
        app, ["score", "--leads", str(leads), "--events", str(events), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "events.jsonl:3" in result.output and "2026-3-02" in result.output
    assert "events.jsonl:5" in result.output
    assert "2 unreadable rows" in result.output
    assert len(_read_csv(out)) == 4  # the rest were scored


def test_leads_only_source(files: tuple[Path, Path], tmp_path: Path) -> None:
    leads, _ = files
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--leads", str(leads), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _read_csv(out)
    assert rows["L1"]["stage"] == "new"
    assert float(rows["L1"]["score"]) == 20.0
    assert rows["L3"]["stage"] == "disqualified"


def test_segment_events_without_a_leads_file(tmp_path: Path) -> None:
    messages = [
        {
            "type": "page",
            "anonymousId": "a1",
            "messageId": "m1",
            "timestamp": "2026-03-01T10:00:00Z",
            "properties": {"path": "/pricing"},
        },
        {
            "type": "identify",
            "anonymousId": "a1",
            "userId": "u1",
            "messageId": "m2",
            "timestamp": "2026-03-01T10:05:00Z",
            "traits": {"email": "ann@acme.io", "title": "Founder"},
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Quote Requested",
            "messageId": "m3",
            "timestamp": "2026-03-02T10:00:00Z",
            "properties": {"message": "price?"},
        },
    ]
    events = tmp_path / "segment.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in messages))
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--events", str(events), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _read_csv(out)
    assert list(rows) == ["u1"]  # the anonymous page view joined the lead
    assert rows["u1"]["email"] == "ann@acme.io"
    assert "pricing page" in rows["u1"]["reasons"]
    assert "requested a quote" in rows["u1"]["reasons"]


def test_explain_prints_rules_events_and_stage(files: tuple[Path, Path]) -> None:
    leads, events = files
    result = runner.invoke(
        app,
        [
            "explain",
            "L1",
            "--leads",
            str(leads),
            "--events",
            str(events),
            "--at",
            "2026-03-21T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lead L1: SQL" in result.output
    assert "pricing page (3 events, capped at 20 in total" in result.output
    assert "page_viewed /pricing" in result.output
    assert "intent: quote_requested" in result.output


def test_explain_unknown_lead(files: tuple[Path, Path]) -> None:
    leads, _ = files
    result = runner.invoke(app, ["explain", "nobody", "--leads", str(leads)])
    assert result.exit_code == 1
    assert "no lead 'nobody'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--leads", "missing.csv"], "--leads missing.csv: no such file"),
        ([], "give --leads, --events or both"),
        (["--leads", "{leads}", "--at", "yesterday"], "--at: not an ISO 8601 timestamp"),
        (["--leads", "{leads}", "--model", "nope.yaml"], "nope.yaml: no such model file"),
        (["--leads", "{leads}", "--mapping", "nope.yaml"], "--mapping nope.yaml: no such file"),
    ],
)
def test_score_errors_name_the_problem(
    files: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    leads, _ = files
    argv = [a.replace("{leads}", str(leads)) for a in args]
    result = runner.invoke(app, ["score", "--out", str(tmp_path / "o.csv"), *argv])
    assert result.exit_code == 2
    assert message in result.output


def test_model_check_accepts_the_default_and_names_problems(tmp_path: Path) -> None:
    good = runner.invoke(app, ["model", "show"])
    assert good.exit_code == 0 and "webstudio-default" in good.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nthresholds: {mql: 10, sql: 20}\nrules:\n"
        "  - id: a\n    event: page_viewed\n    where: {pth: /x}\n    points: 5\n"
    )
    result = runner.invoke(app, ["model", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:6: rule 'a': unknown event field 'pth' for page_viewed" in result.output


def test_simulate_is_deterministic(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        events, truth = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.csv"
        result = runner.invoke(
            app,
            [
                "simulate",
                "--leads",
                "50",
                "--days",
                "30",
                "--seed",
                "3",
                "--out",
                str(events),
                "--truth",
                str(truth),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append((events.read_bytes(), truth.read_bytes()))
    assert outputs[0] == outputs[1]
    assert len(outputs[0][1].splitlines()) == 51


def test_truncated_gzip_keeps_rows_read_and_names_the_file(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl.gz"
    result = runner.invoke(
        app,
        ["simulate", "--leads", "300", "--out", str(events), "--truth", str(tmp_path / "t.csv")],
    )
    assert result.exit_code == 0, result.output
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(events.read_bytes()[: events.stat().st_size // 2])
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--events", str(cut), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cut.jsonl.gz" in result.output and "ends early or is corrupt" in result.output
    assert 0 < len(_read_csv(out)) < 300


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("scored.txt", "give a file ending in .csv, .jsonl"),
        (".", "is a directory; give a file name"),
    ],
)
def test_bad_output_is_refused_before_any_work(
    files: tuple[Path, Path], tmp_path: Path, out: str, message: str
) -> None:
    leads, _ = files
    target = tmp_path / out if out != "." else tmp_path
    result = runner.invoke(app, ["score", "--leads", str(leads), "--out", str(target)])
    assert result.exit_code == 2
    assert message in result.output


def test_a_directory_given_as_input(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["score", "--leads", str(tmp_path), "--out", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 2
    assert "is a directory, not a file" in result.output


def test_unreadable_leads_file_is_fatal(tmp_path: Path) -> None:
    leads = tmp_path / "semi.csv"
    leads.write_text("lead_id;email\nL1;a@b.io\n")
    result = runner.invoke(app, ["score", "--leads", str(leads), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "semi.csv:1" in result.output and "no lead could be read" in result.output


def test_outcomes_use_a_converted_column_and_refuse_unclear_values(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    leads, events = files
    truth = tmp_path / "truth.csv"
    truth.write_text("lead_id,converted\nL1,1\nL2,0\nL3,0\nL4,0\n")
    out = tmp_path / "o.csv"
    args = ["score", "--leads", str(leads), "--events", str(events), "--out", str(out)]
    result = runner.invoke(app, [*args, "--outcomes", str(truth)])
    assert result.exit_code == 0, result.output
    assert "converted overall 25.0%" in result.output
    truth.write_text("lead_id,converted\nL1,maybe\n")
    result = runner.invoke(app, [*args, "--outcomes", str(truth)])
    assert result.exit_code == 2
    assert "truth.csv:2: outcome 'maybe' is not one of good/bad" in result.output
    result = runner.invoke(app, [*args, "--outcome-column", "converted"])
    assert result.exit_code == 2 and "need --outcomes FILE" in result.output


def test_events_after_now_are_ignored_with_a_warning(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    leads, events = files
    with events.open("a") as f:
        f.write(
            json.dumps(
                {
                    "id": "late",
                    "lead_id": "L1",
                    "type": "page_viewed",
                    "timestamp": "2099-01-01T00:00:00Z",
                    "properties": {},
                }
            )
            + "\n"
        )
    out = tmp_path / "o.csv"
    result = runner.invoke(
        app, ["score", "--leads", str(leads), "--events", str(events), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "1 event dated after now are ignored" in result.output


def test_repeated_lead_ids_are_reported(tmp_path: Path) -> None:
    leads = tmp_path / "dup.csv"
    leads.write_text("lead_id,email\nD1,a@b.io\nD1,c@d.io\n")
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["score", "--leads", str(leads), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 lead row repeated an earlier lead id" in result.output
    assert _read_csv(out)["D1"]["email"] == "c@d.io"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "same.jsonl", "--truth", "same.jsonl"], "give a file ending in .csv"),
        (["--out", "e.csv", "--truth", "t.csv"], "give a file ending in .jsonl, .ndjson"),
        (["--out", "e.jsonl", "--truth", "t.csv", "--seed", "-1"], "Invalid value"),
        (["--out", "e.jsonl", "--truth", "t.csv", "--events-per-lead", "inf"], "Invalid value"),
    ],
)
def test_simulate_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    argv = [str(tmp_path / a) if a.endswith((".jsonl", ".csv")) else a for a in args]
    result = runner.invoke(app, ["simulate", "--leads", "5", *argv])
    assert result.exit_code == 2
    assert message in result.output


def test_scores_are_never_rounded_across_a_threshold(tmp_path: Path) -> None:
    model = tmp_path / "m.yaml"
    model.write_text(
        "name: t\nthresholds: {mql: 40, sql: 40}\nrules:\n"
        "  - {id: visit, event: page_viewed, points: 39.996}\n"
    )
    events = tmp_path / "e.jsonl"
    events.write_text(
        json.dumps(
            {"id": "1", "lead_id": "L", "type": "page_viewed", "timestamp": "2026-01-01T00:00:00Z"}
        )
        + "\n"
    )
    out = tmp_path / "o.csv"
    result = runner.invoke(
        app, ["score", "--events", str(events), "--model", str(model), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    row = _read_csv(out)["L"]
    assert row["stage"] == "nurturing"
    assert float(row["score"]) < 40
    assert "score 39.996 < MQL threshold 40" in row["cause"]


def test_fast_engine_gives_the_reference_stages_and_scores(tmp_path: Path) -> None:
    events, truth = tmp_path / "e.jsonl", tmp_path / "t.csv"
    result = runner.invoke(
        app, ["simulate", "--leads", "400", "--out", str(events), "--truth", str(truth)]
    )
    assert result.exit_code == 0, result.output
    outputs = {}
    for engine in ("reference", "fast"):
        out = tmp_path / f"{engine}.csv"
        result = runner.invoke(
            app, ["score", "--events", str(events), "--out", str(out), "--engine", engine]
        )
        assert result.exit_code == 0, result.output
        outputs[engine] = _read_csv(out)
    ref, fast = outputs["reference"], outputs["fast"]
    assert set(ref) == set(fast) and len(ref) == 400
    for lead_id, row in ref.items():
        assert fast[lead_id]["stage"] == row["stage"], lead_id
        assert float(fast[lead_id]["score"]) == pytest.approx(float(row["score"]), abs=0.006)
    assert {r["stage"] for r in fast.values()} >= {"nurturing", "mql", "sql", "disqualified"}
    assert any(r["reasons"].startswith("disqualified:") for r in fast.values())


def test_fast_engine_refuses_what_it_cannot_read(files: tuple[Path, Path], tmp_path: Path) -> None:
    leads, events = files
    result = runner.invoke(
        app,
        [
            "score",
            "--leads",
            str(leads),
            "--events",
            str(events),
            "--engine",
            "fast",
            "--out",
            str(tmp_path / "o.csv"),
        ],
    )
    assert result.exit_code == 2
    assert "--engine fast reads --events (Segment JSON lines) alone" in result.output


def test_db_upgrade_creates_the_schema_and_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lg.db'}"
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
        assert result.exit_code == 0, result.output
        assert "database at the latest schema" in result.output
    result = runner.invoke(app, ["db", "upgrade", "--database-url", "not a url"])
    assert result.exit_code == 2
    assert "cannot upgrade not a url" in result.output


def test_a_leads_file_given_as_events_is_refused_with_a_hint(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,email,title\nL1,a@acme.com,CEO\n")
    result = runner.invoke(app, ["score", "--events", str(leads), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "missing event column 'type'" in result.output
    assert "no event could be read (is it a leads file? pass that with --leads)" in result.output
