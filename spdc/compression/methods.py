"""Compression methods as a small table: what each one grafts and which losses it trains on. Methods share
everything else (student, pruning schedule, stages), so comparisons between them are honest.

- spd: grafting (per stage schedule) + distillation (hidden, attention, logits; optional hard labels);
- kd: the same distillation, every layer always the student's;
- magnitude: no teacher in the loss, hard labels only, same pruning schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from spdc.recipe.schema import DistillationConfig, LossWeights, StageConfig


@dataclass(frozen=True)
class MethodSpec:
    grafting: bool  # stages' grafting schedules apply
    fixed_weights: LossWeights | None = None  # None: the recipe's distillation weights

    def loss_weights(self, stage: StageConfig, distillation: DistillationConfig) -> LossWeights:
        return self.fixed_weights or stage.loss_weights or distillation.weights


HARD_LABELS_ONLY = LossWeights(hidden=0.0, attention=0.0, logits=0.0, hard_label=1.0)

METHODS: dict[str, MethodSpec] = {
    "spd": MethodSpec(grafting=True),
    "kd": MethodSpec(grafting=False),
    "magnitude": MethodSpec(grafting=False, fixed_weights=HARD_LABELS_ONLY),
}
