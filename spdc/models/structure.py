"""The on-disk format of folded models: which heads and how many FFN neurons each layer kept.

A folded model is a physically smaller dense model. Its `config.json` records the kept units under
`spdc_folded`, and `reshape_to_structure` gives a freshly built full-size model that shape before its weights
are loaded. A layer left with no heads keeps only what its attention block still computes: LayerNorm(input +
output bias) in families whose block ends in a LayerNorm (`HeadlessAttention`), else the output bias alone
(`ZeroAttention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spdc.models.families import FamilySpec, encoder_layers, family_of, linear_at, model_config, optional_module

FOLDED_KEY = "spdc_folded"
LEGACY_FOLDED_KEY = "spdc_structure"  # what spdc 0.1 called it; still read


@dataclass(frozen=True)
class FoldedStructure:
    """Per layer: original indices of the kept heads, and how many FFN neurons are kept."""

    head_dim: int
    heads: list[list[int]]
    neurons: list[int]

    def to_config(self) -> dict[str, Any]:
        return {"head_dim": self.head_dim, "heads": self.heads, "neurons": self.neurons}

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> FoldedStructure:
        return cls(head_dim=int(data["head_dim"]), heads=[list(map(int, kept)) for kept in data["heads"]],
                   neurons=[int(count) for count in data["neurons"]])

    def summary(self, num_heads: int, intermediate: int) -> dict[str, Any]:
        return {
            "kept_heads": [len(kept) for kept in self.heads], "heads_per_layer": num_heads,
            "kept_neurons": self.neurons, "neurons_per_layer": intermediate,
        }


class PrunedAttention(nn.Module):
    """What replaces a layer's attention block once all its heads are pruned: the block then only adds its
    output bias, so it is computed without any projection or attention."""


class HeadlessAttention(PrunedAttention):
    """For families whose attention block ends in LayerNorm(input + output) (BERT, DeBERTa):
    LayerNorm(input + dropout(output bias))."""

    def __init__(self, bias: torch.Tensor, norm: nn.Module, dropout: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(bias.detach().clone())
        self.norm = norm
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        return self.norm(hidden_states + self.dropout(self.bias)), None


class ZeroAttention(PrunedAttention):
    """For families that add the attention output to the residual outside the block (DistilBERT, ModernBERT):
    the block's output is its output bias (zero without one)."""

    def __init__(self, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        if self.bias is None:
            return torch.zeros_like(hidden_states), None
        return self.bias.expand_as(hidden_states), None


def _select(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping the rows (dim 0) or columns (dim 1) of `linear` at `index`."""
    weight = linear.weight.detach().index_select(dim, index.to(linear.weight.device))
    selected = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None,
                         device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        selected.weight.copy_(weight)
        if linear.bias is not None:
            bias = linear.bias.detach()
            selected.bias.copy_(bias.index_select(0, index.to(bias.device)) if dim == 0 else bias)
    return selected


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _dims_of(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.tensor([head * head_dim + offset for head in heads for offset in range(head_dim)], dtype=torch.long)


def _select_rows(layer: nn.Module, family: FamilySpec, roles: tuple[str, ...], keep: torch.Tensor) -> None:
    """Keep rows `keep` (indices within one role's block) of every matrix the roles live in, in each of their
    row blocks: a fused matrix (Wqkv, gated Wi) keeps the same units in every block."""
    by_path: dict[str, tuple[int, list[int]]] = {}
    for role in roles:
        spec = family.matrices.get(role)
        if spec is not None:
            blocks = by_path.setdefault(spec.path, (spec.blocks, []))[1]
            blocks.append(spec.block)
    for path, (count, blocks) in by_path.items():
        linear = linear_at(layer, path)
        size = linear.out_features // count
        rows = torch.cat([block * size + keep for block in sorted(blocks)])
        _set(layer, path, _select(linear, rows, 0))


def reshape_layer(layer: nn.Module, family: FamilySpec, heads: list[int], neurons: torch.Tensor, head_dim: int,
                  dropout: float) -> None:
    """Cut `layer` down to the given heads and FFN neurons (indices into its current matrices); no heads at all
    replaces the attention block by the family's pruned-attention module."""
    if heads:
        dims = _dims_of(heads, head_dim)
        _select_rows(layer, family, ("query", "key", "value"), dims)
        output = family.matrices["attention_output"].path
        _set(layer, output, _select(linear_at(layer, output), dims, 1))
        for path in family.head_row_extras:
            extra = optional_module(layer, path)
            if isinstance(extra, nn.Linear):
                _set(layer, path, _select(extra, dims, 0))
        attention = layer.get_submodule(family.self_attention)
        for name in family.head_attributes:
            setattr(attention, name, len(heads))
        for name in family.width_attributes:
            setattr(attention, name, len(heads) * head_dim)
    elif not isinstance(layer.get_submodule(family.attention), PrunedAttention):
        bias = linear_at(layer, family.matrices["attention_output"].path).bias
        if family.headless == "norm":
            assert family.attention_norm is not None and bias is not None
            replacement: nn.Module = HeadlessAttention(bias, layer.get_submodule(family.attention_norm), dropout)
        else:
            replacement = ZeroAttention(bias)
        replacement.train(layer.training)  # a new module would start in training mode: dropout on the bias in eval
        _set(layer, family.attention, replacement)
    _select_rows(layer, family, ("intermediate", "gate"), neurons)
    output = family.matrices["output"].path
    _set(layer, output, _select(linear_at(layer, output), neurons, 1))


def reshape_to_structure(model: nn.Module, structure: FoldedStructure) -> None:
    """Give a freshly built full-size model the folded shape recorded in its config, ready for its weights."""
    family = family_of(model)
    layers = encoder_layers(model, family)
    if len(layers) != len(structure.heads):
        raise ValueError(f"{FOLDED_KEY} lists {len(structure.heads)} layers, the model has {len(layers)}")
    dropout = float(getattr(model_config(model), family.dropout_key, 0.0))
    for layer, heads, neurons in zip(layers, structure.heads, structure.neurons, strict=True):
        reshape_layer(layer, family, list(range(len(heads))), torch.arange(neurons), structure.head_dim, dropout)


def structure_of(config: Any) -> FoldedStructure | None:
    data = getattr(config, FOLDED_KEY, None) or getattr(config, LEGACY_FOLDED_KEY, None)
    return FoldedStructure.from_config(data) if data else None


def record_structure(config: Any, structure: FoldedStructure) -> None:
    setattr(config, FOLDED_KEY, structure.to_config())


def parameter_count(model: nn.Module) -> int:
    """Parameters of the model, shared tensors counted once."""
    return sum(parameter.numel() for parameter in {id(p): p for p in model.parameters()}.values())
