"""The sales team and routing: who gets a sales-ready lead and why, first-contact
deadlines in working time, the team file's checks, and the team's storage, API and
CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from leadgate.cli import app
from leadgate.domain.model_file import load_model
from leadgate.domain.team import (
    Assignment,
    Rep,
    RoutingState,
    TeamConfig,
    company_domain,
    due_at,
    route,
    strongest_groups,
)
from leadgate.domain.team_file import load_team_config, parse_hours
from leadgate.domain.yamldoc import SpecError
from leadgate.services import team as uc
from leadgate.simulation.site import COUNTRIES
from leadgate.store import create_engine, upgrade
from leadgate.store.team_store import TeamStore
from test_leads_api import Admin, admin  # noqa: F401  (fixture: the app with keys)
from test_store import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday

TEAM = """\
first_contact: 4h
fallback_queue: inbox
escalation: {remind_after: 25%, escalate: manager}
teams:
  - {name: dach, manager: boss@studio.example}
  - {name: uk}
reps:
  - {id: anna, email: anna@studio.example, team: dach, capacity: 5, time_zone: Europe/Berlin}
  - {id: bert, email: bert@studio.example, team: dach, capacity: 5, time_zone: Europe/Berlin}
  - {id: cleo, email: cleo@studio.example, team: dach, capacity: 2, time_zone: Europe/Vienna}
  - {id: olivia, email: olivia@studio.example, team: uk, capacity: 6}
  - {id: james, email: james@studio.example, team: uk, capacity: 3,
     manager: james.boss@studio.example}
rules:
  - {id: dach-seo, where: {country: {in: [DE, AT, CH]}, company_size: {gte: 10}},
     group: seo, team: dach}
  - {id: dach, where: {country: [DE, AT, CH]}, team: dach}
  - {id: uk-branding, where: {country: GB}, group: branding, rep: james}
"""


def team(text: str = TEAM, **extra: str) -> TeamConfig:
    more = "".join(f"{key}: {value}\n" for key, value in extra.items())
    return load_team_config(more + text, "team.yaml")


def state(
    open_: dict[str, int] | None = None,
    last: dict[str, datetime] | None = None,
    owner: str | None = None,
) -> RoutingState:
    return RoutingState(open_ or {}, last or {}, owner)


DE = {"country": "DE", "company_size": 40, "email": "kim@acme.example"}
SEO = {"fit": 30.0, "engagement": 50.0, "seo": 20.0, "web-design": 8.0}


# -- routing order ---------------------------------------------------------------


def test_a_rule_picks_the_team_and_the_reason_says_why() -> None:
    got = route(team(), DE, SEO, state({"anna": 1, "bert": 2, "cleo": 1}))
    assert got == Assignment(
        "anna",
        "dach",
        None,
        "rule 'dach-seo' (country in [DE, AT, CH] and company_size gte 10 and group seo) "
        "-> team dach; round robin: anna has 1 of 5 open, lowest",
    )


def test_the_first_rule_that_holds_wins_and_group_means_the_strongest_group() -> None:
    config = team()
    design = {"fit": 30.0, "seo": 5.0, "web-design": 20.0}
    got = route(config, DE, design, state())
    assert got.team == "dach" and got.reason.startswith("rule 'dach' (country in [DE, AT, CH])")
    small = {"country": "AT", "company_size": 3}
    assert route(config, small, SEO, state()).reason.startswith("rule 'dach' ")


def test_the_account_owner_comes_first_when_free() -> None:
    config = team()
    lead = {"country": "GB", "email": "ceo@acme.example"}
    got = route(config, lead, SEO, state({"anna": 4}, owner="anna"))
    assert got == Assignment(
        "anna", "dach", None, "account owner: anna already owns the account of acme.example"
    )


@pytest.mark.parametrize(
    ("open_", "exclude", "note"),
    [
        ({"anna": 5}, set(), "account owner anna is full; "),
        ({}, {"anna"}, "account owner anna is excluded; "),
    ],
)
def test_a_busy_or_excluded_account_owner_is_passed_over(
    open_: dict[str, int], exclude: set[str], note: str
) -> None:
    got = route(team(), DE, SEO, state(open_, owner="anna"), exclude)
    assert got.rep_id == "bert"
    assert got.reason.startswith(note + "rule 'dach-seo'")


def test_an_away_owner_or_account_owner_off_routes_by_rules() -> None:
    away = team().reps
    config = team()
    config = TeamConfig(
        reps=tuple(r if r.id != "anna" else _away(r) for r in away),
        teams=config.teams,
        rules=config.rules,
        fallback_queue=config.fallback_queue,
    )
    assert route(config, DE, SEO, state(owner="anna")).reason.startswith(
        "account owner anna is away; "
    )
    off = team(account_owner="false")
    assert route(off, DE, SEO, state(owner="olivia")).rep_id == "anna"


def _away(rep: Rep) -> Rep:
    from dataclasses import replace

    return replace(rep, available=False)


def test_round_robin_weights_by_capacity_then_least_recent_then_id() -> None:
    config = team()
    # cleo 1/2 = 0.5 is above anna 2/5 = 0.4: anna, though she has more open
    assert route(config, DE, SEO, state({"anna": 2, "bert": 3, "cleo": 1})).rep_id == "anna"
    # a tie on the ratio goes to whoever was given a lead least recently
    tied = state({"anna": 1, "bert": 1, "cleo": 2}, {"anna": T0, "bert": T0 - timedelta(hours=1)})
    got = route(config, DE, SEO, tied)
    assert got.rep_id == "bert"
    assert got.reason.endswith(
        "bert has 1 of 5 open, tied, assigned least recently (skipped cleo full)"
    )
    # never assigned counts as least recent; a full tie goes by id
    assert route(config, DE, SEO, state({}, {"anna": T0})).rep_id == "bert"
    assert route(config, DE, SEO, state()).rep_id == "anna"


def test_round_robin_skips_away_full_and_excluded_reps() -> None:
    config = team()
    config = TeamConfig(
        reps=tuple(_away(r) if r.id == "anna" else r for r in config.reps),
        teams=config.teams,
        rules=config.rules,
        fallback_queue="inbox",
    )
    got = route(config, DE, SEO, state({"bert": 5}), exclude={"olivia"})
    assert got.rep_id == "cleo"
    assert "(skipped anna away, bert full)" in got.reason
    assert route(config, DE, SEO, state({"bert": 4}), exclude={"cleo"}).rep_id == "bert"


def test_nobody_free_goes_to_the_fallback_queue() -> None:
    got = route(team(), DE, SEO, state({"anna": 5, "bert": 9}), exclude={"cleo"})
    assert got == Assignment(
        None,
        "dach",
        "inbox",
        "rule 'dach-seo' (country in [DE, AT, CH] and company_size gte 10 and group seo) "
        "-> team dach; nobody free in team dach (skipped anna full, bert full, cleo excluded) "
        "-> queue inbox",
    )


def test_no_rule_goes_to_the_default_team_or_else_the_queue() -> None:
    lead = {"country": "FR"}
    assert route(team(), lead, SEO, state()) == Assignment(
        None, None, "inbox", "no rule matched and no default team -> queue inbox"
    )
    got = route(team(default_team="uk"), lead, SEO, state({"olivia": 1}))
    assert got.rep_id == "james" and got.reason.startswith("no rule matched -> default team uk;")


def test_a_rule_to_one_rep_falls_back_to_that_reps_team_when_busy() -> None:
    lead, brand = {"country": "GB"}, {"branding": 12.0, "seo": 3.0}
    assert route(team(), lead, brand, state()) == Assignment(
        "james", "uk", None, "rule 'uk-branding' (country = GB and group branding) -> rep james"
    )
    got = route(team(), lead, brand, state({"james": 3}))
    assert got.rep_id == "olivia"
    assert "-> rep james, who is full; team uk; round robin: olivia" in got.reason


def test_reps_whose_territory_covers_the_country_come_first() -> None:
    text = TEAM.replace("team: dach, capacity: 2,", "team: dach, capacity: 2, countries: [AT],")
    got = route(team(text), {"country": "AT"}, {}, state({"cleo": 1}))
    assert got.rep_id == "cleo" and "round robin: territory AT; cleo has 1 of 2" in got.reason
    assert route(team(text), DE, {}, state()).rep_id == "anna"  # not cleo's territory
    assert route(team(text), {"country": "AT"}, {}, state({"cleo": 2})).rep_id == "anna"


@pytest.mark.parametrize(
    ("groups", "strongest"),
    [
        ({"fit": 90.0, "engagement": 40.0}, set()),  # fit and engagement are not service lines
        ({"seo": 0.0, "branding": -5.0}, set()),
        ({"seo": 10.0, "branding": 4.0}, {"seo"}),
        ({"seo": 10.0, "branding": 10.0, "web-design": 2.0}, {"seo", "branding"}),
    ],
)
def test_strongest_groups(groups: dict[str, float], strongest: set[str]) -> None:
    assert strongest_groups(groups) == strongest


def test_company_domain_ignores_free_and_disposable_mail() -> None:
    assert company_domain({"email": "Kim@ACME.example"}) == "acme.example"
    assert company_domain({"email_domain": "acme.example"}) == "acme.example"
    assert company_domain({"email": "kim@gmail.com"}) is None
    assert company_domain({"email": "x@mailinator.com"}) is None
    assert company_domain({}) is None


def _simulate(config: TeamConfig, steps: int, lifetime: dict[int, int]) -> Counter[str | None]:
    """Assign ``steps`` leads in a row, as the handover use case would: each stays open
    ``lifetime[step]`` steps; the state carries open counts, times and counts given."""
    open_: Counter[str] = Counter()
    last: dict[str, datetime] = {}
    closing: list[tuple[int, str]] = []
    got: Counter[str | None] = Counter()
    for step in range(steps):
        for item in [c for c in closing if c[0] <= step]:
            open_[item[1]] -= 1
            closing.remove(item)
        given = {rep: n for rep, n in got.items() if rep is not None}
        rep = route(config, {}, {}, RoutingState(dict(open_), last, None, given)).rep_id
        got[rep] += 1
        if rep is not None:
            open_[rep] += 1
            last[rep] = T0 + timedelta(minutes=step)
            closing.append((step + lifetime[step], rep))
    return got


SALES = """\
default_team: sales
teams: [{name: sales}]
reps:
  - {id: big, email: big@studio.example, team: sales, capacity: 8}
  - {id: small, email: small@studio.example, team: sales, capacity: 4}
"""


@pytest.mark.parametrize(
    "lifetimes",
    [(0, 0), (1, 2), (2, 10), (6, 18), (10, 30)],
    ids=["closed-at-once", "light", "busy", "near-full", "overloaded"],
)
def test_shares_follow_capacity_at_any_load(lifetimes: tuple[int, int]) -> None:
    config = load_team_config(SALES)
    rng = random.Random(7)
    got = _simulate(config, 3000, {step: rng.randint(*lifetimes) for step in range(3000)})
    assert 1.85 < got["big"] / got["small"] < 2.15, got
    if lifetimes[1] < 12:  # both together hold at most 12 open: nothing has to wait
        assert got[None] == 0


def test_capacities_fill_in_proportion_when_nothing_closes() -> None:
    got = _simulate(load_team_config(SALES), 14, dict.fromkeys(range(14), 100))
    assert got == Counter({"big": 8, "small": 4, None: 2})


def test_ties_on_the_open_ratio_go_by_leads_given_for_the_capacity() -> None:
    config = load_team_config(SALES)
    got = route(config, {}, {}, RoutingState({}, {}, None, {"big": 3, "small": 2}))
    assert got.rep_id == "big"
    assert got.reason.endswith(
        "big has 0 of 8 open, tied, fewest lately for the capacity (3 given)"
    )


# -- first-contact deadlines in working time ----------------------------------------


def rep(zone: str = "Europe/Berlin", hours: str = "{mon-fri: '09:00-17:00'}") -> Rep:
    config = load_team_config(
        f"teams: [{{name: t}}]\nreps:\n  - {{id: r, email: r@x.example, team: t, "
        f"time_zone: {zone}, hours: {hours}}}\n"
    )
    return config.reps[0]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("zone", "start", "work", "due"),
    [
        # inside the day: just add
        ("Europe/Berlin", utc(2026, 3, 3, 9, 0), 2, utc(2026, 3, 3, 11, 0)),
        # a night: 30 min on Tuesday (16:30-17:00 CET), 90 min from 09:00 Wednesday
        ("Europe/Berlin", utc(2026, 3, 3, 15, 30), 2, utc(2026, 3, 4, 9, 30)),
        # before the day starts: from 09:00 local
        ("Europe/Berlin", utc(2026, 3, 3, 3, 0), 1, utc(2026, 3, 3, 9, 0)),
        # a weekend: Friday 16:00 CET + 4h = 1h Friday, 3h Monday to 12:00 CET
        ("Europe/Berlin", utc(2026, 3, 6, 15, 0), 4, utc(2026, 3, 9, 11, 0)),
        ("Europe/Berlin", utc(2026, 3, 7, 12, 0), 4, utc(2026, 3, 9, 12, 0)),  # from Saturday
        # DST starts in Berlin on Sunday 29 March: Monday 10:00 is 08:00 UTC, not 09:00
        ("Europe/Berlin", utc(2026, 3, 27, 15, 0), 2, utc(2026, 3, 30, 8, 0)),
        # DST ends on Sunday 25 October: Friday 16:00 CEST + 2h -> Monday 10:00 CET
        ("Europe/Berlin", utc(2026, 10, 23, 14, 0), 2, utc(2026, 10, 26, 9, 0)),
        # New York: DST starts 8 March; Friday 16:00 EST + 2h -> Monday 10:00 EDT
        ("America/New_York", utc(2026, 3, 6, 21, 0), 2, utc(2026, 3, 9, 14, 0)),
        # and ends 1 November: Friday 16:00 EDT + 2h -> Monday 10:00 EST
        ("America/New_York", utc(2026, 10, 30, 20, 0), 2, utc(2026, 11, 2, 15, 0)),
        # a rep in another zone: London's morning is New York's night
        ("America/New_York", utc(2026, 3, 3, 9, 0), 1, utc(2026, 3, 3, 15, 0)),
        ("Asia/Tokyo", utc(2026, 3, 3, 9, 0), 1, utc(2026, 3, 4, 1, 0)),  # 18:00 JST: tomorrow
    ],
)
def test_due_at_counts_only_working_hours(
    zone: str, start: datetime, work: int, due: datetime
) -> None:
    got = due_at(start, rep(zone), timedelta(hours=work))
    assert got == due and got.tzinfo == UTC


def test_due_at_with_a_lunch_break_part_time_days_and_any_start_zone() -> None:
    split = rep("Europe/Berlin", "{mon-fri: ['09:00-12:00', '13:00-17:00']}")
    start = datetime(2026, 3, 3, 11, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert due_at(start, split, timedelta(hours=2)) == utc(2026, 3, 3, 13, 0)  # 14:00 CET
    part = rep("Europe/London", "{mon: '09:00-13:00', thu: '09:00-13:00'}")
    assert due_at(utc(2026, 3, 2, 12, 0), part, timedelta(hours=4)) == utc(2026, 3, 5, 12, 0)
    assert due_at(start, split, timedelta(0)) == start.astimezone(UTC)


def test_due_at_across_the_dst_gap_counts_real_time() -> None:
    # round the clock: the night DST starts has 23 hours, all of them working time
    always = rep("Europe/Berlin", "{mon-sun: '00:00-24:00'}")
    start = utc(2026, 3, 28, 22, 0)  # 23:00 CET Saturday
    assert due_at(start, always, timedelta(hours=4)) == utc(2026, 3, 29, 2, 0)
    assert due_at(start, always, timedelta(hours=48)) == utc(2026, 3, 30, 22, 0)


def test_reminder_and_first_contact_due_use_the_config() -> None:
    config = team()
    anna = config.rep("anna")
    assert anna is not None
    start = utc(2026, 3, 3, 8, 0)  # 09:00 CET
    assert config.first_contact_due(start, anna) == utc(2026, 3, 3, 12, 0)
    assert config.reminder_due(start, anna) == utc(2026, 3, 3, 9, 0)  # 25% of 4h
    assert config.escalation.escalate == config.escalate == "manager"
    assert config.manager_of(None) is None and config.manager_of("ghost") is None
    assert config.manager_of("anna") == "boss@studio.example"
    assert config.manager_of("james") == "james.boss@studio.example"
    assert config.manager_of("olivia") is None


# -- the team file ------------------------------------------------------------------


def problems(text: str, groups: list[str] | None = None) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_team_config(text, "team.yaml", groups)
    return caught.value.problems


BASE = "teams: [{name: uk}]\nreps:\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nfallbak_queue: q\n",
            "team.yaml:4: unknown key 'fallbak_queue' in the team file (allowed: account_owner, "
            "default_team, defaults, description, escalation, fallback_queue, first_contact, "
            "name, reps, rules, teams); did you mean 'fallback_queue'?",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\n"
            "  - {id: a, email: b@x.example, team: uk}\n",
            "team.yaml:4: duplicate rep id 'a'",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk, time_zone: Europe/Berlinn}\n",
            "team.yaml:3: rep 'a': unknown time zone 'Europe/Berlinn' (use an IANA name like "
            "Europe/Berlin)",
        ),
        (
            BASE + "  - id: a\n    email: a@x.example\n    team: uk\n"
            "    hours: {mon-fri: '17:00-09:00'}\n",
            "team.yaml:6: rep 'a': hours: bad working time '17:00-09:00': ends before it starts",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk, hours: {mon-fry: '09:00-17:00'}}\n",
            "team.yaml:3: rep 'a': hours: unknown day 'fry' in 'mon-fry' (days: mon, tue, wed, "
            "thu, fri, sat, sun); did you mean 'fri'?",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk, hours: {mon: '9-5'}}\n",
            "team.yaml:3: rep 'a': hours: bad working time '9-5' (use 'HH:MM-HH:MM', e.g. "
            "'09:00-17:30')",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk, capacity: 0}\n",
            "team.yaml:3: rep 'a': capacity must be a whole number of at least 1, got 0",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nrules:\n"
            "  - {id: r1, where: {country: DE}, team: dach}\n",
            "team.yaml:5: rule 'r1': unknown team 'dach' (teams: uk)",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nrules:\n"
            "  - id: r1\n    where: {country: {inn: [DE]}}\n    team: uk\n",
            "team.yaml:6: rule 'r1': field 'country': unknown operator 'inn'",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nrules:\n"
            "  - {id: r1, team: uk, rep: a}\n",
            "team.yaml:5: rule 'r1': a rule sends leads to exactly one of 'team' or 'rep'",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nrules:\n  - {id: r1, rep: b}\n",
            "team.yaml:5: rule 'r1': unknown rep 'b' (reps: a)",
        ),
        (
            BASE + "  - {id: a, email: not-an-address, team: uk}\n",
            "team.yaml:3: rep 'a': not an email address: 'not-an-address'",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nfirst_contact: soon\n",
            "team.yaml:4: bad duration 'soon'",
        ),
        (
            BASE + "  - {id: a, email: a@x.example, team: uk}\nescalation: {escalate: boss}\n",
            "team.yaml:4: escalate must be 'reassign' or 'manager', got 'boss'",
        ),
        ("teams: [{name: uk}]\nreps: [\n", "team.yaml:3: YAML syntax error"),
        ("teams: [{name: uk}]\n", "team.yaml:1: a team file needs at least one rep"),
    ],
)
def test_team_file_problems_name_the_line(text: str, expected: str) -> None:
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_are_reported_at_once_and_groups_are_checked() -> None:
    text = (
        "teams: [{name: uk}]\nreps:\n  - {id: a, email: a@x.example, team: uk, capacity: -1}\n"
        "rules:\n  - {id: r1, group: se0, team: uk}\n"
    )
    found = problems(text, ["web-design", "seo", "branding"])
    assert found == [
        "team.yaml:3: rep 'a': capacity must be a whole number of at least 1, got -1",
        "team.yaml:5: rule 'r1': unknown score group 'se0' (the model's groups: branding, seo, "
        "web-design); did you mean 'seo'?",
    ]


def test_hours_read_ranges_lists_and_days_off() -> None:
    hours = parse_hours({"mon-wed,fri": "09:00-17:30", "thu": ["08:00-12:00", "13:00-24:00"]})
    assert [len(day) for day in hours] == [1, 1, 1, 2, 1, 0, 0]
    shown = rep("UTC", "{'mon-wed,fri': '09:00-17:30', thu: ['08:00-12:00', '13:00-24:00']}")
    assert shown.describe_hours() == {
        "mon-wed": "09:00-17:30", "thu": "08:00-12:00, 13:00-24:00", "fri": "09:00-17:30"
    }  # fmt: skip
    with pytest.raises(ValueError, match="thu is given twice"):
        parse_hours({"mon-fri": "09:00-17:00", "thu": "off"})
    with pytest.raises(ValueError, match="a day without a time"):
        rep("UTC", "{mon-wed,fri: '09:00-17:30'}")  # unquoted: two keys, mon-wed empty
    assert parse_hours({"mon": "09:00-17:00", "sat": False})[5] == ()
    with pytest.raises(ValueError, match="overlap"):
        parse_hours({"mon": ["09:00-13:00", "12:00-17:00"]})


def demo_text() -> str:
    return (files("leadgate") / "models" / "demo-team.yaml").read_text("utf-8")


def test_the_demo_team_fits_the_default_model_and_the_simulated_leads() -> None:
    model = load_model((files("leadgate") / "models" / "default.yaml").read_text("utf-8"))
    config = load_team_config(demo_text(), "demo-team.yaml", model.groups)
    assert 4 <= len(config.reps) <= 6 and len(config.teams) == 3
    assert len({r.time_zone for r in config.reps}) >= 3
    assert {r.group for r in config.rules} >= {"seo", "branding"}
    placed = {
        country: route(config, {"country": country}, {"web-design": 5.0}, RoutingState())
        for country in COUNTRIES.items
    }
    assert all(a.rep_id is not None for a in placed.values()), placed
    assert placed["US"].rep_id == "mike" and placed["DE"].rep_id == "anna"
    assert placed["NL"].rep_id == "sanne"
    brand = route(config, {"country": "GB"}, {"branding": 9.0}, RoutingState())
    assert brand.rep_id == "james"


# -- storage, API and CLI -----------------------------------------------------------


@pytest.fixture
def engine(db_url: str) -> Engine:  # noqa: F811
    upgrade(db_url)
    engine = create_engine(db_url)
    yield engine  # type: ignore[misc]
    engine.dispose()


def test_the_newest_team_file_is_active_and_overrides_survive_a_new_file(engine: Engine) -> None:
    with engine.begin() as conn:
        assert uc.active_team(conn) is None
        uc.load_team(conn, TEAM, "team.yaml", "ops", T0)
        rep = uc.set_rep_available(conn, "anna", False, "anna herself", T0)
        assert rep.available is False
        rep = uc.set_rep_capacity(conn, "bert", 2, "manager", T0)
        assert rep.capacity == 2
    with engine.begin() as conn:
        uc.load_team(conn, TEAM.replace("capacity: 6", "capacity: 7"), "team.yaml", "ops", T0)
    with engine.connect() as conn:
        config = uc.active_team(conn)
        assert config is not None
        by_id = {r.id: r for r in config.reps}
        assert by_id["olivia"].capacity == 7  # the new file
        assert by_id["anna"].available is False and by_id["bert"].capacity == 2  # still
        assert TeamStore(conn).count_configs() == 2
        stored = uc.active_team_file(conn)
        assert stored is not None and stored.loaded_by == "ops" and stored.loaded_at == T0
        assert route(config, DE, SEO, RoutingState(open_handovers={"bert": 1})).rep_id == "cleo"
    with engine.begin() as conn:
        assert uc.load_demo_team(conn, T0) is None  # a team is loaded already: kept
        rep = uc.update_rep(conn, "anna", "ops", T0, available=None)  # back to the file
        assert rep.available is True
        assert "anna" not in TeamStore(conn).overrides()
        with pytest.raises(uc.RepNotFound):
            uc.set_rep_available(conn, "ghost", False, "ops", T0)
        with pytest.raises(SpecError):
            uc.load_team(conn, "reps: 3\n", "bad.yaml", "ops", T0)


def test_the_demo_team_is_loaded_into_an_empty_database(engine: Engine) -> None:
    with engine.begin() as conn:
        loaded = uc.load_demo_team(conn, T0)
        assert loaded is not None and loaded.name == "webstudio-sales"
    with engine.connect() as conn:
        stored = uc.active_team_file(conn)
        assert stored is not None and stored.text == demo_text() and stored.loaded_by == "demo"


def test_routing_and_reps_api(admin: Admin) -> None:  # noqa: F811
    assert admin.get("/api/routing").status_code == 404
    assert admin.get("/api/routing", key=None).status_code == 401
    assert admin.call("PUT", "/api/routing", key=admin.write_key, content=TEAM).status_code == 403
    assert admin.get("/api/reps").status_code == 404

    put = admin.call(
        "PUT", "/api/routing", content=demo_text(), headers={"Content-Type": "application/yaml"}
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["loaded_by"] == f"admin key #{admin.admin_key_id}"
    assert body["routing"]["fallback_queue"] == "sales-inbox"
    assert body["routing"]["rules"][0] == {
        "id": "north-america",
        "when": "country in [US, CA]",
        "to": "team americas",
        "label": "",
    }
    as_yaml = admin.get("/api/routing", headers={"Accept": "application/yaml"})
    assert as_yaml.status_code == 200 and as_yaml.text == demo_text()
    assert as_yaml.headers["content-type"].startswith("application/yaml")

    bad = admin.call(
        "PUT", "/api/routing", content=TEAM + "  - {id: x, rep: nobody}\n",
        headers={"Content-Type": "application/yaml"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["problems"] == [
        "team file:19: rule 'x': unknown rep 'nobody' (reps: anna, bert, cleo, james, olivia)"
    ]
    typo = admin.call("PUT", "/api/routing", content=TEAM + "  - {id: y, group: sep, team: uk}\n")
    assert typo.status_code == 422 and "did you mean 'seo'?" in typo.json()["problems"][0]
    assert admin.get("/api/routing").json()["routing"]["name"] == "webstudio-sales"  # unchanged

    as_json = {
        "teams": [{"name": "sales"}],
        "reps": [{"id": "zoe", "email": "zoe@x.example", "team": "sales", "capacity": 2}],
        "default_team": "sales",
    }
    assert admin.call("PUT", "/api/routing", json=as_json).status_code == 200
    tabbed = '{\n\t"teams": [{"name": "s"}],\n\t"reps": [{"id": "t", "email": "t@x.example", ' \
        '"team": "s"}]\n}'  # fmt: skip
    sent = admin.call(
        "PUT", "/api/routing", content=tabbed, headers={"Content-Type": "application/json"}
    )
    assert sent.status_code == 200, sent.text
    assert [r["id"] for r in admin.get("/api/reps").json()["reps"]] == ["t"]

    admin.call("PUT", "/api/routing", content=demo_text())
    reps = {r["id"]: r for r in admin.get("/api/reps").json()["reps"]}
    assert set(reps) == {"olivia", "james", "anna", "sanne", "mike"}
    assert reps["anna"]["hours"] == {"mon-fri": "08:30-12:30, 13:30-17:00"}
    assert reps["james"]["hours"] == {"mon-thu": "09:30-16:00"}
    assert reps["mike"]["time_zone"] == "America/New_York" and reps["mike"]["overridden"] == {}

    away = admin.call("PATCH", "/api/reps/anna", json={"available": False, "capacity": 2})
    assert away.status_code == 200, away.text
    assert away.json()["available"] is False and away.json()["capacity"] == 2
    assert away.json()["overridden"] == {"available": False, "capacity": 2}
    back = admin.call("PATCH", "/api/reps/anna", json={"available": None})
    assert back.json()["available"] is True and back.json()["overridden"] == {"capacity": 2}
    assert admin.call("PATCH", "/api/reps/ghost", json={"available": False}).status_code == 404
    for body_ in ({"capacity": 0}, {"capacity": "3"}, {"available": "no"}, {"team": "uk"}):
        assert admin.call("PATCH", "/api/reps/anna", json=body_).status_code == 422, body_
    assert admin.call("PATCH", "/api/reps/anna", json=[]).status_code == 400
    with admin.service.engine.connect() as conn:
        config = uc.active_team(conn)
        assert config is not None and config.rep("anna") is not None
        assert config.rep("anna").capacity == 2  # type: ignore[union-attr]


runner = CliRunner()


def test_cli_team_load_and_show(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    shown = runner.invoke(app, ["team", "show", "--database-url", db_url])
    assert shown.exit_code == 1 and "no sales team loaded yet" in shown.output

    demo = tmp_path / "team.yaml"
    demo.write_text(demo_text())
    loaded = runner.invoke(app, ["team", "load", str(demo), "--database-url", db_url])
    assert loaded.exit_code == 0, loaded.output
    assert "5 reps in teams uk (2), europe (2), americas (1); 4 rules" in loaded.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(demo_text().replace("capacity: 20", "capacity: none"))
    refused = runner.invoke(app, ["team", "load", str(bad), "--database-url", db_url])
    assert refused.exit_code == 2
    assert f"{bad}:51: rep 'sanne': capacity must be a whole number" in refused.output
    assert "1 problem; nothing loaded" in refused.output

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            uc.set_rep_available(conn, "mike", False, "test", T0)
    finally:
        engine.dispose()
    shown = runner.invoke(app, ["team", "show", "--database-url", db_url])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert (
        "first contact within 4h of working time; then reassign; fallback queue sales-inbox"
        in lines[0]
    )
    assert "  1. north-america: country in [US, CA] -> team americas" in lines
    mike = next(line for line in lines if line.startswith("mike"))
    assert "AWAY" in mike and "America/New_York" in mike and "changed: {'available': False}" in mike
