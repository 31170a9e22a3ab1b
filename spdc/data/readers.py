"""File readers that yield (line number, row mapping) so every later error can name the file and the row.

Rows are decoded line by line: an undecodable byte is reported at its line, not as a generic decode error.
GLUE TSVs are read with QUOTE_NONE (fields may start with a lone double quote); MRPC starts with a BOM.
Delimited files are parsed one physical line at a time: a quoted field that runs past its line (an unterminated
quote, or a field spanning lines) is one bad row named by its line, and the rows after it are read as usual
instead of being swallowed into that field. A row the reader cannot read is yielded as the reason (a string), so
`task.drop_bad_rows` can drop it like any other bad row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from spdc.core.errors import DataError

Row = tuple[int, dict[str, Any] | str]  # a string: why the row cannot be read

FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl"}
MAX_FIELD_BYTES = 16 << 20  # one text field; csv's own default (128 KiB) is short for long documents


def detect_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the extension; set task.format (csv, tsv, json, jsonl)")
    return fmt


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        raw_lines = path.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}, line {number}: undecodable bytes (not UTF-8) at byte {exc.start}") from None
        yield number, line.removeprefix("\ufeff") if number == 1 else line


def check_header(path: Path, columns: list[str], mapped: tuple[str, ...]) -> None:
    """Every mapped column must appear exactly once in the header: a missing or repeated one is ambiguous."""
    for name in mapped:
        count = columns.count(name)
        if count != 1:
            problem = "is missing from" if count == 0 else f"appears {count} times in"
            raise DataError(f"{path}, line 1: column {name!r} {problem} the header ({', '.join(columns)})")


def read_delimited(path: Path, *, delimiter: str, header: tuple[str, ...] | None = None,
                   mapped: tuple[str, ...] = ()) -> Iterator[Row]:
    """CSV (standard quoting) or TSV (QUOTE_NONE). `header` names the columns of a headerless file; `mapped` are
    the columns the task reads, checked against the header."""
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    kind = "TSV" if delimiter == "\t" else "CSV"
    csv.field_size_limit(MAX_FIELD_BYTES)
    columns: list[str] | None = list(header) if header else None
    for number, line in _decoded_lines(path):
        try:
            fields = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter, quoting=quoting, strict=True), [])
        except csv.Error as exc:
            reason = f"unreadable {kind} ({exc}: a quoted field must end on its own line)"
            if columns is None:
                raise DataError(f"{path}, line {number}: {reason}") from None
            yield number, reason
            continue
        if not fields or all(not field.strip() for field in fields):
            continue
        if columns is None:
            columns = [name.strip() for name in fields]
            check_header(path, columns, mapped)
            continue
        yield number, dict(zip(columns, fields, strict=False))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"key {repeated[0]!r} appears more than once in an object")
    return dict(pairs)


def _loads(text: str) -> Any:
    """json.loads that refuses repeated keys (which one would the task read?) and reports deep nesting."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(path: Path) -> Iterator[Row]:
    """A JSON array of objects; the 'row' is the 1-based index in the array."""
    text = "".join(line for _, line in _decoded_lines(path))
    try:
        data = _loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise DataError(f"{path}, row {index}: expected an object, got {type(item).__name__}")
        yield index, item


def read_jsonl(path: Path) -> Iterator[Row]:
    for number, line in _decoded_lines(path):
        if not line.strip():
            continue
        try:
            item = _loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc})") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}, line {number}: expected an object, got {type(item).__name__}")
        yield number, item


def read_rows(path: Path, fmt: str, *, header: tuple[str, ...] | None = None,
              mapped: tuple[str, ...] = ()) -> Iterator[Row]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if fmt == "tsv":
        return read_delimited(path, delimiter="\t", header=header, mapped=mapped)
    if fmt == "csv":
        return read_delimited(path, delimiter=",", header=header, mapped=mapped)
    if fmt == "json":
        return read_json(path)
    return read_jsonl(path)
