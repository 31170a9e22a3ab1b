"""Building the student from the teacher: a copy of (some of) its encoder layers, sharing the frozen
embeddings, pooler and classifier unless the recipe makes them trainable."""

from __future__ import annotations

import copy

from torch import nn

from spdc.core.errors import RecipeError
from spdc.models.families import FamilySpec, encoder_layers, model_config, optional_module
from spdc.recipe.schema import StudentConfig


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer i learns from teacher layer (i+1)*T/S - 1: the last student layer matches the last teacher
    layer."""
    return [(index + 1) * teacher_layers // student_layers - 1 for index in range(student_layers)]


def build_student(teacher: nn.Module, family: FamilySpec, config: StudentConfig,
                  layer_map: list[int] | None) -> tuple[nn.Module, list[int]]:
    """A deep copy of the teacher with the mapped encoder layers; shared (frozen) embeddings/pooler/classifier
    unless the config makes them trainable. Returns the student and its layer map (student i -> teacher j)."""
    teacher_layers = encoder_layers(teacher, family)
    depth = config.num_layers or len(teacher_layers)
    mapping = layer_map or uniform_layer_map(depth, len(teacher_layers))
    if len(mapping) != depth or not all(0 <= j < len(teacher_layers) for j in mapping):
        raise RecipeError(f"distillation.layer_map: {mapping} does not fit {depth} student and "
                          f"{len(teacher_layers)} teacher layers")
    student = copy.deepcopy(teacher)
    student.set_submodule(family.layers, nn.ModuleList([copy.deepcopy(teacher_layers[j]) for j in mapping]))
    if depth != len(teacher_layers) or mapping != list(range(depth)):
        model_config(student).num_hidden_layers = depth
        if family.set_depth is not None:
            family.set_depth(model_config(student), mapping)
    shared = ([] if config.train_embeddings else list(family.embeddings)) + (
        [] if config.train_classifier else list(family.head))
    for path in shared:
        module = optional_module(teacher, path)
        if module is not None:
            student.set_submodule(path, module)
    for parameter in student.parameters():
        parameter.requires_grad = True
    for parameter in teacher.parameters():
        parameter.requires_grad = False  # shared modules are the teacher's and stay frozen
    return student, mapping
