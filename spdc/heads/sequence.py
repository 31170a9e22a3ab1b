"""Sequence classification and regression: one vector of logits per row (one logit for regression), scored with
the GLUE metrics, distilled by soft cross-entropy at a temperature (MSE for regression)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from spdc.data.metrics import METRICS
from spdc.data.tasks import TaskSpec
from spdc.heads.base import Collate, Outputs, TaskHead


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """-sum softmax(t/T) * log_softmax(s/T), averaged over the batch."""
    targets = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return -(targets * F.log_softmax(student_logits.float() / temperature, dim=-1)).sum(dim=-1).mean()


class PaddingCollator:
    """Pads a batch to its own longest sequence and stacks its labels: short batches stay short."""

    def __init__(self, tokenizer: Any, label_dtype: torch.dtype) -> None:
        self.tokenizer = tokenizer
        self.label_dtype = label_dtype

    def __call__(self, items: list[tuple[dict[str, list[int]], Any]]) -> dict[str, torch.Tensor]:
        batch = dict(self.tokenizer.pad([features for features, _ in items], padding=True, return_tensors="pt"))
        batch["labels"] = torch.tensor([label for _, label in items], dtype=self.label_dtype)
        return batch


class SequenceClassification(TaskHead):
    """One label per row (or sentence pair): argmax of the logits."""

    name: ClassVar[str] = "sequence-classification"
    model_class: ClassVar[str] = "AutoModelForSequenceClassification"
    architecture_suffix: ClassVar[str] = "ForSequenceClassification"
    output_names: ClassVar[tuple[str, ...]] = ("logits",)

    def config_kwargs(self, task: TaskSpec) -> dict[str, Any]:
        names = task.label_names or ()
        return {"num_labels": task.num_labels, "problem_type": "single_label_classification",
                "id2label": dict(enumerate(names)), "label2id": {label: index for index, label in enumerate(names)}}

    def collator(self, tokenizer: Any) -> Collate:
        return PaddingCollator(tokenizer, torch.long)

    def distillation_loss(self, student: Outputs, teacher: Outputs, *, temperature: float) -> torch.Tensor:
        return soft_cross_entropy(student["logits"], teacher["logits"], temperature)

    def hard_loss(self, outputs: Outputs, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs["logits"].float(), labels)

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits.argmax(axis=-1)

    def score(self, outputs: dict[str, np.ndarray], references: np.ndarray, metrics: Sequence[str]
              ) -> dict[str, float]:
        predictions = self.predictions(outputs["logits"])
        return {name: METRICS[name](predictions, references) for name in metrics}

    def constant_baseline(self, references: Sequence[Any], task: TaskSpec) -> dict[str, float]:
        """The most frequent label for every row."""
        refs = np.asarray(references, dtype=np.int64)
        logits = np.zeros((len(refs), task.num_labels))
        logits[:, int(np.bincount(refs, minlength=task.num_labels).argmax())] = 1.0
        return self.score({"logits": logits}, refs, task.metrics)

    def agreement(self, first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> float | None:
        """Top-1 agreement."""
        return float((first["logits"].argmax(axis=-1) == second["logits"].argmax(axis=-1)).mean())


class SequenceRegression(SequenceClassification):
    """One real number per row: the single logit, distilled and trained with MSE."""

    name: ClassVar[str] = "sequence-regression"

    def config_kwargs(self, task: TaskSpec) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def collator(self, tokenizer: Any) -> Collate:
        return PaddingCollator(tokenizer, torch.float32)

    def distillation_loss(self, student: Outputs, teacher: Outputs, *, temperature: float) -> torch.Tensor:
        return F.mse_loss(student["logits"].float().view(-1), teacher["logits"].float().view(-1))

    def hard_loss(self, outputs: Outputs, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs["logits"].float().view(-1), labels.view(-1).float())

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits.reshape(-1)

    def constant_baseline(self, references: Sequence[Any], task: TaskSpec) -> dict[str, float]:
        """The mean for every row (its correlations are 0)."""
        refs = np.asarray(references, dtype=np.float64)
        return self.score({"logits": np.full((len(refs), 1), float(refs.mean()))}, refs, task.metrics)

    def agreement(self, first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> float | None:
        return None
