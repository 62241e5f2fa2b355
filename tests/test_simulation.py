"""The synthetic event history: determinism, Segment shape, identities, truth, streaming."""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from leadgate.domain.events import (
    CANONICAL_EVENTS,
    canonical_event_type,
    email_domain,
    parse_timestamp,
)
from leadgate.simulation import (
    DISPOSABLE,
    FREE_MAIL,
    PERSONAS,
    RIVALS,
    TRUTH_HEADER,
    SimulationConfig,
    SimulationSummary,
    main_simulate,
    simulate,
)

INTENT_FORMS = {"contact-sales", "request-proposal"}


def run(config: SimulationConfig) -> tuple[bytes, str, SimulationSummary]:
    events, truth = io.BytesIO(), io.StringIO()
    summary = simulate(config, events, truth)
    return events.getvalue(), truth.getvalue(), summary


class Sim:
    """One simulated history, parsed: events grouped by person, and the truth rows."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.raw, self.truth_text, self.summary = run(config)
        self.events = [orjson.loads(line) for line in self.raw.splitlines()]
        self.truth = list(csv.DictReader(io.StringIO(self.truth_text)))
        self.by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.events:
            self.by_person[event["anonymousId"]].append(event)
        self.people = list(self.by_person.values())
        self.personas = {row["lead_id"]: row["persona"] for row in self.truth}

    def persona_of(self, person: list[dict[str, Any]]) -> str:
        return self.personas[next(e["userId"] for e in person if e["type"] == "identify")]


@pytest.fixture(scope="module")
def sim() -> Sim:
    return Sim(SimulationConfig(leads=1500, days=90, seed=7))


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    config = SimulationConfig(leads=120, seed=11)
    first, second = run(config), run(config)
    assert first[0] == second[0] and first[1] == second[1]
    other = run(SimulationConfig(leads=120, seed=12))
    assert other[0] != first[0]
    assert other[1] != first[1]


def test_people_do_not_depend_on_how_many_are_generated() -> None:
    small, _, _ = run(SimulationConfig(leads=30, seed=5))
    large, _, _ = run(SimulationConfig(leads=60, seed=5))
    assert large.startswith(small)


def test_every_line_is_a_segment_call_with_the_required_fields(sim: Sim) -> None:
    assert len(sim.events) == sim.summary.events > 0
    assert sim.raw.endswith(b"\n")
    ids = [e["messageId"] for e in sim.events]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("sim-7-") for i in ids)
    for event in sim.events:
        assert event["type"] in {"page", "track", "identify"}
        assert event["timestamp"].endswith("Z")
        assert event.get("userId") or event.get("anonymousId")
        if event["type"] == "page":
            props = event["properties"]
            assert event["name"] and props["path"].startswith("/")
            assert props["url"].startswith("https://webstudio.example" + props["path"])
            assert props["title"].endswith("| Webstudio") and "referrer" in props
        elif event["type"] == "track":
            assert event["event"] and isinstance(event["properties"], dict)
        else:
            traits = event["traits"]
            assert event["userId"] and event["anonymousId"]
            assert set(traits) >= {"email", "first_name", "last_name", "title", "company"}
            assert isinstance(traits["company_size"], int) and traits["company_size"] >= 1
            assert traits["industry"] and len(traits["country"]) == 2


def test_track_events_map_to_canonical_types(sim: Sim) -> None:
    names = {e["event"] for e in sim.events if e["type"] == "track"}
    kinds = {canonical_event_type(name) for name in names}
    assert kinds <= set(CANONICAL_EVENTS), names
    assert {"asset_downloaded", "email_opened", "email_clicked", "form_submitted"} <= kinds
    assert {"quote_requested", "meeting_booked", "email_replied", "email_unsubscribed"} <= kinds


def test_email_events_carry_campaign_properties(sim: Sim) -> None:
    emails = [e for e in sim.events if e["type"] == "track" and "Email" in e["event"]]
    assert emails
    for event in emails:
        props = event["properties"]
        assert props["campaign_id"].startswith("nurture-")
        assert props["email_id"] and props["email_subject"]
    replies = [e for e in emails if e["event"] == "Email Replied"]
    assert replies and all(e["properties"]["body"] for e in replies)


@pytest.mark.parametrize(
    ("days", "start"),
    [(90, datetime(2026, 1, 1, tzinfo=UTC)), (7, datetime(2025, 6, 30, 13, 30, tzinfo=UTC))],
)
def test_timestamps_are_inside_the_window(days: int, start: datetime) -> None:
    raw, _, _ = run(SimulationConfig(leads=300, days=days, start=start, seed=3))
    stamps = [parse_timestamp(orjson.loads(line)["timestamp"]) for line in raw.splitlines()]
    assert min(stamps) >= start
    assert max(stamps) < start + timedelta(days=days)


def test_each_persons_events_are_in_time_order(sim: Sim) -> None:
    for person in sim.people:
        stamps = [e["timestamp"] for e in person]
        assert stamps == sorted(stamps)


def test_anonymous_until_identified_then_known(sim: Sim) -> None:
    assert len(sim.people) == sim.config.leads
    anonymous_before = 0
    for person in sim.people:
        kinds = [e["type"] for e in person]
        assert kinds.count("identify") == 1
        at = kinds.index("identify")
        user_id = person[at]["userId"]
        assert all("userId" not in e for e in person[:at])
        assert not any("Email" in e.get("event", "") for e in person[:at])
        assert all(e["userId"] == user_id for e in person[at:])
        assert len({e["anonymousId"] for e in person}) == 1
        anonymous_before += at > 0
    assert anonymous_before > sim.config.leads * 0.8


def test_persona_mix_is_close_to_the_intended_shares(sim: Sim) -> None:
    counts = Counter(row["persona"] for row in sim.truth)
    assert counts == Counter(sim.summary.personas)
    for persona in PERSONAS:
        assert abs(counts[persona.name] / sim.config.leads - persona.share) < 0.01, persona.name


def test_ground_truth_has_one_row_per_lead(sim: Sim) -> None:
    assert sim.truth_text.splitlines()[0] == ",".join(TRUTH_HEADER)
    assert len(sim.truth) == sim.config.leads
    ids = [row["lead_id"] for row in sim.truth]
    assert ids[:2] == ["u-000001", "u-000002"] and len(set(ids)) == len(ids)
    assert len({row["email"] for row in sim.truth}) == len(ids)
    identified = {e["userId"]: e["traits"]["email"] for e in sim.events if e["type"] == "identify"}
    assert identified == {row["lead_id"]: row["email"] for row in sim.truth}
    intents = {p.name: p.intent for p in PERSONAS}
    for row in sim.truth:
        assert row["intent"] == intents[row["persona"]]
        assert row["converted"] in {"0", "1"}
        assert bool(row["converted_at"]) == (row["converted"] == "1")
        if row["converted_at"]:
            assert parse_timestamp(row["converted_at"]) > sim.config.start


def test_conversion_follows_persona_and_behaviour() -> None:
    big = Sim(SimulationConfig(leads=3000, seed=2))
    rates: dict[str, list[int]] = defaultdict(list)
    for row in big.truth:
        rates[row["persona"]].append(int(row["converted"]))
    rate = {name: sum(v) / len(v) for name, v in rates.items()}
    assert 0.45 < rate["ready_buyer"] < 0.75
    assert 0.06 < rate["researcher"] < 0.2
    assert rate["nurture_reader"] < 0.06
    for name in ("spammer", "competitor", "job_seeker", "existing_customer", "cold"):
        assert rate[name] == 0
    converted = {row["lead_id"]: row["converted"] == "1" for row in big.truth}
    pricing: dict[bool, list[int]] = defaultdict(list)
    for person in big.people:
        if big.persona_of(person) == "ready_buyer":
            user_id = next(e["userId"] for e in person if e["type"] == "identify")
            views = sum(e.get("properties", {}).get("path") == "/pricing" for e in person)
            pricing[converted[user_id]].append(views)
    assert sum(pricing[True]) / len(pricing[True]) > sum(pricing[False]) / len(pricing[False])


def is_intent(event: dict[str, Any]) -> bool:
    name, props = event.get("event"), event.get("properties", {})
    return (
        name in {"Quote Requested", "Call Booked"}
        or (name == "Form Submitted" and props["form"] in INTENT_FORMS)
        or (name == "Email Replied" and "?" in props["body"])
    )


def test_personas_behave_as_described(sim: Sim) -> None:
    seen = Counter[str]()
    for person in sim.people:
        persona = sim.persona_of(person)
        seen[persona] += 1
        traits = next(e["traits"] for e in person if e["type"] == "identify")
        domain = email_domain(traits["email"])
        paths = [e["properties"]["path"] for e in person if e["type"] == "page"]
        forms = [e["properties"] for e in person if e.get("event") == "Form Submitted"]
        if persona == "ready_buyer":
            assert any(map(is_intent, person)) and "/pricing" in paths
            assert sum(p.startswith("/services/") for p in paths) >= 1
        elif persona == "spammer":
            assert domain in DISPOSABLE and forms and all(f.get("message") for f in forms)
        elif persona == "competitor":
            assert domain in RIVALS
        elif persona == "job_seeker":
            assert domain in FREE_MAIL and forms[0]["form"] == "contact"
            assert traits["company_size"] == 1 and not any(map(is_intent, person))
        elif persona == "existing_customer":
            assert traits["customer"] is True and "/login" in paths
        elif persona == "cold":
            assert len(paths) == 1 and [f["form"] for f in forms] == ["newsletter"]
            assert not any(e.get("event") == "Email Opened" for e in person)
        elif persona == "nurture_reader":
            assert not any(map(is_intent, person))
    assert set(seen) == {p.name for p in PERSONAS}


def test_spammers_sometimes_fill_the_honeypot(sim: Sim) -> None:
    spam_forms = [
        e["properties"]
        for person in sim.people
        if sim.persona_of(person) == "spammer"
        for e in person
        if e.get("event") == "Form Submitted"
    ]
    honeypot = [f for f in spam_forms if "website_url" in f["fields"]]
    assert 0 < len(honeypot) < len(spam_forms)


def test_events_per_lead_is_near_the_requested_average() -> None:
    default = run(SimulationConfig(leads=1000, seed=4))[2]
    assert 17 < default.events / default.leads < 23
    doubled = run(SimulationConfig(leads=1000, seed=4, events_per_lead=40))[2]
    assert doubled.events > default.events * 1.5


class CountingSink:
    def __init__(self) -> None:
        self.writes: list[int] = []

    def write(self, data: bytes, /) -> int:
        self.writes.append(len(data))
        return len(data)


class NullText(io.StringIO):
    def write(self, s: str, /) -> int:
        return len(s)


def test_events_are_written_one_person_at_a_time() -> None:
    sink = CountingSink()
    summary = simulate(SimulationConfig(leads=500, seed=9), sink, io.StringIO())
    assert len(sink.writes) == 500
    assert sum(sink.writes) > 0 and summary.events > 500
    assert max(sink.writes) < 100_000


def peak_memory(leads: int) -> int:
    tracemalloc.start()
    try:
        simulate(SimulationConfig(leads=leads, days=30, seed=1), CountingSink(), NullText())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_leads() -> None:
    small, large = peak_memory(150), peak_memory(1500)
    assert large < 50_000_000
    assert large < small * 1.5 + 200_000


def test_main_simulate_writes_plain_and_gzip_files(tmp_path: Path) -> None:
    plain = main_simulate(80, 30, 6, tmp_path / "events.jsonl", tmp_path / "truth.csv")
    packed = main_simulate(80, 30, 6, tmp_path / "events.jsonl.gz", tmp_path / "truth2.csv")
    main_simulate(80, 30, 6, tmp_path / "again.jsonl.gz", tmp_path / "truth3.csv")
    assert plain == packed and plain.leads == 80
    expected = (tmp_path / "events.jsonl").read_bytes()
    assert gzip.decompress((tmp_path / "events.jsonl.gz").read_bytes()) == expected
    assert (tmp_path / "events.jsonl.gz").read_bytes() == (tmp_path / "again.jsonl.gz").read_bytes()
    assert (tmp_path / "truth.csv").read_text(encoding="utf-8").count("\n") == 81


def test_progress_is_reported() -> None:
    done: list[int] = []
    simulate(SimulationConfig(leads=25), CountingSink(), io.StringIO(), done.append)
    assert done == [25]


@pytest.mark.parametrize("bad", [{"leads": -1}, {"days": 0}, {"events_per_lead": 0}])
def test_invalid_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="need leads"):
        SimulationConfig(**bad)
