"""Use case: import a history of Segment messages from a file into the database.

``import_events(engine, model, path)`` reads Segment JSON lines (``.jsonl``,
``.ndjson``, gzip or not; a ``.json`` batch document also works but is read
whole) and feeds them, in file order, ``chunk`` messages at a time, to the same
use case as the live API, ``services.ingest.ingest``: one code path for live and
bulk, so identity resolution, idempotency (the message id), the score ledger and
stage decisions are the same whether an event came over HTTP or from a file.

Why chunks, each in its own transaction:

- memory stays bounded (one chunk of decoded messages and the ingest result of
  that chunk, whatever the size of the file);
- a failure loses at most one chunk, and since every event is stored once per
  message id, running the import again finishes the job without doubling anything;
- on SQLite every transaction holds the one write lock, so a server writing to
  the same database waits at most one chunk (keep ``chunk`` modest when serving).

A line that cannot be read (not JSON, not an object, a message the Segment code
refuses) is reported with its file and line and counted; the other lines go in.
The decision time is ``now`` (default: the current time), as for live events:
scores decay as of then, and messages without a timestamp are dated then.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from leadgate.adapters.records import Record, detect_format, records
from leadgate.domain.events import to_utc
from leadgate.domain.mapping import RowError
from leadgate.domain.model import ScoringModel
from leadgate.services.ingest import ingest
from leadgate.store import tables as t
from leadgate.store import transact
from leadgate.store.repository import Repository

DEFAULT_CHUNK = 1000
KEPT_ERRORS = 1000  # errors kept in the summary; all are counted and passed to on_error


class ImportFailed(Exception):
    """The import stopped: the file cannot be read at all, or the database refused a
    chunk. Chunks committed before stay (re-running the import resumes safely)."""


@dataclass
class ImportSummary:
    """What an import did. ``messages`` counts readable lines (JSON objects); ``accepted``
    those ingest applied; of these ``stored`` events were new and ``duplicates`` were
    already stored (identify and group calls are neither)."""

    source: str
    messages: int = 0
    accepted: int = 0
    stored: int = 0
    duplicates: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first KEPT_ERRORS
    notes: int = 0  # identity conflicts ingest left unresolved
    conflicts: int = 0  # message ids repeated with other content (the first was kept)
    chunks: int = 0
    stages: dict[str, int] = field(default_factory=dict)  # leads per stage in the database
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        """Messages read per second of wall time (the figure the benchmarks compare)."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def error(self, problem: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(problem)


def _segment_records(path: Path, source: str) -> Iterator[Record | RowError]:
    """The file's records; a compressed file that ends early or is corrupt ends the
    stream with a RowError after the last line read (what was read still goes in)."""
    fmt = detect_format(path)
    if fmt == "csv":
        raise ImportFailed(f"{source}: Segment messages must be JSON lines, not CSV")
    line = 0
    items = records(path, fmt, source)
    try:
        for item in items:
            line = item.line if isinstance(item, RowError) else item[0]
            yield item
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield RowError(source, line + 1, f"the compressed file is damaged or ends early ({exc})")
    finally:
        items.close()


def import_events(
    engine: Engine,
    model: ScoringModel,
    path: str | Path,
    *,
    chunk: int = DEFAULT_CHUNK,
    now: datetime | None = None,
    on_error: Callable[[RowError], None] | None = None,
    on_progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Import the Segment messages of ``path`` through ``ingest``, ``chunk`` messages per
    transaction; returns the summary. Raises ImportFailed (file or database) and
    ValueError for an unknown file type."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    p = Path(path)
    source = str(path)
    if not p.is_file():
        raise ImportFailed(f"{source}: no such file")
    at = to_utc(now) if now is not None else datetime.now(UTC)
    summary = ImportSummary(source)
    started = time.perf_counter()

    def report(problem: RowError) -> None:
        summary.error(problem)
        if on_error is not None:
            on_error(problem)

    messages: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        for item in _segment_records(p, source):
            if isinstance(item, RowError):
                report(item)
                continue
            line, _label, msg = item
            messages.append(msg)
            lines.append(line)
            if len(messages) >= chunk:
                _ingest_chunk(engine, model, messages, lines, at, source, summary, report)
                messages, lines = [], []
                if on_progress is not None:
                    on_progress(summary)
        if messages:
            _ingest_chunk(engine, model, messages, lines, at, source, summary, report)
    except OSError as exc:
        raise ImportFailed(f"{source}: cannot read it ({exc.strerror or exc})") from None
    summary.stages = leads_per_stage(engine)
    summary.seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(summary)
    return summary


def _ingest_chunk(
    engine: Engine,
    model: ScoringModel,
    messages: list[dict[str, Any]],
    lines: list[int],
    at: datetime,
    source: str,
    summary: ImportSummary,
    report: Callable[[RowError], None],
) -> None:
    """One transaction: ingest the chunk and commit; errors are mapped back to lines."""
    try:
        result = transact(engine, lambda conn: ingest(Repository(conn), model, messages, at))
    except Exception as exc:  # the driver's own errors; the chunk was rolled back
        raise ImportFailed(
            f"{source}: lines {lines[0]}-{lines[-1]} were not imported "
            f"(earlier lines were committed; re-running the import resumes): {exc}"
        ) from exc
    summary.chunks += 1
    summary.messages += len(messages)
    summary.accepted += result.accepted
    summary.stored += result.stored
    summary.duplicates += result.duplicates
    summary.notes += len(result.notes)
    summary.conflicts += len(result.conflicts)
    for problem in result.errors:
        report(RowError(source, lines[problem.index], problem.reason))


def leads_per_stage(engine: Engine) -> dict[str, int]:
    """How many leads the database holds in each stage."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.leads.c.stage, func.count())
            .group_by(t.leads.c.stage)
            .order_by(t.leads.c.stage)
        )
        return {str(stage): int(n) for stage, n in rows}
