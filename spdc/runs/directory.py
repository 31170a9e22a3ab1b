"""The run directory: everything a run produces, laid out so a run can be inspected, compared and resumed.

    recipe.yaml        resolved recipe (all defaults filled in)
    environment.json   versions, device, threads
    metrics.jsonl      one TrainRecord / EvalRecord per line
    checkpoints/       latest resumable checkpoint (atomic)
    model/             best model so far (save_pretrained + tokenizer)
    summary.json       final result (FinetuneSummary or CompressSummary)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdc.core.atomic import atomic_append_text, atomic_write_text, ensure_dir
from spdc.core.cpu import cpu_info
from spdc.core.errors import ArtifactError, CheckpointError
from spdc.core.outputs import check_output, mark_output, output_kind, output_lock, remove_output
from spdc.core.version import VERSION
from spdc.recipe.schema import Recipe
from spdc.runs.distributed import barrier, context, is_launch_rank_zero
from spdc.runs.records import (
    METRICS_FILE,
    SUMMARY_FILE,
    EvalRecord,
    RunSummary,
    TrainRecord,
    parse_metrics_line,
    serialize_record,
)
from spdc.runs.tracking import Tracking


def check_run_output(path: Path, *, inputs: Iterable[Path], overwrite: bool) -> Path:
    """Refuse `path` as a new run directory unless it is free or (with `overwrite`) spdc's own run; returns where
    the run lies (a symbolic link followed)."""
    return check_output(path, "run", inputs=inputs, replace=overwrite, what="run directory",
                        how_to_replace="use --resume to continue it, --overwrite to replace it, or --out for another "
                                       "directory")


def run_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """Hold a run directory while this command trains or writes there (rank 0 only: the ranks of one torchrun
    job share it)."""
    return output_lock(path, what="run directory") if is_launch_rank_zero() else contextlib.nullcontext()


@dataclass(frozen=True)
class ModelLocation:
    """Where the weights of a path a command was given lie: a run directory's model/, or a model directory."""

    path: Path
    model_dir: Path
    is_run: bool


def locate_model(path: Path) -> ModelLocation:
    """The one answer to "run directory or model directory?": a folder whose model/ holds a config.json is a run,
    one holding config.json itself is a model; anything else is an artifact error naming both layouts."""
    run_model = RunDirectory(path).model_dir
    if (run_model / "config.json").is_file():
        return ModelLocation(path=path, model_dir=run_model, is_run=True)
    if (path / "config.json").is_file():
        return ModelLocation(path=path, model_dir=path, is_run=False)
    raise ArtifactError(f"{path} is neither a run directory (with model/config.json) nor a model directory "
                        "(config.json)")


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tracking = Tracking({})  # the recipe's trackers, started by `start_tracking`

    def start_tracking(self, recipe: Recipe) -> None:
        """Mirror this run into the recipe's tracking backends (rank 0 only)."""
        self.tracking = Tracking.start(self.path, recipe, enabled=context().is_main)

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def environment_file(self) -> Path:
        return self.path / "environment.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @classmethod
    def prepare(cls, path: Path, recipe: Recipe, *, resume: bool, overwrite: bool,
                inputs: Iterable[Path] = ()) -> RunDirectory:
        """Create (or reopen with `resume`) a run directory. An existing one is replaced only with `overwrite`
        and only when it is an spdc run directory; it may never be an input or contain one."""
        run = cls(path)
        if resume:
            if output_kind(path) != "run":
                raise CheckpointError(f"--resume: {path} holds no run (no spdc run directory there)")
            return run
        path = check_run_output(path, inputs=inputs, overwrite=overwrite)
        run = cls(path)
        barrier()  # every rank has checked before rank 0 changes anything
        if context().is_main:
            if path.is_dir() and any(path.iterdir()):
                remove_output(path, "run")
            ensure_dir(path)
            mark_output(path, "run")
            atomic_write_text(run.recipe_file, recipe.to_yaml())
        barrier()
        return run

    def is_finished(self) -> bool:
        return self.summary_file.is_file()

    def has_checkpoint(self) -> bool:
        return (self.checkpoints_dir / "latest").is_file()

    def write_environment(self, device: str, threads: int, *, precision: str, precision_requested: str
                          ) -> dict[str, Any]:
        import datasets
        import torch
        import transformers

        cpu = cpu_info()
        environment = {
            "spdc": VERSION,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": threads,
            "world_size": context().world_size,
            "device": device,
            "cuda_device": torch.cuda.get_device_name(0) if device == "cuda" else None,
            "cpu_model": cpu.model,
            "cpu_features": [name for name, present in cpu.features.items() if present],
            "precision": precision,
            "precision_requested": precision_requested,
        }
        if context().is_main:
            atomic_write_text(self.environment_file, json.dumps(environment, indent=2) + "\n")
        return environment

    def append_metrics(self, record: TrainRecord | EvalRecord) -> None:
        """Append one record (rank 0 of a distributed run writes; the others share its directory)."""
        if context().is_main:
            atomic_append_text(self.metrics_file, serialize_record(record))
            self.tracking.metrics(tracked_metrics(record), record.step)

    def read_metrics(self) -> list[TrainRecord | EvalRecord]:
        """Every complete record. A torn last line (a process killed mid-write by an older spdc, or another
        tool) is skipped; a bad line elsewhere is a CheckpointError naming it."""
        if not self.metrics_file.is_file():
            return []
        lines = self.metrics_file.read_text(encoding="utf-8", errors="replace").splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(parse_metrics_line(line))
            except ValueError as error:
                if number == len(lines):
                    break
                raise CheckpointError(f"{self.metrics_file}, line {number}: not a metrics record "
                                      f"({str(error).splitlines()[0][:200]}); the run's log is damaged") from None
        return records

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint so the log has no duplicated steps."""
        if context().is_main:
            kept = [record for record in self.read_metrics() if record.step <= step]
            atomic_write_text(self.metrics_file, "".join(serialize_record(record) for record in kept))

    def write_summary(self, summary: RunSummary) -> None:
        if context().is_main:
            atomic_write_text(self.summary_file, json.dumps(summary.to_dict(), indent=2) + "\n")
            self.tracking.finish([self.summary_file, self.recipe_file, self.path / "report.md"])


def tracked_metrics(record: TrainRecord | EvalRecord) -> dict[str, float]:
    """A metrics record as tracker series: train/loss, train/lr and the loss parts, or dev/, validation/ and
    train_eval/ metrics, plus the stage fields (p, sparsities) when set."""
    values: dict[str, float] = {}
    if isinstance(record, TrainRecord):
        values = {"train/loss": record.loss, "train/lr": record.lr,
                  **{f"train/{name}": value for name, value in record.loss_parts().items()}}
    else:
        for split, metrics in (("dev", record.dev), ("validation", record.validation), ("train_eval", record.train)):
            values.update({f"{split}/{name}": value for name, value in (metrics or {}).items()})
    for field in ("p", "sparsity", "head_sparsity", "neuron_sparsity"):
        value = getattr(record, field)
        if value is not None:
            values[f"stage/{field}"] = float(value)
    return values
