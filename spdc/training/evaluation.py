"""Evaluation: run a model over a split in eval mode and score it with the task's metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from spdc.console import progress_bar
from spdc.metrics import compute_metrics
from spdc.tasks import TaskSpec


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
    logits_parts: list[np.ndarray] = []
    labels_parts: list[np.ndarray] = []
    loss_sum = 0.0
    progress = progress_bar()
    progress.disable = not show_progress
    with progress:
        bar = progress.add_task(description, total=-(-count // batch_size), status="")
        for batch in batches(dataset, range(count), batch_size, collate):
            batch = {key: value.to(device) for key, value in batch.items()}
            output = model(**batch)
            loss_sum += float(output.loss) * len(batch["labels"])
            logits_parts.append(output.logits.float().cpu().numpy())
            labels_parts.append(batch["labels"].cpu().numpy())
            progress.advance(bar)
    model.train(was_training)
    logits = np.concatenate(logits_parts)
    labels = np.concatenate(labels_parts)
    metrics = compute_metrics(logits, labels, task.metrics, regression=task.is_regression)
    metrics["loss"] = loss_sum / count
    return metrics
