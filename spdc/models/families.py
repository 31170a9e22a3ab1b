"""Model families: one `FamilySpec` per `model_type` says everything spdc needs to take a family apart.

Where the encoder layers, embeddings and head live; the query/key/value, attention-output and FFN matrices of a
layer, as whole matrices or as row blocks of a fused one (ModernBERT's Wqkv, its gated Wi = [input; gate]);
which config keys hold the sizes; how a layer's attention probabilities are recorded; what a layer whose heads
were all pruned still computes; and which onnxruntime optimizer model type applies. Pruning, grafting,
distillation, folding, loading and export look modules up through the spec. Adding a family is one new entry in
`FAMILIES` (see docs/model-families.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from spdc.core.errors import ModelLoadError

ATTENTION_ROLES = ("query", "key", "value", "attention_output")
FFN_ROLES = ("intermediate", "gate", "output")
ROLES = (*ATTENTION_ROLES, *FFN_ROLES)


@dataclass(frozen=True)
class MatrixSpec:
    """A prunable matrix of one layer: a Linear at `path`, or block `block` of `blocks` equal row blocks of it."""

    path: str
    block: int = 0
    blocks: int = 1


@dataclass(frozen=True)
class FamilySpec:
    model_type: str
    layers: str  # the ModuleList of encoder layers, from the model root
    embeddings: tuple[str, ...]  # from the model root; the last present one's output enters layer 0
    head: tuple[str, ...]  # modules after the encoder (final norm, pooler, classifier), from the model root
    matrices: dict[str, MatrixSpec]  # role -> matrix, within one layer (ROLES; "gate" only for gated FFNs)
    self_attention: str  # the module whose output[1] is the attention probabilities [batch, heads, query, key]
    attention: str  # the block replaced when a layer loses every head
    headless: Literal["norm", "zero"]  # what that block still computes: LayerNorm(x + bias), or just its bias
    attention_norm: str | None = None  # the LayerNorm inside the block ("norm" headless kind)
    head_attributes: tuple[str, ...] = ()  # attention-module attributes holding the head count, set when folding
    width_attributes: tuple[str, ...] = ()  # attention-module attributes holding heads x head size
    head_row_extras: tuple[str, ...] = ()  # per-head row projections that exist in some configs (DeBERTa pos_*)
    intermediate_key: str = "intermediate_size"
    dropout_key: str = "hidden_dropout_prob"
    attention_kwargs: dict[str, Any] = field(default_factory=dict)  # forward kwargs that make it emit probabilities
    onnx_model_type: str = "bert"  # what onnxruntime's transformer optimizer calls this graph shape
    fused_attention: bool = True  # onnxruntime's attention fusion can match this family's exported graph
    set_depth: Callable[[Any, list[int]], None] | None = None  # config changes for a student of other depth
    positions_after_padding: bool = False  # position ids start at pad_token_id + 1 (RoBERTa), not at 0

    @property
    def gated(self) -> bool:
        return "gate" in self.matrices

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role in ROLES if role in self.matrices)


def _bert_like(model_type: str, prefix: str, head: tuple[str, ...], embeddings: tuple[str, ...] = (),
               positions_after_padding: bool = False) -> FamilySpec:
    return FamilySpec(
        positions_after_padding=positions_after_padding,
        model_type=model_type, layers=f"{prefix}.encoder.layer", embeddings=embeddings or (f"{prefix}.embeddings",),
        head=head,
        matrices={"query": MatrixSpec("attention.self.query"), "key": MatrixSpec("attention.self.key"),
                  "value": MatrixSpec("attention.self.value"), "attention_output": MatrixSpec("attention.output.dense"),
                  "intermediate": MatrixSpec("intermediate.dense"), "output": MatrixSpec("output.dense")},
        self_attention="attention.self", attention="attention", headless="norm",
        attention_norm="attention.output.LayerNorm", head_attributes=("num_attention_heads",),
        width_attributes=("all_head_size",),
    )


def _modernbert_depth(config: Any, layer_map: list[int]) -> None:
    config.layer_types = [config.layer_types[j] for j in layer_map]


FAMILIES: dict[str, FamilySpec] = {spec.model_type: spec for spec in (
    _bert_like("bert", "bert", ("bert.pooler", "classifier")),
    _bert_like("roberta", "roberta", ("classifier",), positions_after_padding=True),
    _bert_like("xlm-roberta", "roberta", ("classifier",), positions_after_padding=True),
    _bert_like("electra", "electra", ("classifier",),
               embeddings=("electra.embeddings", "electra.embeddings_project")),
    FamilySpec(
        model_type="distilbert", layers="distilbert.transformer.layer", embeddings=("distilbert.embeddings",),
        head=("pre_classifier", "classifier"),
        matrices={"query": MatrixSpec("attention.q_lin"), "key": MatrixSpec("attention.k_lin"),
                  "value": MatrixSpec("attention.v_lin"), "attention_output": MatrixSpec("attention.out_lin"),
                  "intermediate": MatrixSpec("ffn.lin1"), "output": MatrixSpec("ffn.lin2")},
        self_attention="attention", attention="attention", headless="zero", head_attributes=("n_heads",),
        width_attributes=("dim",), intermediate_key="hidden_dim", dropout_key="dropout",
    ),
    FamilySpec(
        model_type="deberta-v2", layers="deberta.encoder.layer", embeddings=("deberta.embeddings",),
        head=("pooler", "classifier"),
        matrices={"query": MatrixSpec("attention.self.query_proj"), "key": MatrixSpec("attention.self.key_proj"),
                  "value": MatrixSpec("attention.self.value_proj"),
                  "attention_output": MatrixSpec("attention.output.dense"),
                  "intermediate": MatrixSpec("intermediate.dense"), "output": MatrixSpec("output.dense")},
        self_attention="attention.self", attention="attention", headless="norm",
        attention_norm="attention.output.LayerNorm", head_attributes=("num_attention_heads",),
        width_attributes=("all_head_size",),
        head_row_extras=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
        attention_kwargs={"output_attentions": True}, fused_attention=False,
    ),
    FamilySpec(
        model_type="modernbert", layers="model.layers", embeddings=("model.embeddings",),
        head=("model.final_norm", "head", "classifier"),
        matrices={"query": MatrixSpec("attn.Wqkv", 0, 3), "key": MatrixSpec("attn.Wqkv", 1, 3),
                  "value": MatrixSpec("attn.Wqkv", 2, 3), "attention_output": MatrixSpec("attn.Wo"),
                  "intermediate": MatrixSpec("mlp.Wi", 0, 2), "gate": MatrixSpec("mlp.Wi", 1, 2),
                  "output": MatrixSpec("mlp.Wo")},
        self_attention="attn", attention="attn", headless="zero", dropout_key="attention_dropout",
        fused_attention=False, set_depth=_modernbert_depth,
    ),
)}


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


def optional_module(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def encoder_layers(model: nn.Module, family: FamilySpec) -> nn.ModuleList:
    layers = model.get_submodule(family.layers)
    assert isinstance(layers, nn.ModuleList)
    return layers


@dataclass(frozen=True)
class PrunableMatrix:
    """A prunable weight matrix: a whole Linear, or one row block of a fused one. `weight`, `bias` and `grad` are
    views, so pruning them in place prunes the parameter."""

    linear: nn.Linear
    block: int = 0
    blocks: int = 1

    def _rows(self) -> slice:
        size = self.linear.out_features // self.blocks
        return slice(self.block * size, (self.block + 1) * size)

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight[self._rows()]

    @property
    def bias(self) -> torch.Tensor | None:
        return None if self.linear.bias is None else self.linear.bias[self._rows()]

    @property
    def grad(self) -> torch.Tensor | None:
        grad = self.linear.weight.grad
        return None if grad is None else grad[self._rows()]


def prunable_linears(layers: nn.ModuleList, family: FamilySpec) -> dict[str, PrunableMatrix]:
    """The prunable matrices of every layer, keyed `<layer index>.<role>`."""
    matrices: dict[str, PrunableMatrix] = {}
    for index, layer in enumerate(layers):
        for role in family.roles:
            spec = family.matrices[role]
            matrices[f"{index}.{role}"] = PrunableMatrix(linear_at(layer, spec.path), spec.block, spec.blocks)
    return matrices


def family_shape(model: nn.Module) -> dict[str, int]:
    """hidden, heads, intermediate and depth of a model, from its family's config keys."""
    family, config = family_of(model), model_config(model)
    return {"hidden": int(config.hidden_size), "heads": int(config.num_attention_heads),
            "intermediate": int(getattr(config, family.intermediate_key)), "layers": int(config.num_hidden_layers)}


def longest_sequence(config: Any) -> int | None:
    """How many tokens (special ones included) one sequence of this model may hold: its position embeddings, less
    the ids RoBERTa-like families skip below their first position. None for a model without position embeddings."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    spec = FAMILIES.get(getattr(config, "model_type", None) or "")
    if spec is not None and spec.positions_after_padding:
        return int(positions) - int(getattr(config, "pad_token_id", 1) or 0) - 1
    return int(positions)


def check_sequence_length(config: Any, length: int, *, what: str, model: str) -> None:
    """A sequence length the model cannot embed is a usage error (exit 2) naming the setting and the limit."""
    from spdc.core.errors import RecipeError

    longest = longest_sequence(config)
    if longest is not None and length > longest:
        raise RecipeError(f"{what}: {length} is longer than the model's {longest} positions ({model})")
