"""Folding: a pruned model becomes a physically smaller dense model with the same outputs.

An attention head whose columns in the attention-output matrix are all zero adds exactly nothing to its layer,
and neither does an FFN neuron whose column in the FFN output matrix is all zero. Structured pruning leaves
exactly such units (it also zeroes their rows and biases), so cutting them out of the matrices is exact by
construction; unstructured zeros stay where they are, as exact zeros. A layer left with no heads keeps only what
its attention block still computes, LayerNorm(input + output bias). The kept units are recorded in config.json
under `spdc_structure`, which is how `spdc.models.load_classifier` rebuilds the folded shape when loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spdc.architectures import ArchitectureMap, architecture_for, encoder_layers, head_size

STRUCTURE_KEY = "spdc_structure"


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


class HeadlessAttention(nn.Module):
    """The attention block of a layer whose heads were all pruned: LayerNorm(input + dropout(output bias))."""

    def __init__(self, bias: torch.Tensor, norm: nn.Module, dropout: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(bias.detach().clone())
        self.norm = norm
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        return self.norm(hidden_states + self.dropout(self.bias)), None


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


def _reshape_layer(layer: nn.Module, arch: ArchitectureMap, heads: list[int], neurons: torch.Tensor,
                   head_dim: int, dropout: float) -> None:
    """Cut `layer` down to the given heads and FFN neurons (indices into its current matrices)."""
    if heads:
        dims = _dims_of(heads, head_dim)
        for role in ("query", "key", "value"):
            _set(layer, arch.role_path(role), _select(layer.get_submodule(arch.role_path(role)), dims, 0))
        _set(layer, arch.attention_output, _select(layer.get_submodule(arch.attention_output), dims, 1))
        attention = layer.get_submodule(arch.self_attention)
        attention.num_attention_heads = len(heads)
        attention.all_head_size = len(heads) * head_dim
    else:
        bias = layer.get_submodule(arch.attention_output).bias
        _set(layer, arch.attention, HeadlessAttention(bias, layer.get_submodule(arch.attention_norm), dropout))
    _reshape_ffn(layer, arch, neurons)


def _reshape_ffn(layer: nn.Module, arch: ArchitectureMap, neurons: torch.Tensor) -> None:
    _set(layer, arch.intermediate, _select(layer.get_submodule(arch.intermediate), neurons, 0))
    _set(layer, arch.output, _select(layer.get_submodule(arch.output), neurons, 1))


@torch.no_grad()
def fold(model: nn.Module) -> FoldedStructure | None:
    """Remove dead heads and neurons in place; returns the new structure, or None when nothing could be removed
    (a dense model then stays loadable by plain transformers). Folding a folded model again is allowed: head
    indices keep pointing at the original heads."""
    arch = architecture_for(model)
    config = model.config
    head_dim = head_size(config)
    previous = structure_of(config)
    heads: list[list[int]] = []
    neuron_counts: list[int] = []
    changed = False
    for index, layer in enumerate(encoder_layers(model, arch)):
        original_heads = previous.heads[index] if previous else list(range(config.num_attention_heads))
        if isinstance(layer.get_submodule(arch.attention), HeadlessAttention):
            kept_heads: list[int] = []
        else:
            columns = layer.get_submodule(arch.attention_output).weight.abs().sum(dim=0)
            kept_heads = [int(i) for i in torch.nonzero(columns.view(-1, head_dim).sum(dim=1) > 0).flatten()]
        output = layer.get_submodule(arch.output)
        kept_neurons = torch.nonzero(output.weight.abs().sum(dim=0) > 0).flatten()
        if kept_neurons.numel() == 0:  # keep one neuron with a zero output column: exact, and no empty matrices
            kept_neurons = torch.zeros(1, dtype=torch.long)
        changed |= len(kept_heads) < len(original_heads) or kept_neurons.numel() < output.weight.shape[1]
        heads.append([original_heads[i] for i in kept_heads])
        neuron_counts.append(int(kept_neurons.numel()))
        if kept_heads or not isinstance(layer.get_submodule(arch.attention), HeadlessAttention):
            _reshape_layer(layer, arch, kept_heads, kept_neurons.cpu(), head_dim, config.hidden_dropout_prob)
        else:
            _reshape_ffn(layer, arch, kept_neurons.cpu())
    if not changed:
        return None
    structure = FoldedStructure(head_dim=head_dim, heads=heads, neurons=neuron_counts)
    setattr(config, STRUCTURE_KEY, structure.to_config())
    return structure


def reshape_to_structure(model: nn.Module, structure: FoldedStructure) -> None:
    """Give a freshly built full-size model the folded shape recorded in its config, ready for its weights."""
    arch = architecture_for(model)
    layers = encoder_layers(model, arch)
    if len(layers) != len(structure.heads):
        raise ValueError(f"{STRUCTURE_KEY} lists {len(structure.heads)} layers, the model has {len(layers)}")
    for layer, heads, neurons in zip(layers, structure.heads, structure.neurons, strict=True):
        _reshape_layer(layer, arch, list(range(len(heads))), torch.arange(neurons), structure.head_dim,
                       model.config.hidden_dropout_prob)


def structure_of(config: Any) -> FoldedStructure | None:
    data = getattr(config, STRUCTURE_KEY, None)
    return FoldedStructure.from_config(data) if data else None


def parameter_count(model: nn.Module) -> int:
    """Parameters of the model, shared tensors counted once."""
    return sum(parameter.numel() for parameter in {id(p): p for p in model.parameters()}.values())
