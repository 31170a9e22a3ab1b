"""The documents of a run directory, typed once for writers and readers: the metrics.jsonl records, the run
summary (fine-tuning or compression), the compression record beside the student, and the fold report.

metrics.jsonl holds one `TrainRecord` or `EvalRecord` per line. Loss parts are logged as `loss_<name>` keys
(one per distillation loss in use), so they are kept as extra fields and read back through `loss_parts()`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from spdc.core.errors import ArtifactError
from spdc.core.records import Record, Result

LOSS_PREFIX = "loss_"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"


class StageFields(Record):
    """What a compression stage adds to every record: grafting probability and current sparsities."""

    p: float | None = None
    sparsity: float | None = None
    head_sparsity: float | None = None
    neuron_sparsity: float | None = None


class TrainRecord(StageFields):
    kind: Literal["train"] = "train"
    stage: str
    step: int
    epoch: float
    time_s: float
    loss: float
    lr: float

    def loss_parts(self) -> dict[str, float]:
        """The named parts of the loss (`loss_hidden`, ...), without the total."""
        return {key: float(value) for key, value in (self.model_extra or {}).items() if key.startswith(LOSS_PREFIX)}


class EvalRecord(StageFields):
    kind: Literal["eval"] = "eval"
    stage: str
    step: int
    epoch: float
    time_s: float
    dev: dict[str, float]
    train: dict[str, float] | None = None  # the train metric, measured in eval mode on a sample
    validation: dict[str, float] | None = None  # the held-out training rows the best checkpoint is selected on


MetricsRecord = Annotated[TrainRecord | EvalRecord, Field(discriminator="kind")]
_RECORD = TypeAdapter(MetricsRecord)


def parse_metrics_line(line: str) -> TrainRecord | EvalRecord:
    """One metrics.jsonl line; raises ValueError on a line that is not a complete record."""
    try:
        return _RECORD.validate_python(json.loads(line))
    except (json.JSONDecodeError, ValidationError, RecursionError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def serialize_record(record: TrainRecord | EvalRecord) -> str:
    return json.dumps(record.model_dump(mode="json", exclude_none=True)) + "\n"


class SplitSummary(Record):
    source: str
    rows: int
    dropped: int = 0
    warning: str | None = None  # many rows dropped: said loudly


class RunSummary(Result, ABC):
    """What every training run reports (summary.json and `--json`)."""

    kind: str
    run_dir: str
    task: str
    main_metric: str
    dev_split: str
    best_step: int | None
    steps: int
    train_seconds: float
    wall_seconds: float
    data: dict[str, SplitSummary]
    environment: dict[str, Any]
    model_dir: str | None
    selected_on: Literal["validation", "dev"] = "dev"  # which split chose the best checkpoint
    validation: dict[str, float] | None = None  # validation metrics of the best checkpoint
    baseline: dict[str, float] | None = None  # the dev split's majority-class (regression: mean) prediction

    @abstractmethod
    def best_dev(self) -> dict[str, float]:
        """Dev metrics of the run's best model (empty when no model qualified)."""


class FinetuneSummary(RunSummary):
    kind: Literal["finetune"] = "finetune"
    model: str
    model_source: str
    dev: dict[str, float] | None

    def best_dev(self) -> dict[str, float]:
        return self.dev or {}


class CompressionRecord(Record):
    """How a student was compressed (`spdc_compression.json` beside its weights, and the summary's `structure`)."""

    layer_map: list[int]
    method: str
    granularity: str | None = None
    sparsity: dict[str, Any] | None = None
    flops: dict[str, float] | None = None
    cut: dict[str, Any] | None = None  # a one-shot cut: the seconds its scoring took, its untrained metrics


class FoldResult(Result):
    """`spdc fold`: what was cut out and proof that the logits did not move."""

    source: str
    folded_dir: str
    folded: bool
    structure: dict[str, Any] | None
    parameters: dict[str, int]
    max_logit_difference: float


class ArtifactRef(Record):
    """An export made at the end of a compress run (`export.onnx: true`)."""

    path: str
    status: str
    precision: str


class CompressSummary(RunSummary):
    kind: Literal["compress"] = "compress"
    method: str
    teacher: str
    teacher_dev: dict[str, float]
    student_dev: dict[str, float]
    retained: float | None
    parameters: dict[str, int]
    structure: CompressionRecord
    fold: FoldResult | None = None
    artifact: ArtifactRef | None = None

    def best_dev(self) -> dict[str, float]:
        return self.student_dev


_SUMMARY = TypeAdapter(Annotated[FinetuneSummary | CompressSummary, Field(discriminator="kind")])


def read_summary(run_dir: Path) -> FinetuneSummary | CompressSummary:
    """The summary of a finished run; an artifact error when it is missing or not a summary."""
    path = run_dir / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "kind" not in data:  # written by spdc 0.1
            data["kind"] = "compress" if "method" in data else "finetune"
        return _SUMMARY.validate_python(data)
    except FileNotFoundError:
        raise ArtifactError(f"{run_dir} is not a finished run directory (no {SUMMARY_FILE})") from None
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None


class EvalResult(Result):
    """`spdc eval`: a model scored on one split of a task."""

    model: str
    task: str
    split: str
    rows: int
    dropped: int
    source: str
    main_metric: str
    metrics: dict[str, float]
    baseline: dict[str, float] | None = None  # the split's majority-class (regression: mean) prediction
