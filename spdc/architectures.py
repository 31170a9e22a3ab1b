"""Per-architecture module maps: where the encoder layers and their six prunable matrices live.

Pruning, grafting and folding look modules up through this map instead of branching on model types.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

ROLES = ("query", "key", "value", "attention_output", "intermediate", "output")


@dataclass(frozen=True)
class ArchitectureMap:
    """Dotted paths: `layers` from the model root, the roles from one encoder layer."""

    layers: str
    embeddings: str
    head: tuple[str, ...]  # modules after the encoder (pooler, classifier)
    query: str
    key: str
    value: str
    attention_output: str
    intermediate: str
    output: str
    self_attention: str
    attention: str  # the whole attention block, replaced when folding removes every head of a layer
    attention_norm: str  # the LayerNorm after the attention block's residual add
    onnx_model_type: str = "bert"  # the model type onnxruntime's transformer optimizer knows this family as

    def role_path(self, role: str) -> str:
        return getattr(self, role)


_BERT_LAYER = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "self_attention": "attention.self",
    "attention": "attention",
    "attention_norm": "attention.output.LayerNorm",
}

ARCHITECTURES: dict[str, ArchitectureMap] = {
    "bert": ArchitectureMap(
        layers="bert.encoder.layer", embeddings="bert.embeddings", head=("bert.pooler", "classifier"), **_BERT_LAYER
    ),
}


def architecture_for(model: nn.Module) -> ArchitectureMap:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ValueError(f"model type {model_type!r} is not supported yet; supported: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[model_type]


def encoder_layers(model: nn.Module, arch: ArchitectureMap) -> nn.ModuleList:
    layers = model.get_submodule(arch.layers)
    assert isinstance(layers, nn.ModuleList)
    return layers


def prunable_linears(layers: nn.ModuleList, arch: ArchitectureMap) -> dict[str, nn.Linear]:
    """The six weight matrices of every layer, keyed `<layer index>.<role>`."""
    linears: dict[str, nn.Linear] = {}
    for index, layer in enumerate(layers):
        for role in ROLES:
            module = layer.get_submodule(arch.role_path(role))
            assert isinstance(module, nn.Linear)
            linears[f"{index}.{role}"] = module
    return linears


def head_size(model_config: object) -> int:
    hidden = int(getattr(model_config, "hidden_size"))
    heads = int(getattr(model_config, "num_attention_heads"))
    return hidden // heads


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
