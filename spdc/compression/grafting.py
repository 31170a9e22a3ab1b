"""Progressive module grafting: at each training step every layer independently uses its student module with
probability p (else the frozen teacher's); p follows a per-stage schedule from `GRAFTING_SCHEDULES`, keyed by
the recipe's `grafting.schedule`. Evaluation always uses the student's own layers.

A step whose draws pick the teacher's module for every layer trains nothing (the loss has no gradient when the
student's embeddings and head are the teacher's frozen ones); the training loop then skips the optimizer step
and the learning-rate and pruning schedules still advance, as in the paper's code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from spdc.recipe.schema import GraftingConfig


def _constant(config: GraftingConfig, progress: float) -> float:
    return config.p0


def _linear(config: GraftingConfig, progress: float) -> float:
    return config.p0 + (1.0 - config.p0) * progress


def _constant_then_linear(config: GraftingConfig, progress: float) -> float:
    if progress <= config.hold_fraction:
        return config.p0
    return config.p0 + (1.0 - config.p0) * (progress - config.hold_fraction) / (1.0 - config.hold_fraction)


GRAFTING_SCHEDULES: dict[str, Callable[[GraftingConfig, float], float]] = {
    "constant": _constant, "linear": _linear, "constant_then_linear": _constant_then_linear,
}


def grafting_probability(config: GraftingConfig | None, step: int, total_steps: int) -> float:
    """p at a 0-based step of a stage of `total_steps` steps; no grafting config means p = 1."""
    if config is None:
        return 1.0
    return GRAFTING_SCHEDULES[config.schedule](config, step / max(1, total_steps - 1))


def draw_student_layers(p: float, num_layers: int, generator: torch.Generator) -> list[bool]:
    """Independent Bernoulli(p) draw per layer: True uses the student layer."""
    if p >= 1.0:
        return [True] * num_layers
    return [bool(choice) for choice in (torch.rand(num_layers, generator=generator) < p).tolist()]


def mixed_layers(student: nn.ModuleList, teacher: nn.ModuleList, use_student: list[bool]) -> nn.ModuleList:
    return nn.ModuleList([s if choice else t for s, t, choice in zip(student, teacher, use_student, strict=True)])


class Grafting:
    """One stage's grafting: its schedule, its own seeded generator (saved in checkpoints) and the layer swap."""

    def __init__(self, config: GraftingConfig | None, *, stage_steps: int, seed: int, stage_index: int,
                 student_layers: nn.ModuleList, teacher_layers: nn.ModuleList, layers_path: str) -> None:
        self.config = config
        self.stage_steps = stage_steps
        self.generator = torch.Generator().manual_seed(seed * 7_919 + stage_index)
        self.student_layers = student_layers
        self.teacher_layers = teacher_layers
        self.layers_path = layers_path
        self.p = 1.0
        self._drawn: tuple[int, list[bool]] | None = None

    def draw(self, step: int) -> list[bool]:
        """The layers that use their student module at this 0-based stage step: drawn once per step, so every
        micro-batch of the step (on every rank: the generators are seeded alike) grafts the same layers."""
        if self._drawn is None or self._drawn[0] != step:
            self.p = grafting_probability(self.config, step, self.stage_steps)
            self._drawn = (step, draw_student_layers(self.p, len(self.student_layers), self.generator))
        return self._drawn[1]

    @contextlib.contextmanager
    def grafted(self, model: nn.Module, use_student: list[bool]) -> Iterator[None]:
        """Run the block with the drawn mix of layers in `model`; the student's own layers are put back after."""
        if not all(use_student):
            model.set_submodule(self.layers_path, mixed_layers(self.student_layers, self.teacher_layers, use_student))
        try:
            yield
        finally:
            model.set_submodule(self.layers_path, self.student_layers)
