"""Use case: score every lead of a source and decide its stage."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadgate.domain.events import Event, Lead
from leadgate.domain.model import STAGES, ScoringModel
from leadgate.domain.scoring import Breakdown, evaluate
from leadgate.domain.stages import Decision, decide, reasons, shown


@dataclass
class Inputs:
    """Leads and their events, grouped by lead id, read from one or more sources."""

    leads: dict[str, Lead] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    latest: datetime | None = None
    event_count: int = 0

    def add_lead(self, lead: Lead) -> None:
        held = self.leads.get(lead.id)
        if held is None:
            self.leads[lead.id] = lead
        else:  # later rows fill in and override earlier attributes
            self.leads[lead.id] = Lead(lead.id, {**held.attributes, **lead.attributes})

    def add_event(self, event: Event) -> None:
        self.events[event.lead_id].append(event)
        self.event_count += 1
        if self.latest is None or event.timestamp > self.latest:
            self.latest = event.timestamp

    def lead_ids(self) -> list[str]:
        """Every lead with attributes or events, in a stable order."""
        return sorted(set(self.leads) | set(self.events))


@dataclass(frozen=True, slots=True)
class Scored:
    breakdown: Breakdown
    decision: Decision


def score_all(model: ScoringModel, inputs: Inputs, as_of: datetime) -> Iterator[Scored]:
    for lead_id in inputs.lead_ids():
        lead = inputs.leads.get(lead_id) or Lead(lead_id, {})
        breakdown = evaluate(model, lead, inputs.events.get(lead_id, ()), as_of)
        yield Scored(breakdown, decide(breakdown, model))


def result_row(scored: Scored, model: ScoringModel) -> dict[str, Any]:
    """One output row: the required columns first, then detail."""
    b, d = scored.breakdown, scored.decision
    row: dict[str, Any] = {
        "lead_id": b.lead_id,
        "stage": d.stage,
        "score": float(shown(b.total, (model.thresholds.mql, model.thresholds.sql), 2)),
        "fit_score": round(float(b.fit), 2),
        "engagement_score": round(float(b.engagement), 2),
        "reasons": reasons(b),
    }
    if model.calibration is not None:  # a learned model: the score read as a probability
        row["probability"] = round(model.calibration.probability(b.total), 4)
    for name in model.groups:
        row[f"group_{name}"] = round(b.groups.get(name, 0.0), 2)
    row.update(
        {
            "email": b.attributes.get("email"),
            "disqualified_reason": d.reason,
            "intent_action": b.intent.event_type if b.intent else None,
            "intent_at": b.intent.at.isoformat() if b.intent else None,
            "cause": d.cause,
            "events": b.events_seen,
            "last_event_at": b.last_event_at.isoformat() if b.last_event_at else None,
            "model_version": f"{model.name}@{model.version}",
            "as_of": b.as_of.isoformat(),
        }
    )
    return row


@dataclass
class StageTable:
    """Leads per stage and, where outcomes are known, the share that converted."""

    counts: Counter[str] = field(default_factory=Counter)
    converted: Counter[str] = field(default_factory=Counter)
    with_outcome: Counter[str] = field(default_factory=Counter)

    def add(self, stage: str, outcome: bool | None) -> None:
        self.counts[stage] += 1
        if outcome is not None:
            self.with_outcome[stage] += 1
            self.converted[stage] += int(outcome)

    @property
    def has_outcomes(self) -> bool:
        return sum(self.with_outcome.values()) > 0

    def rows(self) -> list[tuple[str, int, float | None]]:
        out: list[tuple[str, int, float | None]] = []
        for stage in STAGES:
            n = self.counts.get(stage, 0)
            known = self.with_outcome.get(stage, 0)
            out.append((stage, n, self.converted[stage] / known if known else None))
        return out

    def conversion(self, stages: Iterable[str]) -> float | None:
        known = sum(self.with_outcome[s] for s in stages)
        return sum(self.converted[s] for s in stages) / known if known else None


def outcome_of(lead_id: str, outcomes: Mapping[str, bool] | None) -> bool | None:
    if outcomes is None:
        return None
    return outcomes.get(lead_id, False)
