"""Tokenisation once up front (truncated, unpadded), then padding per batch: short batches stay short."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

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


class DynamicPaddingCollator:
    """Pads a batch to its own longest sequence and stacks labels (float for regression)."""

    def __init__(self, tokenizer: Any, *, regression: bool) -> None:
        self.tokenizer = tokenizer
        self.label_dtype = torch.float32 if regression else torch.long

    def __call__(self, items: list[tuple[dict[str, list[int]], int | float]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad([features for features, _ in items], padding=True, return_tensors="pt")
        batch = dict(batch)
        batch["labels"] = torch.tensor([label for _, label in items], dtype=self.label_dtype)
        return batch
