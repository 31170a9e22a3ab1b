"""Where a split's rows come from. GLUE resolution order: task.data_dir, then $SPDC_DATA_DIR/glue/<TASK>/, then the
hub through `datasets` (only when the hub answers). When all fail, the error lists every place tried and how to
provide the data. Custom tasks read the files named in the recipe."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from spdc.core.errors import DataError
from spdc.core.hub import hub_reachable
from spdc.data.examples import LabelSpec, SplitData, build_examples
from spdc.data.readers import Row, detect_format, read_rows
from spdc.data.tasks import ColumnSpec, TaskSpec, get_task

DATA_DIR_ENV = "SPDC_DATA_DIR"


class ColumnNames(Protocol):
    """Which columns of a custom file hold the texts and the label (the recipe's `task.columns`)."""

    @property
    def text(self) -> str: ...
    @property
    def text_pair(self) -> str | None: ...
    @property
    def label(self) -> str: ...


class TaskSource(Protocol):
    """What the data layer reads from a task description (the recipe's `task` section satisfies it); a protocol
    so that data does not depend on the recipe layer above it."""

    @property
    def name(self) -> str: ...
    @property
    def data_dir(self) -> Path | None: ...
    @property
    def train_file(self) -> Path | None: ...
    @property
    def dev_file(self) -> Path | None: ...
    @property
    def format(self) -> str: ...
    @property
    def columns(self) -> ColumnNames | None: ...
    @property
    def labels(self) -> list[str] | None: ...
    @property
    def regression(self) -> bool: ...
    @property
    def metrics(self) -> list[str] | None: ...
    @property
    def max_train_samples(self) -> int | None: ...
    @property
    def max_eval_samples(self) -> int | None: ...
    @property
    def drop_bad_rows(self) -> bool: ...


def task_spec(config: TaskSource) -> TaskSpec:
    """The registry entry of a GLUE task, or one built from a custom task's recipe section."""
    if config.name != "custom":
        return get_task(config.name)
    assert config.columns is not None and config.train_file is not None and config.dev_file is not None
    columns = ColumnSpec(text=config.columns.text, text_pair=config.columns.text_pair, label=config.columns.label)
    default_metrics = ("pearson", "spearman") if config.regression else ("accuracy",)
    metrics = tuple(config.metrics or default_metrics)
    return TaskSpec(
        name="custom",
        glue_dir="",
        local_columns=columns,
        hub_columns=columns,
        label_names=None if config.regression else tuple(config.labels or ()),
        metrics=metrics,
        main_metric=metrics[0],
        splits={"train": (str(config.train_file), ""), "dev": (str(config.dev_file), "")},
    )


def _local_candidates(config: TaskSource, spec: TaskSpec, filename: str) -> list[tuple[str, Path | None]]:
    """(where, file) for each local place in resolution order; file is None when that place is not set."""
    env_dir = os.environ.get(DATA_DIR_ENV)
    return [
        ("task.data_dir", config.data_dir / filename if config.data_dir else None),
        (f"${DATA_DIR_ENV}", Path(env_dir) / "glue" / spec.glue_dir / filename if env_dir else None),
    ]


def _hub_rows(spec: TaskSpec, hub_split: str) -> tuple[Iterator[tuple[int, dict[str, Any]]], str]:
    import datasets  # slow import; only needed online

    dataset = datasets.load_dataset(spec.hub_dataset, spec.hub_config, split=hub_split)
    rows = ((index, dict(row)) for index, row in enumerate(dataset, start=1))
    return rows, f"hub {spec.hub_dataset}/{spec.hub_config} [{hub_split}]"


def load_split(config: TaskSource, split: str) -> SplitData:
    """Load and validate one split ('train', 'dev', or an MNLI dev split) of the recipe's task."""
    spec = task_spec(config)
    if split not in spec.splits:
        raise DataError(f"task {spec.name} has no split {split!r}; it has {', '.join(spec.splits)}")
    filename, hub_split = spec.splits[split]

    def validated(rows: Iterable[Row], columns: ColumnSpec, source: str,
                  row_word: str = "line") -> SplitData:
        return build_examples(
            rows, columns=columns, labels=LabelSpec(spec.label_names), source=source, row_word=row_word,
            drop_bad_rows=config.drop_bad_rows,
            limit=config.max_train_samples if split == "train" else config.max_eval_samples,
        )

    if spec.name == "custom":
        custom_file = Path(filename)
        fmt = detect_format(custom_file, config.format)
        # A JSON array is counted by element, the other formats by line.
        return validated(read_rows(custom_file, fmt, mapped=spec.local_columns.names()), spec.local_columns,
                         str(custom_file),
                         "row" if fmt == "json" else "line")

    tried: list[str] = []
    for where, path in _local_candidates(config, spec, filename):
        if path is None:
            tried.append(f"{where}: not set")
        elif not path.is_file():
            tried.append(f"{where}: {path} does not exist")
        else:
            rows = read_rows(path, "tsv", header=spec.headerless_columns, mapped=spec.local_columns.names())
            return validated(rows, spec.local_columns, str(path))
    online, why_offline = hub_reachable()
    if not online:
        tried.append(f"hub {spec.hub_dataset}/{spec.hub_config}: offline ({why_offline})")
    else:
        try:
            rows, source = _hub_rows(spec, hub_split)
        except Exception as exc:  # noqa: BLE001 - datasets raises many unrelated types for network/cache failures
            tried.append(f"hub {spec.hub_dataset}/{spec.hub_config}: {type(exc).__name__}: {exc}")
        else:
            return validated(rows, spec.hub_columns, source, "row")
    places = "\n  ".join(f"{index}. {entry}" for index, entry in enumerate(tried, start=1))
    raise DataError(
        f"no data for task {spec.name} split {split!r}. Tried, in order:\n  {places}\n"
        f"Provide it by setting ${DATA_DIR_ENV} to a folder containing glue/{spec.glue_dir}/{filename} "
        f"(the original GLUE TSV layout), or task.data_dir in the recipe to the folder holding {filename}, "
        "or run with network access to the Hugging Face hub."
    )
