"""Tokenisation once up front (truncated, unpadded); each task head pads its own batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spdc.data.examples import Example


@dataclass
class EncodedSplit:
    """Token ids per example plus labels; what a DataLoader iterates over."""

    features: list[dict[str, list[int]]]
    labels: list[int | float]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[dict[str, list[int]], int | float]:
        return self.features[index], self.labels[index]


def encode(examples: Sequence[Example], tokenizer: Any, max_seq_length: int) -> EncodedSplit:
    texts = [example.text for example in examples]
    pairs = [example.text_pair for example in examples]
    has_pairs = any(pair is not None for pair in pairs)
    encoded = tokenizer(
        texts,
        pairs if has_pairs else None,
        truncation=True,
        max_length=max_seq_length,
        padding=False,
    )
    keys = [key for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded]
    features = [{key: encoded[key][index] for key in keys} for index in range(len(texts))]
    return EncodedSplit(features=features, labels=[example.label for example in examples])
