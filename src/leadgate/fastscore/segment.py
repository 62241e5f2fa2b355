"""Segment-spec JSON lines into the scorer's tables, by the rules of ``domain.segment``.

DuckDB's ``read_json`` reads the messages; the conversion follows the Python reader
(``adapters.files.read_segment`` with ``domain.segment``):

- calls: track (type ``canonical_event_type(event)``), page (``page_viewed``) and screen
  (``screen_viewed``) are events; identify and group calls describe leads; alias calls
  only link ids. The call type is trimmed and lower-cased;
- a page or screen call's properties get its ``name`` and ``category``, and the url,
  path, title, referrer and search of ``context.page``, when they lack them; then
  property aliases (``campaign_id`` -> ``campaign``) as ``canonical_properties``;
- time: the first present of timestamp, originalTimestamp, sentAt, receivedAt; an offset
  is honoured, none means UTC;
- identity: every message with both a userId and an anonymousId links them, as does an
  alias call its previousId; an event belongs to its userId, else to the user its
  anonymousId is linked to, else to ``anon:<anonymousId>``;
- attributes: identify traits (``trait_attributes``) and group traits
  (``group_attributes``), the last non-null value of each attribute winning in time
  order (``leads_from_identities``), computed in Python over those calls only.

Differences from the Python reader: when an anonymous id is linked to several users,
the earliest link (by time, then message id) wins rather than the first in the file;
the snake_case spellings (user_id, message_id, ...) are not read; a message without a
messageId gets ``h:`` + an MD5 of its fields, not ``stable_id``; timestamps are parsed
by DuckDB, which accepts a few forms ``parse_timestamp`` rejects, and unreadable
messages are skipped rather than reported line by line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import duckdb
import orjson

from leadgate.domain.events import PROPERTY_ALIASES, canonical_event_type
from leadgate.domain.scoring import EPOCH
from leadgate.domain.segment import (
    Identity,
    group_attributes,
    leads_from_identities,
    trait_attributes,
)
from leadgate.fastscore.sql import text, unnest_table
from leadgate.fastscore.store import EventStore, json_path, prepare

COLUMNS = {
    "type": "VARCHAR",
    "event": "VARCHAR",
    "name": "VARCHAR",
    "category": "VARCHAR",
    "properties": "JSON",
    "traits": "JSON",
    "context": "JSON",
    "messageId": "VARCHAR",
    "timestamp": "VARCHAR",
    "originalTimestamp": "VARCHAR",
    "sentAt": "VARCHAR",
    "receivedAt": "VARCHAR",
    "userId": "VARCHAR",
    "anonymousId": "VARCHAR",
    "previousId": "VARCHAR",
    "groupId": "VARCHAR",
}
TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
BATCH = 50_000  # leads per batch when their attributes are written
PAGE_CONTEXT = ("url", "path", "title", "referrer", "search")


def _micros(column: str) -> str:
    """Microseconds since the epoch of an ISO 8601 text; one without an offset is UTC."""
    offset = r"[T ]\d{2}:\d{2}.*([Zz]|[+-]\d{2}(:?\d{2})?)$"
    return (
        f"CASE WHEN regexp_matches({column}, '{offset}') "
        f"THEN epoch_us(try_cast({column} AS TIMESTAMPTZ)) "
        f"ELSE epoch_us(try_cast({column} AS TIMESTAMP)) END"
    )


def _with_defaults(props: str, additions: Sequence[tuple[str, str]]) -> str:
    """JSON text ``props`` plus each (key, JSON text or NULL) it lacks, like ``setdefault``.

    The common case (an object without any of the keys) splices the text; the others
    are merged as JSON.
    """
    raw = f"rtrim({props})"
    entries = " || ".join(
        f"CASE WHEN {value} IS NULL THEN '' ELSE {text(',' + orjson.dumps(key).decode() + ':')} "
        f"|| {value} END"
        for key, value in additions
    )
    plain = " AND ".join(
        [f"starts_with({raw}, '{{')", f"ends_with({raw}, '}}')", f"NOT contains({raw}, '\\')"]
        + [f"NOT contains({raw}, {text(orjson.dumps(key).decode())})" for key, _ in additions]
    )
    spliced = (
        f"CASE WHEN regexp_matches({raw}, '^\\{{\\s*\\}}$') "
        f"THEN '{{' || substr({entries}, 2) || '}}' "
        f"ELSE left({raw}, -1) || {entries} || '}}' END"
    )
    merged = props
    for key, value in additions:
        patch = (
            f"CASE WHEN {value} IS NULL OR json_exists({props}, {json_path([key])}) "
            f"THEN '{{}}' ELSE json_object({text(key)}, CAST({value} AS JSON)) END"
        )
        merged = f"CAST(json_merge_patch({merged}, {patch}) AS VARCHAR)"
    anything = " OR ".join(f"{value} IS NOT NULL" for _, value in additions)
    return f"CASE WHEN NOT ({anything}) THEN {props} WHEN {plain} THEN {spliced} ELSE {merged} END"


def _aliased(props: str) -> str:
    """JSON text ``props`` with PROPERTY_ALIASES applied as ``canonical_properties`` does."""
    targets: dict[str, list[str]] = {}
    for alias, name in PROPERTY_ALIASES.items():
        targets.setdefault(name, []).append(alias)
    out = props
    for name, aliases in targets.items():
        pick = " ".join(
            f"WHEN json_exists({props}, {json_path([a])}) "
            f"THEN json_object({text(name)}, json_extract({props}, {json_path([a])}))"
            for a in aliases
        )
        held = f"json_exists({props}, {json_path([name])})"
        patch = f"CASE WHEN {held} THEN '{{}}' {pick} ELSE '{{}}' END"
        out = f"CAST(json_merge_patch({out}, {patch}) AS VARCHAR)"
    needle = " OR ".join(
        [f"contains({props}, '\\')"]
        + [f"contains({props}, {text(orjson.dumps(a).decode())})" for a in PROPERTY_ALIASES]
    )
    return f"CASE WHEN {needle} THEN {out} ELSE {props} END"


def _identity(call: str, traits: str | None, group_id: str | None, us: int | None) -> Identity:
    decoded = orjson.loads(traits) if traits else {}
    traits_obj = decoded if isinstance(decoded, dict) else {}
    when = None if us is None else EPOCH + timedelta(microseconds=us)
    if call == "identify":
        return Identity("", trait_attributes(traits_obj), when, call)
    return Identity("", group_attributes({"groupId": group_id, "traits": traits_obj}), when, call)


def _write_leads(con: duckdb.DuckDBPyConnection, resolved: str, table: str) -> None:
    """Leads from identify and group calls into ``table`` (lead_id, attributes JSON text).

    Calls are read lead by lead, each lead's in time order (untimed first), and merged
    by ``leads_from_identities``; memory holds one batch, not every lead.
    """
    con.execute(f"CREATE OR REPLACE TABLE {table} (lead_id VARCHAR, attributes VARCHAR)")
    writer = con.cursor()
    insert = f"INSERT INTO {table} " + unnest_table([("l", "VARCHAR"), ("a", "VARCHAR")])
    ids: list[str] = []
    texts: list[str] = []

    def flush(lead_id: str | None, calls: list[Identity]) -> None:
        if lead_id is not None:
            lead = leads_from_identities(calls)[""]
            ids.append(lead_id)
            texts.append(orjson.dumps(dict(lead.attributes)).decode())
        if len(ids) >= BATCH or (lead_id is None and ids):
            writer.execute(insert, [ids, texts])
            ids.clear()
            texts.clear()

    reader = con.execute(f"""
        SELECT lead_id, call, CAST(traits AS VARCHAR), groupId, ts FROM ({resolved})
        WHERE call IN ('identify', 'group') ORDER BY lead_id, ts NULLS FIRST, messageId
    """)
    current: str | None = None
    calls: list[Identity] = []
    while rows := reader.fetchmany(BATCH):
        for lead_id, call, traits, group_id, us in rows:
            if lead_id != current:
                flush(current, calls)
                current, calls = lead_id, []
            calls.append(_identity(call, traits, group_id, us))
    flush(current, calls)
    flush(None, [])
    writer.close()


def load_segment(
    con: duckdb.DuckDBPyConnection,
    paths: str | Path | Sequence[str | Path],
    *,
    prefix: str = "fs",
) -> EventStore:
    """Load Segment JSON lines (gzip too) and ``prepare`` them; see the module docstring."""
    files = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
    columns = "{" + ", ".join(f"{k}: '{v}'" for k, v in COLUMNS.items()) + "}"
    raw = f"{prefix}_segment"
    when = "coalesce(" + ", ".join(f"nullif({f}, '')" for f in TIME_FIELDS) + ")"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {raw} AS
        SELECT lower(trim(type)) AS call, event, name, category, properties, traits, context,
               messageId, {_micros(when)} AS ts, nullif(userId, '') AS userId,
               nullif(anonymousId, '') AS anonymousId, previousId, groupId
        FROM read_json(?, format = 'newline_delimited', columns = {columns})
        """,
        [files],
    )
    names = con.execute(f"SELECT DISTINCT event FROM {raw} WHERE event IS NOT NULL").fetchall()
    event_names = [str(n) for (n,) in names]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {prefix}_names AS "
        + unnest_table([("event", "VARCHAR"), ("type", "VARCHAR")]),
        [event_names, [canonical_event_type(n) for n in event_names]],
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {prefix}_links AS
        SELECT anonymousId, arg_min(userId, (ts, messageId)) AS userId FROM (
            SELECT anonymousId, userId, ts, messageId FROM {raw}
            WHERE userId IS NOT NULL AND anonymousId IS NOT NULL AND anonymousId <> userId
            UNION ALL
            SELECT previousId, userId, ts, messageId FROM {raw}
            WHERE call = 'alias' AND userId IS NOT NULL AND previousId IS NOT NULL
              AND previousId <> userId
        ) GROUP BY anonymousId
    """)
    resolved = f"""
        SELECT r.*, coalesce(r.userId, l.userId, 'anon:' || r.anonymousId) AS lead_id
        FROM {raw} r LEFT JOIN {prefix}_links l USING (anonymousId)
        WHERE coalesce(r.userId, r.anonymousId) IS NOT NULL
    """
    page = [(k, "CAST(to_json(" + k + ") AS VARCHAR)") for k in ("name", "category")]
    for key in PAGE_CONTEXT:
        value = f"CAST(json_extract(context, {json_path(['page', key])}) AS VARCHAR)"
        page.append((key, f"CASE WHEN {value} NOT IN ('null', '\"\"') THEN {value} END"))
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {prefix}_segment_events AS
        SELECT lead_id, id, type, ts, {_aliased("p")} AS properties
        FROM (
            SELECT lead_id, id, type, ts,
                   CASE WHEN call IN ('page', 'screen') THEN {_with_defaults("p0", page)}
                        ELSE p0 END AS p
            FROM (
                SELECT lead_id, ts, call, name, category, context,
                       coalesce(messageId, 'h:' || md5(concat_ws('|', call, event, name, ts,
                                userId, anonymousId, properties))) AS id,
                       CASE call WHEN 'page' THEN 'page_viewed' WHEN 'screen' THEN 'screen_viewed'
                            ELSE n.type END AS type,
                       coalesce(CAST(properties AS VARCHAR), '{{}}') AS p0
                FROM ({resolved}) r LEFT JOIN {prefix}_names n USING (event)
                WHERE ts IS NOT NULL
                  AND (call IN ('page', 'screen') OR (call = 'track' AND trim(event) <> ''))
            )
        )
    """)
    _write_leads(con, resolved, f"{prefix}_segment_leads")
    store = prepare(con, f"{prefix}_segment_events", f"{prefix}_segment_leads", prefix=prefix)
    con.execute(f"DROP VIEW {prefix}_segment_events")
    for table in (f"{prefix}_segment_leads", f"{prefix}_names", f"{prefix}_links", raw):
        con.execute(f"DROP TABLE {table}")
    return store
