"""File readers that yield (line number, row mapping) so every later error can name the file and the row.

Rows are decoded line by line: an undecodable byte is reported at its line, not as a generic decode error.
GLUE TSVs are read with QUOTE_NONE (fields may start with a lone double quote); MRPC starts with a BOM.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from spdc.core.errors import DataError

Row = tuple[int, dict[str, Any]]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl"}


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


def read_delimited(path: Path, *, delimiter: str, header: tuple[str, ...] | None = None) -> Iterator[Row]:
    """CSV (standard quoting) or TSV (QUOTE_NONE). `header` names the columns of a headerless file."""
    lines = list(_decoded_lines(path))
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader((line for _, line in lines), delimiter=delimiter, quoting=quoting)
    line_numbers = [number for number, _ in lines]
    columns: list[str] | None = list(header) if header else None
    for fields in reader:
        number = line_numbers[reader.line_num - 1]
        if not fields or all(not field.strip() for field in fields):
            continue
        if columns is None:
            columns = [name.strip() for name in fields]
            continue
        yield number, dict(zip(columns, fields, strict=False))


def read_json(path: Path) -> Iterator[Row]:
    """A JSON array of objects; the 'row' is the 1-based index in the array."""
    text = "".join(line for _, line in _decoded_lines(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from None
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
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}, line {number}: expected an object, got {type(item).__name__}")
        yield number, item


def read_rows(path: Path, fmt: str, *, header: tuple[str, ...] | None = None) -> Iterator[Row]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if fmt == "tsv":
        return read_delimited(path, delimiter="\t", header=header)
    if fmt == "csv":
        return read_delimited(path, delimiter=",", header=header)
    if fmt == "json":
        return read_json(path)
    return read_jsonl(path)
