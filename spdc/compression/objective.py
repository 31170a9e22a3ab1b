"""The compression objective: one training-loop plugin per stage, composed of the stage's grafting, the loss
registry weighted by the method, and the pruner shared across stages."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from spdc.compression.grafting import Grafting
from spdc.compression.losses import LOSS_NAMES, LOSSES, ForwardOutputs, LossInputs
from spdc.compression.methods import MethodSpec
from spdc.compression.pruning.pruner import Pruner
from spdc.compression.recorder import OutputRecorder
from spdc.heads import TaskHead
from spdc.models.families import family_shape
from spdc.recipe.schema import DistillationConfig, StageConfig
from spdc.training.loop import Forward, TrainingPlugin

SPARSITY_FIELDS = {"weights": "sparsity", "heads": "head_sparsity", "neurons": "neuron_sparsity"}


class CompressionPlugin(TrainingPlugin):
    """Loss, grafting draws and pruning for one stage."""

    def __init__(
        self,
        *,
        method: MethodSpec,
        stage: StageConfig,
        grafting: Grafting,
        distillation: DistillationConfig,
        teacher: nn.Module,
        layer_map: list[int],
        recorder: OutputRecorder,
        head: TaskHead,
        pruner: Pruner | None,
        pruning_offset: int,
        forward_kwargs: dict[str, Any] | None = None,
        kept_heads: list[list[int]] | None = None,
    ) -> None:
        self.stage = stage
        self.grafting = grafting
        self.temperature = distillation.temperature
        weights = method.loss_weights(stage, distillation).model_dump()
        self.weights = {name: float(weights[name]) for name in LOSSES if weights[name]}
        self.needs_teacher = any(LOSSES[name].needs_teacher for name in self.weights)
        self.teacher = teacher
        self.layer_map = layer_map
        self.recorder = recorder
        self.head = head
        self.pruner = pruner
        self.pruning_offset = pruning_offset
        self.kept_heads = kept_heads  # a folded (one-shot) student: each layer's heads, by their teacher index
        self.teacher_heads = int(family_shape(teacher)["heads"])
        # what makes the family's attention modules return their probabilities, when a loss reads them
        self.forward_kwargs = forward_kwargs if "attention" in self.weights and forward_kwargs else {}

    def _forward(self, forward: Forward, inputs: dict[str, torch.Tensor]) -> ForwardOutputs:
        with self.recorder.record() as recording:
            outputs = self.head.outputs(forward(**inputs, **self.forward_kwargs))
        return ForwardOutputs(outputs=outputs, hidden=recording.hidden, attentions=recording.attentions)

    def partial_graph(self) -> bool:
        return self.grafting.config is not None

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int, forward: Forward
             ) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        use_student = self.grafting.draw(step)
        teacher = None
        if self.needs_teacher:
            self.teacher.eval()
            # no_grad rather than inference_mode: the teacher's outputs are saved by the losses' backward, which
            # inference tensors may not be. The trainer's autocast is active here: the same precision as the student.
            with torch.no_grad():
                teacher = self._forward(self.teacher, inputs)
        model.train()
        with self.grafting.grafted(model, use_student):
            # every drawn layer the teacher's and nothing else trainable: the step learns nothing, so it runs
            # without autograd (DistributedDataParallel must not wait for a backward that will not come)
            learns = any(parameter.requires_grad for parameter in model.parameters())
            with contextlib.nullcontext() if learns else torch.no_grad():
                student = self._forward(forward, inputs)
        loss_inputs = LossInputs(student=student, teacher=teacher, labels=batch["labels"],
                                 token_mask=inputs["attention_mask"], layer_map=self.layer_map,
                                 temperature=self.temperature, head=self.head,
                                 attention_heads=self._attention_heads(use_student))
        parts = {name: LOSSES[name].compute(loss_inputs) for name in self.weights}
        weighted = [self.weights[name] * value for name, value in parts.items()]
        total = weighted[0]
        for value in weighted[1:]:  # summed in registry order, as a plain Python sum would
            total = total + value
        return total, {LOSS_NAMES[name]: float(value.detach()) for name, value in parts.items()}

    def _attention_heads(self, use_student: list[bool]) -> list[list[int]] | None:
        """The teacher heads each layer of this step's forward ran: a grafted teacher layer runs all of them,
        a folded student layer its kept ones (None: every layer has the teacher's heads)."""
        if self.kept_heads is None:
            return None
        every = list(range(self.teacher_heads))
        return [kept if own else every for kept, own in zip(self.kept_heads, use_student, strict=True)]

    def after_backward(self) -> None:
        if self.pruner is not None and self.stage.prune:
            self.pruner.after_backward()

    def after_step(self, step: int) -> dict[str, float]:
        fields = {"p": self.grafting.p}
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
        state: dict[str, Any] = {"generator": self.grafting.generator.get_state()}
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.grafting.generator.set_state(state["generator"])
        if self.pruner is not None:
            self.pruner.load_state_dict(state["pruner"])
