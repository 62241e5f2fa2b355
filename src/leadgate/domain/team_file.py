"""Read a team file (YAML or JSON) and check it, like a scoring model file.

Every problem is reported with file and line; all problems are collected before
failing, so one run shows everything to fix. The format (docs/team.md)::

    first_contact: 4h
    account_owner: true
    fallback_queue: sales-inbox
    default_team: uk
    escalation: {remind_after: 50%, escalate: reassign}
    defaults: {time_zone: Europe/London, hours: {mon-fri: '09:00-17:30'}, capacity: 5}
    teams:
      - {name: uk, manager: grace@studio.example}
    reps:
      - {id: anna, name: Anna Weber, email: anna@studio.example, team: uk}
    rules:
      - {id: seo, where: {country: {in: [GB, IE]}}, group: seo, team: uk}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable
from datetime import time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadgate.domain.conditions import Condition, build_conditions, parse_duration
from leadgate.domain.lists import BUILTIN_LISTS
from leadgate.domain.team import (
    WEEKDAYS,
    Escalation,
    Rep,
    RoutingRule,
    Shift,
    Team,
    TeamConfig,
)
from leadgate.domain.yamldoc import Path, SpecError, YamlDoc, parse_yaml

TOP_KEYS = {
    "name",
    "description",
    "first_contact",
    "account_owner",
    "fallback_queue",
    "default_team",
    "escalation",
    "defaults",
    "teams",
    "reps",
    "rules",
}
DEFAULT_KEYS = {"time_zone", "hours", "capacity"}
TEAM_KEYS = {"name", "manager"}
REP_KEYS = {
    "id",
    "name",
    "email",
    "team",
    "countries",
    "time_zone",
    "hours",
    "capacity",
    "available",
    "manager",
}
RULE_KEYS = {"id", "label", "where", "group", "team", "rep"}
ESCALATION_KEYS = {"remind_after", "escalate"}
_SHIFT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _hint(word: str, known: Iterable[str], cutoff: float = 0.75) -> str:
    """``; did you mean 'team'?`` when a known word is close."""
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=cutoff)
    return f"; did you mean '{close[0]}'?" if close else ""


def load_team_config(
    text: str, source: str = "<team>", groups: Collection[str] | None = None
) -> TeamConfig:
    """Parse and check a team file; raise SpecError listing every problem.

    ``groups``: the scoring model's named score groups, when known, so that a rule
    on a misspelt group is refused instead of silently never matching."""
    return _TeamReader(parse_yaml(text, source), groups).read()


def parse_hours(spec: Any) -> tuple[tuple[Shift, ...], ...]:
    """``{mon-fri: '09:00-17:30', sat: off}`` -> shifts per weekday; ValueError otherwise.

    Days are ``mon``..``sun``, ranges (``mon-fri``) and comma lists (``mon,wed``);
    a day's value is ``HH:MM-HH:MM``, a list of those, or ``off``."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(
            f"hours must map days to times, like {{mon-fri: '09:00-17:30'}}, got {spec!r}"
        )
    days: list[tuple[Shift, ...] | None] = [None] * 7
    for key, value in spec.items():
        shifts = _shifts(value)
        for index in _days(str(key)):
            if days[index] is not None:
                raise ValueError(f"{WEEKDAYS[index]} is given twice")
            days[index] = shifts
    if not any(days):
        raise ValueError("no working time on any day")
    return tuple(d or () for d in days)


def _days(key: str) -> list[int]:
    out: list[int] = []
    for part in key.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            bad = first if first not in WEEKDAYS else last
            raise ValueError(
                f"unknown day {bad!r} in {key!r} (days: {', '.join(WEEKDAYS)})"
                f"{_hint(bad, WEEKDAYS, 0.6)}"
            )
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if b < a:
            raise ValueError(f"day range {part!r} runs backwards")
        out.extend(range(a, b + 1))
    return out


def _shifts(value: Any) -> tuple[Shift, ...]:
    if value is False or value == "off":  # YAML reads a bare off as false
        return ()
    if value is None:  # often a flow mapping's comma: {mon-wed,fri: ...} is two keys
        raise ValueError("a day without a time (quote day lists: 'mon,wed'; a day off: off)")
    items = value if isinstance(value, list) else [value]
    shifts: list[Shift] = []
    for item in items:
        match = _SHIFT.match(item) if isinstance(item, str) else None
        if not match:
            raise ValueError(f"bad working time {item!r} (use 'HH:MM-HH:MM', e.g. '09:00-17:30')")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise ValueError(f"bad working time {item!r}: no such time of day")
        start = time(h1, m1)
        end = None if h2 == 24 else time(h2, m2)
        if end is not None and end <= start:
            raise ValueError(f"bad working time {item!r}: ends before it starts")
        shifts.append(Shift(start, end))
    shifts.sort(key=lambda s: s.start)
    for before, after in pairwise(shifts):
        if before.end is None or before.end > after.start:
            raise ValueError(f"working times {before.describe()} and {after.describe()} overlap")
    return tuple(shifts)


class _TeamReader:
    def __init__(self, doc: YamlDoc, groups: Collection[str] | None) -> None:
        self.doc = doc
        self.groups = None if groups is None else set(groups)
        self.problems: list[str] = []

    def fail(self, path: Path, message: str, who: str | None = None) -> None:
        prefix = f"{who}: " if who else ""
        self.problems.append(f"{self.doc.where(path)}: {prefix}{message}")

    def check_keys(
        self, data: dict[str, Any], allowed: set[str], path: Path, what: str, who: str | None
    ) -> None:
        for key in data:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                self.fail(
                    (*path, key),
                    f"unknown key '{key}' in {what} (allowed: {known}){_hint(str(key), allowed)}",
                    who,
                )

    def items(self, data: dict[str, Any], key: str) -> list[tuple[Path, dict[str, Any]]]:
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail((key,), f"'{key}' must be a list")
            return []
        out: list[tuple[Path, dict[str, Any]]] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append(((key, i), item))
            else:
                self.fail((key, i), f"each of '{key}' must be a mapping of keys, got {item!r}")
        return out

    def text(self, data: dict[str, Any], key: str, path: Path, who: str | None) -> str | None:
        value = data.get(key)
        if value is None:
            self.fail(path, f"'{key}' is required", who)
            return None
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            self.fail((*path, key), f"'{key}' must be text, got {value!r}", who)
            return None
        return str(value)

    def email(self, value: Any, path: Path, who: str | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _EMAIL.match(value):
            self.fail(path, f"not an email address: {value!r}", who)
            return None
        return value

    def time_zone(self, value: Any, path: Path, who: str | None) -> str | None:
        try:
            if not isinstance(value, str) or not value:
                raise ValueError
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(
                path,
                f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)",
                who,
            )
            return None
        return value

    def hours(
        self, value: Any, path: Path, who: str | None
    ) -> tuple[tuple[Shift, ...], ...] | None:
        try:
            return parse_hours(value)
        except ValueError as exc:
            self.fail(path, f"hours: {exc}", who)
            return None

    def capacity(self, value: Any, path: Path, who: str | None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(path, f"capacity must be a whole number of at least 1, got {value!r}", who)
            return None
        return value

    # -- the whole file ------------------------------------------------------
    def read(self) -> TeamConfig:
        data = self.doc.data
        if not isinstance(data, dict):
            raise SpecError([f"{self.doc.where(())}: a team file must be a mapping of keys"])
        self.check_keys(data, TOP_KEYS, (), "the team file", None)
        defaults = self.read_defaults(data.get("defaults"))
        teams = self.read_teams(data)
        reps = self.read_reps(data, defaults, {t.name for t in teams})
        rep_ids = {r.id for r in reps}
        team_names = {t.name for t in teams}
        rules = self.read_rules(data, team_names, rep_ids)
        first_contact = self.duration(data.get("first_contact", "4h"), ("first_contact",))
        escalation = self.read_escalation(data.get("escalation"))
        account_owner = data.get("account_owner", True)
        if not isinstance(account_owner, bool):
            self.fail(
                ("account_owner",), f"account_owner must be true or false, got {account_owner!r}"
            )
        queue = data.get("fallback_queue", "unassigned")
        if not isinstance(queue, str) or not queue:
            self.fail(("fallback_queue",), f"fallback_queue must be a name, got {queue!r}")
        default_team = data.get("default_team")
        if default_team is not None and default_team not in team_names:
            known = ", ".join(sorted(team_names)) or "none"
            self.fail(
                ("default_team",),
                f"unknown team {default_team!r} (teams: {known})"
                f"{_hint(str(default_team), team_names)}",
            )
        if not reps and not self.problems:
            self.fail(("reps",), "a team file needs at least one rep")
        if self.problems:
            raise SpecError(self.problems)
        assert first_contact is not None and escalation is not None
        members = {t.name: tuple(r.id for r in reps if r.team == t.name) for t in teams}
        return TeamConfig(
            reps=tuple(reps),
            teams=tuple(Team(t.name, t.manager, members[t.name]) for t in teams),
            rules=tuple(rules),
            account_owner=bool(account_owner),
            default_team=None if default_team is None else str(default_team),
            fallback_queue=str(queue),
            first_contact=first_contact,
            escalation=escalation,
            name=str(data.get("name", "team")),
            source=self.doc.source,
        )

    def duration(self, value: Any, path: Path) -> timedelta | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None

    def read_defaults(self, spec: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if spec is None:
            return out
        if not isinstance(spec, dict):
            self.fail(("defaults",), "'defaults' must be a mapping (time_zone, hours, capacity)")
            return out
        self.check_keys(spec, DEFAULT_KEYS, ("defaults",), "defaults", None)
        if "time_zone" in spec:
            out["time_zone"] = self.time_zone(spec["time_zone"], ("defaults", "time_zone"), None)
        if "hours" in spec:
            out["hours"] = self.hours(spec["hours"], ("defaults", "hours"), None)
        if "capacity" in spec:
            out["capacity"] = self.capacity(spec["capacity"], ("defaults", "capacity"), None)
        return out

    def read_teams(self, data: dict[str, Any]) -> list[Team]:
        teams: list[Team] = []
        for path, spec in self.items(data, "teams"):
            who = f"team '{spec['name']}'" if isinstance(spec.get("name"), str) else None
            self.check_keys(spec, TEAM_KEYS, path, "a team", who)
            name = self.text(spec, "name", path, who)
            manager = self.email(spec.get("manager"), (*path, "manager"), who)
            if name is None:
                continue
            if any(t.name == name for t in teams):
                self.fail((*path, "name"), f"duplicate team name {name!r}")
                continue
            teams.append(Team(name, manager, ()))
        return teams

    def read_reps(
        self, data: dict[str, Any], defaults: dict[str, Any], teams: set[str]
    ) -> list[Rep]:
        reps: list[Rep] = []
        for path, spec in self.items(data, "reps"):
            who = f"rep '{spec['id']}'" if isinstance(spec.get("id"), str | int) else None
            self.check_keys(spec, REP_KEYS, path, "a rep", who)
            rep_id = self.text(spec, "id", path, who)
            name = spec.get("name", rep_id)
            email = self.email(spec.get("email"), (*path, "email"), who)
            if spec.get("email") is None:
                self.fail(path, "'email' is required (notifications go there)", who)
            team = self.text(spec, "team", path, who)
            if team is not None and team not in teams:
                known = ", ".join(sorted(teams)) or "none"
                self.fail(
                    (*path, "team"),
                    f"unknown team {team!r} (teams: {known}){_hint(team, teams)}",
                    who,
                )
            zone = (
                self.time_zone(spec["time_zone"], (*path, "time_zone"), who)
                if "time_zone" in spec
                else defaults.get("time_zone", "UTC")
            )
            hours = (
                self.hours(spec["hours"], (*path, "hours"), who)
                if "hours" in spec
                else defaults.get("hours") or parse_hours({"mon-fri": "09:00-17:00"})
            )
            capacity = (
                self.capacity(spec["capacity"], (*path, "capacity"), who)
                if "capacity" in spec
                else defaults.get("capacity", 5)
            )
            available = spec.get("available", True)
            if not isinstance(available, bool):
                self.fail(
                    (*path, "available"), f"available must be true or false, got {available!r}", who
                )
            countries = spec.get("countries", [])
            if not isinstance(countries, list) or not all(isinstance(c, str) for c in countries):
                self.fail((*path, "countries"), "countries must be a list of country codes", who)
                countries = []
            manager = self.email(spec.get("manager"), (*path, "manager"), who)
            if rep_id is not None and any(r.id == rep_id for r in reps):
                self.fail((*path, "id"), f"duplicate rep id {rep_id!r}")
                continue
            if None in (rep_id, email, team, zone, hours, capacity) or team not in teams:
                continue
            assert rep_id and email and team and zone and hours and capacity
            reps.append(
                Rep(
                    id=rep_id,
                    name=str(name),
                    email=email,
                    team=team,
                    time_zone=zone,
                    hours=hours,
                    capacity=capacity,
                    available=bool(available),
                    countries=frozenset(countries),
                    manager=manager,
                )
            )
        return reps

    def read_rules(
        self, data: dict[str, Any], teams: set[str], reps: set[str]
    ) -> list[RoutingRule]:
        rules: list[RoutingRule] = []
        seen: set[str] = set()
        for path, spec in self.items(data, "rules"):
            who = f"rule '{spec['id']}'" if isinstance(spec.get("id"), str | int) else None
            self.check_keys(spec, RULE_KEYS, path, "a rule", who)
            rule_id = self.text(spec, "id", path, who)
            if rule_id is not None:
                if rule_id in seen:
                    self.fail((*path, "id"), f"duplicate rule id {rule_id!r}")
                seen.add(rule_id)
            conditions: list[Condition] = []
            if "where" in spec:
                for field, _op, built in build_conditions(spec["where"], BUILTIN_LISTS):
                    if isinstance(built, str):
                        self.fail(
                            (*path, "where", field) if field else (*path, "where"), built, who
                        )
                    else:
                        conditions.append(built)
            group = spec.get("group")
            if group is not None and not isinstance(group, str):
                self.fail(
                    (*path, "group"), f"group must be a score group's name, got {group!r}", who
                )
                group = None
            elif group is not None and self.groups is not None and group not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none"
                self.fail(
                    (*path, "group"),
                    f"unknown score group {group!r} (the model's groups: {known})"
                    f"{_hint(group, self.groups, 0.6)}",
                    who,
                )
            team, rep = spec.get("team"), spec.get("rep")
            if (team is None) == (rep is None):
                self.fail(path, "a rule sends leads to exactly one of 'team' or 'rep'", who)
            elif team is not None and team not in teams:
                known = ", ".join(sorted(teams)) or "none"
                self.fail(
                    (*path, "team"),
                    f"unknown team {team!r} (teams: {known}){_hint(str(team), teams)}",
                    who,
                )
            elif rep is not None and rep not in reps:
                self.fail(
                    (*path, "rep"),
                    f"unknown rep {rep!r} (reps: {', '.join(sorted(reps)) or 'none'})"
                    f"{_hint(str(rep), reps)}",
                    who,
                )
            if rule_id is None:
                continue
            rules.append(
                RoutingRule(
                    id=rule_id,
                    conditions=tuple(conditions),
                    group=group,
                    team=None if team is None else str(team),
                    rep=None if rep is None else str(rep),
                    label=str(spec.get("label", "")),
                )
            )
        return rules

    def read_escalation(self, spec: Any) -> Escalation | None:
        if spec is None:
            return Escalation()
        if not isinstance(spec, dict):
            self.fail(("escalation",), "'escalation' must be a mapping (remind_after, escalate)")
            return None
        self.check_keys(spec, ESCALATION_KEYS, ("escalation",), "escalation", None)
        remind = spec.get("remind_after", "50%")
        share: float | None = None
        if isinstance(remind, str) and remind.strip().endswith("%"):
            try:
                share = float(remind.strip()[:-1]) / 100
            except ValueError:
                share = None
        elif isinstance(remind, int | float) and not isinstance(remind, bool):
            share = float(remind)
        if share is None or not 0 < share <= 1:
            self.fail(
                ("escalation", "remind_after"),
                f"remind_after must be a share of first_contact, like 50% or 0.5, got {remind!r}",
            )
        action = spec.get("escalate", "reassign")
        if action not in ("reassign", "manager"):
            self.fail(
                ("escalation", "escalate"),
                f"escalate must be 'reassign' or 'manager', got {action!r}",
            )
        if share is None or action not in ("reassign", "manager"):
            return None
        return Escalation(
            remind_after=share, escalate="reassign" if action == "reassign" else "manager"
        )
