"""Folding: a pruned model becomes a physically smaller dense model with the same outputs.

An attention head whose columns in the attention-output matrix are all zero adds exactly nothing to its layer,
and neither does an FFN neuron whose column in the FFN output matrix is all zero. Structured pruning leaves
exactly such units (it also zeroes their rows and biases), so cutting them out of the matrices is exact by
construction; unstructured zeros stay where they are, as exact zeros. The kept units are recorded in the
model's config (see `spdc.models.structure`), which is how the loader rebuilds the folded shape.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spdc.core.atomic import atomic_directory
from spdc.core.errors import SpdcError
from spdc.core.outputs import check_output, mark_output, output_lock
from spdc.data.synthetic import model_input_names, synthetic_inputs
from spdc.models.families import encoder_layers, family_of, family_shape, linear_at, longest_sequence, model_config
from spdc.models.loading import load_model, save_model
from spdc.models.structure import (
    FoldedStructure,
    PrunedAttention,
    parameter_count,
    record_structure,
    reshape_layer,
    structure_of,
)
from spdc.runs.records import FoldResult

FOLD_ATOL = 1e-5


@torch.no_grad()
def fold(model: nn.Module) -> FoldedStructure | None:
    """Remove dead heads and neurons in place; returns the new structure, or None when nothing could be removed
    (a dense model then stays loadable by plain transformers). Folding a folded model again is allowed: head
    indices keep pointing at the original heads."""
    family = family_of(model)
    config = model_config(model)
    shape = family_shape(model)
    head_dim = shape["hidden"] // shape["heads"]
    dropout = float(getattr(config, family.dropout_key, 0.0))
    previous = structure_of(config)
    heads: list[list[int]] = []
    neuron_counts: list[int] = []
    changed = False
    for index, layer in enumerate(encoder_layers(model, family)):
        original_heads = previous.heads[index] if previous else list(range(shape["heads"]))
        if isinstance(layer.get_submodule(family.attention), PrunedAttention):
            kept_heads: list[int] = []
        else:
            columns = linear_at(layer, family.matrices["attention_output"].path).weight.abs().sum(dim=0)
            kept_heads = [int(i) for i in torch.nonzero(columns.view(-1, head_dim).sum(dim=1) > 0).flatten()]
        output = linear_at(layer, family.matrices["output"].path)
        kept_neurons = torch.nonzero(output.weight.abs().sum(dim=0) > 0).flatten()
        if kept_neurons.numel() == 0:  # keep one neuron with a zero output column: exact, and no empty matrices
            kept_neurons = torch.zeros(1, dtype=torch.long)
        changed = changed or len(kept_heads) < len(original_heads) or kept_neurons.numel() < output.weight.shape[1]
        heads.append([original_heads[i] for i in kept_heads])
        neuron_counts.append(int(kept_neurons.numel()))
        reshape_layer(layer, family, kept_heads, kept_neurons.cpu(), head_dim, dropout)
    if not changed:
        return None
    structure = FoldedStructure(head_dim=head_dim, heads=heads, neurons=neuron_counts)
    record_structure(config, structure)
    return structure


@torch.no_grad()
def max_logit_difference(first: nn.Module, second: nn.Module, tokenizer: Any) -> float:
    """Largest logit difference on random padded batches of two shapes."""
    names = model_input_names(tokenizer)
    difference = 0.0
    config = model_config(first)
    longest = longest_sequence(config) or 128
    for batch, seq_len in ((4, min(32, longest)), (2, min(77, longest))):
        feeds = {name: torch.from_numpy(array) for name, array in synthetic_inputs(
            names, config.vocab_size, batch=batch, seq_len=seq_len, seed=seq_len).items()}
        difference = max(difference, float((first(**feeds).logits - second(**feeds).logits).abs().max()))
    return difference


def fold_model_dir(source: Path, out: Path) -> FoldResult:
    """Write the folded model of `source` to `out`; refuses (and writes nothing) if the logits moved. `out` may
    replace an earlier folded model, nothing else."""
    with output_lock(out, what="folded model folder"):
        return _fold_model_dir(source, out)


def _fold_model_dir(source: Path, out: Path) -> FoldResult:
    out = check_output(out, "model", inputs=[source], replace=True, what="folded model folder")
    loaded = load_model(str(source), None)
    original = loaded.model.eval()
    folded = copy.deepcopy(original)
    structure = fold(folded) or structure_of(model_config(folded))  # a one-shot student was folded in training
    difference = max_logit_difference(original, folded, loaded.tokenizer)
    if difference > FOLD_ATOL:
        raise SpdcError(f"folding {source} moved the logits by {difference:.2e} (limit {FOLD_ATOL:g}); nothing written")
    with atomic_directory(out) as staging:
        save_model(folded, loaded.tokenizer, staging)
        mark_output(staging, "model")
    shape = family_shape(original)
    return FoldResult(
        source=str(source), folded_dir=str(out), folded=structure is not None,
        structure=structure.summary(shape["heads"], shape["intermediate"]) if structure else None,
        parameters={"before": parameter_count(original), "after": parameter_count(folded)},
        max_logit_difference=difference,
    )
