"""Rule effectiveness (learning.effectiveness) on hand-made examples whose answers are
worked out by hand below; then the same through the reference evaluator."""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadgate.adapters.files import load_mapping
from leadgate.cli import app
from leadgate.domain.events import Event, Lead
from leadgate.domain.model_file import load_model
from leadgate.domain.outcomes import Outcome
from leadgate.domain.scoring import Award, Breakdown, RuleResult
from leadgate.learning.dataset import Example, example
from leadgate.learning.effectiveness import (
    lift_interval,
    report_document,
    rule_report,
    shrunk_log_odds_ratio,
    wilson,
)
from leadgate.services.scoring import Inputs
from leadgate.services.sources import (
    load_sources,
    outcomes_in_history,
    read_outcome_file,
    read_outcome_records,
)

runner = CliRunner()
T0 = datetime(2026, 3, 1, tzinfo=UTC)
MODEL = load_model(
    """
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
  - id: guide
    event: asset_downloaded
    points: 5
    cap: {total: 10}
  - id: unsubscribed
    event: email_unsubscribed
    points: -30
fit:
  - {id: senior, field: title, matches: '(?i)director', points: 10}
"""
)


# Wilson: centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n),
# z = 1.95996 (z^2 = 3.84146).
@pytest.mark.parametrize(
    ("good", "total", "expected"),
    [
        # p = .6: centre (.6 + .19207) / 1.38415 = .57225, half 1.96 * .18331 / 1.38415 = .25958
        (6, 10, (0.312674, 0.831820)),
        # p = 0: centre = half = .19207 / 1.38415 = .13877
        (0, 10, (0.0, 0.277533)),
        (10, 10, (0.722467, 1.0)),
        # p = .2: centre (.2 + .19207) / 1.38415 = .28326, half 1.96 * .11703 / 1.38415 = .22658
        (2, 10, (0.056682, 0.509838)),
        (1, 5, (0.036224, 0.624465)),
    ],
)
def test_wilson_interval(good: int, total: int, expected: tuple[float, float]) -> None:
    assert wilson(good, total) == pytest.approx(expected, abs=1e-6)


def test_wilson_of_nothing_is_none() -> None:
    assert wilson(0, 0) is None


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        # lift (6/10) / (2/10) = 3; se = sqrt(1/6 - 1/10 + 1/2 - 1/10) = .68313;
        # 3 * exp(-/+ 1.96 * .68313) = 3 * exp(-/+ 1.33893)
        ((6, 10, 2, 10), (0.786393, 11.444652)),
        # a = 0: 0.5 added to every cell: (.5/11) / (5.5/11) = 1/11;
        # se = sqrt(2 - 1/11 + 1/5.5 - 1/11) = sqrt(2); (1/11) * exp(-/+ 2.77181)
        ((0, 10, 5, 10), (0.00568626, 1.45340979)),
        # lift (1/5) / (7/15) = 3/7; se = sqrt(1 - 1/5 + 1/7 - 1/15) = .93299
        ((1, 5, 7, 15), (0.068431, 2.684051)),
        # all of the one lead without it good (a zero cell): (3.5/11) / (1.5/2) = .42424;
        # se = sqrt(1/3.5 - 1/11 + 1/1.5 - 1/2) = .60123; .42424 * exp(-/+ 1.17839)
        ((3, 10, 1, 1), (0.130572, 1.378409)),
    ],
)
def test_lift_interval(cells: tuple[int, int, int, int], expected: tuple[float, float]) -> None:
    assert lift_interval(*cells) == pytest.approx(expected, rel=1e-5)


def test_lift_interval_needs_both_groups() -> None:
    assert lift_interval(3, 3, 0, 0) is None and lift_interval(0, 0, 3, 5) is None


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        # cells 6.5, 4.5, 2.5, 8.5: ln(6.5 * 8.5 / (4.5 * 2.5)) = ln 4.91111 = 1.59150;
        # variance 1/6.5 + 1/4.5 + 1/2.5 + 1/8.5 = .89372; times 1 / 1.89372
        ((6, 10, 2, 10), 0.840411),
        # cells 1.5, 4.5, 7.5, 8.5: ln(12.75 / 33.75) = -.97345; variance 1.13987
        ((1, 5, 7, 15), -0.454911),
        # no difference at all: no evidence
        ((5, 10, 5, 10), 0.0),
        # the same shares on 10x the leads move further: cells 60.5, 40.5, 20.5, 80.5:
        # ln(4870.25 / 830.25) = 1.76919; variance .10242; times 1 / 1.10242
        ((60, 100, 20, 100), 1.60480),
    ],
)
def test_shrunk_log_odds_ratio(cells: tuple[int, int, int, int], expected: float) -> None:
    assert shrunk_log_odds_ratio(*cells) == pytest.approx(expected, abs=1e-3)


def _award(raw: float) -> Award:
    return Award("e", T0, raw, raw)


def made(lead: int, good: bool, pricing: int = 0, guides: int = 0, senior: bool = False) -> Example:
    """An example with a breakdown written by hand: every rule of MODEL appears, as in
    evaluate's output, with points only when it fired."""
    rules = (
        RuleResult("senior", "fit", "senior", None, 10.0 if senior else 0.0),
        RuleResult("pricing", "event", "pricing", None, 10.0 * pricing,
                   tuple(_award(10) for _ in range(pricing))),
        RuleResult("guide", "event", "guide", None, 5.0 * guides,
                   tuple(_award(5) for _ in range(guides))),
        RuleResult("unsubscribed", "event", "unsubscribed", None, 0.0),
    )  # fmt: skip
    fit = 10.0 if senior else 0.0
    breakdown = Breakdown(
        f"L{lead}", T0, "hand", "1", fit, sum(r.points for r in rules) - fit, {}, rules, None,
        None, 0,
    )  # fmt: skip
    return Example(Lead(f"L{lead}"), (), T0, good, breakdown)


def hand_examples() -> list[Example]:
    """20 leads, L1-L8 good. pricing fired for L1-L6 (good) and L9-L12: 6 of 10 good,
    2 of 10 without. guide fired for L1 (two guides) and L13-L16: 1 of 5 good, 7 of 15
    without. Everyone is senior; nobody unsubscribed."""
    out = []
    for n in range(1, 21):
        pricing = 1 if n <= 6 or 9 <= n <= 12 else 0
        guides = 2 if n == 1 else 1 if 13 <= n <= 16 else 0
        out.append(made(n, n <= 8, pricing, guides, senior=True))
    return out


def test_rule_report_on_hand_made_examples() -> None:
    report = rule_report(hand_examples(), MODEL)
    assert (report.examples, report.good, report.share_good) == (20, 8, 0.4)
    # weights: pricing 10 (one view each); guide (10 + 4 * 5) / 5 = 6.
    # evidence: pricing .840411, guide -.454911 (see test_shrunk_log_odds_ratio).
    # scale = (10 + 6) / (.840411 + .454911) = 12.35214 points per unit of evidence.
    assert report.scale == pytest.approx(12.35214, rel=1e-5)
    # guide: suggested weight 12.35214 * -.454911 = -5.61912, 11.6191 away from +6;
    # pricing: 12.35214 * .840411 = 10.38088, .38088 away from 10. Then the rules
    # without evidence: senior (fired for all 20), unsubscribed (for none).
    assert [e.rule_id for e in report.rules] == ["guide", "pricing", "senior", "unsubscribed"]
    guide, pricing, senior, unsubscribed = report.rules

    assert (guide.n_with, guide.good_with, guide.n_without, guide.good_without) == (5, 1, 15, 7)
    assert guide.share_with == 0.2 and guide.share_without == pytest.approx(7 / 15)
    assert guide.lift == pytest.approx(3 / 7)
    assert guide.weight == 6.0
    assert guide.suggested_weight == pytest.approx(-5.61912, rel=1e-5)
    # the per-guide setting: 5 * -5.61912 / 6 = -4.68 -> -5
    assert guide.suggested_points == -5
    assert guide.disagreement == pytest.approx(11.61912, rel=1e-5)

    assert (pricing.n_with, pricing.good_with, pricing.n_without, pricing.good_without) == (
        10,
        6,
        10,
        2,
    )
    assert pricing.lift == pytest.approx(3.0)
    assert pricing.lift_ci == pytest.approx((0.786393, 11.444652), rel=1e-5)
    assert pricing.share_with_ci == pytest.approx((0.312674, 0.831820), abs=1e-6)
    assert pricing.share_without_ci == pytest.approx((0.056682, 0.509838), abs=1e-6)
    assert pricing.suggested_points == 10  # 10 * 10.38088 / 10 -> 10
    assert pricing.disagreement == pytest.approx(0.38088, rel=1e-4)

    assert (senior.kind, senior.n_with, senior.n_without) == ("fit", 20, 0)
    assert senior.share_with == 0.4 and senior.share_without is None and senior.lift is None
    assert senior.evidence is None and senior.suggested_points is None
    assert (unsubscribed.n_with, unsubscribed.weight, unsubscribed.suggested_points) == (
        0,
        None,
        None,
    )
    assert unsubscribed.share_with is None and unsubscribed.share_without_ci is not None


def test_the_document_carries_the_same_numbers() -> None:
    doc = report_document(rule_report(hand_examples(), MODEL))
    assert (doc["examples"], doc["good"], doc["share_good"]) == (20, 8, 0.4)
    first = doc["rules"][0]
    assert first["rule_id"] == "guide" and first["fired"] == 5 and first["suggested_points"] == -5
    assert first["lift"] == pytest.approx(0.428571) and len(first["lift_ci"]) == 2
    assert doc["rules"][-1]["lift_ci"] is None


@pytest.mark.parametrize(
    ("good_pattern", "expected_first"),
    [
        ([True, True, False, False], "guide"),
        ([False, False, True, True], "pricing"),
    ],
)
def test_the_order_follows_the_evidence(good_pattern: list[bool], expected_first: str) -> None:
    # Leads 1-2 read pricing, leads 3-4 downloaded one guide.
    examples = [
        made(n, good, pricing=1 if n <= 2 else 0, guides=0 if n <= 2 else 1)
        for n, good in enumerate(good_pattern, start=1)
    ]
    report = rule_report(examples, MODEL, min_leads=2)
    # Both rules split the four leads the same two ways, so their evidence has the same
    # size and opposite signs; the scale is (10 + 5) / (2e) and each suggested weight is
    # +/- 7.5. Good pricing readers: pricing +7.5 (2.5 off), guide -7.5 (12.5 off).
    # Good guide readers: pricing -7.5 (17.5 off), guide +7.5 (2.5 off).
    assert report.rules[0].rule_id == expected_first
    weights = {e.rule_id: e.suggested_weight for e in report.rules}
    assert abs(weights["pricing"] or 0) == pytest.approx(7.5)
    assert abs(weights["guide"] or 0) == pytest.approx(7.5)


def test_the_report_of_evaluated_examples_counts_only_what_came_before() -> None:
    """Through the reference evaluator: a rule fires only on events before the outcome,
    and a decayed rule still counts as fired."""
    decaying = load_model(
        """
name: decaying
version: "1"
thresholds: {mql: 20, sql: 20}
intent_window: 30d
decay: {half_life: 1d}
intent_actions: [{event: quote_requested}]
rules:
  - {id: pricing, event: page_viewed, where: {path: {glob: '/pricing*'}}, points: 10}
"""
    )

    def view(lead: str, day: int) -> Event:
        return Event(f"{lead}-{day}", lead, "page_viewed", T0 + timedelta(days=day),
                     {"path": "/pricing"})  # fmt: skip

    end = T0 + timedelta(days=60)
    cases = [
        # (lead, good, its views' days, outcome day)
        ("a", True, [1], 50),  # read long before: fired, points decayed to ~0
        ("b", False, [10], 5),  # read after the outcome: not fired
        ("c", False, [], 5),
        ("d", True, [2], 3),
    ]
    examples = [
        example(decaying, Lead(lead), [view(lead, d) for d in days],
                Outcome(lead, good, T0 + timedelta(days=day)), end)
        for lead, good, days, day in cases
    ]  # fmt: skip
    assert examples[0].breakdown.rules[0].points == pytest.approx(10 * 0.5**49)
    [pricing] = rule_report(examples, decaying, min_leads=2).rules
    assert (pricing.n_with, pricing.good_with, pricing.n_without, pricing.good_without) == (
        2,
        2,
        2,
        0,
    )
    assert pricing.weight == 10.0 and pricing.lift is None
    # cells 2.5, .5, .5, 2.5: ln 25 = 3.21888, variance 4.8: 3.21888 / 5.8
    assert pricing.evidence == pytest.approx(math.log(25) / 5.8)
    assert pricing.suggested_points == 10  # one rule with evidence: the scale keeps it


def test_a_rule_missed_by_too_few_leads_has_no_evidence() -> None:
    """19 leads read pricing (9 good), one did not (good): lift and shares are shown,
    but one lead without the rule is no evidence, so nothing is suggested."""
    examples = [made(n, n <= 10, pricing=0 if n == 1 else 1) for n in range(1, 21)]
    [pricing] = [e for e in rule_report(examples, MODEL).rules if e.rule_id == "pricing"]
    assert (pricing.n_with, pricing.good_with, pricing.n_without, pricing.good_without) == (
        19,
        9,
        1,
        1,
    )
    assert pricing.lift == pytest.approx(9 / 19)
    assert pricing.evidence is None and pricing.suggested_points is None
    assert rule_report(examples, MODEL, min_leads=1).rules[0].rule_id == "pricing"


# -- the report from files: outcome files read as the database reads them -----------------


def _files(tmp_path: Path) -> tuple[Path, Path]:
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,title\na,Director\nb,Student\nc,Director\n", encoding="utf-8")
    events = tmp_path / "events.jsonl"
    lines = [
        {"id": f"{who}-{n}", "lead_id": who, "type": "page_viewed",
         "timestamp": f"2026-03-0{n}T10:00:00Z", "properties": {"path": "/pricing"}}
        for who, n in [("a", 1), ("b", 2), ("c", 3)]
    ]  # fmt: skip
    events.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return leads, events


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def test_an_outcome_file_keeps_the_latest_outcome_and_reports_contradictions(
    tmp_path: Path,
) -> None:
    path = _csv(
        tmp_path / "o.csv",
        [
            ["lead_id", "outcome", "date", "reason"],
            ["a", "won", "2026-03-05", ""],  # 2
            ["a", "won", "2026-03-05", ""],  # 3: a repeat
            ["a", "lost", "2026-03-05", "price"],  # 4: contradicts 3, kept
            ["b", "won", "2026-03-09", ""],  # 5: b's latest
            ["b", "lost", "2026-03-04", ""],  # 6: earlier: not b's outcome
            ["c", "lost", "", ""],  # 7: undated
            ["c", "won", "2026-03-02", ""],  # 8: dated wins over undated
            ["d", "won", "", ""],  # 9
            ["d", "lost", "", ""],  # 10: contradicts 9 (both undated), kept
        ],
    )
    read = read_outcome_file(path)
    assert {k: (o.good, o.at, o.reason) for k, o in read.outcomes.items()} == {
        "a": (False, datetime(2026, 3, 5, tzinfo=UTC), "price"),
        "b": (True, datetime(2026, 3, 9, tzinfo=UTC), None),
        "c": (True, datetime(2026, 3, 2, tzinfo=UTC), None),
        "d": (False, None, None),
    }
    assert [str(w) for w in read.contradictions] == [
        f"{path}:4: lead 'a' on 2026-03-05: bad (reason 'price') contradicts line 3 (good); "
        "the last one is kept",
        f"{path}:10: lead 'd': bad contradicts line 9 (good); the last one is kept",
    ]
    assert read.has_outcome_column
    assert read_outcome_records(path) == read.outcomes  # the same rule, without warnings

    # gzip (by content), and the errors a user can act on.
    packed = tmp_path / "o.csv.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert read_outcome_file(packed).outcomes == read.outcomes
    latin = tmp_path / "latin.csv"
    latin.write_bytes("lead_id,won\nJos\u00e9,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(latin))}:2: not UTF-8 text .*UTF-8"):
        read_outcome_file(latin)
    twice = _csv(tmp_path / "twice.csv", [["lead_id", "won", "won"], ["a", "1", "0"]])
    with pytest.raises(ValueError, match="the column 'won' appears twice"):
        read_outcome_file(twice)
    # Empty column names (trailing commas from a spreadsheet) are no repeats.
    blanks = _csv(tmp_path / "blanks.csv", [["lead_id", "won", "", ""], ["a", "1", "", ""]])
    assert read_outcome_records(blanks)["a"].good


def test_outcomes_in_history_splits_known_and_unknown_leads() -> None:
    inputs = Inputs()
    inputs.add_lead(Lead("a", {}))
    inputs.add_event(Event("e1", "b", "page_viewed", T0))
    outcomes = {k: Outcome(k, True) for k in ("a", "b", "z", "y")}
    known, unknown = outcomes_in_history(outcomes, inputs)
    assert sorted(known) == ["a", "b"] and unknown == ["y", "z"]
    assert "y" not in inputs.events  # looking does not add an empty history


def test_the_report_from_files_leaves_out_and_warns_of_leads_not_in_the_history(
    tmp_path: Path,
) -> None:
    leads, events = _files(tmp_path)
    outcomes = _csv(
        tmp_path / "outcomes.csv",
        [
            ["lead_id", "outcome", "date"],
            ["a", "won", "2026-03-05"],
            ["b", "lost", "2026-03-05"],
            ["ghost", "won", "2026-03-05"],
            ["c", "won", "2026-03-05"],
            ["c", "lost", "2026-03-05"],
        ],
    )
    args = ["rules", "report", "--leads", str(leads), "--events", str(events)]
    done = runner.invoke(app, [*args, "--outcome", str(outcomes), "--json"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert (doc["examples"], doc["good"]) == (3, 1)  # a, b and c (lost); not ghost
    assert "warning: 1 outcome names a lead not in the history ('ghost'); left out" in done.stderr
    assert (
        f"warning: {outcomes}:6: lead 'c' on 2026-03-05: bad contradicts line 5 (good); "
        "the last one is kept" in done.stderr
    )
    table = runner.invoke(app, [*args, "--outcome", str(outcomes)])
    assert "3 leads with an outcome, 1 good" in table.stdout

    # A column of the leads file: a lead listed twice with two outcomes is warned about.
    twice = tmp_path / "twice.csv"
    twice.write_text("lead_id,title,won\na,Director,yes\nb,Student,no\na,Director,no\n")
    done = runner.invoke(
        app, ["rules", "report", "--leads", str(twice), "--outcome", "won", "--json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["good"] == 0
    assert (
        f"warning: {twice}:4: lead 'a': bad contradicts line 2 (good); the last one is kept"
        in done.stderr
    )


def test_the_mapping_outcome_column_reports_contradicting_rows(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("lead_id: id\noutcome: {column: Converted, type: int}\n")
    leads = tmp_path / "leads.csv"
    leads.write_text("id,Converted\nx,1\ny,0\nx,0\ny,0\n")
    loaded = load_sources(leads, None, load_mapping(mapping))
    assert loaded.outcomes == {"x": False, "y": False}
    assert [str(c) for c in loaded.outcome_conflicts] == [
        f"{leads}:4: lead 'x': bad contradicts line 2 (good); the last one is kept"
    ]
    args = ["rules", "report", "--leads", str(leads), "--mapping", str(mapping)]
    done = runner.invoke(app, [*args, "--outcome", "Converted", "--json"])
    assert done.exit_code == 0, done.output
    assert f"warning: {leads}:4: lead 'x': bad contradicts line 2" in done.stderr
