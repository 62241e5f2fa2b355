"""Stage decisions from a breakdown, and the words that explain them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadgate.domain.conditions import format_duration
from leadgate.domain.events import Event
from leadgate.domain.model import ScoringModel
from leadgate.domain.scoring import Award, Breakdown, RuleResult


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a lead stands and why: the rules behind it, the threshold, the model version."""

    lead_id: str
    stage: str
    score: float
    cause: str
    rule_ids: tuple[str, ...]
    threshold: float | None
    model_version: str
    reason: str | None = None  # the disqualification reason, if any


def contributing(breakdown: Breakdown) -> list[RuleResult]:
    """Rules that gave points, largest effect first (ties by rule id)."""
    scored = [r for r in breakdown.rules if round(r.points, 9) != 0]
    return sorted(scored, key=lambda r: (-abs(r.points), r.rule_id))


def shown(value: float, thresholds: Iterable[float] = (), digits: int = 1) -> str:
    """``value`` rounded for people, never rounded across a threshold (39.99 is not "40.0")."""
    limits = list(thresholds)
    for places in range(digits, 10):
        text = f"{value:.{places}f}"
        if all((float(text) >= t) == (value >= t) for t in limits):
            return text
    return repr(value)


def decide(breakdown: Breakdown, model: ScoringModel) -> Decision:
    """new, nurturing, mql, sql or disqualified, as DESIGN.md defines them."""
    total = breakdown.total
    t = model.thresholds
    score = shown(total, (t.mql, t.sql))
    rule_ids = tuple(r.rule_id for r in contributing(breakdown) if r.points > 0)

    def make(
        stage: str,
        cause: str,
        ids: tuple[str, ...],
        threshold: float | None,
        reason: str | None = None,
    ) -> Decision:
        return Decision(
            breakdown.lead_id, stage, total, cause, ids, threshold, breakdown.model_version, reason
        )

    if breakdown.disqualified is not None:
        dq = breakdown.disqualified
        detail = f" ({dq.detail})" if dq.detail else ""
        return make(
            "disqualified", f"{dq.reason}: {dq.label}{detail}", (dq.rule_id,), None, dq.reason
        )
    window = format_duration(model.intent_window)
    if total >= t.sql and breakdown.intent is not None:
        intent = breakdown.intent
        cause = (
            f"score {score} >= SQL threshold {t.sql:g} and {intent.event_type} "
            f"on {intent.at:%Y-%m-%d} (within {window})"
        )
        return make("sql", cause, (*rule_ids, f"intent:{intent.event_type}"), t.sql)
    if total >= t.mql:
        cause = f"score {score} >= MQL threshold {t.mql:g}"
        if total >= t.sql:
            cause += f"; no intent action within {window} for SQL"
        return make("mql", cause, rule_ids, t.mql)
    if breakdown.events_seen == 0:
        return make("new", f"no activity yet; score {score}", rule_ids, t.mql)
    return make("nurturing", f"score {score} < MQL threshold {t.mql:g}", rule_ids, t.mql)


def _num(value: float) -> str:
    text = f"{value:+.1f}"
    return text[:-2] if text.endswith(".0") else text


def describe_rule(result: RuleResult) -> str:
    """``+10 pricing page (3 events, 20 before decay, capped)``."""
    details: list[str] = []
    if result.kind == "fit":
        return f"{_num(result.points)} {result.label}"
    if result.kind in ("event", "return_after_gap"):
        noun = "return" if result.kind == "return_after_gap" else "event"
        details.append(f"{result.matched} {noun}{'s' if result.matched != 1 else ''}")
    if result.note:
        details.append(result.note)
    if abs(result.raw - result.points) >= 0.05:
        details.append(f"{result.raw:g} before decay")
    return (
        f"{_num(result.points)} {result.label} ({', '.join(details)})"
        if details
        else (f"{_num(result.points)} {result.label}")
    )


def reasons(breakdown: Breakdown) -> str:
    """One line: every rule that gave points, largest first."""
    parts = [describe_rule(r) for r in contributing(breakdown)]
    if breakdown.disqualified is not None:
        parts.insert(
            0, f"disqualified: {breakdown.disqualified.reason} ({breakdown.disqualified.label})"
        )
    return "; ".join(parts)


def _event_line(award: Award, event: Event | None) -> str:
    what = event.type if event else award.event_id
    if event is not None:
        detail = next((str(event.properties[k]) for k in _SHOWN if event.properties.get(k)), "")
        what = f"{what} {detail}".strip()
    decayed = f" -> {award.points:+.1f}" if abs(award.points - award.raw) >= 0.05 else ""
    return f"      {award.at:%Y-%m-%d %H:%M} {what} ({award.raw:+g}{decayed})"


_SHOWN = ("path", "asset", "campaign", "form", "webinar", "message", "body")


def explain(
    breakdown: Breakdown,
    decision: Decision,
    events: Sequence[Event] = (),
    per_rule: int = 5,
    probability: float | None = None,
) -> str:
    """A readable, multi-line explanation of one lead's score and stage.

    With ``events``, each rule lists (up to ``per_rule`` of) the events that
    earned its points; with ``probability`` (a calibrated model), the score read
    as the chance of a good outcome.
    """
    b = breakdown
    thresholds = [decision.threshold] if decision.threshold is not None else []
    lines = [
        f"lead {b.lead_id}: {decision.stage.upper()}, score {shown(b.total, thresholds)} "
        f"(fit {b.fit:.1f}, engagement {b.engagement:.1f})",
        f"  as of {b.as_of:%Y-%m-%d %H:%M} UTC, model {b.model_name}@{b.model_version}, "
        f"{b.events_seen} event{'' if b.events_seen == 1 else 's'}",
        f"  why: {decision.cause}",
    ]
    if probability is not None:
        lines.append(f"  probability of a good outcome: {probability:.0%} (calibrated)")
    named = {k: v for k, v in b.groups.items() if k not in ("fit", "engagement")}
    if named:
        lines.append("  groups: " + ", ".join(f"{k} {v:.1f}" for k, v in named.items()))
    scored = contributing(b)
    if scored:
        by_id = {e.id: e for e in events}
        lines.append("  points:")
        for r in scored:
            lines.append(f"    {describe_rule(r)}")
            if by_id:
                lines += [_event_line(a, by_id.get(a.event_id)) for a in r.awards[:per_rule]]
                if len(r.awards) > per_rule:
                    lines.append(f"      ... and {len(r.awards) - per_rule} more")
    else:
        lines.append("  points: none")
    if b.intent is not None:
        lines.append(f"  intent: {b.intent.event_type} at {b.intent.at:%Y-%m-%d %H:%M} UTC")
    if b.disqualified is not None:
        dq = b.disqualified
        detail = f": {dq.detail}" if dq.detail else ""
        lines.append(f"  disqualified: {dq.reason} by rule {dq.rule_id} ({dq.label}){detail}")
    return "\n".join(lines)


def breakdown_document(
    breakdown: Breakdown, decision: Decision, events: Sequence[Event] = ()
) -> dict[str, Any]:
    """A breakdown as plain JSON-ready data: what the API shows and what a handover
    keeps (the score as it was when the lead was handed over)."""

    def time(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    intent, dq = breakdown.intent, breakdown.disqualified
    return {
        "as_of": time(breakdown.as_of),
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
        if intent is None
        else {"event_id": intent.event_id, "event_type": intent.event_type, "at": time(intent.at)},
        "disqualified": None
        if dq is None
        else {"rule_id": dq.rule_id, "reason": dq.reason, "label": dq.label},
        "decision": {"stage": decision.stage, "cause": decision.cause},
        "explanation": explain(breakdown, decision, events),
    }
