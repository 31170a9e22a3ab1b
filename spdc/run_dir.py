"""The run directory: everything a run produces, laid out so a run can be inspected, compared and resumed.

    recipe.yaml        resolved recipe (all defaults filled in)
    environment.json   versions, device, threads
    metrics.jsonl      one JSON record per log/eval event
    checkpoints/       latest resumable checkpoint (atomic)
    model/             best model so far (save_pretrained + tokenizer)
    summary.json       final result
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from spdc import __version__
from spdc.atomic import atomic_write_text
from spdc.errors import SpdcError
from spdc.recipe import Recipe


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

    recipe_file = property(lambda self: self.path / "recipe.yaml")
    environment_file = property(lambda self: self.path / "environment.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    summary_file = property(lambda self: self.path / "summary.json")
    model_dir = property(lambda self: self.path / "model")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")

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
            "spdc": __version__,
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

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text(encoding="utf-8").splitlines() if line]

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint so the log has no duplicated steps."""
        kept = [record for record in self.read_metrics() if record.get("step", 0) <= step]
        atomic_write_text(self.metrics_file, "".join(json.dumps(record) + "\n" for record in kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2) + "\n")
