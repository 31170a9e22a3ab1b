"""Tiny random models of every supported family, for tests and the families benchmark: a config of each family
sized so every code path runs fast, and a word-level tokenizer that produces the family's own input names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, BertTokenizer

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = sorted({"good", "great", "fine", "superb", "lovely", "bad", "awful", "poor", "dull", "ugly", "the", "movie",
                "was", "plot", "acting", "really", "quite", "a", "story"})
TOKEN_TYPES = ("bert", "electra", "deberta-v2")  # families whose models take token_type_ids


def tiny_family_config(model_type: str, vocab_size: int, num_labels: int, **sizes_override: Any) -> Any:
    """A 2-layer, hidden-32, 4-head random config of a family (sized so every code path is exercised);
    `sizes_override` changes the common sizes (the families benchmark builds base-size models with it)."""
    common: dict[str, Any] = {"vocab_size": vocab_size, "num_labels": num_labels, "pad_token_id": 0}
    if num_labels == 1:
        common["problem_type"] = "regression"
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
             "max_position_embeddings": 64, **sizes_override}
    extra: dict[str, dict] = {
        "bert": sizes,
        "roberta": {**sizes, "max_position_embeddings": sizes["max_position_embeddings"] + 16, "bos_token_id": 2,
                    "eos_token_id": 3},
        "xlm-roberta": {**sizes, "max_position_embeddings": sizes["max_position_embeddings"] + 16, "bos_token_id": 2,
                        "eos_token_id": 3},
        "electra": {**sizes, "embedding_size": sizes["hidden_size"] // 2},
        "distilbert": {"dim": sizes["hidden_size"], "n_layers": sizes["num_hidden_layers"],
                       "n_heads": sizes["num_attention_heads"], "hidden_dim": sizes["intermediate_size"],
                       "max_position_embeddings": sizes["max_position_embeddings"]},
        "deberta-v2": {**sizes, "relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                       "position_biased_input": False, "share_att_key": True, "type_vocab_size": 2,
                       "max_relative_positions": -1, "position_buckets": 16},
        "modernbert": {**sizes, "global_attn_every_n_layers": 2, "local_attention": 16, "bos_token_id": 2,
                       "eos_token_id": 3, "cls_token_id": 2, "sep_token_id": 3},
    }
    return AutoConfig.for_model(model_type, **common, **extra[model_type])


def build_tiny_family(model_type: str, directory: Path, *, num_labels: int = 2, seed: int = 0,
                      **sizes_override: Any) -> Path:
    """Save a random classifier of `model_type` (tiny unless `sizes_override` says otherwise) with a word-level
    tokenizer producing its inputs."""
    vocab = SPECIAL + WORDS
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if model_type in TOKEN_TYPES else [
        "input_ids", "attention_mask"]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(vocab)}, model_input_names=inputs)
    torch.manual_seed(seed)
    vocab_size = int(sizes_override.pop("vocab_size", len(vocab)))
    config = tiny_family_config(model_type, vocab_size, num_labels, **sizes_override)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
