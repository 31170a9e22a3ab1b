"""The compression objective: one plugin of the training loop per stage, shared pruner across stages.

Methods share everything but their loss and grafting, so ablations are honest:
- spd: grafting (per stage schedule) + distillation (hidden, attention, logits; optional hard labels);
- kd: the same distillation, every layer always the student's;
- magnitude: no teacher in the loss, hard labels only, same pruning schedule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spdc.distillation import attention_mse, hard_label_loss, hidden_mse, logit_loss
from spdc.grafting import draw_student_layers, grafting_probability, mixed_layers
from spdc.pruning.pruner import Pruner
from spdc.recipe import DistillationConfig, LossWeights, StageConfig
from spdc.student import OutputRecorder
from spdc.training.loop import TrainingPlugin

SPARSITY_FIELDS = {"weights": "sparsity", "heads": "head_sparsity", "neurons": "neuron_sparsity"}
HARD_LABELS_ONLY = LossWeights(hidden=0.0, attention=0.0, logits=0.0, hard_label=1.0)


def stage_loss_weights(method: str, stage: StageConfig, distillation: DistillationConfig) -> LossWeights:
    if method == "magnitude":
        return HARD_LABELS_ONLY
    return stage.loss_weights or distillation.weights


class CompressionPlugin(TrainingPlugin):
    """Loss, grafting draws and pruning for one stage."""

    def __init__(
        self,
        *,
        method: str,
        stage: StageConfig,
        stage_index: int,
        stage_steps: int,
        distillation: DistillationConfig,
        teacher: nn.Module,
        teacher_layers: nn.ModuleList,
        student_layers: nn.ModuleList,
        layers_path: str,
        layer_map: list[int],
        recorder: OutputRecorder,
        regression: bool,
        pruner: Pruner | None,
        pruning_offset: int,
        seed: int,
    ) -> None:
        self.method = method
        self.stage = stage
        self.stage_steps = stage_steps
        self.distillation = distillation
        self.weights = stage_loss_weights(method, stage, distillation)
        self.teacher = teacher
        self.teacher_layers = teacher_layers
        self.student_layers = student_layers
        self.layers_path = layers_path
        self.layer_map = layer_map
        self.recorder = recorder
        self.regression = regression
        self.pruner = pruner
        self.pruning_offset = pruning_offset
        self.grafting = stage.grafting if method == "spd" else None
        self.generator = torch.Generator().manual_seed(seed * 7_919 + stage_index)
        self.p = 1.0

    def _needs_teacher(self) -> bool:
        w = self.weights
        return bool(w.hidden or w.attention or w.logits)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict]:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        token_mask = inputs["attention_mask"]
        self.p = grafting_probability(self.grafting, step, self.stage_steps)
        use_student = draw_student_layers(self.p, len(self.student_layers), self.generator)

        teacher_record = None
        if self._needs_teacher():
            self.teacher.eval()
            with torch.no_grad(), self.recorder.record() as teacher_record:
                teacher_logits = self.teacher(**inputs).logits
        model.train()
        if not all(use_student):
            model.set_submodule(self.layers_path, mixed_layers(self.student_layers, self.teacher_layers, use_student))
        try:
            with self.recorder.record() as student_record:
                student_logits = model(**inputs).logits
        finally:
            model.set_submodule(self.layers_path, self.student_layers)

        w = self.weights
        parts: dict[str, torch.Tensor] = {}
        if teacher_record is not None:
            if w.hidden:
                teacher_hidden = [teacher_record.hidden[0]] + [teacher_record.hidden[j + 1] for j in self.layer_map]
                parts["loss_hidden"] = hidden_mse(student_record.hidden, teacher_hidden, token_mask)
            if w.attention:
                teacher_attention = [teacher_record.attentions[j] for j in self.layer_map]
                parts["loss_attention"] = attention_mse(student_record.attentions, teacher_attention, token_mask)
            if w.logits:
                parts["loss_logits"] = logit_loss(student_logits, teacher_logits,
                                                  temperature=self.distillation.temperature, regression=self.regression)
        if w.hard_label:
            parts["loss_hard"] = hard_label_loss(student_logits, batch["labels"], regression=self.regression)
        scale = {"loss_hidden": w.hidden, "loss_attention": w.attention, "loss_logits": w.logits,
                 "loss_hard": w.hard_label}
        total = sum(scale[name] * value for name, value in parts.items())
        assert isinstance(total, torch.Tensor)
        return total, {name: float(value.detach()) for name, value in parts.items()}

    def after_backward(self) -> None:
        if self.pruner is not None and self.stage.prune:
            self.pruner.after_backward()

    def after_step(self, step: int) -> dict[str, float]:
        fields = {"p": self.p}
        if self.pruner is None:
            return fields
        if self.stage.prune:
            self.pruner.after_step(self.pruning_offset + step)
        else:
            self.pruner.apply()  # masks stay fixed; re-applying keeps pruned weights exactly zero
        fields.update({SPARSITY_FIELDS[kind]: value for kind, value in self.pruner.current.items()})
        return fields

    def best_eligible(self) -> bool:
        return self.pruner is None or self.pruner.finished

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state()}
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if self.pruner is not None:
            self.pruner.load_state_dict(state["pruner"])
