"""GLUE task registry: where each task's text and labels live (local TSV and hub), and how it is scored.

Label order follows the hub's `nyu-mll/glue` dataset so that a model trained on local TSVs and one trained
on hub data agree on what label index 1 means.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ColumnSpec:
    """Names of the text, optional second text and label columns in one data layout."""

    text: str
    label: str
    text_pair: str | None = None

    def names(self) -> tuple[str, ...]:
        return tuple(name for name in (self.text, self.text_pair, self.label) if name is not None)


@dataclass(frozen=True)
class TaskSpec:
    """Everything spdc needs to know about one GLUE task."""

    name: str
    glue_dir: str
    local_columns: ColumnSpec
    hub_columns: ColumnSpec
    label_names: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]
    main_metric: str
    # split name -> (local file name, hub split name)
    splits: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"train": ("train.tsv", "train"), "dev": ("dev.tsv", "validation")}
    )
    # Column names for TSVs that ship without a header line (CoLA); None when the file has one.
    headerless_columns: tuple[str, ...] | None = None
    hub_dataset: str = "nyu-mll/glue"
    hub_config: str = ""

    @property
    def head(self) -> str:
        """The task head (spdc.heads) its outputs need."""
        return implied_head(regression=self.label_names is None)

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def dev_splits(self) -> tuple[str, ...]:
        """The evaluation splits (MNLI has matched and mismatched)."""
        return tuple(name for name in self.splits if name != "train")


def implied_head(*, regression: bool) -> str:
    """The head a GLUE-style task needs when the recipe names none: one real number, or one label per row."""
    return "sequence-regression" if regression else "sequence-classification"


_PAIR = ColumnSpec(text="sentence1", text_pair="sentence2", label="label")

GLUE_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="cola",
            glue_dir="CoLA",
            local_columns=ColumnSpec(text="sentence", label="label"),
            hub_columns=ColumnSpec(text="sentence", label="label"),
            label_names=("unacceptable", "acceptable"),
            metrics=("mcc",),
            main_metric="mcc",
            headerless_columns=("source", "label", "original_label", "sentence"),
            hub_config="cola",
        ),
        TaskSpec(
            name="sst2",
            glue_dir="SST-2",
            local_columns=ColumnSpec(text="sentence", label="label"),
            hub_columns=ColumnSpec(text="sentence", label="label"),
            label_names=("negative", "positive"),
            metrics=("accuracy",),
            main_metric="accuracy",
            hub_config="sst2",
        ),
        TaskSpec(
            name="mrpc",
            glue_dir="MRPC",
            local_columns=ColumnSpec(text="#1 String", text_pair="#2 String", label="Quality"),
            hub_columns=_PAIR,
            label_names=("not_equivalent", "equivalent"),
            metrics=("f1", "accuracy"),
            main_metric="f1",
            hub_config="mrpc",
        ),
        TaskSpec(
            name="qqp",
            glue_dir="QQP",
            local_columns=ColumnSpec(text="question1", text_pair="question2", label="is_duplicate"),
            hub_columns=ColumnSpec(text="question1", text_pair="question2", label="label"),
            label_names=("not_duplicate", "duplicate"),
            metrics=("f1", "accuracy"),
            main_metric="f1",
            hub_config="qqp",
        ),
        TaskSpec(
            name="stsb",
            glue_dir="STS-B",
            local_columns=ColumnSpec(text="sentence1", text_pair="sentence2", label="score"),
            hub_columns=_PAIR,
            label_names=None,
            metrics=("pearson", "spearman"),
            main_metric="pearson",
            hub_config="stsb",
        ),
        TaskSpec(
            name="mnli",
            glue_dir="MNLI",
            local_columns=ColumnSpec(text="sentence1", text_pair="sentence2", label="gold_label"),
            hub_columns=ColumnSpec(text="premise", text_pair="hypothesis", label="label"),
            label_names=("entailment", "neutral", "contradiction"),
            metrics=("accuracy",),
            main_metric="accuracy",
            splits={
                "train": ("train.tsv", "train"),
                "dev_matched": ("dev_matched.tsv", "validation_matched"),
                "dev_mismatched": ("dev_mismatched.tsv", "validation_mismatched"),
            },
            hub_config="mnli",
        ),
        TaskSpec(
            name="qnli",
            glue_dir="QNLI",
            local_columns=ColumnSpec(text="question", text_pair="sentence", label="label"),
            hub_columns=ColumnSpec(text="question", text_pair="sentence", label="label"),
            label_names=("entailment", "not_entailment"),
            metrics=("accuracy",),
            main_metric="accuracy",
            hub_config="qnli",
        ),
        TaskSpec(
            name="rte",
            glue_dir="RTE",
            local_columns=_PAIR,
            hub_columns=_PAIR,
            label_names=("entailment", "not_entailment"),
            metrics=("accuracy",),
            main_metric="accuracy",
            hub_config="rte",
        ),
    )
}

# Spellings users type for the same task ("SST-2", "sts-b").
_ALIASES = {spec.glue_dir.lower(): name for name, spec in GLUE_TASKS.items()}


def canonical_task_name(name: str) -> str | None:
    """Return the registry key for a task name in any common spelling, or None if it is not a GLUE task."""
    lowered = name.lower()
    if lowered in GLUE_TASKS:
        return lowered
    return _ALIASES.get(lowered)


def get_task(name: str) -> TaskSpec:
    key = canonical_task_name(name)
    if key is None:
        raise KeyError(f"unknown GLUE task {name!r}; known: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]
