"""Reading leads and events from files, and writing results.

Formats by extension: ``.csv``, ``.jsonl``/``.ndjson`` (JSON lines) and ``.json``
(JSON lines, or one JSON document: a Segment batch ``{"batch": [...]}``, one
message, or a list); ``.gz`` (or gzip content) is decompressed on the fly.

Line-based readers stream: memory stays bounded however long the file. Every
record that cannot be read is yielded as a RowError with its line and a reason
naming the field; reading goes on with the next record. The readers settle the
format when called (an unknown extension raises ValueError at once) and read
when iterated.

Segment files are read in two passes when ``stitch`` is on: the first collects
only the anonymousId -> userId links (from messages carrying both, and alias
calls; the first link seen for an anonymous id wins), the second converts the
messages, so an anonymous page view before sign-up joins its user's lead.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast

import orjson

from leadgate.adapters.records import (
    Format,
    HeaderCheck,
    detect_format,
    kind_name,
    open_bytes,
    records,
    suffix_format,
)
from leadgate.domain.events import Event
from leadgate.domain.mapping import (
    DEFAULT_MAPPING,
    InvalidRow,
    MappingError,
    RowError,
    SourceMapping,
    parse_mapping,
)
from leadgate.domain.rows import (
    LeadRow,
    event_header_problems,
    header_problems,
    map_event_row,
    map_lead_row,
)
from leadgate.domain.segment import (
    Identity,
    convert_message,
    identity_links,
    is_segment_message,
)

__all__ = [
    "Identity",
    "LeadRow",
    "MappingError",
    "RowError",
    "SourceMapping",
    "collect_links",
    "detect_format",
    "load_mapping",
    "read_events",
    "read_leads",
    "read_segment",
    "write_results",
]

Dialect = Literal["native", "segment"]
_LINK_MARKERS = (b"nonymous", b"revious")


def load_mapping(path: str | Path) -> SourceMapping:
    """Read and validate a YAML mapping file (raises MappingError naming file and line)."""
    return parse_mapping(Path(path).read_text(encoding="utf-8"), str(path))


def _error(source: str, line: int, label: str, reason: str) -> RowError:
    return RowError(source, line, f"{label}: {reason}" if label else reason)


# ---------------------------------------------------------------------------
# Public readers


def read_leads(
    path: str | Path, mapping: SourceMapping | None = None, *, format: Format | None = None
) -> Iterator[LeadRow | RowError]:
    """Leads from a CSV or JSON file, one per row, with derived events and outcome."""
    p, m = Path(path), mapping or DEFAULT_MAPPING
    return _lead_rows(p, format or detect_format(p), str(path), m)


R = TypeVar("R")


def _mapped_rows(
    path: Path,
    fmt: Format,
    source: str,
    check: HeaderCheck,
    convert: Callable[[Mapping[str, Any], int], R],
) -> Iterator[R | RowError]:
    """Each record converted; a record that cannot be is a RowError naming its line."""
    for item in records(path, fmt, source, check):
        if isinstance(item, RowError):
            yield item
            continue
        line, label, row = item
        try:
            yield convert(row, line)
        except InvalidRow as exc:
            yield _error(source, line, label, exc.reason)


def _lead_rows(
    path: Path, fmt: Format, source: str, mapping: SourceMapping
) -> Iterator[LeadRow | RowError]:
    check = functools.partial(header_problems, mapping=mapping)
    return _mapped_rows(
        path, fmt, source, check, lambda row, line: map_lead_row(row, mapping, line)
    )


def read_events(
    path: str | Path,
    mapping: SourceMapping | None = None,
    *,
    format: Format | None = None,
    dialect: Dialect | None = None,
    stitch: bool = True,
) -> Iterator[Event | Identity | RowError]:
    """Events from a native event file or a Segment file (detected from the first record).

    Segment identify/group calls come out as Identity records (see
    ``leads_from_identities``); native files yield only Events and RowErrors.
    """
    p, m = Path(path), mapping or DEFAULT_MAPPING
    fmt = format or detect_format(p)
    dialect = dialect or ("native" if fmt == "csv" else _sniff_dialect(p, fmt))
    if dialect == "segment":
        if fmt == "csv":
            raise ValueError(f"{path}: Segment messages must be JSON, not CSV")
        return read_segment(p, m, format=fmt, stitch=stitch)
    if fmt == "jsonl":
        return _native_json_lines(p, str(path), m)
    return _native_records(p, fmt, str(path), m)


def _native_records(
    path: Path, fmt: Format, source: str, mapping: SourceMapping
) -> Iterator[Event | RowError]:
    check = functools.partial(event_header_problems, mapping=mapping)
    return _mapped_rows(path, fmt, source, check, lambda row, _line: map_event_row(row, mapping))


def _native_json_lines(
    path: Path, source: str, mapping: SourceMapping
) -> Iterator[Event | RowError]:
    """The hot path: native events from JSON lines, one loop, no intermediate records."""
    loads, decode_error, convert = orjson.loads, orjson.JSONDecodeError, map_event_row
    with open_bytes(path) as f:
        for line, raw in enumerate(f, 1):
            try:
                row = loads(raw)
                if type(row) is dict:
                    yield convert(row, mapping)
                else:
                    yield RowError(source, line, f"expected a JSON object, got {kind_name(row)}")
            except decode_error as exc:
                if raw.strip():
                    yield RowError(source, line, f"invalid JSON: {exc}")
            except InvalidRow as exc:
                yield RowError(source, line, exc.reason)


def _sniff_dialect(path: Path, fmt: Format) -> Dialect:
    """segment when the first readable record looks like a Segment message."""
    items = records(path, fmt, str(path))
    try:
        first = next((r for r in items if not isinstance(r, RowError)), None)
    finally:
        items.close()
    return "segment" if first is not None and is_segment_message(first[2]) else "native"


def read_segment(
    path: str | Path,
    mapping: SourceMapping | None = None,
    *,
    format: Format | None = None,
    stitch: bool = True,
) -> Iterator[Event | Identity | RowError]:
    """Segment messages (JSON lines, a batch document or one message) as events and
    identities; anonymous ids are stitched to user ids in a first pass (see module doc)."""
    p = Path(path)
    return _segment_items(p, format or detect_format(p), str(path), mapping, stitch)


def _segment_items(
    path: Path, fmt: Format, source: str, mapping: SourceMapping | None, stitch: bool
) -> Iterator[Event | Identity | RowError]:
    m = mapping or DEFAULT_MAPPING
    links: dict[str, str] = collect_links(path, fmt) if stitch else {}
    for item in records(path, fmt, source):
        if isinstance(item, RowError):
            yield item
            continue
        line, label, msg = item
        try:
            converted = convert_message(msg, links, m)
        except InvalidRow as exc:
            yield _error(source, line, label, exc.reason)
            continue
        if converted is not None:
            yield converted


def collect_links(path: str | Path, format: Format | None = None) -> dict[str, str]:
    """First pass: anonymousId (or alias previousId) -> userId, first link seen wins.

    A compressed file that ends early gives the links read so far; the second
    pass reports where it ends.
    """
    p = Path(path)
    links: dict[str, str] = {}
    fmt = format or detect_format(p)
    if fmt == "jsonl":
        with open_bytes(p) as f, contextlib.suppress(EOFError, gzip.BadGzipFile, zlib.error):
            for raw in f:
                if _LINK_MARKERS[0] in raw or _LINK_MARKERS[1] in raw:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        msg = orjson.loads(raw)
                        if isinstance(msg, dict):
                            for anon, user in identity_links(msg):
                                links.setdefault(anon, user)
        return links
    for item in records(p, fmt, str(path)):
        if not isinstance(item, RowError):
            for anon, user in identity_links(item[2]):
                links.setdefault(anon, user)
    return links


# ---------------------------------------------------------------------------
# Writers


def write_results(
    path: str | Path,
    rows: Iterable[Mapping[str, Any]],
    *,
    format: Literal["csv", "jsonl"] | None = None,
    columns: list[str] | None = None,
) -> int:
    """Write rows as CSV or JSON lines (by extension; ``.gz`` compresses), streaming.

    The file is written beside its final name and moved into place when done, so
    a failed run never leaves half a file. ``-`` writes to standard output. CSV
    columns are ``columns`` or the first row's keys; a later row with other keys
    is an error. Returns the number of rows written.
    """
    if str(path) == "-":
        return _write(sys.stdout.buffer, rows, format or "jsonl", columns)
    p = Path(path)
    fmt = format or ("jsonl" if suffix_format(p) == "json" else suffix_format(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as raw:
            if p.suffix == ".gz":
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
                    count = _write(cast(IO[bytes], zipped), rows, fmt, columns)
            else:
                count = _write(raw, rows, fmt, columns)
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _write(
    out: IO[bytes], rows: Iterable[Mapping[str, Any]], fmt: str, columns: list[str] | None
) -> int:
    count = 0
    if fmt == "jsonl":
        option = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
        for row in rows:
            out.write(orjson.dumps(row, default=_json_default, option=option))
            count += 1
        out.flush()
        return count
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text, lineterminator="\n")
    header: list[str] | None = list(columns) if columns is not None else None
    known: set[str] = set(header or ())
    if header is not None:
        writer.writerow(header)
    for count, row in enumerate(rows, 1):
        if header is None:
            header = list(row)
            known = set(header)
            writer.writerow(header)
        extra = [k for k in row if k not in known]
        if extra:
            raise ValueError(f"row {count}: columns not in the header: {', '.join(extra)}")
        writer.writerow([_csv_cell(row.get(k)) for k in header])
    text.flush()
    text.detach()
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return orjson.dumps(value, default=_json_default).decode()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
