"""Event and lead tables in DuckDB, laid out for scoring.

``prepare`` turns any events table (lead_id, id, type, ts, properties) and leads table
(lead_id, attributes) into the two tables the scorer reads:

- ``<prefix>_leads``: lead_key INTEGER, lead_id VARCHAR, attributes (JSON text); every
  lead that has events or attributes.
- ``<prefix>_events``: lead_key, ord BIGINT, us BIGINT, id, type, props (JSON text), dup,
  and p0, p1, ...: the JSON text of the most common top-level properties, one column
  each (``<prefix>_keys`` names them), so scoring reads columns instead of parsing JSON.
  ``us`` is the timestamp in microseconds since the epoch (UTC); ``ord`` numbers the
  events in (lead, timestamp, id) order, the reference evaluator's order; ``dup`` marks
  events whose id occurs more than once for the lead.

This work does not depend on the model or the scoring time, so it is done once per
load and shared by every scoring run (backtests score the same history many times).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from leadgate.fastscore.sql import text

MAX_COLUMNS = 64  # the most common top-level properties get a column each


def json_path(parts: Sequence[str]) -> str:
    """A DuckDB JSON path literal naming each key as is: ("fields", "a.b") -> '$."fields"."a.b"'."""
    keys = ('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
    return text("$." + ".".join(keys))


@dataclass
class EventStore:
    """Prepared tables on one DuckDB connection."""

    con: duckdb.DuckDBPyConnection
    prefix: str = "fs"
    _columns: dict[str, str | None] | None = None

    @property
    def events(self) -> str:
        return f"{self.prefix}_events"

    @property
    def leads(self) -> str:
        return f"{self.prefix}_leads"

    def count(self, table: str) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0

    @property
    def columns(self) -> dict[str, str | None]:
        """Top-level property -> the column of ``events`` holding its JSON text.

        Properties found in some event but not given a column map to None.
        """
        if self._columns is None:
            rows = self.con.execute(f"SELECT key, col FROM {self.prefix}_keys").fetchall()
            self._columns = {str(k): None if c is None else str(c) for k, c in rows}
        return self._columns

    def value_sql(self, path: Sequence[str]) -> str:
        """SQL for the JSON text at a property path of an event (NULL when missing)."""
        if path[0] not in self.columns:
            return "NULL"
        column = self.columns[path[0]] or f"json_extract(props, {json_path(path[:1])})"
        if len(path) > 1:
            column = f"json_extract({column}, {json_path(path[1:])})"
        return f"CAST({column} AS VARCHAR)"


def connect(
    database: str | Path = ":memory:",
    *,
    memory_limit: str = "3GB",
    temp_directory: str | Path | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a memory limit and a place to spill to."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "preserve_insertion_order": False,
    }
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    if threads is not None:
        config["threads"] = threads
    return duckdb.connect(str(database), config=config)


def _source(con: duckdb.DuckDBPyConnection, data: str | duckdb.DuckDBPyRelation, name: str) -> str:
    if isinstance(data, str):
        return data
    data.create_view(name, replace=True)
    return name


def _column_types(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rel = con.sql(f"SELECT * FROM {source} LIMIT 0")
    return {c: str(t).upper() for c, t in zip(rel.columns, rel.types, strict=True)}


def _json_text(column: str, sql_type: str) -> str:
    """JSON text of a JSON, VARCHAR (already JSON text) or nested column."""
    if sql_type in ("JSON", "VARCHAR"):
        return f"CAST({column} AS VARCHAR)"
    return f"CAST(to_json({column}) AS VARCHAR)"


def prepare(
    con: duckdb.DuckDBPyConnection,
    events: str | duckdb.DuckDBPyRelation,
    leads: str | duckdb.DuckDBPyRelation | None = None,
    *,
    prefix: str = "fs",
) -> EventStore:
    """Build the scorer's tables from an events table and an optional leads table.

    ``events`` needs lead_id, id, type, ts (TIMESTAMP, TIMESTAMPTZ or BIGINT microseconds
    since the epoch, UTC) and properties (JSON, JSON text or a STRUCT/MAP). ``leads``
    needs lead_id and attributes (the same kinds). Types and property names must
    already be canonical (``load_segment`` does that for Segment data).
    """
    src = _source(con, events, f"{prefix}_in_events")
    types = _column_types(con, src)
    ts = "ts" if types["ts"] == "BIGINT" else "epoch_us(ts)"
    props = _json_text("e.properties", types["properties"])
    if leads is None:
        leads_src = "(SELECT NULL::VARCHAR AS lead_id, NULL::VARCHAR AS attributes WHERE false)"
    else:
        leads_src = _source(con, leads, f"{prefix}_in_leads")
        attrs = _json_text("attributes", _column_types(con, leads_src)["attributes"])
        leads_src = f"(SELECT lead_id, {attrs} AS attributes FROM {leads_src})"
    con.execute(f"""
        CREATE OR REPLACE TABLE {prefix}_leads AS
        WITH ids AS (
            SELECT lead_id FROM {src} WHERE lead_id IS NOT NULL
            UNION SELECT lead_id FROM {leads_src} WHERE lead_id IS NOT NULL
        ), attrs AS (
            SELECT lead_id, any_value(attributes) AS attributes FROM {leads_src} GROUP BY lead_id
        )
        SELECT CAST(row_number() OVER (ORDER BY ids.lead_id) AS INTEGER) AS lead_key,
               ids.lead_id, attrs.attributes
        FROM ids LEFT JOIN attrs USING (lead_id)
    """)
    stage = f"{prefix}_stage"
    con.execute(f"""
        CREATE OR REPLACE TABLE {stage} AS
        SELECT k.lead_key, CAST({ts} AS BIGINT) AS us, CAST(e.id AS VARCHAR) AS id,
               e.type, coalesce({props}, '{{}}') AS props
        FROM {src} e JOIN {prefix}_leads k USING (lead_id)
        WHERE e.id IS NOT NULL AND e.type IS NOT NULL AND e.ts IS NOT NULL
    """)
    keys = [
        str(r[0])
        for r in con.execute(f"""
            SELECT key FROM (SELECT unnest(json_keys(props)) AS key FROM {stage})
            GROUP BY key ORDER BY count(*) DESC, key
        """).fetchall()
    ]
    con.execute(
        f"CREATE OR REPLACE TABLE {prefix}_keys AS "
        "SELECT unnest(?::VARCHAR[]) AS key, unnest(?::VARCHAR[]) AS col",
        [keys, [f"p{i}" if i < MAX_COLUMNS else None for i in range(len(keys))]],
    )
    keys = keys[:MAX_COLUMNS]
    order = f"{prefix}_order"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {order} AS
        SELECT rowid AS r, row_number() OVER (ORDER BY lead_key, us, id) AS ord,
               count(*) OVER (PARTITION BY lead_key, id) > 1 AS dup
        FROM {stage}
    """)
    paths = ", ".join(json_path([k]) for k in keys)
    shredded = "".join(f", CAST(x[{i + 1}] AS VARCHAR) AS p{i}" for i in range(len(keys)))
    extract = f", json_extract(s.props, [{paths}]) AS x" if keys else ""
    con.execute(f"""
        CREATE OR REPLACE TABLE {prefix}_events AS
        SELECT lead_key, ord, us, id, type, props, dup{shredded}
        FROM (SELECT s.*, o.ord, o.dup{extract} FROM {stage} s JOIN {order} o ON s.rowid = o.r)
    """)
    con.execute(f"DROP TABLE {order}")
    con.execute(f"DROP TABLE {stage}")
    return EventStore(con, prefix)
