"""The sales team and how a sales-ready lead finds its rep: pure data and rules, no I/O.

``route`` decides who gets a lead, in a fixed order that a sales manager can
predict and check: the account's existing owner, then the first routing rule
that holds, then weighted round robin inside the chosen team, then a fallback
queue so that no lead falls through the gaps. Every ``Assignment`` says in words
why. ``due_at`` turns a first-contact SLA ("4 working hours") into an instant,
counting only the rep's own working hours in the rep's own time zone.

The caller (the handover use case) builds a ``RoutingState`` from the store;
keeping the state out of here is what lets the rules be tested as tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from leadgate.domain.conditions import Condition
from leadgate.domain.events import email_domain, to_utc
from leadgate.domain.lists import BUILTIN_LISTS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BASE_GROUPS = frozenset({"fit", "engagement"})  # every score has them; not service lines
EscalateAction = Literal["reassign", "manager"]


@dataclass(frozen=True, slots=True)
class Shift:
    """One stretch of working time in a day, in local wall-clock time.

    ``end`` None means midnight at the end of the day (written ``24:00``)."""

    start: time
    end: time | None

    def describe(self) -> str:
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


@dataclass(frozen=True, slots=True)
class Rep:
    """A sales rep. ``hours`` has one entry per weekday (0 = Monday), each a tuple of
    shifts (empty: not working that day). ``capacity`` is the most open handovers
    the rep should hold; ``available`` False means away (holiday, sick, busy)."""

    id: str
    name: str
    email: str
    team: str
    time_zone: str
    hours: tuple[tuple[Shift, ...], ...]
    capacity: int
    available: bool = True
    countries: frozenset[str] = frozenset()
    manager: str | None = None

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # a bad name fails here, not at the first due time
        if len(self.hours) != 7:
            raise ValueError(f"rep {self.id!r}: hours need one entry per weekday")
        if not any(self.hours):
            raise ValueError(f"rep {self.id!r}: no working hours on any day")
        if self.capacity < 1:
            raise ValueError(f"rep {self.id!r}: capacity must be at least 1")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def describe_hours(self) -> dict[str, str]:
        """Working hours as written in a team file: ``{"mon-fri": "09:00-17:30"}``,
        runs of days with the same hours joined, days off left out."""
        out: dict[str, str] = {}
        day = 0
        while day < 7:
            last = day
            while last + 1 < 7 and self.hours[last + 1] == self.hours[day]:
                last += 1
            if self.hours[day]:
                days = WEEKDAYS[day] if last == day else f"{WEEKDAYS[day]}-{WEEKDAYS[last]}"
                out[days] = ", ".join(s.describe() for s in self.hours[day])
            day = last + 1
        return out


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    manager: str | None
    members: tuple[str, ...]  # rep ids, in file order


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """``conditions`` on the lead's attributes all hold and, when ``group`` is set, that
    service line is the lead's strongest named score group: then ``team`` (or ``rep``)."""

    id: str
    conditions: tuple[Condition, ...]
    group: str | None
    team: str | None
    rep: str | None
    label: str = ""

    def matches(self, attributes: Mapping[str, Any], strongest: frozenset[str]) -> bool:
        if self.group is not None and self.group not in strongest:
            return False
        return all(c.holds(attributes) for c in self.conditions)

    def describe(self) -> str:
        parts = [describe_condition(c) for c in self.conditions]
        if self.group is not None:
            parts.append(f"group {self.group}")
        return " and ".join(parts) or "always"


@dataclass(frozen=True, slots=True)
class Escalation:
    """A reminder to the rep once ``remind_after`` (a share of the SLA) has passed, then
    when the SLA is missed: ``reassign`` to the next rep, or tell the ``manager``."""

    remind_after: float = 0.5
    escalate: EscalateAction = "reassign"


@dataclass(frozen=True, slots=True)
class TeamConfig:
    """One loaded team file: who sells, how leads are routed, and the follow-up SLA."""

    reps: tuple[Rep, ...]
    teams: tuple[Team, ...]
    rules: tuple[RoutingRule, ...] = ()
    account_owner: bool = True
    default_team: str | None = None
    fallback_queue: str = "unassigned"
    first_contact: timedelta = timedelta(hours=4)
    escalation: Escalation = field(default_factory=Escalation)
    name: str = "team"
    source: str = "<team>"

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None)

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    @property
    def escalate(self) -> EscalateAction:
        """What to do when the first-contact SLA is missed: reassign, or tell the manager."""
        return self.escalation.escalate

    def manager_of(self, rep_id: str | None) -> str | None:
        """Whom to escalate to: the rep's own manager, else the team's."""
        rep = self.rep(rep_id) if rep_id is not None else None
        if rep is None:
            return None
        if rep.manager:
            return rep.manager
        team = self.team(rep.team)
        return team.manager if team else None

    def first_contact_due(self, start: datetime, rep: Rep) -> datetime:
        return due_at(start, rep, self.first_contact)

    def reminder_due(self, start: datetime, rep: Rep) -> datetime:
        return due_at(start, rep, self.first_contact * self.escalation.remind_after)


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What the store knows at routing time: open handovers per rep id, when each rep
    was last given a lead, and who owns the lead's account (same company domain)."""

    open_handovers: Mapping[str, int] = field(default_factory=dict)
    last_assigned: Mapping[str, datetime] = field(default_factory=dict)
    account_owner: str | None = None
    # Leads given to each rep lately (say the last 30 days, open or not). Optional:
    # it breaks ties on the open ratio by capacity too, so that shares follow
    # capacity even when handovers close quickly and everyone has 0 open.
    assigned: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who gets the lead. ``rep_id`` None means it waits in ``queue``."""

    rep_id: str | None
    team: str | None
    queue: str | None
    reason: str


def describe_condition(condition: Condition) -> str:
    """``country in [DE, AT]``, ``company_size gte 50``: the words of a team file."""
    value = condition.value
    if isinstance(value, list | tuple):
        shown = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        shown = str(value)
    op = {"equals": "=", "not_equals": "!="}.get(condition.op, condition.op)
    return f"{condition.field} {op} {shown}"


def strongest_groups(groups: Mapping[str, float]) -> frozenset[str]:
    """The named score groups (service lines) with the most points; several on a tie,
    none when no named group has earned a positive score."""
    named = {name: points for name, points in groups.items() if name not in BASE_GROUPS}
    best = max(named.values(), default=0.0)
    if best <= 0:
        return frozenset()
    return frozenset(name for name, points in named.items() if points == best)


def company_domain(attributes: Mapping[str, Any]) -> str | None:
    """The lead's company domain for account ownership: the email domain, unless it is
    a free or disposable mail provider (many people, no shared account)."""
    domain = attributes.get("email_domain") or email_domain(attributes.get("email"))
    if not isinstance(domain, str) or not domain:
        return None
    domain = domain.strip().lower()
    if (
        domain in BUILTIN_LISTS["free_email_providers"]
        or domain in BUILTIN_LISTS["disposable_email_providers"]
    ):
        return None
    return domain


def _free(rep: Rep, state: RoutingState, exclude: frozenset[str]) -> str | None:
    """Why the rep cannot take a lead now, or None when they can."""
    if rep.id in exclude:
        return "excluded"
    if not rep.available:
        return "away"
    if state.open_handovers.get(rep.id, 0) >= rep.capacity:
        return "full"
    return None


def _round_robin(
    config: TeamConfig,
    team: str,
    country: str | None,
    state: RoutingState,
    exclude: frozenset[str],
) -> tuple[Rep | None, str]:
    """The rep with the lowest open/capacity ratio (weighting by capacity); ties to
    the fewest leads given lately for the capacity (when the caller counts them),
    then to whoever was given a lead least recently, then by id. Away, full and
    excluded reps are skipped. Reps whose territory covers the lead's country
    come first."""
    members = [r for r in config.reps if r.team == team]
    skipped = [f"{r.id} {why}" for r in members if (why := _free(r, state, exclude))]
    eligible = [r for r in members if _free(r, state, exclude) is None]
    note = f" (skipped {', '.join(skipped)})" if skipped else ""
    if not eligible:
        return None, f"nobody free in team {team}{note}"
    local = [r for r in eligible if country and country in r.countries]
    territory = ""
    if local and len(local) < len(eligible):
        eligible, territory = local, f"territory {country}; "
    never = datetime.min.replace(tzinfo=UTC)

    def key(rep: Rep) -> tuple[float, float, datetime, str]:
        return (
            state.open_handovers.get(rep.id, 0) / rep.capacity,
            state.assigned.get(rep.id, 0) / rep.capacity,
            to_utc(state.last_assigned.get(rep.id, never)),
            rep.id,
        )

    ranked = sorted(eligible, key=key)
    chosen = ranked[0]
    open_now = state.open_handovers.get(chosen.id, 0)
    why = "the only one free" if len(ranked) == 1 else "lowest"
    if len(ranked) > 1 and key(ranked[1])[0] == key(chosen)[0]:
        first, second = key(chosen), key(ranked[1])
        if first[1] != second[1]:
            given = state.assigned.get(chosen.id, 0)
            why = f"tied, fewest lately for the capacity ({given} given)"
        elif first[2] != second[2]:
            why = "tied, assigned least recently"
        else:
            why = "tied"
    return chosen, (
        f"round robin: {territory}{chosen.id} has {open_now} of {chosen.capacity} open, {why}{note}"
    )


def route(
    config: TeamConfig,
    lead_attributes: Mapping[str, Any],
    groups: Mapping[str, float],
    state: RoutingState,
    exclude: Sequence[str] | frozenset[str] | set[str] = (),
) -> Assignment:
    """Who gets a sales-ready lead, and why (see the module docstring for the order).

    ``groups`` are the lead's score groups (``Score.groups``); ``exclude`` names reps
    who must not get it (an escalation reassigns to the next rep)."""
    skip = frozenset(exclude)
    country = lead_attributes.get("country")
    country = str(country) if country not in (None, "") else None

    owner = config.rep(state.account_owner) if state.account_owner else None
    owner_note = ""
    if config.account_owner and owner is not None:
        why_not = _free(owner, state, skip)
        if why_not is None:
            domain = company_domain(lead_attributes)
            of = f" of {domain}" if domain else ""
            return Assignment(
                owner.id,
                owner.team,
                None,
                f"account owner: {owner.id} already owns the account{of}",
            )
        owner_note = f"account owner {owner.id} is {why_not}; "

    strongest = strongest_groups(groups)
    rule = next((r for r in config.rules if r.matches(lead_attributes, strongest)), None)
    if rule is not None:
        picked = f"rule '{rule.id}' ({rule.describe()})"
        if rule.rep is not None:
            rep = config.rep(rule.rep)
            assert rep is not None  # the team file checks that rule reps exist
            why_not = _free(rep, state, skip)
            if why_not is None:
                return Assignment(rep.id, rep.team, None, f"{owner_note}{picked} -> rep {rep.id}")
            team = rep.team
            picked += f" -> rep {rep.id}, who is {why_not}; team {team}"
        else:
            assert rule.team is not None
            team = rule.team
            picked += f" -> team {team}"
    elif config.default_team is not None:
        team = config.default_team
        picked = f"no rule matched -> default team {team}"
    else:
        return Assignment(
            None,
            None,
            config.fallback_queue,
            f"{owner_note}no rule matched and no default team -> queue {config.fallback_queue}",
        )

    rep, how = _round_robin(config, team, country, state, skip)
    if rep is None:
        return Assignment(
            None,
            team,
            config.fallback_queue,
            f"{owner_note}{picked}; {how} -> queue {config.fallback_queue}",
        )
    return Assignment(rep.id, team, None, f"{owner_note}{picked}; {how}")


def _instant(day: date, at: time | None, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (None: the midnight ending ``day``).

    A time in a spring-forward gap is read with the offset before the change, so
    09:00 always means 09:00; an ambiguous autumn time is its first occurrence."""
    if at is None:
        day, at = day + timedelta(days=1), time(0)
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


MAX_DAYS = 800  # a rep works at least one day a week, so far more than enough


def due_at(start: datetime, rep: Rep, work: timedelta) -> datetime:
    """The instant (UTC) when ``work`` of the rep's working time has passed after ``start``.

    Only the rep's working hours count, in the rep's time zone: nights, weekends
    and days off do not. Shifts are turned into UTC instants day by day, so a
    daylight saving change shortens or lengthens only a shift that spans it."""
    cursor = to_utc(start)
    if work <= timedelta(0):
        return cursor
    left = work
    zone = rep.zone
    day = cursor.astimezone(zone).date() - timedelta(days=1)  # a shift may run past midnight
    for _ in range(MAX_DAYS):
        for shift in rep.hours[day.weekday()]:
            begin = _instant(day, shift.start, zone)
            end = _instant(day, shift.end, zone)
            if end <= cursor:
                continue
            begin = max(begin, cursor)
            if begin + left <= end:
                return begin + left
            left -= end - begin
            cursor = end
        day += timedelta(days=1)
    raise ValueError(f"rep {rep.id!r}: no working time found within {MAX_DAYS} days")
