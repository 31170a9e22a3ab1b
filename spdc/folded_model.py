"""Folding a saved model directory: load it, fold it, prove the outputs did not move, save it atomically."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from spdc.atomic import atomic_directory
from spdc.errors import SpdcError
from spdc.folding import fold, parameter_count
from spdc.models import load_classifier, save_classifier
from spdc.synthetic import model_input_names, synthetic_inputs

FOLD_ATOL = 1e-5


@torch.no_grad()
def max_logit_difference(first: torch.nn.Module, second: torch.nn.Module, tokenizer: Any) -> float:
    """Largest logit difference on random padded batches of two shapes."""
    names = model_input_names(tokenizer)
    difference = 0.0
    longest = int(getattr(first.config, "max_position_embeddings", 128))
    for batch, seq_len in ((4, min(32, longest)), (2, min(77, longest))):
        feeds = {name: torch.from_numpy(array) for name, array in synthetic_inputs(
            names, first.config.vocab_size, batch=batch, seq_len=seq_len, seed=seq_len).items()}
        difference = max(difference, float((first(**feeds).logits - second(**feeds).logits).abs().max()))
    return difference


def fold_model_dir(source: Path, out: Path) -> dict[str, Any]:
    """Write the folded model of `source` to `out`; refuses (and writes nothing) if the logits moved."""
    loaded = load_classifier(str(source), None)
    original = loaded.model.eval()
    folded = copy.deepcopy(original)
    structure = fold(folded)
    difference = max_logit_difference(original, folded, loaded.tokenizer)
    if difference > FOLD_ATOL:
        raise SpdcError(f"folding {source} moved the logits by {difference:.2e} (limit {FOLD_ATOL:g}); nothing written")
    with atomic_directory(out) as staging:
        save_classifier(folded, loaded.tokenizer, staging)
    config = folded.config
    return {
        "source": str(source), "folded_dir": str(out), "folded": structure is not None,
        "structure": structure.summary(config.num_attention_heads, config.intermediate_size) if structure else None,
        "parameters": {"before": parameter_count(original), "after": parameter_count(folded)},
        "max_logit_difference": difference,
    }
