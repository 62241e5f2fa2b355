"""The events a scoring run counts, each with its mask of predicate bits and group keys.

Builds ``<prefix>_ev`` (lead_key, ord, us, m0.., k0..) from the prepared events:

1. events up to ``as_of``, one per (lead, id): of a repeated id the one with the
   smallest (timestamp, type, repr of sorted properties) is kept, as the reference
   does; SQL orders by (timestamp, type) and Python settles the remaining ties;
2. slots: each event's signature is its type and the JSON texts at the paths its
   slots read, plus the JSON texts at the once_per / distinct paths. The distinct
   signatures are evaluated in Python into mask words and key ids (``k<j>``) and
   joined back on a hash of the signature (checked to be unique among them);
3. text disqualifiers: the distinct values of each message-like property that pass a
   literal prefilter (``prefilter``) are turned into texts and tested in Python; an
   event is hit when one of its values is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from leadgate.domain.model import TEXT_PROPERTIES, written_fields
from leadgate.fastscore.plan import BITS_PER_WORD, EventPlan, Path, TextSlot, loads
from leadgate.fastscore.prefilter import could_match_sql, required_literals
from leadgate.fastscore.sql import Tables, text, texts, unnest_table
from leadgate.fastscore.store import EventStore

MAX_LITERAL_HITS = 500  # more hits than this are looked up in a table, not a literal list
HASH_JOIN = True  # join signatures on their hash when it is unique among them
NONE = "CAST(NULL AS VARCHAR)"  # a signature column its branch does not read


def _texts_of(key: str, value: Any) -> list[str]:
    """The texts the reference's ``_texts`` reads from one property value."""
    if key == "fields":
        if not isinstance(value, Mapping):
            return []
        return written_fields(value)
    return [str(value)] if value else []


def _type_filter(types: Iterable[frozenset[str] | None]) -> str:
    """`` AND type IN (...)`` for the union of type sets; empty when one is None (all)."""
    chosen: set[str] = set()
    for kinds in types:
        if kinds is None:
            return ""
        chosen |= kinds
    return f" AND type IN ({texts(sorted(chosen))})"


class EventBuilder:
    def __init__(self, store: EventStore, plan: EventPlan, tables: Tables, as_of: int) -> None:
        self.store = store
        self.plan = plan
        self.tables = tables
        self.as_of = as_of
        self.slot_paths: list[Path] = []
        self.key_ids: list[dict[str, int]] = []  # per key path: JSON text -> id

    def counted(self) -> str:
        """SQL for the events up to ``as_of``, one per (lead, id)."""
        events, as_of = self.store.events, self.as_of
        keep = self.tables.create(
            "keep",
            f"""SELECT lead_key, id, ord, props, count(*) OVER (PARTITION BY lead_key, id) AS n
            FROM (
                SELECT lead_key, id, ord, props FROM {events} WHERE dup AND us <= {as_of}
                QUALIFY rank() OVER (PARTITION BY lead_key, id ORDER BY us, type) = 1
            )""",
        )
        if not self.tables.rows(f"SELECT 1 FROM {keep} LIMIT 1"):
            return f"SELECT * FROM {events} WHERE us <= {as_of} AND NOT dup"
        tied = self.tables.rows(f"SELECT lead_key, id, ord, props FROM {keep} WHERE n > 1")
        best: dict[tuple[object, object], tuple[str, int]] = {}
        for lead_key, event_id, ord_, props in tied:
            assert isinstance(props, str) and isinstance(ord_, int)
            key = (repr(sorted(loads(props).items())), ord_)
            held = best.get((lead_key, event_id))
            if held is None or key < held:
                best[(lead_key, event_id)] = key
        if tied:
            self.store.con.execute(
                f"DELETE FROM {keep} WHERE n > 1 AND ord NOT IN (SELECT unnest(?::BIGINT[]))",
                [[o for _, o in best.values()]],
            )
        return f"""
            SELECT * FROM {events} WHERE us <= {as_of} AND NOT dup
            UNION ALL
            SELECT e.* FROM {events} e SEMI JOIN {keep} k ON e.ord = k.ord"""

    def signature_columns(self) -> tuple[list[str], list[tuple[str, list[str]]]]:
        """The signature columns and, per branch of event types (a SQL condition), the SQL
        of each: JSON texts at slot paths (``s<i>``) and key paths (``k<j>``), NULL where
        the branch's type does not read them. One branch per named type, one for the rest.
        """
        plan = self.plan
        named = plan.named_types()
        self.slot_paths = sorted({p for t in [*named, None] for p in plan.paths_for(t)})
        names = [f"s{i}" for i in range(len(self.slot_paths))]
        names += [f"k{j}" for j in range(len(plan.key_paths))]
        none = NONE

        def columns(event_type: str | None) -> list[str]:
            reads = set(plan.paths_for(event_type))
            out = [self.store.value_sql(p) if p in reads else none for p in self.slot_paths]
            for path in plan.key_paths:
                uses = event_type is not None and event_type in plan.key_types[path]
                out.append(f"coalesce({self.store.value_sql(path)}, 'null')" if uses else none)
            return out

        branches = [(f"type = {text(t)}", columns(t)) for t in named]
        rest = f"type NOT IN ({texts(named)})" if named else "true"
        branches.append((rest, columns(None)))
        return names, branches

    def one_pass(self) -> list[str]:
        """The signature columns for a single pass over all events: the same values as
        the branches give, each under one ``type IN (...)`` test."""
        plan = self.plan
        named = plan.named_types()
        every = set(plan.paths_for(None))
        out = []
        for path in self.slot_paths:
            value = self.store.value_sql(path)
            if path not in every:
                kinds = [t for t in named if path in plan.paths_for(t)]
                value = f"CASE WHEN type IN ({texts(kinds)}) THEN {value} END"
            out.append(value)
        for path in plan.key_paths:
            value = f"coalesce({self.store.value_sql(path)}, 'null')"
            out.append(
                f"CASE WHEN type IN ({texts(sorted(plan.key_types[path]))}) THEN {value} END"
            )
        return out

    @staticmethod
    def hashed(columns: list[str], names: list[str]) -> str:
        """The hash of a signature: its type and the columns its branch reads."""
        read = [n for c, n in zip(columns, names, strict=True) if c != NONE]
        return f"hash(type{''.join(', ' + n for n in read)})"

    def hash_sql(self, names: list[str], branches: list[tuple[str, list[str]]]) -> str:
        """``hashed`` for every event in one CASE, the branches with the same columns merged."""
        by_columns: dict[tuple[str, ...], list[str]] = {}
        for cond, cols in branches[:-1]:
            by_columns.setdefault(tuple(cols), []).append(cond.removeprefix("type = "))
        whens = " ".join(
            f"WHEN type IN ({', '.join(kinds)}) THEN " + self.hashed(list(cols), list(cols))
            for cols, kinds in by_columns.items()
        )
        rest = branches[-1][1]
        return (
            f"CASE {whens} ELSE {self.hashed(rest, rest)} END" if whens else self.hashed(rest, rest)
        )

    def signatures(
        self, names: list[str], branches: list[tuple[str, list[str]]]
    ) -> tuple[str, bool]:
        """A table of the distinct signatures with their mask words and key ids, and
        whether their hashes are unique (so events can be joined on the hash alone)."""
        plan, words = self.plan, range(self.plan.words)
        parts = []
        for cond, cols in branches:
            select = "".join(f", {c} AS {n}" for c, n in zip(cols, names, strict=True))
            where = f"{cond} AND us <= {self.as_of}"
            grouped = f"SELECT type{select} FROM {self.store.events} WHERE {where} GROUP BY ALL"
            parts.append(f"SELECT {self.hashed(cols, names)} AS h, * FROM ({grouped})")
        rows = self.tables.rows(" UNION ALL ".join(parts))
        slots = len(self.slot_paths)
        cache: dict[tuple[object, ...], list[int]] = {}
        masks = []
        for row in rows:
            event_type = str(row[1])
            values = dict(zip(self.slot_paths, row[2 : 2 + slots], strict=True))
            own = (event_type, *(values[p] for p in plan.paths_for(event_type)))
            if own not in cache:
                cache[own] = plan.masks(
                    event_type, [None if v is None else str(v) for v in own[1:]]
                )
            masks.append(cache[own])
        ids: list[list[int | None]] = []
        for j in range(len(plan.key_paths)):
            col = 2 + slots + j
            found = sorted({str(r[col]) for r in rows if r[col] is not None})
            self.key_ids.append({t: n for n, t in enumerate(found)})
            ids.append([None if r[col] is None else self.key_ids[j][str(r[col])] for r in rows])
        table_columns = [("h", "UBIGINT"), ("type", "VARCHAR")] + [(n, "VARCHAR") for n in names]
        table_columns += [(f"m{w}", "BIGINT") for w in words]
        table_columns += [(f"id{j}", "INTEGER") for j in range(len(plan.key_paths))]
        params: list[object] = [[r[i] for r in rows] for i in range(2 + len(names))]
        params += [[m[w] for m in masks] for w in words]
        params += ids
        unique = len({r[0] for r in rows}) == len(rows)
        return self.tables.create("sig", unnest_table(table_columns), params), unique

    def text_bits(self) -> list[str]:
        """Per mask word, SQL for the bits of the text disqualifiers an event hits."""
        slots = self.plan.text_slots()
        if not slots:
            return []
        literals = [required_literals(slot.pattern) for _, slot in slots]
        hits: dict[int, list[str]] = {}  # slot -> SQL conditions
        for key in (*TEXT_PROPERTIES, "fields"):
            column = self.store.value_sql([key])
            if column == "NULL":
                continue
            for i, values in self.text_hits(key, column, slots, literals).items():
                hits.setdefault(i, []).append(self.member(column, values, f"t{i}_{key}"))
        out = ["0"] * self.plan.words
        for i, slot in slots:
            if i in hits:
                cond = " OR ".join(hits[i])
                if slot.types is not None:
                    cond = f"type IN ({texts(sorted(slot.types))}) AND ({cond})"
                w = i // BITS_PER_WORD
                out[w] += f" | CASE WHEN {cond} THEN {1 << (i % BITS_PER_WORD)} ELSE 0 END"
        return out

    def text_hits(
        self,
        key: str,
        column: str,
        slots: list[tuple[int, TextSlot]],
        literals: list[list[str] | None],
    ) -> dict[int, set[str]]:
        """Per text slot, the distinct JSON texts of property ``key`` whose texts it matches."""
        only = _type_filter(slot.types for _, slot in slots)
        values = (
            f"SELECT DISTINCT {column} AS v FROM {self.store.events} WHERE us <= {self.as_of}{only}"
        )
        flags = [
            f"{'true' if lits is None else could_match_sql('v', lits)} AS f{n}"
            for n, lits in enumerate(literals)
        ]
        rows = self.tables.rows(
            f"WITH d AS ({values}) SELECT * FROM "
            f"(SELECT v, {', '.join(flags)} FROM d WHERE v IS NOT NULL) "
            f"WHERE {' OR '.join(f'f{n}' for n in range(len(flags)))}"
        )
        found: dict[int, set[str]] = {}
        seen: dict[tuple[int, str], bool] = {}  # (slot, text) -> hit: texts repeat across values
        for raw, *maybe in rows:
            pieces = _texts_of(key, loads(str(raw)))
            for (i, slot), could in zip(slots, maybe, strict=True):
                if not could:
                    continue
                for t in pieces:
                    hit = seen.get((i, t))
                    if hit is None:
                        hit = seen[(i, t)] = bool(slot.test(t))
                    if hit:
                        found.setdefault(i, set()).add(str(raw))
                        break
        return found

    def member(self, column: str, values: set[str], name: str) -> str:
        unique = sorted(values)
        if len(unique) <= MAX_LITERAL_HITS:
            return f"{column} IN ({texts(unique)})"
        table = self.tables.create(name, unnest_table([("v", "VARCHAR")]), [unique])
        return f"{column} IN (SELECT v FROM {table})"

    def build(self) -> str:
        plan = self.plan
        base = self.counted()
        names, branches = self.signature_columns()
        sig, unique = self.signatures(names, branches)
        text_bits = self.text_bits()
        flags = "".join(f", {b} AS t{w}" for w, b in enumerate(text_bits))
        if unique and HASH_JOIN:
            rows = f"SELECT lead_key, ord, us, {self.hash_sql(names, branches)} AS h{flags}"
            on = "e.h = s.h"
        else:
            values = "".join(f", {c} AS {n}" for c, n in zip(self.one_pass(), names, strict=True))
            rows = f"SELECT lead_key, ord, us, type{values}{flags}"
            on = " AND ".join(
                ["e.type = s.type"] + [f"e.{n} IS NOT DISTINCT FROM s.{n}" for n in names]
            )
        rows += f" FROM ({base})"
        masks = [
            f"s.m{w}" + (f" | e.t{w}" if text_bits else "") + f" AS m{w}" for w in range(plan.words)
        ]
        keys = [f"s.id{j} AS k{j}" for j in range(len(plan.key_paths))]
        ev = self.tables.create(
            "ev",
            f"SELECT e.lead_key, e.ord, e.us, {', '.join(masks + keys)} "
            f"FROM ({rows}) e JOIN {sig} s ON {on}",
        )
        self.tables.drop(f"{self.tables.prefix}_keep")
        return ev


def build_events(
    store: EventStore, plan: EventPlan, tables: Tables, as_of: int
) -> tuple[str, list[dict[str, int]]]:
    """Create ``<prefix>_ev``; returns its name and, per key path, the id of each JSON text."""
    builder = EventBuilder(store, plan, tables, as_of)
    return builder.build(), builder.key_ids
