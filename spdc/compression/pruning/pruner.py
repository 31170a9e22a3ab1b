"""The pruner: schedule + criterion + pattern applied to the student's six matrices per layer.

Masks are recomputed at the schedule's update steps and re-applied after every optimizer step, so pruned
weights stay exactly zero whatever the optimizer's momentum would do to them.
"""

from __future__ import annotations

from typing import Any

import torch

from spdc.compression.pruning.criteria import CRITERIA
from spdc.compression.pruning.patterns import PATTERNS, MaskSet
from spdc.compression.pruning.schedules import SCHEDULES
from spdc.models.families import PrunableMatrix
from spdc.models.shape import EncoderShape
from spdc.recipe.schema import PruningConfig


def parameter_counts(linears: dict[str, PrunableMatrix]) -> dict[str, int]:
    """Entries of the prunable matrices, and how many of them are non-zero (a summary's `parameters`)."""
    total = sum(linear.weight.numel() for linear in linears.values())
    nonzero = sum(int(linear.weight.count_nonzero()) for linear in linears.values())
    return {"encoder_matrices": total, "encoder_matrices_nonzero": nonzero}


class Pruner:
    def __init__(self, config: PruningConfig, linears: dict[str, PrunableMatrix], shape: EncoderShape,
                 total_steps: int) -> None:
        self.config = config
        self.linears = linears
        self.shape = shape
        self.criterion = CRITERIA[config.criterion]()
        self.pattern = PATTERNS[config.granularity]
        schedule_type = SCHEDULES[config.schedule]
        targets = self.pattern.targets(config)
        self.schedules = {
            kind: schedule_type(initial=config.initial_sparsity if kind == "weights" else 0.0, final=final,
                                total_steps=total_steps, num_updates=config.num_updates)
            for kind, final in targets.items()
        }
        self.update_steps = set(next(iter(self.schedules.values())).update_steps())
        self.masks = MaskSet()
        self.current: dict[str, float] = dict.fromkeys(self.schedules, 0.0)
        self.last_update = 0

    @property
    def cuts_before_training(self) -> bool:
        """The schedule's whole cut happens before training (one-shot), so the student can be folded at once."""
        return next(iter(self.schedules.values())).cuts_before_training

    @property
    def finished(self) -> bool:
        """All mask updates done: the model is at its final sparsity."""
        return self.last_update >= max(self.update_steps)

    def after_backward(self) -> None:
        if self.criterion.needs_gradients:
            self.criterion.observe(self.linears)

    def after_step(self, pruning_step: int) -> bool:
        """Call after each optimizer step of a pruning stage (1-based step); returns True when masks changed."""
        changed = pruning_step in self.update_steps
        if changed:
            self.update_masks({kind: schedule.sparsity_at(pruning_step) for kind, schedule in self.schedules.items()})
            self.last_update = pruning_step
        self.apply()
        return changed

    def update_masks(self, sparsity: dict[str, float]) -> None:
        scores = {name: self.criterion.scores(name, linear) for name, linear in self.linears.items()}
        self.masks = self.pattern.masks(scores, self.linears, sparsity, self.shape, self.config.scope)
        self.current = dict(sparsity)

    def prune_to_final(self) -> None:
        """Masks at the final sparsities from the scores gathered so far, applied at once (a one-shot cut)."""
        self.update_masks(self.pattern.targets(self.config))
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for name, mask in self.masks.weight.items():
            weight = self.linears[name].weight  # a view: multiplying it prunes the parameter
            weight.mul_(mask.to(weight.device))
        for name, mask in self.masks.bias.items():
            bias = self.linears[name].bias
            if bias is not None:
                bias.mul_(mask.to(bias.device))

    # -- reporting --------------------------------------------------------------------------------------------
    def sparsity_report(self) -> dict[str, Any]:
        """Achieved sparsity (exact zeros) per matrix, per role and over all six matrices of every layer."""
        per_matrix = {}
        zeros_total = numel_total = 0
        by_role: dict[str, list[int]] = {}
        for name, linear in self.linears.items():
            numel = linear.weight.numel()
            zeros = numel - int(torch.count_nonzero(linear.weight))
            per_matrix[name] = zeros / numel
            zeros_total += zeros
            numel_total += numel
            counts = by_role.setdefault(name.split(".", 1)[1], [0, 0])
            counts[0] += zeros
            counts[1] += numel
        report: dict[str, Any] = {
            "overall": zeros_total / numel_total,
            "by_role": {role: zeros / numel for role, (zeros, numel) in by_role.items()},
            "per_matrix": per_matrix,
        }
        if self.masks.heads:
            report["kept_heads"] = {layer: int(kept.sum()) for layer, kept in sorted(self.masks.heads.items())}
            report["kept_neurons"] = {layer: int(kept.sum()) for layer, kept in sorted(self.masks.neurons.items())}
        return report

    def kept_units(self) -> tuple[list[int], list[int]]:
        """Heads and FFN neurons each layer keeps (all of them where nothing structured was pruned: unstructured
        zeros save no dense FLOPs)."""
        heads, neurons = self.shape.full_units()
        for layer in range(self.shape.num_layers):
            if layer in self.masks.heads:
                heads[layer] = int(self.masks.heads[layer].sum())
            if layer in self.masks.neurons:
                neurons[layer] = int(self.masks.neurons[layer].sum())
        return heads, neurons

    # -- checkpointing ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "weight": self.masks.weight, "bias": self.masks.bias,
            "heads": {str(k): v for k, v in self.masks.heads.items()},
            "neurons": {str(k): v for k, v in self.masks.neurons.items()},
            "current": self.current, "last_update": self.last_update, "criterion": self.criterion.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = MaskSet(
            weight=state["weight"], bias=state["bias"],
            heads={int(k): v for k, v in state["heads"].items()},
            neurons={int(k): v for k, v in state["neurons"].items()},
        )
        self.current = dict(state["current"])
        self.last_update = int(state["last_update"])
        self.criterion.load_state_dict(state["criterion"])
