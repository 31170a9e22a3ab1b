"""Sparsity schedules over the pruning stage. The paper's cubic schedule prunes fast early and slowly late:
s_t = s_f + (s_i - s_f) (1 - t/T)^3, with masks recomputed at `num_updates` evenly spaced steps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol


class SparsitySchedule(Protocol):
    cuts_before_training: ClassVar[bool]  # the whole cut before the first step, then a folded student

    def sparsity_at(self, step: int) -> float:
        """Target sparsity after 1-based pruning step `step`."""
        ...

    def update_steps(self) -> list[int]:
        """Steps at which masks are recomputed."""
        ...


@dataclass(frozen=True)
class CubicSchedule:
    cuts_before_training: ClassVar[bool] = False
    initial: float
    final: float
    total_steps: int
    num_updates: int

    def sparsity_at(self, step: int) -> float:
        progress = min(max(step / self.total_steps, 0.0), 1.0)
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3

    def update_steps(self) -> list[int]:
        """Steps (1-based, after the optimizer step) at which masks are recomputed; the last one is T."""
        return sorted({math.ceil(self.total_steps * k / self.num_updates) for k in range(1, self.num_updates + 1)})


@dataclass(frozen=True)
class OneShotSchedule:
    """The final sparsity at once. In `spdc compress` the cut is made and folded before training
    (spdc.compression.oneshot); a Pruner driven step by step prunes at its first update and keeps the masks."""

    cuts_before_training: ClassVar[bool] = True
    initial: float
    final: float
    total_steps: int
    num_updates: int

    def sparsity_at(self, step: int) -> float:
        return self.final

    def update_steps(self) -> list[int]:
        return [1]


SCHEDULES: dict[str, type[CubicSchedule] | type[OneShotSchedule]] = {"cubic": CubicSchedule, "oneshot": OneShotSchedule}
