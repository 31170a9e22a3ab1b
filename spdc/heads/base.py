"""The task-head contract and its registry. Everything above the data layer that depends on what a model outputs
(the model class, the collator, the distillation target, the hard loss, the metric, the ONNX output names and the
parity comparison) asks the task's head instead of testing for a task kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from spdc.data.batching import EncodedSplit, encode
from spdc.data.examples import Example
from spdc.data.tasks import TaskSpec

Collate = Callable[[list[tuple[dict[str, list[int]], Any]]], dict[str, torch.Tensor]]
Outputs = dict[str, torch.Tensor]  # a forward pass's named outputs, in the head's `output_names` order


class TaskHead(ABC):
    """One kind of task output. `output_names` are the model-output attributes the head reads, in order; they
    are also the exported ONNX graph's output names."""

    name: ClassVar[str]
    model_class: ClassVar[str]  # the transformers Auto class that builds the model with this head
    architecture_suffix: ClassVar[str]  # how config.json's `architectures` names a model with this head
    output_names: ClassVar[tuple[str, ...]]

    def outputs(self, model_output: Any) -> Outputs:
        """The head's named outputs of one forward pass."""
        return {name: getattr(model_output, name) for name in self.output_names}

    def encode(self, examples: Sequence[Example], tokenizer: Any, max_seq_length: int) -> EncodedSplit:
        return encode(examples, tokenizer, max_seq_length)

    @abstractmethod
    def config_kwargs(self, task: TaskSpec) -> dict[str, Any]:
        """Config overrides that size the head for `task` (label count, problem type, label names)."""

    @abstractmethod
    def collator(self, tokenizer: Any) -> Collate:
        """Pads a batch of encoded rows and stacks their labels."""

    @abstractmethod
    def distillation_loss(self, student: Outputs, teacher: Outputs, *, temperature: float) -> torch.Tensor:
        """What the student learns from the teacher's outputs (the `logits` loss weight)."""

    @abstractmethod
    def hard_loss(self, outputs: Outputs, labels: torch.Tensor) -> torch.Tensor:
        """The loss against the labels (the `hard_label` loss weight, and the one-shot cut's scores)."""

    @abstractmethod
    def score(self, outputs: dict[str, np.ndarray], references: np.ndarray, metrics: Sequence[str]
              ) -> dict[str, float]:
        """The task's named metrics of concatenated outputs against the references."""

    @abstractmethod
    def constant_baseline(self, references: Sequence[Any], task: TaskSpec) -> dict[str, float]:
        """What one prediction for every row scores: a model is learning only when it is clearly above this."""

    @abstractmethod
    def agreement(self, first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> float | None:
        """How often two models' outputs give the same answer (None where answers are not discrete)."""
