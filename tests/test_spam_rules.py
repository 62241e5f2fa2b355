"""The default model's text disqualifiers against real labelled messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadgate.adapters.model_source import read_model
from leadgate.domain.conditions import Condition
from leadgate.domain.events import Event, Lead
from leadgate.domain.scoring import Breakdown, evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMS = DATA / "spam" / "sms_spam_collection" / "SMSSpamCollection"


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, str]]:
    if not SMS.is_file():
        pytest.skip(f"real data not found at {SMS}")
    with SMS.open(encoding="utf-8", errors="replace") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f]  # type: ignore[misc]


@pytest.mark.realdata
def test_spam_text_catches_most_spam_and_no_normal_messages(
    messages: list[tuple[str, str]],
) -> None:
    rule = next(d for d in read_model(None).disqualifiers if d.id == "spam-text")
    assert rule.text is not None
    spam = [text for label, text in messages if label == "spam"]
    ham = [text for label, text in messages if label == "ham"]
    assert (len(spam), len(ham)) == (747, 4827)
    caught = sum(rule.text.test(t) for t in spam)
    false_alarms = [t for t in ham if rule.text.test(t)]
    assert caught / len(spam) >= 0.6
    assert len(false_alarms) / len(ham) <= 0.002, false_alarms


@pytest.mark.parametrize(
    "text",
    [
        "Our budget is $5,000 for a new website, could you send a quote?",
        "We won an award last year and need a site that shows it.",
        "Can you guarantee delivery before the March launch?",
        "Please call 020 7946 0000 to discuss the proposal.",
    ],
)
def test_spam_text_leaves_business_questions_alone(text: str) -> None:
    rule = next(d for d in read_model(None).disqualifiers if d.id == "spam-text")
    assert rule.text is not None and not rule.text.test(text)


def _job_rule() -> Condition:
    rule = next(d for d in read_model(None).disqualifiers if d.id == "job-seeker")
    assert rule.text is not None
    return rule.text


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Hi, I'm looking for an internship in web design this summer. My CV is attached.", True),
        ("Are you hiring junior developers? Please find my resume attached.", True),
        ("Do you have any job openings for a graduate SEO role?", True),
        ("I'd like to apply for the junior designer position.", True),
        ("Can we resume the website project next month?", False),
        ("Do you build job boards?", False),
        ("We are hiring an agency for our rebrand.", False),
        ("Looking for a partner for our SEO.", False),
    ],
)
def test_job_seeker_text(text: str, flagged: bool) -> None:
    assert _job_rule().test(text) is flagged


def test_contact_fields_are_not_read_as_text_the_lead_wrote() -> None:
    model = read_model()
    at = datetime(2026, 5, 1, tzinfo=UTC)

    def form(**fields: str) -> Breakdown:
        event = Event("f1", "l1", "form_submitted", at, {"fields": fields})
        return evaluate(model, Lead("l1"), [event], at)

    clean = form(email="crypto.fan@mail.example", name="Casino Royale Ltd", message="A new site?")
    assert clean.disqualified is None
    spam = form(email="a@b.example", comments="Win a casino bonus now, click here")
    assert spam.disqualified is not None and spam.disqualified.reason == "spam"
