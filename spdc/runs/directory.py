"""The run directory: everything a run produces, laid out so a run can be inspected, compared and resumed.

    recipe.yaml        resolved recipe (all defaults filled in)
    environment.json   versions, device, threads
    metrics.jsonl      one TrainRecord / EvalRecord per line
    checkpoints/       latest resumable checkpoint (atomic)
    model/             best model so far (save_pretrained + tokenizer)
    summary.json       final result (FinetuneSummary or CompressSummary)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from spdc.core.version import VERSION
from spdc.core.atomic import atomic_write_text
from spdc.core.errors import SpdcError
from spdc.recipe.schema import Recipe
from spdc.runs.records import (
    METRICS_FILE,
    SUMMARY_FILE,
    EvalRecord,
    RunSummary,
    TrainRecord,
    parse_metrics_line,
    serialize_record,
)


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

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
    def prepare(cls, path: Path, recipe: Recipe, *, resume: bool, overwrite: bool) -> RunDirectory:
        """Create (or reopen with `resume`) a run directory; refuse to clobber an existing run by accident."""
        run = cls(path)
        if resume:
            if not run.recipe_file.is_file():
                raise SpdcError(f"--resume: {path} holds no run (no recipe.yaml)")
            return run
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise SpdcError(
                    f"run directory {path} already exists; use --resume to continue it, "
                    "--overwrite to replace it, or --out for another directory"
                )
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.recipe_file, recipe.to_yaml())
        return run

    def write_environment(self, device: str, threads: int) -> dict[str, Any]:
        import datasets
        import torch
        import transformers

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
            "device": device,
            "cuda_device": torch.cuda.get_device_name(0) if device == "cuda" else None,
        }
        atomic_write_text(self.environment_file, json.dumps(environment, indent=2) + "\n")
        return environment

    def append_metrics(self, record: TrainRecord | EvalRecord) -> None:
        with self.metrics_file.open("a", encoding="utf-8") as handle:
            handle.write(serialize_record(record))
            handle.flush()

    def read_metrics(self) -> list[TrainRecord | EvalRecord]:
        if not self.metrics_file.is_file():
            return []
        lines = self.metrics_file.read_text(encoding="utf-8").splitlines()
        return [parse_metrics_line(line) for line in lines if line]

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint so the log has no duplicated steps."""
        kept = [record for record in self.read_metrics() if record.step <= step]
        atomic_write_text(self.metrics_file, "".join(serialize_record(record) for record in kept))

    def write_summary(self, summary: RunSummary) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary.to_dict(), indent=2) + "\n")
