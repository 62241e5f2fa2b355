"""A seeded, synthetic event history for a B2B agency website (web design, SEO, branding).

``simulate`` writes Segment-spec JSON lines (``page``, ``track`` and ``identify`` calls)
and a ground-truth CSV. It works one person at a time: all of a person's events are
generated, sorted by time and written before the next person is started, so memory stays
bounded however many leads are asked for. The output as a whole is therefore grouped by
person, not globally sorted by time; scorers are order independent.

Each person draws from their own ``random.Random`` seeded with (seed, person index), so
the same seed gives byte-identical output and people could be generated in parallel.
Personas are spread over the person indexes by a low-discrepancy sequence, so even small
runs get close to the intended mix. Company attributes are drawn per person: two people
at companies of the same name may disagree on size or industry.

The ground truth gives each person's persona, true intent and whether they would become a
customer; ``converted_at`` may fall after the window (the deal closes later).
"""

from __future__ import annotations

import csv
import gzip
import random
import uuid
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

import orjson

from leadgate.domain.events import to_utc
from leadgate.simulation.site import (
    _COMPANIES,
    _NAME_SPACE,
    _PAGE_POOLS,
    _PERSONA_CUM,
    _SIZE_POOLS,
    _TITLE_POOLS,
    ASSETS,
    CAMPAIGNS,
    CORE,
    COUNTRIES,
    DISPOSABLE,
    FIRST,
    FREE_MAIL,
    INDUSTRIES,
    INTENT_ACTIONS,
    JOB_MESSAGES,
    LAST,
    PERSONAS,
    PREFIX,
    QUOTES,
    REFERRERS,
    REPLY_QUESTIONS,
    RIVALS,
    SALES_MESSAGES,
    SITE,
    SPAM_MESSAGES,
    SUFFIXES,
    SUPPORT_QUESTIONS,
    TITLES,
    UNIVERSITIES,
    Persona,
)

T = TypeVar("T")
_DAY, _HOUR, _MIN, _SEC = 86_400_000, 3_600_000, 60_000, 1000
_WEEK = 7 * _DAY
TRUTH_HEADER = ("lead_id", "email", "persona", "intent", "converted", "converted_at")


def _page_name(path: str) -> str:
    return path.rsplit("/", 1)[1].replace("-", " ").title().replace("Seo", "SEO") or "Home"


_PAGES = {p: _page_name(p) for pool in PERSONAS for p in pool.paths} | {
    link: _page_name(link) for _, link in CAMPAIGNS
}


@cache
def _page(path: str, referrer: str, utm: str | None) -> dict[str, str]:
    """Page properties, shared by every event with the same ones (never mutated)."""
    props = {"path": path, "url": SITE + path, "title": f"{_PAGES[path]} | Webstudio"}
    if utm is not None:
        props["search"] = f"?utm_source=nurture&utm_medium=email&utm_campaign={utm}"
        props["url"] += props["search"]
        props |= {"utm_source": "nurture", "utm_medium": "email", "utm_campaign": utm}
    return props | {"referrer": referrer}


@cache
def _campaign(k: int) -> tuple[str, str, dict[str, str]]:
    """The campaign id, link and email properties of the ``k``-th weekly campaign."""
    cid, (subject, link) = f"nurture-{k + 1:02d}", CAMPAIGNS[k % len(CAMPAIGNS)]
    return cid, link, {"campaign_id": cid, "email_id": f"e{k + 1:03d}", "email_subject": subject}


def persona_for(seed: int, index: int) -> Persona:
    """The persona of person ``index``: shares are met closely even in small runs."""
    u = (index * 0.6180339887498949 + seed * 0.7548776662466927) % 1.0
    return PERSONAS[min(bisect(_PERSONA_CUM, u * _PERSONA_CUM[-1]), len(PERSONAS) - 1)]


@dataclass(frozen=True)
class SimulationConfig:
    leads: int = 1000
    days: int = 90
    seed: int = 1
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    events_per_lead: float = 20.0  # the average, reached by scaling pages per visit

    def __post_init__(self) -> None:
        if self.leads < 0 or self.days < 1 or self.events_per_lead <= 0:
            raise ValueError("need leads >= 0, days >= 1 and events_per_lead > 0")


@dataclass(frozen=True)
class SimulationSummary:
    leads: int
    events: int
    converted: int
    personas: Mapping[str, int]


@cache
def _time_texts() -> tuple[list[str], list[str]]:
    """Lookup tables for "HH:MM:" by minute of the day and "SS.mmmZ" by millisecond."""
    hh_mm = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
    return hh_mm, [f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(_MIN)]


class _Clock:
    """Millisecond offsets from the start as ISO 8601 UTC text ("2026-01-03T10:15:00.000Z")."""

    def __init__(self, start: datetime) -> None:
        self.base = int(to_utc(start).timestamp() * 1000)
        self.dates: dict[int, str] = {}
        self.hh_mm, self.ss_ms = _time_texts()

    def iso(self, offset: int) -> str:
        day, rest = divmod(self.base + offset, _DAY)
        if (date := self.dates.get(day)) is None:
            date = self.dates[day] = f"{datetime(1970, 1, 1) + timedelta(days=day):%Y-%m-%dT}"
        minute, ms = divmod(rest, _MIN)
        return date + self.hh_mm[minute] + self.ss_ms[ms]


class _Person:
    """One person's whole history: ``run`` builds it, ``lines`` and ``truth`` render it."""

    def __init__(self, config: SimulationConfig, index: int, clock: _Clock, scale: float) -> None:
        self.rng = rng = random.Random(f"leadgate-sim:{config.seed}:{index}")
        self.config, self.index, self.clock, self.page_scale = config, index, clock, scale
        self.random, self.p = rng.random, persona_for(config.seed, index)
        self.page_pool, self.end = _PAGE_POOLS[self.p.name], config.days * _DAY
        self.events: list[tuple[int, int, dict[str, Any]]] = []
        self.t_id, self.user_id = self.end, f"u-{index + 1:06d}"
        self.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.traits = self._traits()
        self.pricing = self.clicks = 0
        self.services: set[str] = set()
        self.returned = False
        self.intent_at: int | None = None
        self.reply_to: int | None = None

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def one(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]

    def _traits(self) -> dict[str, Any]:
        rng, one, name = self.rng, self.one, self.p.name
        # A bijection of the index onto (first, last, company number) keeps emails unique.
        x = (self.index * 1_000_003 + 7) % _NAME_SPACE if self.index < _NAME_SPACE else self.index
        x, first = divmod(x, len(FIRST))
        x, last = divmod(x, len(LAST))
        local = f"{FIRST[first]}.{LAST[last]}".lower().replace("ü", "ue")
        company = PREFIX[x % len(PREFIX)] + CORE[x // len(PREFIX) % len(CORE)]
        domain = f"{company.lower()}{x // _COMPANIES or ''}.example"
        company, industry = f"{company} {one(SUFFIXES)}", INDUSTRIES.pick(rng)
        if name == "competitor":
            domain = one(list(RIVALS))
            company, industry, local = RIVALS[domain], "Marketing & Advertising", f"{local}{x}"
        elif name == "spammer":
            domain, local = one(DISPOSABLE), f"{local.replace('.', '')}{x}"
            company = one(("SEO Rank Pro", "Global Traffic", "", "Best Deals"))
        elif name == "job_seeker":
            company, industry = one(UNIVERSITIES), "Education"
        if self.random() < self.p.free_mail:
            domain, local = one(FREE_MAIL), f"{local}{x}"
        low, high = _SIZE_POOLS[name].pick(rng)
        traits: dict[str, Any] = {
            "email": f"{local}@{domain}", "first_name": FIRST[first], "last_name": LAST[last],
            "title": one(TITLES[_TITLE_POOLS[name].pick(rng)]), "company": company,
            "company_size": self.between(low, high), "industry": industry,
            "country": COUNTRIES.pick(rng),
        }  # fmt: skip
        return traits | {"customer": True} if name == "existing_customer" else traits

    def track(self, t: int, event: str, properties: dict[str, Any]) -> int:
        """Record a track call at ``t``; returns a moment a few seconds later."""
        if t < self.end:
            record = {"type": "track", "event": event, "properties": properties}
            self.events.append((t, len(self.events), record))
        return t + self.between(2, 40) * _SEC

    def page(self, t: int, path: str, referrer: str, utm: str | None = None) -> int:
        if t < self.end:
            record = {
                "type": "page",
                "name": _PAGES[path],
                "properties": _page(path, referrer, utm),
            }
            self.events.append((t, len(self.events), record))
            self.pricing += path == "/pricing"
            if path.startswith("/services/"):
                self.services.add(path)
        return t + self.between(15, 150) * _SEC

    def session(self, t: int, referrer: str, first: str | None, utm: str | None = None) -> int:
        count = self.between(*self.p.pages)
        if self.p.pages[1] > 1:  # scaled with random rounding, so the mean scales exactly
            count = max(1, int(count * self.page_scale + self.random()))
        path = first or self.page_pool.pick(self.rng)
        for _ in range(count):
            t = self.page(t, path, referrer, utm)
            referrer, path, utm = SITE + path, self.page_pool.pick(self.rng), None
        return t

    def form(self, t: int, form: str, message: str | None = None, **extra: str) -> int:
        tr = self.traits
        fields = {"email": tr["email"], "first_name": tr["first_name"], "company": tr["company"]}
        props: dict[str, Any] = {"form": form, "fields": fields | extra}
        return self.track(t, "Form Submitted", props | ({"message": message} if message else {}))

    def spam(self, t: int) -> int:
        honeypot = {"website_url": "http://cheap-links.example"} if self.random() < 0.4 else {}
        form = self.one(("contact", "contact", "contact-sales", "request-proposal"))
        return self.form(t, form, self.one(SPAM_MESSAGES), **honeypot)

    def download(self, t: int, asset: str) -> int:
        kind = ASSETS[asset]
        event = "Guide Downloaded" if kind == "guide" else "Case Study Downloaded"
        return self.track(t, event, {"asset": asset, "asset_type": kind})

    def visit_days(self) -> list[int]:
        p, days = self.p, self.config.days
        gaps = [self.between(*p.gap_days) for _ in range(self.between(*p.visits) - 1)]
        if (total := sum(gaps)) > days - 1:
            gaps = [max(1, g * (days - 1) // total) for g in gaps]
        while sum(gaps) > days - 1:
            gaps.pop(0)
        self.returned = any(g >= 3 for g in gaps)
        return list(accumulate(gaps, initial=self.between(0, days - 1 - sum(gaps))))

    def run(self) -> None:
        name = self.p.name
        visit_days = self.visit_days()
        last = len(visit_days) - 1
        id_visit = {"job_seeker": last, "ready_buyer": self.between(0, last // 2)}.get(name, 0)
        if name == "researcher":
            id_visit = self.between(0, min(1, last))
        assets = self.rng.sample(list(ASSETS), self.between(*self.p.downloads))
        later = [(self.between(id_visit, last), asset) for asset in assets[1:]]
        for i, day in enumerate(visit_days):
            t = day * _DAY + self.between(7 * 60, 21 * 60) * _MIN + self.between(0, 59) * _SEC
            referrer = REFERRERS.pick(self.rng) if i == 0 or self.random() < 0.5 else ""
            t = self.session(t, referrer, "/login" if name == "existing_customer" else None)
            if i == id_visit:
                t = self.identify(t, assets[:1])
            elif name == "spammer":
                t = self.spam(t)
            for asset in (asset for visit, asset in later if visit == i):
                t = self.download(t, asset)
            if i == last and name == "ready_buyer":
                self.intent(self.page(t, "/pricing", SITE + "/"))
            elif i == last and name == "researcher" and self.random() < 0.1:
                self.intent(t)
        self.emails()

    def identify(self, t: int, guide: list[str]) -> int:
        """Identify at ``t`` through the form this persona uses (customers just log in)."""
        self.t_id, name = t, self.p.name
        self.events.append((t, -1, {"type": "identify", "traits": self.traits}))
        t += _SEC
        if name == "job_seeker":
            return self.form(t, "contact", self.one(JOB_MESSAGES))
        if name == "spammer":
            return self.spam(t)
        if name == "existing_customer":
            return t
        if guide:
            return self.download(self.form(t, "guide-download"), guide[0])
        return self.form(t, "newsletter")

    def intent(self, t: int) -> None:
        """A hand-raise at ``t``: a quote request, a call, a sales form or an email reply."""
        one, action = self.one, INTENT_ACTIONS.pick(self.rng)
        self.intent_at = t
        latest = (t - 15 * _HOUR) // _WEEK  # the last campaign that had time to arrive
        if action == "reply" and latest * _WEEK + 9 * _HOUR > self.t_id:
            self.reply_to = latest
            return
        service, message = one(QUOTES)
        if action == "call":
            start = (t // _DAY + self.between(1, 6)) * _DAY + one((10, 11, 14, 15)) * _HOUR
            props = {"start_time": self.clock.iso(start), "end_time": self.clock.iso(start + _HOUR)}
            meeting = one(("discovery-call", "project-consultation"))
            self.track(t, "Call Booked", props | {"meeting_type": meeting})
        elif action == "form":
            budget = one(("under 5k", "5-15k", "15-50k", "50k+"))
            kind = one(("contact-sales", "request-proposal"))
            self.form(t, kind, one(SALES_MESSAGES), budget=budget, service=service)
        else:
            self.track(t, "Quote Requested", {"message": message, "service": service})

    def emails(self) -> None:
        """Weekly nurture campaigns to the person once identified, at 09:00 from day one."""
        p, one, track, between = self.p, self.one, self.track, self.between
        for k, sent in enumerate(range(9 * _HOUR, self.end, _WEEK)):
            if sent <= self.t_id:
                continue
            cid, link, props = _campaign(k)
            t = sent + between(0, 1800) * _SEC
            if p.name == "spammer" and self.random() < 0.5:
                track(t, "Email Bounced", props)
                break
            track(t, "Email Delivered", props)
            if k == self.reply_to:
                t = track(t + between(5, 240) * _MIN, "Email Opened", props)
                self.intent_at = t + between(5, 60) * _MIN
                track(self.intent_at, "Email Replied", props | {"body": one(REPLY_QUESTIONS)})
                continue
            t += int(self.rng.expovariate(1 / 6) * _HOUR)
            if self.random() >= p.open_rate or t >= self.end:
                continue
            t = track(t, "Email Opened", props)
            if self.random() < p.click_rate and t < self.end:
                self.clicks += 1
                t = track(t, "Email Link Clicked", props | {"link_url": SITE + link})
                self.session(t, "", link, utm=cid)
            if p.name == "existing_customer" and self.random() < 0.05:
                track(t, "Email Replied", props | {"body": one(SUPPORT_QUESTIONS)})
            if self.random() < p.unsubscribe_rate and (self.reply_to is None or self.reply_to < k):
                track(t, "Unsubscribed", props)
                break

    def lines(self) -> list[bytes]:
        self.events.sort()
        prefix, iso, out = f"sim-{self.config.seed}-{self.index}-", self.clock.iso, []
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        for n, (t, _, record) in enumerate(self.events):
            record["messageId"] = f"{prefix}{n}"
            record["timestamp"] = iso(t)
            if t >= self.t_id:
                record["userId"] = self.user_id
            record["anonymousId"] = self.anonymous_id
            out.append(dumps(record, option=newline))
        return out

    def truth(self) -> tuple[str, ...]:
        """Ground truth; conversion is persona-driven and follows observable behaviour."""
        name, pricing, chance = self.p.name, min(self.pricing, 4), 0.0
        if name == "ready_buyer":
            chance = 0.05 + 0.1 * pricing + 0.05 * len(self.services) + 0.1 * self.returned
        elif name == "researcher":
            chance = 0.07 + 0.4 * (self.intent_at is not None) + 0.06 * pricing
        elif name == "nurture_reader":
            chance = 0.02 + 0.015 * min(self.clicks, 4)
        when = ""
        if converted := self.random() < chance:
            since = self.intent_at or max((e[0] for e in self.events), default=0)
            when = self.clock.iso(since + self.between(2, 30) * _DAY)
        row = (self.user_id, self.traits["email"], name, self.p.intent)
        return (*row, str(int(converted)), when)


@lru_cache(maxsize=16)
def _page_scale(config: SimulationConfig) -> float:
    """The factor on pages per visit that brings the mean events per person to the target.

    Emails and forms follow their own cadence, so a pilot of 400 people (the same for any
    number of leads) measures page and other events, and pages make up the difference.
    """
    clock, pages, others = _Clock(config.start), 0, 0
    for index in range(400):
        person = _Person(config, index, clock, 1.0)
        person.run()
        pages += (n := sum(e[2]["type"] == "page" for e in person.events))
        others += len(person.events) - n
    return max(0.05, (config.events_per_lead * 400 - others) / max(pages, 1))


class ByteSink(Protocol):
    """Where events go: a binary file, a gzip stream, a buffer."""

    def write(self, data: bytes, /) -> object: ...


def simulate(
    config: SimulationConfig,
    events_out: ByteSink,
    truth_out: TextIO,
    on_progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Write ``config.leads`` people's events (JSON lines) and their ground truth (CSV).

    People are generated and written one at a time, each person's events in time order;
    the file as a whole is grouped by person, not sorted by time. ``on_progress`` is
    called with the number of people done every 10,000 people and at the end.
    """
    clock, scale = _Clock(config.start), _page_scale(replace(config, leads=0))
    writer = csv.writer(truth_out, lineterminator="\n")
    writer.writerow(TRUTH_HEADER)
    personas: Counter[str] = Counter()
    events = converted = 0
    for index in range(config.leads):
        person = _Person(config, index, clock, scale)
        person.run()
        lines = person.lines()
        events_out.write(b"".join(lines))
        row = person.truth()
        writer.writerow(row)
        events += len(lines)
        converted += row[4] == "1"
        personas[person.p.name] += 1
        if on_progress is not None and ((index + 1) % 10_000 == 0 or index + 1 == config.leads):
            on_progress(index + 1)
    return SimulationSummary(config.leads, events, converted, dict(personas))


def main_simulate(
    leads: int,
    days: int,
    seed: int,
    events_path: str | Path,
    truth_path: str | Path,
    *,
    events_per_lead: float = 20.0,
    on_progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Simulate into files; an events path ending in ``.gz`` is gzip-compressed, reproducibly."""
    config = SimulationConfig(leads=leads, days=days, seed=seed, events_per_lead=events_per_lead)
    events_file, truth_file = Path(events_path), Path(truth_path)
    with events_file.open("wb") as raw, truth_file.open("w", newline="", encoding="utf-8") as truth:
        if events_file.suffix == ".gz":
            with gzip.GzipFile("", "wb", 3, raw, mtime=0) as zipped:
                return simulate(config, zipped, truth, on_progress)
        return simulate(config, raw, truth, on_progress)
