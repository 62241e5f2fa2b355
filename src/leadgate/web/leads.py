"""The lead API's views: plain JSON-ready dicts built from the store and the evaluator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import evaluate
from leadgate.domain.stages import decide, describe_rule, explain
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
        "breakdown": {
            "as_of": _time(breakdown.as_of),
            "model": f"{breakdown.model_name}@{breakdown.model_version}",
            "total": breakdown.total,
            "fit": breakdown.fit,
            "engagement": breakdown.engagement,
            "groups": dict(breakdown.groups),
            "rules": [
                {
                    "rule_id": r.rule_id,
                    "kind": r.kind,
                    "label": r.label,
                    "points": r.points,
                    "raw": r.raw if r.kind != "fit" else r.points,
                    "text": describe_rule(r),
                    "events": [a.event_id for a in r.awards],
                }
                for r in breakdown.rules
                if round(r.points, 9) != 0
            ],
            "intent": None
            if breakdown.intent is None
            else {
                "event_id": breakdown.intent.event_id,
                "event_type": breakdown.intent.event_type,
                "at": _time(breakdown.intent.at),
            },
            "disqualified": None
            if breakdown.disqualified is None
            else {
                "rule_id": breakdown.disqualified.rule_id,
                "reason": breakdown.disqualified.reason,
                "label": breakdown.disqualified.label,
            },
            "decision": {"stage": decision.stage, "cause": decision.cause},
            "explanation": explain(breakdown, decision, events),
        },
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
