"""Labelled examples see only what was known before each outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadgate.adapters.model_source import read_model
from leadgate.domain.events import Event, Lead
from leadgate.domain.outcomes import Outcome, from_disposition, parse_good
from leadgate.learning.dataset import example, examples

MODEL = read_model()
END = datetime(2026, 6, 1, tzinfo=UTC)


def page(i: int, at: datetime) -> Event:
    return Event(f"e{i}", "L1", "page_viewed", at, {"path": "/pricing"})


@pytest.mark.parametrize(
    ("outcome_at", "kept"),
    [
        (None, ["e1", "e2", "e3"]),  # undated: everything up to the end
        (END - timedelta(days=1), ["e1"]),  # strictly before the outcome
        (END - timedelta(days=2), []),  # an event at the outcome's moment is not before it
        (END, ["e1", "e2"]),  # dated at the end: strictly before it
        (END + timedelta(days=3), ["e1", "e2", "e3"]),  # after the end: all up to the end
    ],
)
def test_an_example_keeps_only_events_before_its_outcome(
    outcome_at: datetime | None, kept: list[str]
) -> None:
    events = [page(3, END), page(1, END - timedelta(days=2)), page(2, END - timedelta(hours=1))]
    events.append(page(4, END + timedelta(days=1)))  # after the end: never
    made = example(MODEL, Lead("L1", {}), events, Outcome("L1", True, outcome_at), END)
    assert [e.id for e in made.events] == kept
    assert made.breakdown.events_seen == len(kept)
    assert made.as_of == min(outcome_at or END, END)


def test_examples_leave_out_or_count_as_bad_the_leads_without_an_outcome() -> None:
    leads = {"L1": Lead("L1", {}), "L2": Lead("L2", {})}
    outcomes = {"L1": Outcome("L1", True)}
    assert [(x.lead.id, x.good) for x in examples(MODEL, leads, {}, outcomes, END)] == [
        ("L1", True)
    ]
    both = examples(MODEL, leads, {}, outcomes, END, unlisted_bad=True)
    assert [(x.lead.id, x.good) for x in both] == [("L1", True), ("L2", False)]


@pytest.mark.parametrize(
    ("text", "good"),
    [("won", True), ("Good", True), (" 1 ", True), ("lost", False), ("NO", False), (0, False)],
)
def test_outcome_values(text: object, good: bool) -> None:
    assert parse_good(text) is good


@pytest.mark.parametrize("text", ["maybe", "", "2", 3])
def test_unclear_outcome_values_are_refused_by_name(text: object) -> None:
    with pytest.raises(ValueError, match="outcome"):
        parse_good(text, "row 7")


def test_dispositions_say_good_bad_or_not_yet() -> None:
    assert [from_disposition(o) for o in ("won", "accepted", "rejected", "lost", "contacted")] == [
        True, True, False, False, None,
    ]  # fmt: skip
