"""Model families: where a family keeps its encoder layers, embeddings, head and the six prunable matrices.

Pruning, grafting, distillation and folding look modules up through a family's spec instead of branching on
model types; a new family is one new `FamilySpec` in `FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from spdc.core.errors import ModelLoadError

ROLES = ("query", "key", "value", "attention_output", "intermediate", "output")


@dataclass(frozen=True)
class FamilySpec:
    """Dotted module paths: `layers`, `embeddings` and `head` from the model root, the rest from one layer."""

    model_type: str
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
        return str(getattr(self, role))


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

FAMILIES: dict[str, FamilySpec] = {
    "bert": FamilySpec(model_type="bert", layers="bert.encoder.layer", embeddings="bert.embeddings",
                       head=("bert.pooler", "classifier"), **_BERT_LAYER),
}


def family_spec(model_type: str | None) -> FamilySpec:
    """The spec of a model type; an unsupported one is a model-load error naming the supported families."""
    if model_type not in FAMILIES:
        raise ModelLoadError(f"model type {model_type!r} is not supported; supported families: "
                             f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def family_of(model: nn.Module) -> FamilySpec:
    return family_spec(getattr(getattr(model, "config", None), "model_type", None))


def model_config(model: nn.Module) -> Any:
    """The transformers config of a model; typed Any because its fields depend on the family."""
    return model.config


def linear_at(module: nn.Module, path: str) -> nn.Linear:
    linear = module.get_submodule(path)
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"{path} is a {type(linear).__name__}, not a Linear")
    return linear


def encoder_layers(model: nn.Module, family: FamilySpec) -> nn.ModuleList:
    layers = model.get_submodule(family.layers)
    assert isinstance(layers, nn.ModuleList)
    return layers


def prunable_linears(layers: nn.ModuleList, family: FamilySpec) -> dict[str, nn.Linear]:
    """The six weight matrices of every layer, keyed `<layer index>.<role>`."""
    linears: dict[str, nn.Linear] = {}
    for index, layer in enumerate(layers):
        for role in ROLES:
            linears[f"{index}.{role}"] = linear_at(layer, family.role_path(role))
    return linears
