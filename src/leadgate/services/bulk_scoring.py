"""Use case: score a large Segment history at once with the vectorised scorer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadgate.domain.model import ScoringModel
from leadgate.domain.stages import shown
from leadgate.fastscore import connect, load_segment, score_all


def _reasons(
    points: list[dict[str, Any]] | None, labels: dict[str, str], reason: str | None, by: str | None
) -> str:
    parts = sorted(points or [], key=lambda p: (-abs(p["points"]), p["rule_id"]))
    text = [f"{p['points']:+.1f} {labels.get(p['rule_id'], p['rule_id'])}" for p in parts]
    if reason is not None:
        text.insert(0, f"disqualified: {reason} ({labels.get(str(by), by)})")
    return "; ".join(text)


def bulk_score(
    model: ScoringModel,
    events: Path,
    as_of: datetime | None,
    workdir: Path | None = None,
    memory_limit: str = "3GB",
) -> tuple[datetime, Iterator[dict[str, Any]]]:
    """Scoring time and one result row per lead, from Segment JSON lines, in DuckDB.

    Gives the reference evaluator's numbers (tests compare them); reasons list
    each rule's points without the per-rule details ``explain`` shows.
    """
    con = connect(":memory:", memory_limit=memory_limit, temp_directory=workdir)
    store = load_segment(con, [str(events)])
    if as_of is None:
        (latest,) = con.execute(f"SELECT max(us) FROM {store.events}").fetchone() or (None,)
        now = datetime.now(UTC)
        as_of = now if latest is None else min(_utc(latest), now)
    scores = score_all(model, store, as_of)
    labels = {r.id: r.label for r in (*model.rules, *model.fit, *model.disqualifiers)}
    per_lead = scores.points.aggregate(
        "lead_id, list(struct_pack(rule_id := rule_id, points := points)) AS points", "lead_id"
    )
    joined = scores.leads.join(per_lead, "lead_id", how="left").order("lead_id")
    names = joined.columns
    thresholds = (model.thresholds.mql, model.thresholds.sql)
    version = f"{model.name}@{model.version}"

    def rows() -> Iterator[dict[str, Any]]:
        for values in joined.iter_rows(10_000):
            row = dict(zip(names, values, strict=True))
            out: dict[str, Any] = {
                "lead_id": row["lead_id"],
                "stage": row["stage"],
                "score": float(shown(row["total"], thresholds, 2)),
                "fit_score": round(float(row["fit"]), 2),
                "engagement_score": round(float(row["engagement"]), 2),
                "reasons": _reasons(
                    row["points"], labels, row["disqualified_reason"], row["disqualified_by"]
                ),
            }
            for name in model.groups:
                out[f"group_{name}"] = round(float(row["groups"][name]), 2)
            out.update(
                {
                    "disqualified_reason": row["disqualified_reason"],
                    "intent_action": row["intent_type"],
                    "events": row["events_seen"],
                    "model_version": version,
                    "as_of": as_of.isoformat(),
                }
            )
            yield out

    return as_of, rows()


def _utc(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
