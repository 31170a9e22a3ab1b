"""Progressive module grafting: at each training step every layer independently uses its student module with
probability p (else the frozen teacher's); p follows a per-stage schedule. Evaluation uses only student layers.
"""

from __future__ import annotations

import torch
from torch import nn

from spdc.recipe import GraftingConfig


def grafting_probability(config: GraftingConfig | None, step: int, total_steps: int) -> float:
    """p at a 0-based step of a stage of `total_steps` steps; no grafting config means p = 1."""
    if config is None:
        return 1.0
    progress = step / max(1, total_steps - 1)
    if config.schedule == "constant":
        return config.p0
    if config.schedule == "linear":
        return config.p0 + (1.0 - config.p0) * progress
    if progress <= config.hold_fraction:
        return config.p0
    return config.p0 + (1.0 - config.p0) * (progress - config.hold_fraction) / (1.0 - config.hold_fraction)


def draw_student_layers(p: float, num_layers: int, generator: torch.Generator) -> list[bool]:
    """Independent Bernoulli(p) draw per layer: True uses the student layer."""
    if p >= 1.0:
        return [True] * num_layers
    return (torch.rand(num_layers, generator=generator) < p).tolist()


def mixed_layers(student: nn.ModuleList, teacher: nn.ModuleList, use_student: list[bool]) -> nn.ModuleList:
    return nn.ModuleList([s if choice else t for s, t, choice in zip(student, teacher, use_student, strict=True)])
