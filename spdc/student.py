"""Building the student from the teacher, and recording hidden states and attention maps during a forward."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from spdc.architectures import ArchitectureMap, encoder_layers
from spdc.distillation import uniform_layer_map
from spdc.errors import RecipeError
from spdc.recipe import StudentConfig


def build_student(teacher: nn.Module, arch: ArchitectureMap, config: StudentConfig,
                  layer_map: list[int] | None) -> tuple[nn.Module, list[int]]:
    """A deep copy of the teacher with the mapped encoder layers; shared (frozen) embeddings/pooler/classifier
    unless the config makes them trainable. Returns the student and its layer map (student i -> teacher j)."""
    teacher_layers = encoder_layers(teacher, arch)
    depth = config.num_layers or len(teacher_layers)
    mapping = layer_map or uniform_layer_map(depth, len(teacher_layers))
    if len(mapping) != depth or not all(0 <= j < len(teacher_layers) for j in mapping):
        raise RecipeError(f"distillation.layer_map: {mapping} does not fit {depth} student and {len(teacher_layers)} teacher layers")
    student = copy.deepcopy(teacher)
    student.set_submodule(arch.layers, nn.ModuleList([copy.deepcopy(teacher_layers[j]) for j in mapping]))
    student.config.num_hidden_layers = depth
    shared = ([] if config.train_embeddings else [arch.embeddings]) + ([] if config.train_classifier else list(arch.head))
    for path in shared:
        student.set_submodule(path, teacher.get_submodule(path))
    for parameter in student.parameters():
        parameter.requires_grad = True
    for parameter in teacher.parameters():
        parameter.requires_grad = False  # shared modules are the teacher's and stay frozen
    return student, mapping


@dataclass
class Recording:
    hidden: list[torch.Tensor] = field(default_factory=list)  # embedding output, then each layer's output
    attentions: list[torch.Tensor] = field(default_factory=list)  # probabilities [batch, heads, query, key]


class OutputRecorder:
    """Forward hooks on embeddings, encoder layers and self-attention modules of the given models. Layers are
    recorded in call order, so a grafted mix of teacher and student layers is recorded as it ran."""

    def __init__(self, arch: ArchitectureMap, models: list[nn.Module], layers: list[nn.ModuleList]) -> None:
        self._active: Recording | None = None
        seen: set[int] = set()
        modules: list[tuple[nn.Module, str]] = []
        for model in models:
            modules.append((model.get_submodule(arch.embeddings), "hidden"))
        for layer_list in layers:
            for layer in layer_list:
                modules.append((layer, "hidden"))
                modules.append((layer.get_submodule(arch.self_attention), "attentions"))
        for module, kind in modules:
            if id(module) not in seen:
                seen.add(id(module))
                module.register_forward_hook(self._hook(kind))

    def _hook(self, kind: str):  # noqa: ANN202 - a torch hook
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if self._active is None:
                return
            value = output[0] if kind == "hidden" and isinstance(output, tuple) else output
            if kind == "attentions":
                value = output[1]  # (context, probabilities); needs eager attention
            getattr(self._active, kind).append(value)

        return hook

    @contextlib.contextmanager
    def record(self) -> Iterator[Recording]:
        self._active = Recording()
        try:
            yield self._active
        finally:
            self._active = None
