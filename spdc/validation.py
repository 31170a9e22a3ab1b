"""Parity: does the ONNX model give the answers of its PyTorch source? Logit differences, top-1 agreement and
the task metric from both, on real rows of the task's dev split, checked against the recipe's thresholds
(fp32: logits within atol and full agreement; int8: the main metric drops by at most max_metric_drop)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spdc.console import progress_bar
from spdc.data.batching import DynamicPaddingCollator, encode
from spdc.data.sources import load_split, task_spec
from spdc.metrics import compute_metrics
from spdc.onnx_runtime import create_session, session_feed
from spdc.recipe import ParityThresholds, TaskConfig
from spdc.training.evaluation import batches


@dataclass(frozen=True)
class ParityCheck:
    name: str
    value: float
    limit: float
    passed: bool


@dataclass
class ParityReport:
    precision: str
    task: str
    split: str
    rows: int
    main_metric: str
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float | None  # None for regression
    metrics_torch: dict[str, float]
    metrics_onnx: dict[str, float]
    checks: list[ParityCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def parity_checks(report: ParityReport, thresholds: ParityThresholds) -> list[ParityCheck]:
    """fp32 must reproduce the logits; int8 only has to keep the task metric."""
    if report.precision == "int8":
        drop = report.metrics_torch[report.main_metric] - report.metrics_onnx[report.main_metric]
        return [ParityCheck(f"{report.main_metric} drop", drop, thresholds.max_metric_drop,
                            drop <= thresholds.max_metric_drop)]
    checks = [ParityCheck("max |logit diff|", report.max_abs_diff, thresholds.atol,
                          report.max_abs_diff <= thresholds.atol)]
    if report.agreement is not None:
        checks.append(ParityCheck("top-1 agreement", report.agreement, thresholds.min_agreement,
                                  report.agreement >= thresholds.min_agreement))
    return checks


@torch.no_grad()
def check_parity(
    onnx_path: Path, reference: torch.nn.Module, tokenizer: Any, task: TaskConfig, *, precision: str,
    thresholds: ParityThresholds, samples: int | None = None, batch_size: int = 32, threads: int | None = None,
    show_progress: bool = True,
) -> ParityReport:
    """Run both models over the same padded batches of the dev split and compare."""
    spec = task_spec(task)
    split = spec.dev_splits[0]
    if samples is not None:
        task = task.model_copy(update={"max_eval_samples": samples})
    data = load_split(task, split)
    encoded = encode(data.examples, tokenizer, task.max_seq_length)
    collate = DynamicPaddingCollator(tokenizer, regression=spec.is_regression)
    session = create_session(onnx_path, threads=threads)
    reference.eval()
    torch_parts, onnx_parts, labels = [], [], []
    progress = progress_bar()
    progress.disable = not show_progress
    with progress:
        bar = progress.add_task(f"parity {spec.name} {split}", total=-(-len(encoded) // batch_size), status="")
        for batch in batches(encoded, range(len(encoded)), batch_size, collate):
            labels.append(batch.pop("labels").numpy())
            torch_parts.append(reference(**batch).logits.float().numpy())
            onnx_parts.append(session.run(["logits"], session_feed(session, batch))[0].astype(np.float32))
            progress.advance(bar)
    torch_logits, onnx_logits, references = (np.concatenate(parts) for parts in (torch_parts, onnx_parts, labels))
    diff = np.abs(torch_logits - onnx_logits)
    agreement = None if spec.is_regression else float(
        (torch_logits.argmax(axis=-1) == onnx_logits.argmax(axis=-1)).mean())
    report = ParityReport(
        precision=precision, task=spec.name, split=split, rows=len(encoded), main_metric=spec.main_metric,
        max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), agreement=agreement,
        metrics_torch=compute_metrics(torch_logits, references, spec.metrics, regression=spec.is_regression),
        metrics_onnx=compute_metrics(onnx_logits, references, spec.metrics, regression=spec.is_regression),
    )
    report.checks = parity_checks(report, thresholds)
    return report
