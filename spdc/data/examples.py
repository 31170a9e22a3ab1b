"""Turning raw rows into validated examples. Nothing is dropped silently: a bad row raises, naming file and row,
unless the recipe opted in to dropping, in which case the count (and the first reasons) are reported."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

from spdc.core.console import stderr
from spdc.core.errors import DataError
from spdc.data.readers import Row
from spdc.data.tasks import ColumnSpec


@dataclass(frozen=True)
class Example:
    text: str
    text_pair: str | None
    label: int | float


@dataclass(frozen=True)
class LabelSpec:
    """Label names in index order, or None for a regression target."""

    names: tuple[str, ...] | None

    def parse(self, value: Any) -> int | float:
        """Accept a label name, or an integer index; raise ValueError with the reason otherwise."""
        if isinstance(value, dict | list | bool):
            raise ValueError(f"label {str(value)[:40]!r} is a {type(value).__name__}, not a label")
        if self.names is None:
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"label {str(value)[:40]!r} is not a number") from None
            if not math.isfinite(number):
                raise ValueError(f"label {value!r} is not a finite number")
            return number
        text = str(value).strip()
        if text in self.names:
            return self.names.index(text)
        try:
            index = int(text)
        except ValueError:
            raise ValueError(f"unknown label {text[:40]!r}; expected one of {list(self.names)}") from None
        if not 0 <= index < len(self.names):
            raise ValueError(f"label {index} out of range 0..{len(self.names) - 1}")
        return index


@dataclass
class SplitData:
    """One split's examples and where they came from."""

    examples: list[Example]
    source: str
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    warning: str | None = None  # said when more than DROP_WARNING_SHARE of the rows were dropped


DROP_WARNING_SHARE = 0.05
VALIDATION_SEED = 20_221  # one split for every run of a task, so teachers and students never see its rows


def hold_out(split: SplitData, fraction: float) -> tuple[SplitData, SplitData]:
    """(train, validation): a fixed seeded `fraction` of the rows set aside, the order of the rest kept."""
    import random

    count = round(len(split.examples) * fraction)
    if count < 1 or count >= len(split.examples):
        raise DataError(f"{split.source}: task.validation_fraction {fraction} of {len(split.examples)} rows leaves "
                        "no rows for validation or for training")
    chosen = set(random.Random(VALIDATION_SEED).sample(range(len(split.examples)), count))
    train = [example for index, example in enumerate(split.examples) if index not in chosen]
    held = [example for index, example in enumerate(split.examples) if index in chosen]
    return (SplitData(train, split.source, split.dropped, split.drop_reasons, split.warning),
            SplitData(held, f"{split.source} (validation: {fraction:g} held out)"))


def row_text(row: dict[str, Any], column: str) -> str:
    """The text in `column` of a row; ValueError (the row is bad) when it is missing, empty or not text."""
    if column not in row or row[column] is None:
        raise ValueError(f"missing column {column!r}")
    if isinstance(row[column], dict | list):
        raise ValueError(f"column {column!r} holds a {type(row[column]).__name__}, not text")
    value = str(row[column]).strip()
    if not value:
        raise ValueError(f"empty text in column {column!r}")
    return value


def build_examples(
    rows: Iterable[Row],
    *,
    columns: ColumnSpec,
    labels: LabelSpec,
    source: str,
    row_word: str = "line",
    drop_bad_rows: bool = False,
    limit: int | None = None,
) -> SplitData:
    """Validate rows into examples; `row_word` says how `source` counts rows ('line' in files, 'row' in the hub)."""
    split = SplitData(examples=[], source=source)
    for number, row in rows:
        if limit is not None and len(split.examples) >= limit:
            break
        try:
            if isinstance(row, str):
                raise ValueError(row)
            text = row_text(row, columns.text)
            pair = row_text(row, columns.text_pair) if columns.text_pair else None
            if columns.label not in row or row[columns.label] is None:
                raise ValueError(f"missing column {columns.label!r}")
            label = labels.parse(row[columns.label])
        except ValueError as exc:
            reason = f"{source}, {row_word} {number}: {exc}"
            if not drop_bad_rows:
                raise DataError(reason) from None
            split.dropped += 1
            if len(split.drop_reasons) < 5:
                split.drop_reasons.append(reason)
            continue
        split.examples.append(Example(text=text, text_pair=pair, label=label))
    if not split.examples:
        raise DataError(f"{source}: no usable rows")
    if split.dropped > DROP_WARNING_SHARE * (split.dropped + len(split.examples)):
        share = split.dropped / (split.dropped + len(split.examples))
        split.warning = (f"{split.dropped} of {split.dropped + len(split.examples)} rows ({share:.0%}) of {source} "
                         f"were dropped as bad rows: is this the right file and format? First: "
                         f"{split.drop_reasons[0]}")
        stderr.print(f"[bold yellow]warning:[/] {escape(split.warning)}", highlight=False, soft_wrap=True)
    return split
