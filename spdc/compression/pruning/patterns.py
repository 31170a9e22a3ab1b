"""Pruning patterns: turn element scores into keep-masks at a target sparsity. `PATTERNS` is keyed by the
recipe's `pruning.granularity`:

- unstructured: single weights, the lowest scores in each matrix (`local`) or across all matrices (`global`);
- structured: whole attention heads (their rows in query/key/value, their columns in the attention output) and
  whole FFN neurons (their row in the intermediate matrix, their column in the output matrix).
Structured masks also cover the biases of removed rows, so a pruned unit contributes exactly nothing and
can later be folded away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from spdc.models.families import PrunableMatrix
from spdc.models.shape import EncoderShape
from spdc.recipe.schema import PruningConfig

Scores = dict[str, torch.Tensor]
NEURON_ROWS = ("intermediate", "gate")  # the rows of an FFN neuron (its column is in "output")


@dataclass
class MaskSet:
    """Keep-masks (1 keep, 0 pruned) for weights and, for structured units, biases and unit records."""

    weight: dict[str, torch.Tensor] = field(default_factory=dict)
    bias: dict[str, torch.Tensor] = field(default_factory=dict)
    heads: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> bool[num_heads], True = kept
    neurons: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> bool[intermediate], True = kept

    def merge(self, other: MaskSet) -> MaskSet:
        return MaskSet({**self.weight, **other.weight}, {**self.bias, **other.bias},
                       {**self.heads, **other.heads}, {**self.neurons, **other.neurons})


def _keep_top(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A mask keeping the round((1 - sparsity) * n) highest scores (ties broken by position, deterministically)."""
    flat = scores.flatten()
    keep = flat.numel() - round(sparsity * flat.numel())
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(scores)


def unstructured_masks(scores: Scores, sparsity: float, *, scope: str) -> MaskSet:
    if scope == "local":
        return MaskSet(weight={name: _keep_top(score, sparsity).float() for name, score in scores.items()})
    names = list(scores)
    flat = torch.cat([scores[name].flatten() for name in names])
    kept = _keep_top(flat, sparsity)
    masks, offset = {}, 0
    for name in names:
        count = scores[name].numel()
        masks[name] = kept[offset : offset + count].view_as(scores[name]).float()
        offset += count
    return MaskSet(weight=masks)


def _unit_keep(unit_scores: dict[int, torch.Tensor], sparsity: float, *, scope: str) -> dict[int, torch.Tensor]:
    """Per layer: which units (heads or neurons) to keep, ranked within the layer or across layers."""
    if scope == "local":
        return {layer: _keep_top(score, sparsity) for layer, score in unit_scores.items()}
    layers = list(unit_scores)
    kept = _keep_top(torch.cat([unit_scores[layer] for layer in layers]), sparsity)
    result, offset = {}, 0
    for layer in layers:
        count = unit_scores[layer].numel()
        result[layer] = kept[offset : offset + count]
        offset += count
    return result


def head_masks(
    scores: Scores, linears: dict[str, PrunableMatrix], sparsity: float, *, num_layers: int, head_dim: int, scope: str
) -> MaskSet:
    unit_scores = {}
    for layer in range(num_layers):
        rows = sum(scores[f"{layer}.{role}"].sum(dim=1) for role in ("query", "key", "value"))
        columns = scores[f"{layer}.attention_output"].sum(dim=0)
        unit_scores[layer] = (rows + columns).view(-1, head_dim).sum(dim=1)
    keep = _unit_keep(unit_scores, sparsity, scope=scope)
    masks = MaskSet(heads=keep)
    for layer, kept_heads in keep.items():
        per_dim = kept_heads.repeat_interleave(head_dim).float()
        for role in ("query", "key", "value"):
            name = f"{layer}.{role}"
            masks.weight[name] = per_dim[:, None].expand_as(linears[name].weight).clone()
            masks.bias[name] = per_dim.clone()
        name = f"{layer}.attention_output"
        masks.weight[name] = per_dim[None, :].expand_as(linears[name].weight).clone()
    return masks


def neuron_masks(scores: Scores, linears: dict[str, PrunableMatrix], sparsity: float, *, num_layers: int,
                 scope: str) -> MaskSet:
    unit_scores = {
        layer: sum(scores[f"{layer}.{role}"].sum(dim=1) for role in NEURON_ROWS if f"{layer}.{role}" in scores)
        + scores[f"{layer}.output"].sum(dim=0)
        for layer in range(num_layers)
    }
    keep = _unit_keep(unit_scores, sparsity, scope=scope)
    masks = MaskSet(neurons=keep)
    for layer, kept in keep.items():
        per_neuron = kept.float()
        for role in NEURON_ROWS:
            name = f"{layer}.{role}"
            if name in linears:  # the gate rows of a gated FFN go with their neuron
                masks.weight[name] = per_neuron[:, None].expand_as(linears[name].weight).clone()
                masks.bias[name] = per_neuron.clone()
        name = f"{layer}.output"
        masks.weight[name] = per_neuron[None, :].expand_as(linears[name].weight).clone()
    return masks


def semi_structured_masks(scores: Scores, sparsity: float, *, group: int = 4, prunable: int = 2) -> MaskSet:
    """N:M masks along the input dimension: in every group of `group` consecutive weights of a row at most
    `prunable` go. For a sparsity below prunable/group the lowest-scoring of each group's `prunable` weakest
    weights go, matrix-wide; at prunable/group (50% for 2:4) every group has lost exactly `prunable`. Columns past
    the last whole group are kept."""
    masks = {}
    for name, score in scores.items():
        rows, columns = score.shape
        whole = columns - columns % group
        grouped = score[:, :whole].reshape(rows, whole // group, group)
        weakest = grouped.argsort(dim=-1)[..., :prunable]
        candidates = grouped.gather(-1, weakest).flatten()
        count = min(round(sparsity * score.numel()), candidates.numel())
        keep = torch.ones_like(grouped, dtype=torch.bool)
        if count:
            chosen = torch.zeros_like(candidates, dtype=torch.bool)
            chosen[torch.topk(candidates, count, largest=False, sorted=False).indices] = True
            keep.scatter_(-1, weakest, ~chosen.view(weakest.shape))
        mask = torch.ones_like(score)
        mask[:, :whole] = keep.reshape(rows, whole).float()
        masks[name] = mask
    return MaskSet(weight=masks)


class PruningPattern(Protocol):
    """What a pattern prunes (one sparsity target per kind of unit) and how it turns scores into masks."""

    def targets(self, config: PruningConfig) -> dict[str, float]:
        """Final sparsity per kind of unit, e.g. {"weights": 0.9} or {"heads": 0.5, "neurons": 0.5}."""
        ...

    def masks(self, scores: Scores, linears: dict[str, PrunableMatrix], sparsity: dict[str, float],
              shape: EncoderShape, scope: str) -> MaskSet:
        """Keep-masks at the current sparsity of every kind of unit."""
        ...


class UnstructuredPattern:
    def targets(self, config: PruningConfig) -> dict[str, float]:
        return {"weights": config.final_sparsity}

    def masks(self, scores: Scores, linears: dict[str, PrunableMatrix], sparsity: dict[str, float],
              shape: EncoderShape, scope: str) -> MaskSet:
        return unstructured_masks(scores, sparsity["weights"], scope=scope)


class HeadsAndNeuronsPattern:
    def targets(self, config: PruningConfig) -> dict[str, float]:
        return {"heads": config.head_sparsity, "neurons": config.neuron_sparsity}

    def masks(self, scores: Scores, linears: dict[str, PrunableMatrix], sparsity: dict[str, float],
              shape: EncoderShape, scope: str) -> MaskSet:
        heads = head_masks(scores, linears, sparsity["heads"], num_layers=shape.num_layers, head_dim=shape.head_dim,
                           scope=scope)
        return heads.merge(neuron_masks(scores, linears, sparsity["neurons"], num_layers=shape.num_layers,
                                        scope=scope))


class SemiStructuredPattern:
    """2:4: two of every four consecutive weights of a row kept, the pattern GPU sparse tensor cores run at up to
    twice the dense speed. The schedule always ends at 50%."""

    def targets(self, config: PruningConfig) -> dict[str, float]:
        return {"weights": 0.5}

    def masks(self, scores: Scores, linears: dict[str, PrunableMatrix], sparsity: dict[str, float],
              shape: EncoderShape, scope: str) -> MaskSet:
        return semi_structured_masks(scores, sparsity["weights"])


PATTERNS: dict[str, PruningPattern] = {"unstructured": UnstructuredPattern(), "structured": HeadsAndNeuronsPattern(),
                                       "2:4": SemiStructuredPattern()}
