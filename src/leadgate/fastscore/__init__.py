"""Vectorised scoring in DuckDB: every lead at once, the reference evaluator's numbers.

    con = connect("scores.duckdb", memory_limit="3GB", temp_directory="tmp")
    store = load_segment(con, ["events.jsonl"])        # or prepare(con, events, leads)
    scores = score_all(model, store, as_of)
    scores.leads    # one row per lead: totals, groups, stage, intent, disqualification
    scores.points   # one row per lead and rule that gave points
    for row in scores.rows(): ...

    scores = score_segment_files(model, ["events.jsonl"], as_of)    # the same, in one call

``leadgate.domain.scoring.evaluate`` defines what a score is; tests check that this path
gives the same points per rule, totals, intent, disqualification and stage.
"""

from leadgate.fastscore.engine import Scores, score_all, score_segment_files
from leadgate.fastscore.segment import load_segment
from leadgate.fastscore.store import EventStore, connect, prepare

__all__ = [
    "EventStore",
    "Scores",
    "connect",
    "load_segment",
    "prepare",
    "score_all",
    "score_segment_files",
]
