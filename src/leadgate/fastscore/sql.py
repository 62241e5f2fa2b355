"""Small helpers for writing SQL text: literals, exact times, temporary tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb

from leadgate.domain.events import to_utc
from leadgate.domain.scoring import EPOCH

_US = timedelta(microseconds=1)


def micros(value: datetime | timedelta) -> int:
    """Microseconds since the epoch (UTC), or in a duration; exact."""
    if isinstance(value, timedelta):
        return value // _US
    return (to_utc(value) - EPOCH) // _US


def num(value: float) -> str:
    """A DOUBLE literal that reads back as exactly ``value``."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def text(value: str) -> str:
    """A VARCHAR literal."""
    return "'" + value.replace("'", "''") + "'"


def texts(values: Sequence[str]) -> str:
    return ", ".join(text(v) for v in values)


def floor_div(expr: str, divisor: int) -> str:
    """Integer floor division (DuckDB's ``//`` truncates towards zero)."""
    return f"((({expr}) - ((({expr}) % {divisor}) + {divisor}) % {divisor}) // {divisor})"


def unnest_table(columns: Sequence[tuple[str, str]]) -> str:
    """A SELECT turning one list parameter per column into rows: [(name, sql type)]."""
    return "SELECT " + ", ".join(f"unnest(?::{t}[]) AS {n}" for n, t in columns)


class Tables:
    """Temporary tables of one run, named with a prefix, dropped together."""

    def __init__(self, con: duckdb.DuckDBPyConnection, prefix: str) -> None:
        self.con = con
        self.prefix = prefix
        self.names: list[str] = []

    def create(self, name: str, sql: str, params: Sequence[object] | None = None) -> str:
        full = f"{self.prefix}_{name}"
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {full} AS {sql}", params)
        if full not in self.names:
            self.names.append(full)
        return full

    def drop(self, name: str | None = None) -> None:
        for full in [name] if name else list(reversed(self.names)):
            self.con.execute(f"DROP TABLE IF EXISTS {full}")
            if full in self.names:
                self.names.remove(full)

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self.con.execute(sql).fetchall()]
