"""The encoder's shape (layers, hidden size, heads, FFN width) and its FLOPs, dense or after structured pruning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from spdc.models.families import family_of, family_shape


def head_size(model_config: Any) -> int:
    return int(model_config.hidden_size) // int(model_config.num_attention_heads)


@dataclass(frozen=True)
class EncoderShape:
    num_layers: int
    hidden: int
    num_heads: int
    head_dim: int
    intermediate: int
    ffn_matrices: int = 2  # 3 for a gated FFN (input, gate, output)

    @classmethod
    def of(cls, model: nn.Module) -> EncoderShape:
        """The shape of a (student) model, read through its family's config keys."""
        shape, family = family_shape(model), family_of(model)
        return cls(num_layers=shape["layers"], hidden=shape["hidden"], num_heads=shape["heads"],
                   head_dim=shape["hidden"] // shape["heads"], intermediate=shape["intermediate"],
                   ffn_matrices=3 if family.gated else 2)

    def full_units(self) -> tuple[list[int], list[int]]:
        """Heads and FFN neurons per layer with nothing pruned."""
        return [self.num_heads] * self.num_layers, [self.intermediate] * self.num_layers


def encoder_flops_per_token(
    *, hidden: int, seq_len: int, head_dim: int, heads_per_layer: list[int], neurons_per_layer: list[int],
    ffn_matrices: int = 2,
) -> float:
    """Multiply-adds x2 of the encoder per token: Q/K/V/output projections, attention scores and context, FFN."""
    total = 0.0
    for heads, neurons in zip(heads_per_layer, neurons_per_layer, strict=True):
        attention_width = heads * head_dim
        total += 2 * 4 * hidden * attention_width  # q, k, v rows and attention-output columns
        total += 2 * 2 * seq_len * attention_width  # scores and weighted sum of values
        total += 2 * ffn_matrices * hidden * neurons  # intermediate (and gate) and output
    return total


def flops_report(baseline: EncoderShape, heads_per_layer: list[int], neurons_per_layer: list[int],
                 seq_len: int) -> dict[str, float]:
    """Encoder FLOPs per token of the teacher (`baseline`) and of a student keeping these units per layer. The
    student's depth may be smaller: its missing layers count as removed, so a 2-of-6-layer student removes 67%."""
    def flops(heads: list[int], neurons: list[int]) -> float:
        return encoder_flops_per_token(hidden=baseline.hidden, seq_len=seq_len, head_dim=baseline.head_dim,
                                       heads_per_layer=heads, neurons_per_layer=neurons,
                                       ffn_matrices=baseline.ffn_matrices)

    dense, kept = flops(*baseline.full_units()), flops(heads_per_layer, neurons_per_layer)
    return {"dense": dense, "pruned": kept, "reduction": 1 - kept / dense, "seq_len": seq_len}
