"""Evaluation: run a model over a split in eval mode and score it with the task's metrics."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spdc.core.console import progress_bar
from spdc.data.sources import load_split, task_spec
from spdc.data.tasks import TaskSpec
from spdc.heads import head_of_task
from spdc.models.families import check_sequence_length, longest_sequence
from spdc.models.loading import load_model
from spdc.recipe.schema import TaskConfig
from spdc.runs.directory import locate_model
from spdc.runs.records import EvalResult
from spdc.runs.runtime import resolve_device


def batches(dataset: Any, indices: Iterable[int], batch_size: int, collate: Any) -> Iterable[dict[str, torch.Tensor]]:
    chunk: list[int] = []
    for index in indices:
        chunk.append(index)
        if len(chunk) == batch_size:
            yield collate([dataset[i] for i in chunk])
            chunk = []
    if chunk:
        yield collate([dataset[i] for i in chunk])


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    task: TaskSpec,
    *,
    collate: Any,
    batch_size: int,
    device: torch.device,
    limit: int | None = None,
    description: str = "eval",
    show_progress: bool = True,
) -> dict[str, float]:
    """Metrics (and mean loss) of `model` on the first `limit` items of `dataset`; restores train mode after."""
    was_training = model.training
    model.eval()
    count = len(dataset) if limit is None else min(limit, len(dataset))
    head = head_of_task(task)
    output_parts: dict[str, list[np.ndarray]] = {name: [] for name in head.output_names}
    labels_parts: list[np.ndarray] = []
    loss_sum = 0.0
    progress = progress_bar()
    progress.disable = not show_progress
    with progress:
        bar = progress.add_task(description, total=-(-count // batch_size), status="")
        for batch in batches(dataset, range(count), batch_size, collate):
            batch = {key: value.to(device) for key, value in batch.items()}
            outputs = head.outputs(model(**batch))
            loss_sum += float(head.hard_loss(outputs, batch["labels"])) * len(batch["labels"])
            for name, value in outputs.items():
                output_parts[name].append(value.float().cpu().numpy())
            labels_parts.append(batch["labels"].cpu().numpy())
            progress.advance(bar)
    model.train(was_training)
    metrics = head.score({name: np.concatenate(parts) for name, parts in output_parts.items()},
                         np.concatenate(labels_parts), task.metrics)
    metrics["loss"] = loss_sum / count
    return metrics


def evaluate_model(model_path: Path, task: TaskConfig, *, split: str | None = None, batch_size: int = 64,
                   device: str = "auto", show_progress: bool = True, max_seq_length: int | None = None
                   ) -> EvalResult:
    """Score a model (or run) directory on a split of `task` (default: its dev split) with the official metrics.
    The data is read before the model is loaded: a missing file fails fast."""
    spec = task_spec(task)
    split_name = split or spec.dev_splits[0]
    data = load_split(task, split_name)
    loaded = load_model(str(locate_model(model_path).model_dir), spec, fine_tuned_head=True)
    if max_seq_length is not None:  # asked for: it must fit; the task's own length is capped to the model's
        check_sequence_length(loaded.model.config, max_seq_length, what="max_seq_length (--max-seq-length)",
                              model=str(model_path))
    length = max_seq_length or min(task.max_seq_length, longest_sequence(loaded.model.config) or task.max_seq_length)
    task = task.model_copy(update={"max_seq_length": length})
    torch_device = resolve_device(device)
    head = head_of_task(spec)
    metrics = evaluate(
        loaded.model.to(torch_device), head.encode(data.examples, loaded.tokenizer, task.max_seq_length), spec,
        collate=head.collator(loaded.tokenizer), batch_size=batch_size,
        device=torch_device, description=f"eval {spec.name} {split_name}", show_progress=show_progress,
    )
    baseline = head.constant_baseline([example.label for example in data.examples], spec)
    return EvalResult(model=str(model_path), task=spec.name, split=split_name, rows=len(data.examples),
                      dropped=data.dropped, source=data.source, main_metric=spec.main_metric, metrics=metrics,
                      baseline=baseline)
