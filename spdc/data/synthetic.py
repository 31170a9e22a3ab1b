"""Synthetic model inputs: random token ids of a chosen shape, for graph checks and benchmarks without data."""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


def model_input_names(tokenizer: Any) -> list[str]:
    """The inputs a classifier's tokenizer produces, in the order exported graphs take them."""
    return [name for name in INPUT_ORDER if name in tokenizer.model_input_names]


def synthetic_inputs(names: list[str], vocab_size: int, *, batch: int, seq_len: int, seed: int = 0,
                     padded: bool = True) -> dict[str, np.ndarray]:
    """Random token ids avoiding the first (special) ids; with `padded`, row 0 is half padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(min(5, vocab_size - 1), vocab_size, size=(batch, seq_len), dtype=np.int64)
    mask = np.ones((batch, seq_len), dtype=np.int64)
    if padded:
        mask[0, max(1, seq_len // 2):] = 0
    values = {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: values[name] for name in names}
