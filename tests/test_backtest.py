"""Backtests: the vectorised replay gives the reference's checkpoints, and the metrics
are right on small histories worked out by hand."""

from __future__ import annotations

import gzip
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadgate.cli import app
from leadgate.domain.events import Event, Lead
from leadgate.domain.model import ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.outcomes import Outcome
from leadgate.fastscore import connect
from leadgate.learning.backtest import (
    Checkpoints,
    compare,
    handover_times,
    reference_checkpoints,
)
from leadgate.learning.replay import backtest_history, fast_checkpoints, store_from_inputs
from test_fastscore import MODELS, random_history
from test_store import db_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when configured)


def _grouped(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in events:
        out.setdefault(event.lead_id, []).append(event)
    return out


def _fast(
    model: ScoringModel, leads: dict[str, Lead], events: dict[str, list[Event]]
) -> Checkpoints:
    con = connect(memory_limit="1GB")
    try:
        # small batches: several scoring runs, as on a large history
        return fast_checkpoints(model, store_from_inputs(con, leads, events), batch_events=400)
    finally:
        con.close()


def assert_same(ref: Checkpoints, fast: Checkpoints) -> None:
    assert ref.lead_ids == fast.lead_ids
    assert ref.lead.tolist() == fast.lead.tolist()
    assert ref.at.tolist() == fast.at.tolist()
    assert ref.intent.tolist() == fast.intent.tolist()
    assert fast.total.tolist() == pytest.approx(ref.total.tolist(), abs=1e-9)
    assert ref.intents == fast.intents
    assert ref.first_touch == fast.first_touch
    assert ref.span == fast.span
    assert ref.handovers() == fast.handovers()


def _mql_handover(model: ScoringModel) -> ScoringModel:
    return replace(model, handover="mql", name=model.name + "-mql")


VARIANTS = {
    "default": MODELS["default"],
    "every-option": MODELS["every-option"],
    "default, handover at MQL": lambda: _mql_handover(MODELS["default"]()),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("seed", [1, 2])
def test_the_vectorised_replay_equals_the_reference(variant: str, seed: int) -> None:
    model = VARIANTS[variant]()
    people, events = random_history(seed, 80)
    leads, by_lead = {p.id: p for p in people}, _grouped(events)
    ref = reference_checkpoints(model, leads, by_lead)
    fast = _fast(model, leads, by_lead)
    assert len(ref.at) > 20 and ref.handovers(), "the random history hands someone over"
    assert_same(ref, fast)
    outcomes = {lead_id: Outcome(lead_id, n % 3 == 0) for n, lead_id in enumerate(sorted(leads))}
    assert compare(ref, ref, outcomes) == compare(fast, fast, outcomes)


# -- a history worked out by hand --------------------------------------------------------

HAND_MODEL = """
name: hand
version: "1"
thresholds: {mql: 20, sql: 20}
intent_window: 30d
intent_actions:
  - event: quote_requested
rules:
  - id: pricing
    event: page_viewed
    where: {path: {glob: '/pricing*'}}
    points: 10
"""
DAY0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday


def _day(days: float) -> datetime:
    return DAY0 + timedelta(days=days)


def _history() -> tuple[dict[str, Lead], dict[str, list[Event]], dict[str, Outcome]]:
    def pricing(lead: str, n: int, days: float) -> Event:
        return Event(f"{lead}-p{n}", lead, "page_viewed", _day(days), {"path": "/pricing"})

    def quote(lead: str, days: float) -> Event:
        return Event(f"{lead}-q", lead, "quote_requested", _day(days), {"message": "a quote?"})

    events = {
        # 20 points and a quote on day 2: handed over on day 2; good on day 10
        "a": [pricing("a", 1, 0), pricing("a", 2, 1), quote("a", 2)],
        # a quote first, then 10 points on day 5 and 20 on day 6: handed over on day 6; bad
        "b": [quote("b", 0), pricing("b", 1, 5), pricing("b", 2, 6)],
        # 10 points, no quote: never handed over; good on day 3 (still nurturing then)
        "c": [pricing("c", 1, 0)],
        # 20 points by day 1, a quote on day 20: handed over on day 20, after it
        # converted on day 15
        "d": [pricing("d", 1, 0), pricing("d", 2, 1), quote("d", 20)],
    }
    outcomes = {
        "a": Outcome("a", True, _day(10)),
        "b": Outcome("b", False, _day(30)),
        "c": Outcome("c", True, _day(3)),
        "d": Outcome("d", True, _day(15)),
    }
    return {}, events, outcomes


@pytest.mark.parametrize("method", ["reference", "vectorised"])
def test_metrics_on_a_history_worked_out_by_hand(method: str) -> None:
    current = load_model(HAND_MODEL, "hand.yaml")
    lower = HAND_MODEL.replace("{mql: 20, sql: 20}", "{mql: 10, sql: 10}")
    draft = load_model(lower.replace('"1"', '"2"'), "draft.yaml")
    leads, events, outcomes = _history()
    result = backtest_history(
        current, draft, leads, events, outcomes, reference=method == "reference"
    )
    assert result["method"] == method
    now = result["current"]
    assert now["handovers"] == 3  # a (day 2), b (day 6), d (day 20)
    assert now["good_leads"] == 3 and now["bad_leads"] == 1
    assert now["weeks"] == pytest.approx(20 / 7, abs=1e-3)  # first to last event: 20 days
    assert now["handovers_per_week"] == pytest.approx(3 / (20 / 7), abs=1e-3)
    assert now["precision"] == pytest.approx(1 / 3)  # only a, handed over before converting
    assert now["recall"] == pytest.approx(1 / 3)  # a of a, c, d
    assert now["median_days_first_touch_to_handover"] == 6.0  # 2, 6, 20
    assert now["median_days_intent_to_handover"] == 0.0  # 0 (a), 6 (b), 0 (d)
    assert now["good_nurturing_at_conversion"] == 2  # c and d
    assert now["good_handed_over_after_conversion"] == 1  # d
    # weeks counted from the first event: days 0-6 (a, b), 7-13, 14-20 (d)
    assert now["weekly_handovers"] == {"2026-01-05": 2, "2026-01-19": 1}
    # the draft (SQL at 10) hands b over a day earlier, on its first 10 points
    new = result["draft"]
    assert new["handovers"] == 3 and new["precision"] == pytest.approx(1 / 3)
    assert new["median_days_first_touch_to_handover"] == 5.0  # 2, 5, 20
    assert result["changes"] == {
        "only_current": 0,
        "only_draft": 0,
        "earlier_with_draft": 1,
        "later_with_draft": 0,
    }
    sweep = {row["threshold"]: row for row in now["sweep"]}
    assert sweep[0.0]["handovers"] == 3
    assert sweep[30.0] == {
        "threshold": 30.0,
        "handovers": 0,
        "handovers_per_week": 0.0,
        "precision": None,
        "recall": 0.0,
    }
    assert [row["threshold"] for row in now["sweep"]] == [float(x) for x in range(0, 41, 2)]


def test_handover_times_are_the_first_event_at_the_handover_stage() -> None:
    leads, events, _ = _history()
    replay = reference_checkpoints(load_model(HAND_MODEL, "hand.yaml"), leads, events)
    assert handover_times(replay) == {"a": _day(2), "b": _day(6), "d": _day(20)}


def test_a_handover_at_mql_needs_no_intent() -> None:
    model = _mql_handover(load_model(HAND_MODEL, "hand.yaml"))
    leads, events, _ = _history()
    ref = reference_checkpoints(model, leads, events)
    assert handover_times(ref) == {"a": _day(1), "b": _day(6), "d": _day(1)}
    assert_same(ref, _fast(model, leads, events))


# -- the command on the simulated world ----------------------------------------------------


def test_backtest_command_on_the_simulated_world(tmp_path: Path) -> None:
    runner = CliRunner()
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    done = runner.invoke(
        app, ["simulate", "--out", str(events), "--truth", str(truth), "--leads", "300"]
    )
    assert done.exit_code == 0, done.output
    from leadgate.adapters.model_source import default_model_text

    draft = tmp_path / "draft.yaml"
    draft.write_text(
        default_model_text()
        .replace("thresholds: {mql: 40, sql: 40}", "thresholds: {mql: 30, sql: 30}")
        .replace('version: "1"', 'version: "2"'),
        encoding="utf-8",
    )
    results = {}
    for method in ("vectorised", "reference"):
        out = tmp_path / f"{method}.json"
        args = ["backtest", "--model", str(draft), "--events", str(events)]
        args += ["--outcome", str(truth), "--json", str(out)]
        done = runner.invoke(app, [*args, "--reference"] if method == "reference" else args)
        assert done.exit_code == 0, done.output
        assert "precision" in done.output and "threshold sweep" in done.output
        results[method] = json.loads(out.read_text())
        assert results[method].pop("method") == method
    assert results["vectorised"] == results["reference"]
    result = results["vectorised"]
    assert result["history"]["leads"] >= 300
    assert result["current"]["model"] == "webstudio-default@1"
    assert result["draft"]["model"] == "webstudio-default@2"
    assert result["current"]["good_leads"] > 0 and result["current"]["handovers"] > 0
    # a lower threshold hands over at least as many leads, never later
    assert result["draft"]["handovers"] >= result["current"]["handovers"]
    assert result["changes"]["later_with_draft"] == 0
    assert result["current"]["sweep"][0]["threshold"] == 0.0


def test_backtest_command_needs_history_and_outcomes(tmp_path: Path) -> None:
    runner = CliRunner()
    draft = tmp_path / "d.yaml"
    draft.write_text(HAND_MODEL, encoding="utf-8")
    done = runner.invoke(app, ["backtest", "--model", str(draft), "--events", sys.executable])
    assert done.exit_code == 2 and "--outcome" in done.output


def _write_history(tmp_path: Path) -> Path:
    _, events, _ = _history()
    path = tmp_path / "events.jsonl"
    lines = [
        {"id": e.id, "lead_id": e.lead_id, "type": e.type,
         "timestamp": e.timestamp.isoformat(), "properties": dict(e.properties)}
        for lead_events in events.values()
        for e in lead_events
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_backtest_says_how_many_leads_had_no_outcome_and_warns_of_contradictions(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    draft = tmp_path / "d.yaml"
    draft.write_text(HAND_MODEL, encoding="utf-8")
    events = _write_history(tmp_path)
    outcomes = tmp_path / "outcomes.csv.gz"  # gzipped, as the leads and events may be
    rows = [
        "lead_id,outcome,date",
        f"a,lost,{_day(10).isoformat()}",
        f"a,won,{_day(10).isoformat()}",  # line 3: contradicts line 2, and is kept
        f"b,lost,{_day(30).isoformat()}",
        f"ghost,won,{_day(3).isoformat()}",
    ]
    outcomes.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode("utf-8")))
    result_file = tmp_path / "result.json"
    args = ["backtest", "--model", str(draft), "--against", str(draft), "--events", str(events)]
    done = runner.invoke(app, [*args, "--outcome", str(outcomes), "--json", str(result_file)])
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert (
        f"warning: {outcomes}:3: lead 'a' on 2026-01-15T09:00:00+00:00: good contradicts line 2 "
        "(bad); the last one is kept" in said
    )
    assert "warning: 1 outcome names a lead not in the history; left out" in said
    assert (
        "note: 2 leads of 4 had no outcome: they count as not good (a handover of one lowers "
        "precision)" in said
    )
    result = json.loads(result_file.read_text())
    current = result["current"]
    assert (current["good_leads"], current["bad_leads"], current["handovers"]) == (1, 1, 3)
    assert current["precision"] == pytest.approx(1 / 3)  # a; b is bad, d has no outcome
    assert current["recall"] == 1.0


def test_backtest_refuses_an_empty_history(tmp_path: Path, db_url: str) -> None:  # noqa: F811
    from leadgate.store import upgrade

    runner = CliRunner()
    draft = tmp_path / "d.yaml"
    draft.write_text(HAND_MODEL, encoding="utf-8")
    upgrade(db_url)
    done = runner.invoke(app, ["backtest", "--model", str(draft), "--database-url", db_url])
    assert done.exit_code == 2, done.output
    assert "no history to replay (0 leads)" in done.output and "precision" not in done.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    outcomes = tmp_path / "o.csv"
    outcomes.write_text("lead_id,outcome\na,won\n", encoding="utf-8")
    args = ["backtest", "--model", str(draft), "--events", str(empty), "--outcome", str(outcomes)]
    done = runner.invoke(app, args)
    assert done.exit_code == 2, done.output
    assert "no history to replay (0 leads)" in done.output
