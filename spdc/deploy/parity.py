"""Parity: does the ONNX model give the answers of its PyTorch source? Logit differences, top-1 agreement and
the task metric from both, on real rows of the task's dev split, checked against the recipe's thresholds
(fp32: logits within atol and full agreement; int8: the main metric drops by at most max_metric_drop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from spdc.core.console import progress_bar
from spdc.core.errors import ArtifactError
from spdc.data.batching import EncodedSplit
from spdc.data.sources import load_split, task_spec
from spdc.deploy.manifest import (
    ONNX_FILE,
    ParityCheck,
    ParityReport,
    ValidateResult,
    read_manifest,
)
from spdc.deploy.model_card import record_manifest
from spdc.deploy.sessions import create_session, open_artifact, session_feed
from spdc.heads import head_of_task
from spdc.recipe.schema import ParityThresholds, TaskConfig
from spdc.training.evaluation import batches


def parity_checks(*, precision: str, main_metric: str, metrics_torch: dict[str, float],
                  metrics_onnx: dict[str, float], max_abs_diff: float, agreement: float | None,
                  thresholds: ParityThresholds) -> list[ParityCheck]:
    """fp32 must reproduce the logits; fp16 too, within its own (looser) limits; int8 only has to keep the task
    metric."""
    if precision == "int8":
        drop = metrics_torch[main_metric] - metrics_onnx[main_metric]
        return [ParityCheck(name=f"{main_metric} drop", value=drop, limit=thresholds.max_metric_drop,
                            passed=drop <= thresholds.max_metric_drop)]
    atol, min_agreement = ((thresholds.fp16_atol, thresholds.fp16_min_agreement) if precision == "fp16"
                           else (thresholds.atol, thresholds.min_agreement))
    checks = [ParityCheck(name="max |logit diff|", value=max_abs_diff, limit=atol, passed=max_abs_diff <= atol)]
    if agreement is not None:
        checks.append(ParityCheck(name="top-1 agreement", value=agreement, limit=min_agreement,
                                  passed=agreement >= min_agreement))
    return checks


def parity_rows(task: TaskConfig, tokenizer: Any, samples: int | None) -> EncodedSplit:
    """The dev rows parity runs on; read before any expensive export step, so missing data fails fast."""
    spec = task_spec(task)
    if samples is not None:
        task = task.model_copy(update={"max_eval_samples": samples})
    data = load_split(task, spec.dev_splits[0])
    return head_of_task(spec).encode(data.examples, tokenizer, task.max_seq_length)


@torch.no_grad()
def check_parity(
    onnx_path: Path, reference: torch.nn.Module, tokenizer: Any, task: TaskConfig, *, precision: str,
    thresholds: ParityThresholds, samples: int | None = None, batch_size: int = 32, threads: int | None = None,
    show_progress: bool = True, rows: EncodedSplit | None = None,
) -> ParityReport:
    """Run both models over the same padded batches of the dev split (or the `rows` given) and compare."""
    spec = task_spec(task)
    split = spec.dev_splits[0]
    encoded = rows if rows is not None else parity_rows(task, tokenizer, samples)
    head = head_of_task(spec)
    collate = head.collator(tokenizer)
    session = create_session(onnx_path, threads=threads)
    names = list(head.output_names)
    reference.eval()
    torch_parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    onnx_parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    labels = []
    progress = progress_bar()
    progress.disable = not show_progress
    with progress:
        bar = progress.add_task(f"parity {spec.name} {split}", total=-(-len(encoded) // batch_size), status="")
        for batch in batches(encoded, range(len(encoded)), batch_size, collate):
            labels.append(batch.pop("labels").numpy())
            for name, value in head.outputs(reference(**batch)).items():
                torch_parts[name].append(value.float().numpy())
            for name, value in zip(names, session.run(names, session_feed(session, batch)), strict=True):
                onnx_parts[name].append(value.astype(np.float32))
            progress.advance(bar)
    torch_outputs = {name: np.concatenate(parts) for name, parts in torch_parts.items()}
    onnx_outputs = {name: np.concatenate(parts) for name, parts in onnx_parts.items()}
    references = np.concatenate(labels)
    diff = np.concatenate([np.abs(torch_outputs[name] - onnx_outputs[name]).reshape(-1) for name in names])
    agreement = head.agreement(torch_outputs, onnx_outputs)
    metrics_torch = head.score(torch_outputs, references, spec.metrics)
    metrics_onnx = head.score(onnx_outputs, references, spec.metrics)
    checks = parity_checks(precision=precision, main_metric=spec.main_metric, metrics_torch=metrics_torch,
                           metrics_onnx=metrics_onnx, max_abs_diff=float(diff.max()), agreement=agreement,
                           thresholds=thresholds)
    return ParityReport(
        precision=precision, task=spec.name, split=split, rows=len(encoded), main_metric=spec.main_metric,
        max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), agreement=agreement,
        metrics_torch=metrics_torch, metrics_onnx=metrics_onnx, checks=checks,
        passed=all(check.passed for check in checks),
    )


def validate_artifact(artifact: Path, *, task: TaskConfig | None = None, data_dir: Path | None = None,
                      samples: int | None = None, reference: Path | None = None, threads: int | None = None,
                      show_progress: bool = True) -> ValidateResult:
    """Re-run the parity check of an artifact against its PyTorch source (or `reference`) on the task recorded in
    its manifest (or `task`), with the manifest's thresholds; the verdict is written back to the manifest."""
    from spdc.models.loading import load_model

    manifest = read_manifest(artifact)
    if task is None:
        if not manifest.task:
            raise ArtifactError("the manifest records no task: name one with --task")
        task = TaskConfig.model_validate(manifest.task)
    if data_dir is not None:
        task = task.model_copy(update={"data_dir": data_dir})
    reference_dir = reference or Path(manifest.source.model_dir)
    open_artifact(artifact / ONNX_FILE, threads=1)  # what a deployment cannot serve fails before data is read
    loaded = load_model(str(reference_dir), None)
    rows = parity_rows(task, loaded.tokenizer, samples or manifest.samples)
    report = check_parity(
        artifact / ONNX_FILE, loaded.model, loaded.tokenizer, task, precision=manifest.export.precision,
        thresholds=ParityThresholds.model_validate(manifest.thresholds), threads=threads,
        show_progress=show_progress, rows=rows,
    )
    record_manifest(artifact, manifest.with_parity(report))
    return ValidateResult(artifact=str(artifact), reference=str(reference_dir), parity=report)
