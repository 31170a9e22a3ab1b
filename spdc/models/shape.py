"""The encoder's shape (layers, hidden size, heads, FFN width) and its FLOPs, dense or after structured pruning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def head_size(model_config: Any) -> int:
    return int(model_config.hidden_size) // int(model_config.num_attention_heads)


@dataclass(frozen=True)
class EncoderShape:
    num_layers: int
    hidden: int
    num_heads: int
    head_dim: int
    intermediate: int

    @classmethod
    def of(cls, config: Any) -> EncoderShape:
        """The shape of a (student) model from its transformers config."""
        return cls(num_layers=config.num_hidden_layers, hidden=config.hidden_size,
                   num_heads=config.num_attention_heads, head_dim=head_size(config),
                   intermediate=config.intermediate_size)


def encoder_flops_per_token(
    *, hidden: int, seq_len: int, head_dim: int, heads_per_layer: list[int], neurons_per_layer: list[int]
) -> float:
    """Multiply-adds x2 of the encoder per token: Q/K/V/output projections, attention scores and context, FFN."""
    total = 0.0
    for heads, neurons in zip(heads_per_layer, neurons_per_layer, strict=True):
        attention_width = heads * head_dim
        total += 2 * 4 * hidden * attention_width  # q, k, v rows and attention-output columns
        total += 2 * 2 * seq_len * attention_width  # scores and weighted sum of values
        total += 2 * 2 * hidden * neurons  # intermediate and output
    return total
