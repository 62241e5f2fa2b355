"""Use case: a database a newcomer can explore at once.

``load_demo`` fills an empty database with a simulated agency's last 90 days
(``leadgate.simulation``), imported through the live ingest path, so there are
real leads in every stage, and creates a write key and an admin key to try the
API with. A database that already holds leads is left as it is (keys are still
created, so the newcomer has keys to use). The demo agency's sales team
(``models/demo-team.yaml``) is loaded first, so sales-ready leads are handed
over to its reps.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select

from leadgate.domain.events import parse_timestamp
from leadgate.domain.model import ScoringModel
from leadgate.services.bulk_import import ImportSummary, import_events, leads_per_stage
from leadgate.services.handover import record_outcome
from leadgate.services.outbox import EVENTS, add_subscription
from leadgate.services.outcomes import OutcomeEntry, save_outcomes
from leadgate.services.team import load_demo_team
from leadgate.simulation import SimulationConfig, simulate
from leadgate.store import tables as t
from leadgate.store import transact
from leadgate.store.handover_store import HandoverStore
from leadgate.store.repository import Repository

DEMO_LEADS = 1500
DEMO_DAYS = 90
DEMO_SEED = 7


@dataclass
class DemoSummary:
    loaded: bool  # False when the database already held leads
    write_key: str
    admin_key: str
    stages: dict[str, int] = field(default_factory=dict)
    imported: ImportSummary | None = None
    example_leads: dict[str, str] = field(default_factory=dict)  # stage -> a lead id


def load_demo(
    engine: Engine,
    model: ScoringModel,
    workdir: Path,
    leads: int = DEMO_LEADS,
    now: datetime | None = None,
    on_progress: Callable[[ImportSummary], None] | None = None,
    webhook: tuple[str, str] | None = None,
) -> DemoSummary:
    """Load the simulated history into an empty database and create demo keys;
    ``webhook`` (url, secret) subscribes a receiver to every lifecycle event."""
    at = now or datetime.now(UTC)
    loaded = False
    imported = None
    if _lead_count(engine) == 0:
        transact(engine, lambda conn: load_demo_team(conn, at))  # a sales team to hand over to
        if webhook is not None:
            url, secret = webhook
            transact(engine, lambda conn: add_subscription(conn, url, secret, EVENTS, at))
        workdir.mkdir(parents=True, exist_ok=True)
        events = workdir / "demo-events.jsonl.gz"
        config = SimulationConfig(
            leads=leads, days=DEMO_DAYS, seed=DEMO_SEED, start=at - timedelta(days=DEMO_DAYS)
        )
        truth_path = workdir / "demo-truth.csv"
        with (
            events.open("wb") as raw,
            gzip.GzipFile("", "wb", 3, raw, mtime=0) as zipped,
            truth_path.open("w", newline="", encoding="utf-8") as truth,
        ):
            simulate(config, zipped, truth)
        imported = import_events(engine, model, events, chunk=2000, now=at, on_progress=on_progress)
        record_feedback(engine, truth_path, at)
        record_closed_deals(engine, truth_path, at)
        loaded = True

    def keys(conn: Connection) -> tuple[str, str]:
        repo = Repository(conn)
        return repo.create_api_key("write", at)[1], repo.create_api_key("admin", at)[1]

    write_key, admin_key = transact(engine, keys)
    return DemoSummary(
        loaded,
        write_key,
        admin_key,
        leads_per_stage(engine),
        imported,
        _examples(engine),
    )


FEEDBACK_SHARE = 0.7  # of the handovers, the oldest get sales' answer; the rest stay open
NOTE = "demo: from the simulation's ground truth"
NOT_A_FIT = frozenset({"job_seeker", "competitor", "spammer", "existing_customer"})


def record_feedback(
    engine: Engine, truth_path: Path, at: datetime, share: float = FEEDBACK_SHARE
) -> dict[str, int]:
    """Sales' answers on the oldest ``share`` of the demo's handovers, from the simulation's
    ground truth: a lead that goes on to buy is accepted, then won (or an opportunity
    when the deal closes after ``at``); any other is rejected, as not a fit for the
    personas who never buy a new project (job seekers, competitors, spammers, customers) and
    as not ready otherwise. The newest handovers stay open for a rep to take. Returns
    the outcomes recorded, by kind."""
    truth: dict[str, tuple[str, bool, datetime | None]] = {}
    with truth_path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            when = parse_timestamp(row["converted_at"]) if row["converted_at"] else None
            truth[row["lead_id"]] = (row["persona"], row["converted"] == "1", when)
    with engine.connect() as conn:
        handovers = HandoverStore(conn).listing(statuses=["open"], limit=1_000_000)
    counts: Counter[str] = Counter()
    for handover in handovers[: int(len(handovers) * share)]:
        persona, converted, when = truth.get(handover.lead_id, ("", False, None))
        if converted:
            steps: list[tuple[str, str | None]] = [("accepted", None)]
            steps.append(("won" if when and when <= at else "opportunity", None))
        else:
            steps = [("rejected", "not_a_fit" if persona in NOT_A_FIT else "not_ready")]
        for outcome, reason in steps:
            answer = partial(record_outcome, handover_id=handover.id, outcome=outcome)
            transact(engine, partial(answer, reason=reason, note=NOTE, actor="demo-sales", at=at))
            counts[outcome] += 1
    return dict(counts)


def record_closed_deals(engine: Engine, truth_path: Path, at: datetime) -> int:
    """The CRM's word on the leads sales never saw, as imported outcomes: those who bought
    (before ``at``) are good as of their purchase, the others bad as of ``at``. Leads
    handed over already have sales' answer; anonymous visitors are not leads. Returns
    how many outcomes were stored."""
    with engine.connect() as conn:
        handed = set(conn.execute(select(t.handovers.c.lead_id)).scalars())
    entries: list[OutcomeEntry] = []
    with truth_path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["lead_id"] in handed:
                continue
            when = parse_timestamp(row["converted_at"]) if row["converted_at"] else None
            if row["converted"] == "1" and when is not None and when <= at:
                entries.append(OutcomeEntry(row["lead_id"], True, when, "closed deal"))
            elif row["converted"] != "1":
                entries.append(OutcomeEntry(row["lead_id"], False, at, "no purchase"))
    results = transact(engine, lambda conn: save_outcomes(conn, entries, "import", "crm", at))
    return results.count("imported")


def _lead_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.leads)).scalar_one())


def _examples(engine: Engine) -> dict[str, str]:
    """The highest-scoring lead of each stage, to look at first."""
    c = t.leads.c
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for stage in ("handed_over", "mql", "nurturing", "disqualified"):
            lead = conn.execute(
                select(c.id).where(c.stage == stage).order_by(c.score.desc(), c.id).limit(1)
            ).scalar_one_or_none()
            if lead is not None:
                out[stage] = lead
    return out
