"""The vectorised backtest: every lead's checkpoints scored at once in DuckDB.

``fast_checkpoints(model, store)`` gives what ``backtest.reference_checkpoints`` gives,
for a history prepared by ``fastscore`` (``prepare``, ``load_segment`` or
``store_from_inputs``):

1. each lead's event times are its checkpoints (of a repeated event id only the copy
   the reference keeps counts); for a model that hands over at SQL only the checkpoints
   with an intent action at most the intent window before them are kept: no other can
   be a handover (intent actions are matched in Python on the few events of their types);
2. each checkpoint becomes a pseudo-lead: the lead's attributes and its events up to
   the checkpoint, all moved forward in time so that the checkpoint falls on one common
   scoring time. Ages, windows, gaps and orders do not change under such a shift, and
   ``fastscore.score_all(..., shifts=...)`` keeps period caps on the original times, so
   one scoring run scores every checkpoint exactly as of its own moment;
3. pseudo-leads are scored in batches of at most ``batch_events`` events; a batch
   copies only (pseudo-lead, order, shifted time, source event) and reads the rest of
   each event through a view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import orjson

from leadgate.domain.events import Event, Lead, to_utc
from leadgate.domain.model import ScoringModel
from leadgate.domain.outcomes import Outcome
from leadgate.fastscore import EventStore, connect, prepare, score_all
from leadgate.fastscore.plan import loads
from leadgate.fastscore.sql import texts
from leadgate.learning.backtest import (
    Checkpoints,
    compare,
    from_us,
    is_intent,
    reference_checkpoints,
    to_us,
)

BATCH_EVENTS = 6_000_000


def store_from_inputs(
    con: duckdb.DuckDBPyConnection,
    leads: Mapping[str, Lead],
    events: Mapping[str, Sequence[Event]],
    prefix: str = "hist",
) -> EventStore:
    """A fastscore store of leads and events held in memory."""
    flat = [e for own in events.values() for e in own]
    con.execute(
        f"CREATE OR REPLACE TABLE {prefix}_in_ev AS SELECT unnest(?::VARCHAR[]) AS lead_id, "
        "unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS type, "
        "unnest(?::BIGINT[]) AS ts, unnest(?::VARCHAR[]) AS properties",
        [
            [e.lead_id for e in flat],
            [e.id for e in flat],
            [e.type for e in flat],
            [to_us(to_utc(e.timestamp)) for e in flat],
            [_json(e.properties) for e in flat],
        ],
    )
    people = list(leads.values())
    con.execute(
        f"CREATE OR REPLACE TABLE {prefix}_in_leads AS SELECT unnest(?::VARCHAR[]) AS lead_id, "
        "CAST(unnest(?::VARCHAR[]) AS JSON) AS attributes",
        [[p.id for p in people], [_json(p.attributes) for p in people]],
    )
    store = prepare(con, f"{prefix}_in_ev", f"{prefix}_in_leads", prefix=prefix)
    con.execute(f"DROP TABLE {prefix}_in_ev")
    con.execute(f"DROP TABLE {prefix}_in_leads")
    return store


def _json(value: Mapping[str, Any]) -> str:
    return orjson.dumps(dict(value), default=str).decode()


class _Replay:
    def __init__(self, model: ScoringModel, store: EventStore, prefix: str) -> None:
        self.model = model
        self.store = store
        self.con = store.con
        self.p = prefix

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(query, params or []).fetchall()

    def counted(self) -> str:
        """A table of the counted events (lead_key, ord, us, id, type, props): every event
        but the copies of a repeated id that the reference drops."""
        ev, p = self.store.events, self.p
        best: dict[tuple[int, str], tuple[Any, ...]] = {}
        for lead_key, event_id, ord_, us, kind, props in self.sql(
            f"SELECT lead_key, id, ord, us, type, props FROM {ev} WHERE dup"
        ):
            key = (us, kind, repr(sorted(loads(props).items())), ord_)
            held = best.get((lead_key, event_id))
            if held is None or key < held:
                best[(lead_key, event_id)] = key
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {p}_counted AS "
            f"SELECT lead_key, ord, us, id, type, props FROM {ev} WHERE NOT dup "
            f"UNION ALL SELECT lead_key, ord, us, id, type, props FROM {ev} "
            "WHERE dup AND ord IN (SELECT unnest(?::BIGINT[]))",
            [[k[3] for k in best.values()]],
        )
        return f"{p}_counted"

    def intents(self, counted: str) -> dict[int, list[int]]:
        """Lead key -> sorted times of its intent actions."""
        kinds = sorted({m.event for m in self.model.intent_actions})
        out: dict[int, set[int]] = {}
        if not kinds:
            return {}
        for lead_key, event_id, us, kind, props in self.sql(
            f"SELECT lead_key, id, us, type, props FROM {counted} WHERE type IN ({texts(kinds)})"
        ):
            event = Event(event_id, str(lead_key), kind, from_us(us), loads(props))
            if is_intent(self.model, event):
                out.setdefault(lead_key, set()).add(us)
        return {k: sorted(v) for k, v in out.items()}

    def candidates(self, counted: str, intents: dict[int, list[int]], batch_events: int) -> int:
        """The checkpoints to score (table ``<p>_cp``: pk, lead_key, cut, shift, batch);
        the number of batches."""
        p, ev = self.p, self.store.events
        sizes = f"""
            SELECT lead_key, us AS cut,
                sum(count(*)) OVER (PARTITION BY lead_key ORDER BY us) AS n
            FROM {ev} GROUP BY lead_key, us"""
        cuts = f"SELECT DISTINCT lead_key, us AS cut FROM {counted}"
        if self.model.handover == "sql":
            window = self.model.intent_window // timedelta(microseconds=1)
            keys = [k for k, v in intents.items() for _ in v]
            times = [u for v in intents.values() for u in v]
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {p}_intents AS "
                "SELECT unnest(?::INTEGER[]) AS lead_key, unnest(?::BIGINT[]) AS us",
                [keys, times],
            )
            cuts = f"""
                SELECT c.* FROM ({cuts}) c SEMI JOIN {p}_intents i
                ON c.lead_key = i.lead_key AND i.us <= c.cut AND i.us >= c.cut - {window}"""
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {p}_cp AS
            SELECT CAST(row_number() OVER (ORDER BY c.lead_key, c.cut) AS INTEGER) AS pk,
                c.lead_key, c.cut, s.n
            FROM ({cuts}) c JOIN ({sizes}) s USING (lead_key, cut)
        """)
        rows = self.sql(f"SELECT max(cut), count(*) FROM {p}_cp")
        top, count = rows[0]
        if not count:
            return 0
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {p}_cp AS
            SELECT pk, lead_key, cut, {top} - cut AS shift,
                CAST(sum(n) OVER (ORDER BY pk) // {batch_events} AS INTEGER) AS batch
            FROM {p}_cp
        """)
        self.top = int(top)
        return int(self.sql(f"SELECT max(batch) + 1 FROM {p}_cp")[0][0])

    def score_batch(self, batch: int) -> list[tuple[int, int, float, bool]]:
        """(lead key, checkpoint, total, intent) of the batch's kept checkpoints."""
        p, ev, q = self.p, self.store.events, f"{self.p}_b"
        cols = [c for c in self.con.table(ev).columns if c not in ("lead_key", "ord", "us")]
        picked = ", ".join(f"e.{c}" for c in cols)
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {q}_shift AS "
            f"SELECT pk AS lead_key, shift FROM {p}_cp WHERE batch = {batch}"
        )
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {q}_leads AS
            SELECT c.pk AS lead_key, CAST(c.pk AS VARCHAR) AS lead_id, l.attributes
            FROM {p}_cp c JOIN {self.store.leads} l USING (lead_key) WHERE c.batch = {batch}
        """)
        # Only (pseudo-lead, order, shifted time, source event) is copied; the rest of
        # each event is read through a view (copying it costs far more than the joins).
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {q}_map AS
            SELECT c.pk AS lead_key, row_number() OVER (ORDER BY c.pk, e.ord) AS ord,
                e.us + c.shift AS us, e.ord AS src
            FROM {ev} e JOIN {p}_cp c ON e.lead_key = c.lead_key AND e.us <= c.cut
            WHERE c.batch = {batch}
        """)
        self.con.execute(f"""
            CREATE OR REPLACE TEMP VIEW {q}_events AS
            SELECT m.lead_key, m.ord, m.us, {picked} FROM {q}_map m JOIN {ev} e ON e.ord = m.src
        """)
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {q}_keys AS SELECT * FROM {self.store.prefix}_keys"
        )
        scores = score_all(
            self.model, EventStore(self.con, q), from_us(self.top), shifts=f"{q}_shift"
        )
        need = " AND s.has_intent" if self.model.handover == "sql" else ""
        rows = self.sql(f"""
            SELECT c.lead_key, c.cut, s.total, s.has_intent
            FROM {q}_scores s JOIN {p}_cp c ON CAST(s.lead_id AS INTEGER) = c.pk
            WHERE s.disqualified_by IS NULL{need}
        """)
        del scores
        self.con.execute(f"DROP VIEW {q}_events")
        for table in ("shift", "leads", "map", "keys", "scores", "scores_points"):
            self.con.execute(f"DROP TABLE IF EXISTS {q}_{table}")
        return [(int(a), int(b), float(c), bool(d)) for a, b, c, d in rows]


def fast_checkpoints(
    model: ScoringModel,
    store: EventStore,
    *,
    batch_events: int = BATCH_EVENTS,
    prefix: str = "replay",
) -> Checkpoints:
    """Every lead's kept checkpoints (see ``backtest``), scored in DuckDB."""
    replay = _Replay(model, store, prefix)
    keys = replay.sql(f"SELECT lead_key, lead_id FROM {store.leads} ORDER BY lead_id")
    lead_ids = [str(lead_id) for _, lead_id in keys]
    index = {int(k): n for n, (k, _) in enumerate(keys)}
    counted = replay.counted()
    intents = replay.intents(counted)
    touches = replay.sql(f"SELECT lead_key, min(us) FROM {counted} GROUP BY lead_key")
    first_touch = {index[int(k)]: int(us) for k, us in touches}
    span_row = replay.sql(f"SELECT min(us), max(us) FROM {counted}")[0]
    span = None if span_row[0] is None else (int(span_row[0]), int(span_row[1]))
    batches = replay.candidates(counted, intents, batch_events)
    rows: list[tuple[int, int, float, bool]] = []
    for batch in range(batches):
        rows += [
            (index[k], cut, total, intent) for k, cut, total, intent in replay.score_batch(batch)
        ]
    rows.sort(key=lambda r: (r[0], r[1]))
    for table in ("counted", "intents", "cp"):
        replay.con.execute(f"DROP TABLE IF EXISTS {prefix}_{table}")
    return Checkpoints(
        model,
        lead_ids,
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.bool_),
        {index[k]: v for k, v in intents.items()},
        first_touch,
        span,
    )


def backtest_history(
    current: ScoringModel,
    draft: ScoringModel,
    leads: Mapping[str, Lead],
    events: Mapping[str, Sequence[Event]],
    outcomes: Mapping[str, Outcome],
    *,
    reference: bool = False,
    memory_limit: str = "2GB",
) -> dict[str, Any]:
    """Both models replayed over one history and compared (``backtest.compare``): in
    DuckDB, or with the reference evaluator when ``reference``."""
    if reference:
        old, new = (reference_checkpoints(m, leads, events) for m in (current, draft))
        return compare(old, new, outcomes) | {"method": "reference"}
    con = connect(memory_limit=memory_limit)
    try:
        store = store_from_inputs(con, leads, events)
        old, new = (fast_checkpoints(m, store) for m in (current, draft))
    finally:
        con.close()
    return compare(old, new, outcomes) | {"method": "vectorised"}
