"""Score every lead of a prepared store in DuckDB, with the reference evaluator's numbers.

For one model and one scoring time:

1. ``events.build_events``: the counted events, each with its predicate mask;
2. one GROUP BY lead over the events gives the counts, the intent event, the first
   event of each event disqualifier and, with ``FILTER`` aggregates, the points of every
   rule that needs no more than that (``RuleSql.grouped_parts``) and the value sets of
   ratio rules; ``rules.RuleSql`` gives one query for each other rule; all points are
   kept in a long table (lead, rule, points);
3. fit rules and attribute disqualifiers are evaluated in Python over the distinct
   values of the attributes they read, and joined back per lead;
4. one row per lead: fit, engagement, total, named groups, intent, disqualification
   and stage (the thresholds logic of ``stages.decide``), and the long table of the
   points of every rule that gave any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from leadgate.domain.model import RatioRule, ScoringModel
from leadgate.fastscore.events import build_events
from leadgate.fastscore.plan import EMAIL_AT, attribute_groups, event_plan
from leadgate.fastscore.rules import RuleSql
from leadgate.fastscore.sql import Tables, micros, num, text, unnest_table
from leadgate.fastscore.store import EventStore, connect, json_path

ZERO = num(0.0)


def _sum(terms: list[str]) -> str:
    """Terms added left to right from 0, in the reference's order."""
    return "(" + " + ".join([ZERO, *terms]) + ")"


def _struct(items: list[tuple[str, str]]) -> str:
    if not items:
        return "NULL"
    return "{" + ", ".join(f"{text(k)}: {v}" for k, v in items) + "}"


def _case(items: list[tuple[str, str]]) -> str:
    if not items:
        return "NULL"
    return "CASE " + " ".join(f"WHEN {c} THEN {v}" for c, v in items) + " END"


class Scorer:
    """One scoring run: a model, a prepared store and a scoring time."""

    def __init__(
        self,
        model: ScoringModel,
        store: EventStore,
        as_of: datetime,
        temporary: bool = True,
        shifts: str | None = None,
    ) -> None:
        self.model = model
        self.shifts = shifts
        self.temporary = temporary
        self.store = store
        self.as_of = micros(as_of)
        self.plan = event_plan(model)
        self.tables = Tables(store.con, store.prefix)

    def attributes(self) -> tuple[str, dict[int, str], dict[str, str]]:
        """A query of per-lead fit points and attribute disqualifier flags, and its columns."""
        groups = attribute_groups(self.model)
        keys = sorted({k for g in groups for k in g.keys if k != EMAIL_AT})
        col_of = {k: f"a{i}" for i, k in enumerate(keys)}
        wanted = keys + (["email"] if any(EMAIL_AT in g.keys for g in groups) else [])
        cols = [f"CAST(x[{i + 1}] AS VARCHAR) AS {col_of[k]}" for i, k in enumerate(keys)]
        if len(wanted) > len(keys):
            raw = f"x[{len(wanted)}]"
            email = f"json_extract_string({raw}, '$')"
            cols.append(
                f"CASE WHEN starts_with({raw}, '\"') AND contains({email}, '@') "
                f"THEN regexp_extract({email}, '@([^@]*)$', 1) END AS a_at"
            )
            col_of[EMAIL_AT] = "a_at"
        source = self.store.leads
        if wanted:
            paths = ", ".join(json_path([k]) for k in wanted)
            source = f"(SELECT lead_key, json_extract(attributes, [{paths}]) AS x FROM {source})"
        lx = self.tables.create(
            "lx", f"SELECT lead_key{''.join(', ' + c for c in cols)} FROM {source}"
        )
        fit_cols: dict[int, str] = {}
        dq_cols: dict[str, str] = {}
        joins = ""
        for g, group in enumerate(groups):
            gcols = [col_of[k] for k in group.keys]
            combos = self.tables.rows(f"SELECT DISTINCT {', '.join(gcols)} FROM {lx}")
            results = [group.evaluate([None if v is None else str(v) for v in c]) for c in combos]
            columns = [(c, "VARCHAR") for c in gcols]
            columns += [(f"f{i}", "DOUBLE") for i, _, _ in group.fit]
            columns += [(f"d{j}", "BOOLEAN") for j in range(len(group.dq))]
            params: list[object] = [[c[i] for c in combos] for i in range(len(gcols))]
            params += [[r[0][i] for r in results] for i in range(len(group.fit))]
            params += [[r[1][j] for r in results] for j in range(len(group.dq))]
            table = self.tables.create(f"attr{g}", unnest_table(columns), params)
            on = " AND ".join(f"l.{c} IS NOT DISTINCT FROM g{g}.{c}" for c in gcols)
            joins += f" LEFT JOIN {table} g{g} ON {on}"
            fit_cols |= {i: f"g{g}.f{i}" for i, _, _ in group.fit}
            dq_cols |= {dq_id: f"g{g}.d{j}" for j, (dq_id, _) in enumerate(group.dq)}
        select = [f"{c} AS fit{i}" for i, c in fit_cols.items()]
        names = {dq_id: f"dqa{n}" for n, dq_id in enumerate(dq_cols)}
        select += [f"{c} AS {names[dq_id]}" for dq_id, c in dq_cols.items()]
        sql = f"SELECT l.lead_key{''.join(', ' + c for c in select)} FROM {lx} l{joins}"
        return sql, {i: f"fit{i}" for i in fit_cols}, names

    def event_points(self) -> tuple[str, str]:
        """Per-lead event facts (counts, intent, disqualifying events) and the points of
        every engagement rule, one row per lead and rule that gave any: two tables."""
        model, plan, tables = self.model, self.plan, self.tables
        ev, key_ids = build_events(self.store, plan, tables, self.as_of)
        rules = RuleSql(plan, tables, ev, key_ids, self.as_of, self.shifts)
        flags = ["CAST(NULL AS BIGINT) AS intent_ord"]
        if plan.intent_slot is not None:
            cond = f"{rules.bit(plan.intent_slot)}{rules.window(model.intent_window)}"
            flags[0] = f"max(ord) FILTER (WHERE {cond}) AS intent_ord"
        for n, slots in enumerate(plan.dq_slots.values()):
            cond = " OR ".join(rules.bit(b) for b in slots) or "false"
            flags.append(f"min(ord) FILTER (WHERE {cond}) AS dqe{n}")
        fused: dict[int, str] = {}  # rule -> its column of agg
        for n, rule in enumerate(model.rules):
            parts = rules.grouped_parts(rule)
            if parts is not None:
                fused[n] = f"r{n}"
                flags.append(f"{parts[0]} AS r{n}")
            elif isinstance(rule, RatioRule):
                flags += rules.ratio_columns(n, rule)
        agg = tables.create(
            "agg",
            f"""SELECT lead_key, count(*) AS events_seen, max(us) AS last_us, {", ".join(flags)}
            FROM {ev} GROUP BY lead_key""",
        )
        fragments = [
            f"SELECT lead_key, {n} AS rule, {fused[n]} AS pts FROM {agg} WHERE {fused[n]} <> 0"
            if n in fused
            else f"SELECT lead_key, {n} AS rule, pts FROM ({rules.fragment(n, rule, agg)}) "
            "WHERE pts <> 0"
            for n, rule in enumerate(model.rules)
        ]
        union = (
            " UNION ALL ".join(fragments) or "SELECT 0 AS lead_key, 0 AS rule, 0.0 AS pts LIMIT 0"
        )
        points = tables.create("points", union)
        tables.drop(ev)
        return agg, points

    def run(self, out: str) -> None:
        model, plan, tables = self.model, self.plan, self.tables
        agg, points = self.event_points()
        attr_sql, fit_cols, dq_attr = self.attributes()
        fa = tables.create("fa", attr_sql)

        in_group = {
            name: [n for n, r in enumerate(model.rules) if r.group == name] for name in model.groups
        }
        sums = ["sum(pts) AS engagement"] + [
            f"sum(pts) FILTER (WHERE rule IN ({', '.join(map(str, rules)) or 'NULL'})) AS g{i}"
            for i, rules in enumerate(in_group.values())
        ]
        eng = tables.create(
            "eng", f"SELECT lead_key, {', '.join(sums)} FROM {points} GROUP BY lead_key"
        )
        fit_terms = [f"coalesce(f.{fit_cols[i]}, {ZERO})" for i in range(len(model.fit))]
        groups = [("fit", _sum(fit_terms)), ("engagement", f"coalesce(e.engagement, {ZERO})")]
        for i, name in enumerate(model.groups):
            terms = [t for r, t in zip(model.fit, fit_terms, strict=True) if r.group == name]
            groups.append((name, _sum([*terms, f"coalesce(e.g{i}, {ZERO})"])))

        event_dq = {dq_id: f"a.dqe{n}" for n, dq_id in enumerate(plan.dq_slots)}
        dq_rules: list[tuple[str, str, str, str]] = []  # condition, id, reason, event ord
        for dq in model.disqualifiers:
            if dq.id in dq_attr:
                hit = f"coalesce(f.{dq_attr[dq.id]}, false)"
                dq_rules.append((hit, dq.id, dq.reason, "NULL"))
            elif dq.id in event_dq:
                ref = event_dq[dq.id]
                dq_rules.append((f"{ref} IS NOT NULL", dq.id, dq.reason, ref))
        score = tables.create(
            "score",
            f"""SELECT lead_id, lead_key, fit + engagement AS total, * EXCLUDE (lead_id, lead_key)
            FROM (
                SELECT l.lead_id, l.lead_key, {groups[0][1]} AS fit, {groups[1][1]} AS engagement,
                    {_case([(c, text(i)) for c, i, _, _ in dq_rules])} AS disqualified_by,
                    {_case([(c, text(r)) for c, _, r, _ in dq_rules])} AS disqualified_reason,
                    {_case([(c, e) for c, _, _, e in dq_rules])} AS dq_ord, a.intent_ord,
                    coalesce(a.events_seen, 0) AS events_seen, a.last_us,
                    {_struct(groups)} AS groups
                FROM {self.store.leads} l LEFT JOIN {agg} a USING (lead_key)
                LEFT JOIN {fa} f USING (lead_key) LEFT JOIN {eng} e USING (lead_key)
            )""",
        )
        t = model.thresholds
        refs = f"SELECT intent_ord AS ord FROM {score} UNION ALL SELECT dq_ord FROM {score}"
        temp = "TEMP " if self.temporary else ""
        self.store.con.execute(f"""
            CREATE OR REPLACE {temp}TABLE {out} AS
            WITH refs AS (
                SELECT e.ord, e.id, e.type, e.us FROM {self.store.events} e
                SEMI JOIN ({refs}) s ON e.ord = s.ord
            )
            SELECT s.lead_id, s.total, s.fit, s.engagement,
                CASE WHEN s.disqualified_by IS NOT NULL THEN 'disqualified'
                     WHEN s.total >= {num(t.sql)} AND s.intent_ord IS NOT NULL THEN 'sql'
                     WHEN s.total >= {num(t.mql)} THEN 'mql'
                     WHEN s.events_seen = 0 THEN 'new'
                     ELSE 'nurturing' END AS stage,
                s.disqualified_by, s.disqualified_reason, d.id AS disqualified_event_id,
                s.intent_ord IS NOT NULL AS has_intent, i.id AS intent_event_id,
                i.type AS intent_type, make_timestamp(i.us) AS intent_at,
                s.events_seen, make_timestamp(s.last_us) AS last_event_at, s.groups
            FROM {score} s LEFT JOIN refs i ON i.ord = s.intent_ord
            LEFT JOIN refs d ON d.ord = s.dq_ord
        """)
        rule_ids = "[" + ", ".join(text(r.id) for r in model.rules) + "]"
        fit_rows = "".join(
            f" UNION ALL SELECT lead_key, {text(r.id)}, f.{fit_cols[i]} FROM {fa} f"
            f" WHERE f.{fit_cols[i]} <> 0"
            for i, r in enumerate(model.fit)
        )
        rule_rows = (
            f"SELECT lead_key, {rule_ids}[rule + 1] AS rule_id, pts AS points FROM {points}"
            if model.rules
            else "SELECT 0 AS lead_key, '' AS rule_id, 0.0 AS points WHERE false"
        )
        self.store.con.execute(f"""
            CREATE OR REPLACE {temp}TABLE {out}_points AS
            SELECT l.lead_id, p.rule_id, p.points FROM ({rule_rows}{fit_rows}) p
            JOIN {self.store.leads} l USING (lead_key)
        """)


@dataclass(frozen=True)
class Scores:
    """The result of a scoring run: two tables on the store's connection.

    ``leads``: one row per lead: lead_id, total, fit, engagement, stage,
    disqualified_by, disqualified_reason, disqualified_event_id, has_intent,
    intent_event_id, intent_type, intent_at, events_seen, last_event_at (times as
    TIMESTAMP, UTC) and groups (a STRUCT: fit, engagement, then the model's groups).

    ``points``: one row per lead and rule (fit or engagement) that gave non-zero
    points: lead_id, rule_id, points.
    """

    leads: duckdb.DuckDBPyRelation
    points: duckdb.DuckDBPyRelation

    def rows(self, batch: int = 10_000) -> Iterator[dict[str, Any]]:
        """The ``leads`` rows as dicts, fetched a batch at a time."""
        names = self.leads.columns
        for row in self.leads.iter_rows(batch):
            yield dict(zip(names, row, strict=True))


def score_all(
    model: ScoringModel,
    store: EventStore,
    as_of: datetime,
    *,
    table: str | None = None,
    temporary: bool = True,
    shifts: str | None = None,
) -> Scores:
    """Score every lead of ``store`` as of ``as_of``.

    The results go to the tables ``table`` (default ``<prefix>_scores``) and
    ``<table>_points``, temporary unless ``temporary`` is false.

    ``shifts`` names a table (lead_key, shift): each lead's events were moved forward
    in time by ``shift`` microseconds, so that one ``as_of`` serves leads scored at
    different moments (``learning.replay``). Ages and windows do not change under a
    shift; period caps are counted on the unshifted times.
    """
    out = table or f"{store.prefix}_scores"
    scorer = Scorer(model, store, as_of, temporary, shifts)
    try:
        scorer.run(out)
    finally:
        scorer.tables.drop()
    return Scores(store.con.table(out), store.con.table(f"{out}_points"))


def score_segment_files(
    model: ScoringModel,
    paths: str | Path | Sequence[str | Path],
    as_of: datetime,
    *,
    database: str | Path = ":memory:",
    memory_limit: str = "3GB",
    temp_directory: str | Path | None = None,
) -> Scores:
    """Load Segment JSON-lines files into a new DuckDB database and score every lead."""
    from leadgate.fastscore.segment import load_segment

    con = connect(database, memory_limit=memory_limit, temp_directory=temp_directory)
    return score_all(model, load_segment(con, paths), as_of)
