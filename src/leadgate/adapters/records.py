"""Records from CSV, JSON lines and JSON documents, gzip or not: (line, label, row) or RowError.

The container layer under the lead and event readers: it knows formats, line
numbers and encodings, not leads or events.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson

from leadgate.domain.mapping import RowError

Format = Literal["csv", "jsonl", "json"]
Record = tuple[int, str, dict[str, Any]]  # line, label ("batch[3]" or ""), decoded row
Records = Generator[Record | RowError, None, None]
HeaderCheck = Callable[[list[str]], tuple[list[str], bool]] | None

_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_GZIP_MAGIC = b"\x1f\x8b"


def detect_format(path: str | Path) -> Format:
    """csv, jsonl or json from the extension (``.gz`` ignored); ``.json`` files whose
    first line is a whole JSON object are JSON lines, others one document."""
    p = Path(path)
    fmt = suffix_format(p)
    if fmt == "json":
        with open_bytes(p) as f:
            first = next((line for line in f if line.strip()), b"")
        with contextlib.suppress(orjson.JSONDecodeError):
            if isinstance(orjson.loads(first), dict):
                return "jsonl"
    return fmt


def suffix_format(path: Path) -> Format:
    """The format an extension names (``.gz`` looked through); ValueError if none."""
    suffix = Path(path.stem).suffix if path.suffix.lower() == ".gz" else path.suffix
    fmt = _SUFFIXES.get(suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown file type {suffix!r}; use .csv, .jsonl or .json")
    return fmt


def open_bytes(path: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed when it is gzip (by content, whatever its name)."""
    with path.open("rb") as raw:
        magic = raw.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return path.open("rb")


# ---------------------------------------------------------------------------
# Records: (line, label, dict) or RowError, whatever the container format


def json_lines(path: Path, source: str) -> Records:
    """One JSON object per line; blank lines are skipped."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    with open_bytes(path) as f:
        for line, raw in enumerate(f, 1):
            try:
                obj = loads(raw)
            except decode_error as exc:
                if raw.strip():
                    yield RowError(source, line, f"invalid JSON: {exc}")
                continue
            if type(obj) is dict:
                yield line, "", obj
            else:
                yield RowError(source, line, f"expected a JSON object, got {kind_name(obj)}")


def kind_name(obj: Any) -> str:
    """'an object', 'a list', ... for error messages."""
    names = {"dict": "an object", "list": "a list", "str": "a string"}
    return names.get(type(obj).__name__, type(obj).__name__)


def json_document(path: Path, source: str) -> Records:
    """Items of one JSON document: a Segment batch, a list, or a single object."""
    with open_bytes(path) as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield RowError(source, line, "not valid UTF-8 text: the document cannot be read")
        return
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        yield RowError(source, exc.lineno, f"invalid JSON: {exc.msg}")
        return
    if isinstance(doc, dict) and isinstance(doc.get("batch"), list):
        items, label, key = doc["batch"], "batch", "batch"
    elif isinstance(doc, list):
        items, label, key = doc, "", None
    else:
        items, label, key = [doc], None, None
    lines = _item_lines(text, len(items), key) if label is not None else [1]
    for i, (item, line) in enumerate(zip(items, lines, strict=True)):
        name = f"{label}[{i}]" if label is not None else ""
        if isinstance(item, dict):
            yield line, name, item
        else:
            yield RowError(source, line, f"{name}: expected a JSON object, got {kind_name(item)}")


def _item_lines(text: str, count: int, key: str | None) -> list[int]:
    """The line where each item of the (top-level or ``key``) array starts."""
    found = re.search(rf'"{key}"\s*:\s*\[', text) if key else re.match(r"\s*\[", text)
    if found is None:
        return [1] * count
    decoder, pos, line, counted, lines = json.JSONDecoder(), found.end(), 1, 0, []
    for _ in range(count):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        line += text.count("\n", counted, pos)
        counted = pos
        lines.append(line)
        try:
            pos = decoder.raw_decode(text, pos)[1]
        except ValueError:
            return [1] * count
    return lines


def csv_rows(
    path: Path, source: str, check_header: Callable[[list[str]], tuple[list[str], bool]]
) -> Records:
    """CSV records as dicts; line is the physical line where the record starts."""
    bad_lines: set[int] = set()
    with open_bytes(path) as f:
        reader = csv.reader(_text_lines(f, bad_lines))
        try:
            header = next(reader)
        except StopIteration:
            yield RowError(source, 1, "empty file: no header line")
            return
        problems, fatal = check_header(header)
        yield from (RowError(source, 1, p) for p in problems)
        if fatal:
            return
        width, end = len(header), reader.line_num
        while True:
            start = end + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                end = reader.line_num
                bad_lines.clear()
                yield RowError(source, start, f"unreadable CSV: {exc}")
                continue
            end = reader.line_num
            if not values:
                continue
            if bad_lines:  # only lines of this record: the reader reads no further
                bad_lines.clear()
                yield RowError(source, start, "not valid UTF-8 text")
            elif len(values) != width:
                yield RowError(source, start, f"expected {width} fields, got {len(values)}")
            else:
                yield start, "", dict(zip(header, values, strict=True))


def _text_lines(f: io.BufferedIOBase, bad_lines: set[int]) -> Iterator[str]:
    for n, raw in enumerate(f, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines.add(n)
            text = raw.decode("utf-8", errors="replace")
        yield text[1:] if n == 1 and text.startswith("\ufeff") else text


def records(path: Path, fmt: Format, source: str, check_header: HeaderCheck = None) -> Records:
    """The records of a file in the given format; ``check_header`` vets a CSV header."""
    if fmt == "csv":
        return csv_rows(path, source, check_header or (lambda header: ([], False)))
    return json_lines(path, source) if fmt == "jsonl" else json_document(path, source)
