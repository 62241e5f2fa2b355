"""The lead API's views: plain JSON-ready dicts built from the store and the evaluator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import evaluate
from leadgate.domain.stages import breakdown_document, decide
from leadgate.services.leads import Erasure, LeadPage, LeadSummary
from leadgate.store.records import StageChange
from leadgate.store.repository import Repository

RECENT_EVENTS = 20


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def lead_view(
    repo: Repository, model: ScoringModel, lead_id: str, now: datetime
) -> dict[str, Any] | None:
    """One lead as of ``now`` (decay applied on read), or None when unknown."""
    lead = repo.get_lead(lead_id)
    state = repo.lead_state(lead_id)
    if lead is None or state is None:
        return None
    events = repo.load_events(lead_id)
    breakdown = evaluate(model, lead, events, now)
    decision = decide(breakdown, model)
    recent = events[-RECENT_EVENTS:][::-1]
    return {
        "id": lead_id,
        "email": lead.attributes.get("email"),
        "stage": state[0],
        "score": breakdown.total,
        "attributes": dict(lead.attributes),
        "identities": [{"kind": k, "value": v} for k, v in repo.identities_of(lead_id)],
        "breakdown": breakdown_document(breakdown, decision, events),
        "recent_events": [
            {
                "id": e.id,
                "type": e.type,
                "at": _time(e.timestamp),
                "properties": dict(e.properties),
            }
            for e in recent
        ],
        "stage_history": [
            {
                "from": c.from_stage,
                "to": c.to_stage,
                "cause": c.cause,
                "rule_ids": list(c.rule_ids),
                "model_version": c.model_version,
                "actor": c.actor,
                "at": _time(c.at),
            }
            for c in repo.stage_history(lead_id)
        ],
    }


def summary_view(lead: LeadSummary) -> dict[str, Any]:
    """One lead in a list; ``score`` is the stored one, computed at ``score_as_of``."""
    return {
        "id": lead.id,
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "stage": lead.stage,
        "score": lead.score,
        "score_as_of": _time(lead.score_as_of),
        "created_at": _time(lead.created_at),
        "updated_at": _time(lead.updated_at),
    }


def page_view(page: LeadPage) -> dict[str, Any]:
    return {"items": [summary_view(lead) for lead in page.items], "next": page.next}


def change_view(change: StageChange) -> dict[str, Any]:
    """A stage change as recorded, in the shape of the lead view's stage history."""
    return {
        "lead_id": change.lead_id,
        "from": change.from_stage,
        "to": change.to_stage,
        "cause": change.cause,
        "rule_ids": list(change.rule_ids),
        "model_version": change.model_version,
        "actor": change.actor,
        "at": _time(change.at),
    }


def erasure_view(erasure: Erasure) -> dict[str, Any]:
    return {
        "erased": True,
        "erasure_id": erasure.id,
        "at": _time(erasure.at),
        "deleted": dict(erasure.counts),
    }
